"""A registry client (OCI distribution-spec v1.1, as distribution 2.8 speaks it).

``push`` sends an image (or a group of per-platform images as an index):
blobs first, each skipped when the registry has it (HEAD) or mounted from
another repository, then manifests, and the tag last, so a push that dies
half-way never leaves a tag pointing at missing blobs. ``pull`` fetches one
platform's manifest, config and layers into an OCI layout directory, every
blob checked against its digest before it gets its name there.

Everything that touches the outside is a parameter: the HTTP ``opener``,
``sleep`` and ``clock`` for retries and token expiry, ``environ`` and
``home`` for credentials. Tests pass fakes; nothing is patched.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import ssl
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import oci_layout
from .errors import BuildError, DigestMismatch, RegistryError, SpecError
from .image import (DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Blob, Image,
                    sha256_digest)
from .sinks import Sink
from .spec import check_image_name, check_tag

__all__ = ["Reference", "parse_reference", "Credentials", "find_credentials", "parse_challenge",
           "Proxy", "proxy_for", "HttpOpener", "RegistryClient", "PushResult", "push", "pull", "MANIFEST_ACCEPT"]

MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
DEFAULT_CHUNK = 64 << 20
# Registries should accept manifests up to 4 MiB (distribution-spec); more
# than this is not a manifest, and we will not hold it in memory.
_MANIFEST_LIMIT = 8 << 20
_READ_CHUNK = 1 << 20
_SEND_BUFFER = 256 << 10
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_DOCKER_HUB = "docker.io"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- references ----------------------------------------------------------------

@dataclass(frozen=True)
class Reference:
    registry: str            # host[:port]; docker.io for Docker Hub
    repository: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @property
    def api_host(self) -> str:
        return "registry-1.docker.io" if self.registry == _DOCKER_HUB else self.registry

    @property
    def target(self) -> str:
        """What a manifest URL names: the digest when there is one."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def parse_reference(text: str) -> Reference:
    """``[docker://]HOST[:PORT]/NAME[:TAG|@DIGEST]``; without a host (a first
    component with no dot or port that is not localhost) it is Docker Hub."""
    rest = text[len("docker://"):] if text.startswith("docker://") else text
    rest, at, digest = rest.partition("@")
    if at and not _DIGEST_RE.match(digest):
        raise SpecError(f"{text}: {digest!r} is not a sha256 digest")
    name, tag = rest, None
    head, colon, tail = rest.rpartition(":")
    if colon and "/" not in tail:
        name, tag = head, check_tag(tail)
    first, slash, path = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, path
    else:
        registry, repository = _DOCKER_HUB, name if slash else "library/" + name
    check_image_name(f"{registry}/{repository}")
    return Reference(registry, repository, tag if (tag or at) else "latest", digest or None)


