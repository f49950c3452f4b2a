"""The image configuration: inheriting a base's, adding ours.

Inheritance follows Dockerfile semantics (each of our keys replaces the
base's, Env is merged per variable with ours winning, an Entrypoint set
without a Cmd clears the base's Cmd), so a child of a base with a command
and a workdir keeps them; nixpkgs kept only Env.
"""

from __future__ import annotations

import datetime
from typing import List, Optional

from .errors import SpecError

__all__ = ["merge_run_config", "image_config", "resolve_created"]

def _merge_env(base: List[str], ours: List[str]) -> List[str]:
    merged = {}
    for entry in list(base) + list(ours):
        key = entry.split("=", 1)[0]
        merged.pop(key, None)  # a redefined variable moves to its new place
        merged[key] = entry
    return list(merged.values())


def merge_run_config(base: Optional[dict], ours: dict) -> dict:
    """The ``config`` object of the new image."""
    if not isinstance(ours, dict):
        raise SpecError("config must be an attribute set")
    result = dict(base or {})
    for key, value in ours.items():
        if key == "Env":
            if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
                raise SpecError('config.Env must be a list of "NAME=value" strings')
            result["Env"] = _merge_env(result.get("Env") or [], value)
        else:
            result[key] = value
    if "Entrypoint" in ours and "Cmd" not in ours:
        result.pop("Cmd", None)
    return {k: v for k, v in result.items() if v is not None}


def resolve_created(created: str, now: Optional[datetime.datetime] = None) -> str:
    """``"now"`` is the build's time (the build is then not reproducible, by request)."""
    if created == "now":
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        datetime.datetime.strptime(created.replace("Z", "+00:00")[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise SpecError(f"created: {created!r} is neither \"now\" nor a time like 1970-01-01T00:00:01Z") from None
    return created


def image_config(*, base: Optional[dict], run_config: dict, diff_ids: List[str],
                 history: List[dict], created: str, architecture: str, os: str,
                 variant: Optional[str]) -> dict:
    """The whole config document. Base diff_ids and history come first."""
    config = {
        "architecture": architecture,
        "os": os,
        "created": created,
        "config": merge_run_config((base or {}).get("config"), run_config),
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": list((base or {}).get("history") or []) + list(history),
    }
    if variant:
        config["variant"] = variant
    return config


def epoch_of(value, what: str = "mtime", now: Optional[float] = None) -> int:
    """Seconds since 1970 for an integer, an ISO time or ``"now"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value == "now":
        import time
        return int(now if now is not None else time.time())
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.strptime(value.replace("Z", "+00:00"), "%Y-%m-%dT%H:%M:%S%z")
            return int(parsed.timestamp())
        except ValueError:
            pass
    raise SpecError(f"{what}: {value!r} is neither \"now\", a number of seconds, nor a time like 1970-01-01T00:00:01Z")
