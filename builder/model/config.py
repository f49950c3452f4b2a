"""The image configuration: inheriting a base's, adding ours.

Inheritance follows Dockerfile semantics (each of our keys replaces the
base's, Env is merged per variable with ours winning, an Entrypoint set
without a Cmd clears the base's Cmd), so a child of a base with a command
and a workdir keeps them; nixpkgs kept only Env.
"""

from __future__ import annotations

import datetime
import json
from typing import Dict, List, Optional

from builder.errors import ImageFormatError, SpecError

__all__ = ["image_config", "merge_run_config", "resolve_created"]


def _merge_env(base: List[str], ours: List[str]) -> List[str]:
    merged: Dict[str, str] = {}
    for entry in list(base) + list(ours):
        key = entry.split("=", 1)[0]
        merged.pop(key, None)  # a redefined variable moves to its new place
        merged[key] = entry
    return list(merged.values())


_STRING_LISTS = ("Cmd", "Entrypoint", "Shell", "OnBuild")
_STRINGS = {"User": '"1000:1000"', "WorkingDir": '"/app"', "StopSignal": '"SIGTERM"'}
_SETS = {
    "ExposedPorts": '{ "80/tcp" = { }; }',
    "Volumes": '{ "/data" = { }; }',
    "Healthcheck": '{ Test = [ "CMD" "true" ]; }',
}


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_run_config(ours: dict) -> dict:
    """Keys docker and podman read with a fixed type: a wrong one would
    build an image that fails to load, so it fails here, by name."""
    checked = dict(ours)
    for key in _STRING_LISTS:
        value = ours.get(key)
        if isinstance(value, str):
            # docker reads a string here as a one-element list; podman rejects it.
            checked[key] = [value]
        elif value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise SpecError(
                f'config.{key} must be a list of strings, like [ "/bin/hello" "--flag" ], got {_shown(value)}'
            )
    for key, example in _STRINGS.items():
        value = ours.get(key)
        if value is not None and not isinstance(value, str):
            raise SpecError(f"config.{key} must be a string, like {example}, got {_shown(value)}")
    for key, example in _SETS.items():
        value = ours.get(key)
        if value is not None and not isinstance(value, dict):
            raise SpecError(f"config.{key} must be an attribute set, like {example}, got {_shown(value)}")
    labels = ours.get("Labels")
    if labels is not None and (not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values())):
        raise SpecError(
            f'config.Labels must be an attribute set of strings, like {{ "org.example" = "x"; }}, got {_shown(labels)}'
        )
    return checked


def merge_run_config(base: Optional[dict], ours: dict) -> dict:
    """The ``config`` object of the new image."""
    if not isinstance(ours, dict):
        raise SpecError("config must be an attribute set")
    ours = _check_run_config(ours)
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
        raise SpecError(f'created: {created!r} is neither "now" nor a time like 1970-01-01T00:00:01Z') from None
    return created


def image_config(
    *,
    base: Optional[dict],
    run_config: dict,
    diff_ids: List[str],
    history: List[dict],
    created: str,
    architecture: str,
    os: str,
    variant: Optional[str],
) -> dict:
    """The whole config document. Base diff_ids and history come first."""
    if base is not None and not isinstance(base, dict):
        raise ImageFormatError("the base image's config is not a JSON object")
    for key, kind, name in (("config", dict, "an object"), ("history", list, "a list")):
        value = (base or {}).get(key)
        if value is not None and not isinstance(value, kind):
            raise ImageFormatError(f"the base image's config: {key!r} is not {name}")
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


# What a tar header holds without an extension, either way of 1970: about
# 272 years. Beyond it no file system keeps the time (and 2**80 overflows).
_MAX_EPOCH = 8**11 - 1


def _in_range(seconds: int, what: str) -> int:
    if not -_MAX_EPOCH <= seconds <= _MAX_EPOCH:
        raise SpecError(f"{what}: {seconds} seconds is out of range (at most {_MAX_EPOCH} either way of 1970)")
    return seconds


def epoch_of(value, what: str = "mtime", now: Optional[float] = None) -> int:
    """Seconds since 1970 for an integer, an ISO time or ``"now"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _in_range(value, what)
    if value == "now":
        import time

        return int(now if now is not None else time.time())
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:  # no offset: UTC, not the build machine's zone
                parsed = parsed.replace(tzinfo=datetime.timezone.utc)
            return _in_range(int(parsed.timestamp()), what)
    raise SpecError(f'{what}: {value!r} is neither "now", a number of seconds, nor a time like 1970-01-01T00:00:01Z')
