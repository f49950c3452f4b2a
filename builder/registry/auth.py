"""Credentials for a registry, and the ``WWW-Authenticate`` challenge that
asks for them."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from builder.errors import RegistryError
from builder.model.reference import docker_hub_aliases

__all__ = ["Credentials", "find_credentials", "parse_challenge"]


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = "given"  # where they came from, for error messages

    def basic(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def _key_host(key: str) -> str:
    # Auth files key entries by "host", "https://host" or "https://host/v1/".
    if "://" in key:
        key = key.split("://", 1)[1]
    return key.split("/", 1)[0]


def _from_auth_file(path: str, host: str) -> Optional[Credentials]:
    try:
        with open(path, "rb") as f:
            auths = json.load(f).get("auths") or {}
    except (OSError, ValueError, AttributeError) as e:
        raise RegistryError(f"cannot read credentials from {path}: {e}") from None
    keys = docker_hub_aliases(host)
    for key, entry in sorted(auths.items()):
        if _key_host(key) not in keys or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(f"{path}: auths.{key}.auth is not base64 of user:password") from None
            return Credentials(user, password, path)
        if entry.get("username"):
            return Credentials(entry["username"], entry.get("password", ""), path)
    return None


def find_credentials(
    host: str, *, environ: Optional[Dict[str, str]] = None, home: Optional[str] = None
) -> Optional[Credentials]:
    """Credentials for ``host``: REGISTRY_USERNAME/REGISTRY_PASSWORD, then
    $REGISTRY_AUTH_FILE, podman's auth.json, docker's config.json."""
    env = os.environ if environ is None else environ
    if env.get("REGISTRY_USERNAME"):
        return Credentials(
            env["REGISTRY_USERNAME"], env.get("REGISTRY_PASSWORD", ""), "REGISTRY_USERNAME/REGISTRY_PASSWORD"
        )
    if env.get("REGISTRY_AUTH_FILE"):
        # Named explicitly: a missing file is the user's mistake, not "no credentials".
        return _from_auth_file(env["REGISTRY_AUTH_FILE"], host)
    home = home or env.get("HOME") or os.path.expanduser("~")
    candidates = []
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    candidates.append(os.path.join(env.get("DOCKER_CONFIG") or os.path.join(home, ".docker"), "config.json"))
    for path in candidates:
        if os.path.isfile(path):
            found = _from_auth_file(path, host)
            if found:
                return found
    return None


_PARAM_RE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


def parse_challenge(header: str) -> Tuple[str, Dict[str, str]]:
    """``Bearer realm="...",service="...",scope="a:b:pull,push"`` -> ("bearer", {...}).
    Quoted values may hold commas (scopes do), so this is not a split on ','."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for key, value in _PARAM_RE.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
    return scheme.lower(), params