# --- credentials ----------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = "given"       # where they came from, for error messages

    def basic(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def _host_keys(host: str) -> set:
    if host in (_DOCKER_HUB, "registry-1.docker.io", "index.docker.io"):
        return {_DOCKER_HUB, "registry-1.docker.io", "index.docker.io"}
    return {host}


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
    keys = _host_keys(host)
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


def find_credentials(host: str, *, environ: Optional[Dict[str, str]] = None,
                     home: Optional[str] = None) -> Optional[Credentials]:
    """Credentials for ``host``: REGISTRY_USERNAME/REGISTRY_PASSWORD, then
    $REGISTRY_AUTH_FILE, podman's auth.json, docker's config.json."""
    env = os.environ if environ is None else environ
    if env.get("REGISTRY_USERNAME"):
        return Credentials(env["REGISTRY_USERNAME"], env.get("REGISTRY_PASSWORD", ""),
                           "REGISTRY_USERNAME/REGISTRY_PASSWORD")
    if env.get("REGISTRY_AUTH_FILE"):
        # Named explicitly: a missing file is the user's mistake, not "no credentials".
        return _from_auth_file(env["REGISTRY_AUTH_FILE"], host)
    home = home or env.get("HOME") or os.path.expanduser("~")
    candidates = []
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    candidates.append(os.path.join(env.get("DOCKER_CONFIG") or os.path.join(home, ".docker"),
                                   "config.json"))
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


# --- HTTP -----------------------------------------------------------------------

class _SendFailed(ConnectionError):
    """The socket broke while a request body was being sent."""


class _ConnectFailed(ConnectionError):
    def __init__(self, message: str, temporary: bool):
        super().__init__(message)
        self.temporary = temporary


class _SocketSink(Sink):
    """Streams a request body onto the socket; refuses to send past the
    Content-Length announced, which would corrupt the next request."""

    def __init__(self, sock: socket.socket, limit: int):
        self.sock = sock
        self.limit = limit
        self.size = 0
        self.buffer = bytearray()

    def _count(self, n: int) -> None:
        self.size += n
        if self.size > self.limit:
            raise BuildError(f"blob writer produced more than its {self.limit} bytes")

    def write(self, data) -> None:
        self._count(len(data))
        self.buffer += data
        if len(self.buffer) >= _SEND_BUFFER:
            self.flush()

    def flush(self) -> None:
        try:
            self.sock.sendall(self.buffer)
        except OSError as e:
            raise _SendFailed(f"connection lost while sending: {e}") from e
        self.buffer.clear()

    def copy_file(self, fd: int, size: int) -> None:
        self._count(size)
        self.flush()
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        # socket.sendfile uses sendfile(2) on plain sockets, send() under TLS.
        with open(fd, "rb", buffering=0, closefd=False) as f:
            try:
                sent = self.sock.sendfile(f, offset, size)
            except OSError as e:
                raise _SendFailed(f"connection lost while sending: {e}") from e
        if sent != size:
            raise BuildError(f"file shrank while sending: {size - sent} bytes missing")


Body = Union[None, bytes, Blob]


class _Response:
    """An http.client response that knows whether its body was read to the
    end: a connection may carry the next request only then."""

    def __init__(self, raw: http.client.HTTPResponse):
        self.raw = raw
        self.status, self.reason, self.headers = raw.status, raw.reason, raw.headers
        self.abandoned = False

    def read(self, n: Optional[int] = None) -> bytes:
        return self.raw.read(n)

    def close(self) -> None:
        self.abandoned = self.abandoned or not self.raw.isclosed()
        self.raw.close()

    @property
    def finished(self) -> bool:
        return self.raw.isclosed() and not self.abandoned


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    authorization: Optional[str]  # a Proxy-Authorization header value


def proxy_for(scheme: str, netloc: str, environ) -> Optional[Proxy]:
    """The HTTP proxy ``https_proxy``/``http_proxy``/``all_proxy`` name for
    ``scheme://netloc``, unless ``no_proxy`` exempts it (as curl and skopeo
    read them; lower-case names win)."""
    env = {}
    for key in sorted(environ, key=lambda k: k.islower()):  # upper-case first, lower-case wins
        if key.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") and environ[key]:
            env[key.lower()] = environ[key]
    host = (urllib.parse.urlsplit("//" + netloc).hostname or "").lower()
    for entry in env.get("no_proxy", "").split(","):
        entry = entry.strip().lower()
        if entry == "*":
            return None
        if entry.count(":") == 1:
            entry = entry.rsplit(":", 1)[0]  # host:port
        entry = entry.lstrip("*").lstrip(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return None
    url = env.get(f"{scheme}_proxy") or env.get("all_proxy")
    if not url:
        return None
    parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    # An https:// proxy URL is taken as Python's urllib takes it: plain HTTP
    # to the proxy, TLS through the tunnel.
    if parts.scheme not in ("http", "https") or not parts.hostname:
        if not env.get(f"{scheme}_proxy"):
            return None  # all_proxy=socks5://... is for other programs
        raise RegistryError(f"{scheme}_proxy {url!r}: only HTTP proxies are supported")
    auth = None
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode()
    return Proxy(parts.hostname, parts.port or 80, auth)


class HttpOpener:
    """``opener(method, url, headers, body) -> response`` over http.client,
    one kept-alive connection per host. ``body`` is bytes or a Blob, whose
    writer streams straight onto the socket. Network failures come out as
    ConnectionError, TimeoutError or http.client.HTTPException; anything a
    blob writer raises comes out unchanged. A proxy named in ``environ``
    (https_proxy, http_proxy, all_proxy, no_proxy) is reached with CONNECT."""

    def __init__(self, timeout: float = 300.0, context: Optional[ssl.SSLContext] = None,
                 environ=None):
        self.timeout = timeout
        self.context = context
        self.environ = os.environ if environ is None else environ
        self.pool: Dict[Tuple[str, str], http.client.HTTPConnection] = {}
        self.last: Dict[Tuple[str, str], _Response] = {}

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        conn = self.pool.get(key)
        if conn is None:
            if scheme not in ("http", "https"):
                raise RegistryError(f"unsupported URL scheme {scheme!r}")
            proxy = proxy_for(scheme, netloc, self.environ)
            target = (proxy.host, proxy.port) if proxy else (netloc, None)
            if scheme == "https":
                conn = http.client.HTTPSConnection(*target, timeout=self.timeout,
                                                   context=self.context or ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(*target, timeout=self.timeout)
            if proxy:
                conn.set_tunnel(netloc, headers={"Proxy-Authorization": proxy.authorization}
                                if proxy.authorization else None)
            self.pool[key] = conn
        last = self.last.pop(key, None)
        if last is not None and not last.finished:
            conn.close()            # unread body bytes would be taken for the next answer
        if conn.sock is None:
            try:
                conn.connect()
            except ssl.SSLError as e:
                raise _ConnectFailed(f"TLS with {netloc} failed: {e}", temporary=False) from e
            except OSError as e:
                raise _ConnectFailed(f"cannot connect to {netloc}: {e}", temporary=True) from e
        return conn

    def __call__(self, method: str, url: str, headers: Dict[str, str], body: Body = None):
        parts = urllib.parse.urlsplit(url)
        conn = self._connection(parts.scheme, parts.netloc)
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        response = _Response(self._exchange(conn, method, path, headers, body))
        self.last[(parts.scheme, parts.netloc)] = response
        return response

    def _exchange(self, conn: http.client.HTTPConnection, method: str, path: str,
                  headers: Dict[str, str], body: Body) -> http.client.HTTPResponse:
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for key, value in headers.items():
                conn.putheader(key, value)
            if body is not None or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(_body_size(body)))
            conn.endheaders()
            if isinstance(body, (bytes, bytearray)):
                conn.send(body)
            elif body is not None:
                self._stream(conn, body)
            return conn.getresponse()
        except _SendFailed:
            # The server may have answered (a 401, a 413) and closed: its
            # answer says more than the broken pipe.
            try:
                return conn.getresponse()
            except Exception:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise

    @staticmethod
    def _stream(conn: http.client.HTTPConnection, blob: Blob) -> None:
        sink = _SocketSink(conn.sock, blob.size)
        blob.write_to(sink)
        sink.flush()
        if sink.size != blob.size:
            raise DigestMismatch(f"{blob.digest}: size", str(blob.size), str(sink.size))

    def close(self) -> None:
        for conn in self.pool.values():
            conn.close()
        self.pool.clear()
        self.last.clear()


def _body_size(body: Body) -> int:
    if body is None:
        return 0
    return len(body) if isinstance(body, (bytes, bytearray)) else body.size


# --- the protocol, one method per step -----------------------------------------------

def _short(digest: str) -> str:
    return digest[:19] + "…"


def _human(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    extra = urllib.parse.urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _error_text(body: bytes) -> str:
    """The registry's error JSON as "CODE: message; ..." (or the raw start)."""
    try:
        errors = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}".rstrip(": ")
                         for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace").strip()


def _retryable(e: BaseException) -> bool:
    return getattr(e, "temporary", True)


class RegistryClient:
    """A session with one repository: connection reuse, auth and retries."""

    def __init__(self, reference: Reference, *, insecure: bool = False,
                 auth: Union[None, Credentials, Tuple[str, str]] = None,
                 opener: Optional[Callable] = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, retries: int = 4,
                 backoff: float = 1.0, environ: Optional[Dict[str, str]] = None,
                 home: Optional[str] = None, actions: str = "pull",
                 extra_scopes: Sequence[str] = (),
                 progress: Optional[Callable[[str], None]] = _stderr):
        self.ref = reference
        self.base = f"{'http' if insecure else 'https'}://{reference.api_host}"
        if isinstance(auth, tuple):
            auth = Credentials(auth[0], auth[1])
        self.credentials = auth if auth is not None else find_credentials(
            reference.registry, environ=environ, home=home)
        self.opener = opener or HttpOpener()
        self.sleep, self.clock = sleep, clock
        self.retries, self.backoff = retries, backoff
        self.scopes = [f"repository:{reference.repository}:{actions}", *extra_scopes]
        self.progress = progress or (lambda line: None)
        self.authorization: Optional[str] = None
        self.challenge: Optional[Tuple[str, Dict[str, str]]] = None
        self.expires = float("inf")
        self.owns_opener = opener is None

    def close(self) -> None:
        if self.owns_opener:
            self.opener.close()

    # -- plumbing --

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.ref.repository}/{path}"

    def _send(self, method: str, url: str, headers: Dict[str, str], body: Body):
        try:
            return self.opener(method, url, headers, body)
        except (ConnectionError, TimeoutError, http.client.HTTPException, ssl.SSLError) as e:
            raise RegistryError(f"connection failed: {e}", method=method, url=_plain(url),
                                temporary=_retryable(e)) from e

    def _headers(self, url: str, headers: Optional[Dict[str, str]]) -> Dict[str, str]:
        headers = dict(headers or {})
        # Credentials go only to the registry itself, never to a redirect target.
        if self.authorization and url.startswith(self.base + "/"):
            if self.challenge and self.challenge[0] == "bearer" and self.clock() >= self.expires:
                self._authorize(self.challenge)
            headers["Authorization"] = self.authorization
        return headers

    def request(self, method: str, url: str, headers: Optional[Dict[str, str]] = None,
                body: Body = None, ok: Sequence[int] = (200,)):
        """One exchange; a 401 gets one new authorization and one more try.
        Returns the response with its body unread for 2xx, else raises."""
        resp = self._send(method, url, self._headers(url, headers), body)
        if resp.status == 401:
            challenge = resp.headers.get("WWW-Authenticate") or ""
            _drain(resp)
            self._authorize(parse_challenge(challenge), method, url)
            resp = self._send(method, url, self._headers(url, headers), body)
        if resp.status not in ok:
            raise self._failure(method, url, resp)
        return resp

    def _failure(self, method: str, url: str, resp) -> RegistryError:
        text = _error_text(_drain(resp, limit=1 << 16))
        status = resp.status
        if status == 401:
            who = (f"user {self.credentials.username!r} (from {self.credentials.source})"
                   if self.credentials else "no credentials")
            message = f"authentication failed for {who}"
        elif status == 403 or "DENIED" in text:
            message = "access denied"
        elif status == 404:
            message = "not found"
        else:
            message = f"unexpected answer {getattr(resp, 'reason', '')}".strip()
        if text:
            message += f" ({text})"
        return RegistryError(f"{status} {message}", method=method, url=_plain(url), status=status,
                             temporary=status >= 500 or status == 429)

    def retrying(self, what: str, step: Callable[[], object]):
        """``step`` again after 1, 2, 4... s when the failure is temporary
        (5xx, 429, a dropped connection); other errors go straight up."""
        for attempt in range(self.retries + 1):
            try:
                return step()
            except RegistryError as e:
                if not e.temporary or attempt == self.retries:
                    raise
                delay = self.backoff * 2 ** attempt
                self.progress(f"{what}: {e}; retrying in {delay:g} s")
                self.sleep(delay)

    # -- auth --

    def ping(self) -> None:
        """GET /v2/: learns whether and how to authenticate, and checks the
        credentials before any blob is sent."""
        self.retrying(f"connecting to {self.ref.registry}",
                      lambda: _drain(self.request("GET", f"{self.base}/v2/")))

    def _authorize(self, challenge: Tuple[str, Dict[str, str]], method: str = "GET",
                   url: str = "") -> None:
        scheme, params = challenge
        if scheme == "basic":
            if self.credentials is None:
                raise RegistryError(f"401 authentication required and no credentials for "
                                    f"{self.ref.registry} (set REGISTRY_AUTH_FILE, "
                                    "~/.docker/config.json or REGISTRY_USERNAME/REGISTRY_PASSWORD)",
                                    method=method, url=_plain(url), status=401)
            self.authorization = self.credentials.basic()
        elif scheme == "bearer" and params.get("realm"):
            self.authorization = "Bearer " + self._token(params)
        else:
            raise RegistryError(f"401 with an authentication scheme this client does not speak: "
                                f"{scheme or '(none)'}", method=method, url=_plain(url), status=401)
        self.challenge = challenge

    def _token(self, params: Dict[str, str]) -> str:
        scopes = list(self.scopes)
        if params.get("scope") and params["scope"] not in scopes:
            scopes.append(params["scope"])
        query = [("scope", s) for s in scopes]
        if params.get("service"):
            query.insert(0, ("service", params["service"]))
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
        headers = {"Authorization": self.credentials.basic()} if self.credentials else {}
        resp = self._send("GET", url, headers, None)
        if resp.status != 200:
            raise self._failure("GET", url, resp)
        try:
            answer = json.loads(_drain(resp, limit=1 << 20))
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token, answer = None, {}
        if not token:
            raise RegistryError("token server answered without a token", method="GET", url=_plain(url))
        # Refresh a little early: a request must not start with a token about to lapse.
        self.expires = self.clock() + max(float(answer.get("expires_in") or 60) - 5, 1)
        return token

    # -- blobs --

    def blob_exists(self, digest: str) -> bool:
        resp = self.request("HEAD", self.url(f"blobs/{digest}"), ok=(200, 404))
        _drain(resp)
        return resp.status == 200

    def start_upload(self, digest: str, mount_from: Optional[str] = None) -> Optional[str]:
        """An upload URL, or None when the blob was mounted from ``mount_from``."""
        url = self.url("blobs/uploads/")
        if mount_from:
            url = _with_query(url, mount=digest, **{"from": mount_from})
        resp = self.request("POST", url, ok=(201, 202))
        _drain(resp)
        if resp.status == 201:
            return None
        return _location(resp, "POST", url)

    def upload_whole(self, location: str, blob: Blob) -> None:
        url = _with_query(location, digest=blob.digest)
        _drain(self.request("PUT", url, {"Content-Type": "application/octet-stream"}, blob, ok=(201,)))

    def upload_chunks(self, location: str, blob: Blob, chunk_size: int) -> None:
        """PATCH the blob ``chunk_size`` bytes at a time, then close with a PUT.
        Chunks are spooled to a temporary file, because the writer pushes
        bytes while each PATCH needs its length up front."""
        with tempfile.TemporaryFile() as spool:
            uploader = _ChunkUploader(self, location, chunk_size, spool)
            blob.write_to(uploader)
            uploader.send_chunk()
        if uploader.offset != blob.size:
            raise DigestMismatch(f"{blob.digest}: size", str(blob.size), str(uploader.offset))
        url = _with_query(uploader.location, digest=blob.digest)
        _drain(self.request("PUT", url, ok=(201,)))

    def cancel_upload(self, location: str) -> None:
        """Best effort: the registry would expire the upload anyway."""
        try:
            _drain(self.request("DELETE", location, ok=(204, 404)))
        except (RegistryError, OSError):
            pass

    def fetch_blob(self, digest: str, sink: Sink) -> int:
        resp = self._get_following(self.url(f"blobs/{digest}"), {})
        size = 0
        try:
            while True:
                chunk = resp.read(_READ_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                sink.write(chunk)
        except (ConnectionError, TimeoutError, http.client.HTTPException) as e:
            resp.close()
            raise RegistryError(f"connection lost while downloading: {e}", method="GET",
                                url=self.url(f"blobs/{digest}"), temporary=True) from e
        except BaseException:
            resp.close()
            raise
        return size

    def _get_following(self, url: str, headers: Dict[str, str]):
        # Blob GETs may redirect to storage (S3, a CDN): 307 and its kin.
        for _ in range(5):
            resp = self.request("GET", url, headers, ok=(200, 301, 302, 303, 307, 308))
            if resp.status == 200:
                return resp
            location = _location(resp, "GET", url)
            _drain(resp)
            url = location
        raise RegistryError("too many redirects", method="GET", url=_plain(url))

    # -- manifests --

    def put_manifest(self, blob: Blob, target: str) -> None:
        url = self.url(f"manifests/{target}")
        body = _blob_bytes(blob)
        resp = self.request("PUT", url, {"Content-Type": blob.media_type}, body, ok=(201, 200))
        answered = resp.headers.get("Docker-Content-Digest")
        _drain(resp)
        if answered and answered != blob.digest:
            raise DigestMismatch(f"manifest stored at {_plain(url)}", blob.digest, answered)

    def get_manifest(self, target: str) -> Tuple[bytes, str]:
        """A manifest's exact bytes and media type, checked against the digest
        asked for, or the one the registry says it has."""
        url = self.url(f"manifests/{target}")
        resp = self._get_following(url, {"Accept": MANIFEST_ACCEPT})
        media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        claimed = resp.headers.get("Docker-Content-Digest")
        data = _drain(resp, limit=_MANIFEST_LIMIT)
        expected = target if _DIGEST_RE.match(target) else claimed
        got = sha256_digest(data)
        if expected and expected != got:
            raise DigestMismatch(f"manifest {_plain(url)}", expected, got)
        return data, media_type


class _ChunkUploader(Sink):
    """Collects a writer's bytes into a spool and sends each full chunk as one PATCH."""

    def __init__(self, client: RegistryClient, location: str, chunk_size: int, spool):
        self.client = client
        self.location = location
        self.chunk_size = chunk_size
        self.spool = spool
        self.pending = 0
        self.offset = 0

    def write(self, data) -> None:
        view = memoryview(data)
        while view:
            room = self.chunk_size - self.pending
            self.spool.write(view[:room])
            self.pending += min(room, len(view))
            view = view[room:]
            if self.pending == self.chunk_size:
                self.send_chunk()

    def send_chunk(self) -> None:
        if not self.pending:
            return
        spool, size = self.spool, self.pending
        spool.flush()

        def replay(sink: Sink) -> None:
            spool.seek(0)
            sink.copy_file(spool.fileno(), size)
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Range": f"{self.offset}-{self.offset + size - 1}"}
        resp = self.client.request("PATCH", self.location, headers,
                                   Blob("application/octet-stream", "", size, replay), ok=(202,))
        _drain(resp)
        self.location = _location(resp, "PATCH", self.location)
        self.offset += size
        self.pending = 0
        spool.seek(0)
        spool.truncate()


def _location(resp, method: str, url: str) -> str:
    """The Location an answer points to, made absolute (registries send it relative)."""
    location = resp.headers.get("Location")
    if not location:
        raise RegistryError(f"{resp.status} without a Location header", method=method, url=_plain(url))
    return urllib.parse.urljoin(url, location)


def _drain(resp, limit: int = 1 << 20) -> bytes:
    """Read a whole (small) body, so the connection can carry the next request."""
    data = resp.read(limit + 1)
    if len(data) > limit:
        resp.close()
        raise RegistryError(f"answer larger than {limit} bytes")
    return data


def _plain(url: str) -> str:
    # Upload URLs carry a long opaque _state query: not worth a line of an error.
    return url.split("?", 1)[0]


def _blob_bytes(blob: Blob) -> bytes:
    parts = []

    class _Collect(Sink):
        def write(self, data) -> None:
            parts.append(bytes(data))
    blob.write_to(_Collect())
    return b"".join(parts)


# --- push -------------------------------------------------------------------------------

@dataclass
class PushResult:
    reference: str
    digest: str                 # what the tag now points at (manifest or index)
    uploaded: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    mounted: List[str] = field(default_factory=list)
    manifests: List[str] = field(default_factory=list)
    bytes_uploaded: int = 0


def _send_blob(client: RegistryClient, blob: Blob, label: str, result: PushResult,
               mount_from: Optional[str], chunk_size: int) -> None:
    if client.blob_exists(blob.digest):
        result.skipped.append(blob.digest)
        client.progress(f"{label} {_short(blob.digest)} skipped (already present)")
        return
    location = client.start_upload(blob.digest, mount_from)
    if location is None:
        result.mounted.append(blob.digest)
        client.progress(f"{label} {_short(blob.digest)} mounted from {mount_from}")
        return
    try:
        if blob.size > chunk_size:
            client.upload_chunks(location, blob, chunk_size)
        else:
            client.upload_whole(location, blob)
    except Exception:
        # Not on Ctrl-C: a DELETE could keep the user waiting; the registry
        # purges abandoned uploads by itself.
        client.cancel_upload(location)
        raise
    result.uploaded.append(blob.digest)
    result.bytes_uploaded += blob.size
    client.progress(f"{label} {_short(blob.digest)} {_human(blob.size)} uploaded")


def push(image_or_images: Union[Image, Sequence[Image]], ref: Union[str, Reference], *,
         insecure: bool = False, auth: Union[None, Credentials, Tuple[str, str]] = None,
         progress: Optional[Callable[[str], None]] = _stderr, encoding: str = "gzip",
         flavour: str = "oci", mount_from: Optional[str] = None,
         chunk_size: int = DEFAULT_CHUNK, **session) -> PushResult:
    """Push one image, or a list of per-platform images as an index, to ``ref``.

    ``mount_from`` names a repository on the same registry that may hold
    some blobs already (a base image's); ``session`` goes to RegistryClient
    (opener, sleep, clock, retries, backoff, environ, home).
    """
    reference = parse_reference(ref) if isinstance(ref, str) else ref
    rendered = oci_layout.render(image_or_images, encoding, flavour)
    if reference.digest and reference.digest != rendered.top.digest:
        raise BuildError(f"{reference}: the image's digest is {rendered.top.digest}")
    extra = [f"repository:{mount_from}:pull"] if mount_from else []
    client = RegistryClient(reference, insecure=insecure, auth=auth, progress=progress,
                            actions="pull,push", extra_scopes=extra, **session)
    try:
        return _push(client, rendered, reference, mount_from, chunk_size)
    finally:
        client.close()


def _push(client: RegistryClient, rendered: oci_layout.Rendered, reference: Reference,
          mount_from: Optional[str], chunk_size: int) -> PushResult:
    client.ping()
    result = PushResult(str(reference), rendered.top.digest)
    layers = _distinct(b for m in rendered.manifests for b in m.layers)
    configs = _distinct(m.config for m in rendered.manifests)
    labelled = [(f"layer {i}/{len(layers)}", b) for i, b in enumerate(layers, 1)]
    labelled += [("config", b) for b in configs]
    for label, blob in labelled:
        client.retrying(f"{label} {_short(blob.digest)}",
                        lambda: _send_blob(client, blob, label, result, mount_from, chunk_size))
    if rendered.top.media_type in oci_layout.INDEX_TYPES:
        # An index may only name manifests the registry already has.
        for m in rendered.manifests:
            client.retrying("manifest", lambda: client.put_manifest(m.blob, m.blob.digest))
            result.manifests.append(m.blob.digest)
    client.retrying("manifest", lambda: client.put_manifest(rendered.top, reference.target))
    result.manifests.append(rendered.top.digest)
    client.progress(f"pushed {reference} ({rendered.top.digest})")
    return result


def _distinct(blobs) -> List[Blob]:
    seen: Dict[str, Blob] = {}
    for blob in blobs:
        seen.setdefault(blob.digest, blob)
    return list(seen.values())


# --- pull -------------------------------------------------------------------------------

def _remote_blob(client: RegistryClient, desc: dict) -> Blob:
    digest = desc.get("digest") or ""
    if not _DIGEST_RE.match(digest) or not isinstance(desc.get("size"), int):
        raise RegistryError(f"malformed descriptor in a manifest: {json.dumps(desc)[:200]}")
    return Blob(desc.get("mediaType") or "", digest, desc["size"],
                lambda sink: client.fetch_blob(digest, sink))


def _fetch_into(client: RegistryClient, directory: str, blob: Blob, label: str) -> None:
    stored = client.retrying(label, lambda: oci_layout.store_blob(directory, blob))
    note = f"{_human(blob.size)} downloaded" if stored else "already present"
    client.progress(f"{label} {_short(blob.digest)} {note}")


def pull(ref: Union[str, Reference], directory: str, *, platform: Optional[str] = None,
         insecure: bool = False, auth: Union[None, Credentials, Tuple[str, str]] = None,
         progress: Optional[Callable[[str], None]] = _stderr, machine: Optional[str] = None,
         **session) -> Image:
    """Fetch ``ref`` for ``platform`` ("os/arch[/variant]"; the host's when
    None) into the OCI layout ``directory`` (tagged there with the full
    reference) and return it as an Image whose layers are those files.
    Blobs already in ``directory`` are not downloaded again."""
    reference = parse_reference(ref) if isinstance(ref, str) else ref
    want = oci_layout.parse_platform(platform) if platform else {"os": "linux"}
    client = RegistryClient(reference, insecure=insecure, auth=auth, progress=progress,
                            actions="pull", **session)
    try:
        # Without an explicit platform, an index's entry for the host wins.
        prefer = None if platform else oci_layout.host_platform(machine)
        return _pull(client, reference, directory, want, prefer)
    finally:
        client.close()


def _pull(client: RegistryClient, reference: Reference, directory: str, want: dict,
          prefer: Optional[dict]) -> Image:
    client.ping()
    oci_layout.init_layout(directory)
    data, media_type = client.retrying("manifest", lambda: client.get_manifest(reference.target))
    doc = _manifest_doc(data, reference)
    media_type = doc.get("mediaType") or media_type
    if media_type in oci_layout.INDEX_TYPES or "manifests" in doc:
        chosen = oci_layout.select_descriptor(doc.get("manifests") or [], want, str(reference), prefer)
        data, media_type = client.retrying("manifest", lambda: client.get_manifest(chosen["digest"]))
        doc = _manifest_doc(data, reference)
        media_type = doc.get("mediaType") or chosen.get("mediaType") or media_type
    if media_type not in oci_layout.MANIFEST_TYPES:
        raise RegistryError(f"{reference}: unsupported manifest type {media_type!r}")
    manifest = Blob.from_bytes(media_type, data)
    layers = [_remote_blob(client, d) for d in doc.get("layers") or []]
    _fetch_into(client, directory, _remote_blob(client, doc.get("config") or {}), "config")
    for i, blob in enumerate(layers, 1):
        _fetch_into(client, directory, blob, f"layer {i}/{len(layers)}")
    oci_layout.store_blob(directory, manifest)
    oci_layout.update_index(directory, [oci_layout.descriptor(
        manifest, annotations={oci_layout.REF_NAME: str(reference)})])
    return oci_layout.read_oci(directory, ref=str(reference), architecture=want.get("architecture"),
                               os_=want.get("os", "linux"), variant=want.get("variant"))


def _manifest_doc(data: bytes, reference: Reference) -> dict:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise RegistryError(f"{reference}: manifest is not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise RegistryError(f"{reference}: not a schema 2 manifest (schema 1 is not supported)")
    return doc
