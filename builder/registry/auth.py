"""Credentials for a registry, found where docker, podman and skopeo keep
them (auth files, credential helpers), and the ``WWW-Authenticate``
challenge that asks for them. No secret ever goes into a message."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from typing import Dict, List, Mapping, Optional, Tuple

from builder.errors import RegistryError
from builder.model.reference import docker_hub_aliases

__all__ = [
    "Credentials",
    "Search",
    "auth_files",
    "find_credentials",
    "parse_challenge",
    "run_helper",
    "search_credentials",
]


# Credentials and Search are written out, not dataclasses: the stream and push never load
# dataclasses (inspect, ast: ~15 ms of each start); tests/unit/test_imports.py pins it.
class Credentials:
    __slots__ = ("username", "password", "source", "identity_token")

    def __init__(
        self, username: str, password: str, source: str = "given", identity_token: Optional[str] = None
    ) -> None:
        self.username, self.password = username, password
        self.source = source  # where they came from, for error messages
        # A docker identity token (a credential helper's "<token>" user, or an
        # auth file's "identitytoken"): an OAuth2 refresh token for the token server.
        self.identity_token = identity_token

    def __repr__(self) -> str:  # no secret: neither the password nor the token
        return f"Credentials(username={self.username!r}, source={self.source!r})"

    def basic(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


class Search:
    """The result of looking for credentials: what was found (or None) and
    every source looked at, in order, for messages (never a secret)."""

    __slots__ = ("credentials", "tried")

    def __init__(self, credentials: Optional[Credentials], tried: List[str]) -> None:
        self.credentials, self.tried = credentials, tried

    def describe(self) -> str:
        return "; ".join(self.tried) if self.tried else "no credential sources"


_HUB_SERVER = "https://index.docker.io/v1/"  # how docker names Docker Hub to helpers and in its files
_HELPER_TIMEOUT = 120.0


def _split_key(key: str) -> Tuple[str, str]:
    """An auth file key -> (host, namespace path). Keys are "host",
    "host/namespace/repo" (podman), or "https://host[/v1/]" (docker's legacy
    URLs, whose path is not a namespace)."""
    if "://" in key:
        return key.split("://", 1)[1].split("/", 1)[0], ""
    host, _, path = key.partition("/")
    return host, path.strip("/")


def _key_match(key: str, host: str, repository: Optional[str]) -> Optional[int]:
    """How specifically ``key`` names ``host``/``repository``: None when it
    does not; otherwise the namespace length (the longest match wins)."""
    key_host, path = _split_key(key)
    if key_host.lower() not in docker_hub_aliases(host.lower()):
        return None
    if not path:
        return 0
    if repository is not None and (repository == path or repository.startswith(path + "/")):
        return len(path)
    return None


def _best_key(mapping: Dict[str, object], host: str, repository: Optional[str]) -> Optional[str]:
    ranked = []
    for key in mapping:
        rank = _key_match(key, host, repository) if isinstance(key, str) else None
        if rank is not None:
            ranked.append((-rank, key))
    return min(ranked)[1] if ranked else None


def _helper_server(host: str) -> str:
    return _HUB_SERVER if host in docker_hub_aliases("docker.io") else host


def run_helper(helper: str, host: str, env: Mapping[str, str], configured_in: str) -> Optional[Credentials]:
    """``docker-credential-HELPER get`` with the server on stdin, as docker
    and podman run it. None when the helper has nothing for ``host``."""
    import subprocess  # only when a helper is configured

    program = f"docker-credential-{helper}"
    where = f"credential helper {program} (from {configured_in})"
    path = shutil.which(program, path=env.get("PATH", os.defpath))
    if path is None:
        raise RegistryError(f"{where} is not on PATH: install it, or remove it from {configured_in}")
    try:
        done = subprocess.run(
            [path, "get"],
            input=_helper_server(host).encode(),
            capture_output=True,
            timeout=_HELPER_TIMEOUT,
            env=dict(env),
        )
    except subprocess.TimeoutExpired:
        raise RegistryError(f"{where} did not answer within {_HELPER_TIMEOUT:g} s") from None
    except OSError as e:
        raise RegistryError(f"{where} cannot be run: {e.strerror or e}") from None
    out = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0:
        # The protocol's "not found" answer is this message on stdout.
        if "credentials not found" in out.lower() or not out:
            return None
        # Its first line only: helpers do not print secrets in errors, and
        # this is at most a short reason.
        reason = out.splitlines()[0][:200]
        raise RegistryError(f"{where} failed for {host} (exit {done.returncode}): {reason}")
    try:
        answer = json.loads(out)
        username, secret = answer.get("Username") or "", answer.get("Secret") or ""
    except (ValueError, AttributeError):
        raise RegistryError(f"{where} answered for {host} with something that is not its JSON") from None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise RegistryError(f"{where} answered for {host} with something that is not its JSON")
    if not secret:
        return None
    if username == "<token>":
        return Credentials("<token>", "", where, identity_token=secret)
    return Credentials(username, secret, where)


def _read_json(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise RegistryError(f"cannot read credentials from {path}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"cannot read credentials from {path}: not a JSON object")
    return data


def _entry_credentials(entry: object, path: str, key: str) -> Optional[Credentials]:
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken") or entry.get("identityToken")
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError, TypeError):
            raise RegistryError(f"{path}: auths.{key}.auth is not base64 of user:password") from None
        return Credentials(user, password, path, identity_token=token or None)
    if entry.get("username"):
        return Credentials(entry["username"], entry.get("password", ""), path, identity_token=token or None)
    if token:
        return Credentials("<token>", "", path, identity_token=token)
    return None


def _from_auth_file(
    path: str,
    host: str,
    repository: Optional[str] = None,
    *,
    env: Optional[Mapping[str, str]] = None,
    legacy: bool = False,
    helpers: bool = True,
) -> Tuple[Optional[Credentials], str]:
    """Credentials for ``host`` in one file, and what was looked at there.
    Docker's rules: ``credHelpers`` for the host, else ``credsStore``, else
    ``auths`` (the most specific key: podman allows host/namespace keys).
    ``legacy``: ~/.dockercfg, the entries at the top level."""
    data = _read_json(path)
    env = os.environ if env is None else env
    notes = []
    if not legacy:
        helper = None
        helper_map = data.get("credHelpers")
        if isinstance(helper_map, dict):
            key = _best_key(helper_map, host, repository)
            if key is not None and isinstance(helper_map[key], str) and helper_map[key]:
                helper = (helper_map[key], "credHelpers")
        store = data.get("credsStore")
        if helper is None and isinstance(store, str) and store:
            helper = (store, "credsStore")
        if helper is not None:
            name, kind = helper
            if helpers:
                found = run_helper(name, host, env, f"{path} {kind}")
                if found:
                    return found, f"{path} ({kind}: docker-credential-{name})"
                notes.append(f"{kind}: docker-credential-{name} had none")
            else:
                notes.append(f"{kind}: docker-credential-{name} not run here")
    auths = data if legacy else data.get("auths") or {}
    if isinstance(auths, dict):
        key = _best_key(auths, host, repository)
        if key is not None:
            found = _entry_credentials(auths[key], path, key)
            if found:
                return found, path
    notes.append("no entry")
    return None, f"{path} ({', '.join(notes)})"


def auth_files(env: Mapping[str, str], home: str, uid: Optional[int] = None) -> List[Tuple[str, bool]]:
    """The files podman, skopeo and docker read, in their order
    (containers-auth.json(5)): (path, legacy format). $REGISTRY_AUTH_FILE,
    when set, is the only one."""
    if env.get("REGISTRY_AUTH_FILE"):
        return [(env["REGISTRY_AUTH_FILE"], False)]
    uid = os.getuid() if uid is None else uid
    runtime = env.get("XDG_RUNTIME_DIR")
    files = [
        (os.path.join(runtime, "containers", "auth.json") if runtime else f"/run/containers/{uid}/auth.json", False),
        (os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "containers", "auth.json"), False),
        (os.path.join(env.get("DOCKER_CONFIG") or os.path.join(home, ".docker"), "config.json"), False),
        (os.path.join(home, ".dockercfg"), True),
    ]
    return files


def search_credentials(
    host: str,
    repository: Optional[str] = None,
    *,
    environ: Optional[Mapping[str, str]] = None,
    home: Optional[str] = None,
    uid: Optional[int] = None,
    helpers: bool = True,
) -> Search:
    """Credentials for ``host`` (and ``repository``, for namespace keys), as
    docker, podman and skopeo find them: REGISTRY_USERNAME/REGISTRY_PASSWORD;
    then $REGISTRY_AUTH_FILE alone, or $XDG_RUNTIME_DIR/containers/auth.json
    (/run/containers/UID/auth.json), $XDG_CONFIG_HOME/containers/auth.json
    (~/.config/...), $DOCKER_CONFIG/config.json (~/.docker/config.json),
    ~/.dockercfg; in each file credHelpers, credsStore, then auths."""
    env = os.environ if environ is None else environ
    if env.get("REGISTRY_USERNAME"):
        source = "REGISTRY_USERNAME/REGISTRY_PASSWORD"
        return Search(Credentials(env["REGISTRY_USERNAME"], env.get("REGISTRY_PASSWORD", ""), source), [source])
    home = home or env.get("HOME") or os.path.expanduser("~")
    tried = []
    for path, legacy in auth_files(env, home, uid):
        # Named explicitly: a missing file is the user's mistake, not "no credentials".
        if not env.get("REGISTRY_AUTH_FILE") and not os.path.isfile(path):
            tried.append(f"{path} (absent)")
            continue
        found, note = _from_auth_file(path, host, repository, env=env, legacy=legacy, helpers=helpers)
        tried.append(note if not env.get("REGISTRY_AUTH_FILE") else f"$REGISTRY_AUTH_FILE {note}")
        if found:
            return Search(found, tried)
    return Search(None, tried)


def find_credentials(
    host: str,
    *,
    environ: Optional[Mapping[str, str]] = None,
    home: Optional[str] = None,
    repository: Optional[str] = None,
) -> Optional[Credentials]:
    """Credentials for ``host``, or None (see search_credentials)."""
    return search_credentials(host, repository, environ=environ, home=home).credentials


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
