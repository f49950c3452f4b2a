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
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from typing import Callable, Dict, Optional, Sequence, Tuple, Union, cast

from builder.errors import BuildError, DigestMismatch, RegistryError
from builder.model.image import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Blob, sha256_digest
from builder.model.reference import DIGEST_RE, Reference
from builder.registry.auth import Credentials, Search, parse_challenge, search_credentials
from builder.report import progress_line
from builder.sinks.sink import MemorySink, Sink

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_TIMEOUT",
    "MANIFEST_ACCEPT",
    "HttpOpener",
    "Proxy",
    "RegistryClient",
    "proxy_for",
    "redact_url",
]

MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
DEFAULT_CHUNK = 64 << 20
# Registries should accept manifests up to 4 MiB (distribution-spec); more
# than this is not a manifest, and we will not hold it in memory.
_MANIFEST_LIMIT = 8 << 20
_READ_CHUNK = 1 << 20
# Seconds without a byte from the registry before a try is given up (and
# retried): a registry that never answers must not hang a build silently.
DEFAULT_TIMEOUT = 60.0
_SEND_BUFFER = 256 << 10


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


# Written out, not a dataclass: the stream and push never load dataclasses
# (inspect, ast: ~15 ms of each start); tests/unit/test_imports.py pins it.
class Proxy:
    __slots__ = ("host", "port", "authorization")

    def __init__(self, host: str, port: int, authorization: Optional[str]) -> None:
        self.host, self.port = host, port
        self.authorization = authorization  # a Proxy-Authorization header value


def redact_url(url: str) -> str:
    """``url`` without the user and password it may carry (a proxy URL's
    credentials must never reach a log)."""
    scheme, sep, rest = url.rpartition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


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
        raise RegistryError(f"{scheme}_proxy {redact_url(url)!r}: only HTTP proxies are supported")
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

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, context: Optional[ssl.SSLContext] = None, environ=None):
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
            host, port = (proxy.host, proxy.port) if proxy else (netloc, None)
            if scheme == "https":
                if self.context is None:
                    # Made once (it reads the system's certificates), shared with forks.
                    self.context = ssl.create_default_context()
                conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.context)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            if proxy:
                conn.set_tunnel(
                    netloc, headers={"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
                )
            self.pool[key] = conn
        last = self.last.pop(key, None)
        if last is not None and not last.finished:
            conn.close()  # unread body bytes would be taken for the next answer
        if conn.sock is None:
            try:
                conn.connect()
            except ssl.SSLError as e:
                raise _ConnectFailed(f"TLS with {netloc} failed: {e}", temporary=False) from e
            except OSError as e:
                raise _ConnectFailed(f"cannot connect to {netloc}: {e}", temporary=_retryable(e)) from e
        return conn

    def fork(self) -> HttpOpener:
        """An opener with connections of its own (for another thread), the
        same timeout, proxies and TLS context."""
        return HttpOpener(self.timeout, self.context, self.environ)

    def __call__(self, method: str, url: str, headers: Dict[str, str], body: Body = None):
        parts = urllib.parse.urlsplit(url)
        conn = self._connection(parts.scheme, parts.netloc)
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        response = _Response(self._exchange(conn, method, path, headers, body))
        self.last[(parts.scheme, parts.netloc)] = response
        return response

    def _exchange(
        self, conn: http.client.HTTPConnection, method: str, path: str, headers: Dict[str, str], body: Body
    ) -> http.client.HTTPResponse:
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


def _with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    extra = urllib.parse.urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _error_text(body: bytes) -> str:
    """The registry's error JSON as "CODE: message; ..." (or the raw start)."""
    try:
        errors = json.loads(body).get("errors") or []
        return "; ".join(
            f"{e.get('code', '?')}: {e.get('message', '')}".rstrip(": ") for e in errors if isinstance(e, dict)
        )
    except (ValueError, AttributeError, RecursionError):
        return body[:200].decode("utf-8", "replace").strip()


def _network_text(e: BaseException) -> str:
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"no answer ({e or 'timed out'})"
    return str(e) or type(e).__name__


def _retryable(e: BaseException) -> bool:
    """Worth trying again. Not a name that does not resolve, nor a port
    where nothing listens: those stay so, and waiting 15 s says nothing more."""
    reason = getattr(e, "reason", e)  # urllib wraps the socket's error
    if isinstance(reason, ConnectionRefusedError):
        return False
    if isinstance(reason, socket.gaierror) and reason.errno in _NO_SUCH_NAME:
        return False
    return getattr(e, "temporary", True)


_NO_SUCH_NAME = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, n)}


class RegistryClient:
    """A session with one repository: connection reuse, auth and retries."""

    def __init__(
        self,
        reference: Reference,
        *,
        insecure: bool = False,
        auth: Union[Credentials, Tuple[str, str], Search, None] = None,
        opener: Optional[Callable] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retries: int = 4,
        backoff: float = 1.0,
        environ: Optional[Dict[str, str]] = None,
        home: Optional[str] = None,
        actions: str = "pull",
        extra_scopes: Sequence[str] = (),
        progress: Optional[Callable[[str], None]] = progress_line,
        credentials_hint: str = "",
    ):
        """``credentials_hint``: said after "no credentials" (where the
        caller's credentials come from, when not the usual places)."""
        self.ref = reference
        self.base = f"{'http' if insecure else 'https'}://{reference.api_host}"
        if isinstance(auth, tuple):
            auth = Credentials(auth[0], auth[1])
        # Looked up when a registry first asks (a 401): an anonymous pull
        # never runs a credential helper.
        if isinstance(auth, Credentials):
            auth = Search(auth, [auth.source])
        self._search: Optional[Search] = auth
        self._environ, self._home = environ, home
        self.credentials_hint = credentials_hint
        # One HttpOpener (one kept-alive connection) per thread that sends
        # requests (``in_parallel``); a given ``opener`` is shared, and must
        # then be safe to call from several threads at once.
        self.opener = opener or HttpOpener()
        self._openers = [self.opener]
        self._local = threading.local()
        self._local.opener = self.opener
        self._lock = threading.RLock()  # authorization, the openers list
        self.sleep, self.clock = sleep, clock
        self.retries, self.backoff = retries, backoff
        self.scopes = [f"repository:{reference.repository}:{actions}", *extra_scopes]
        self.progress = progress or (lambda line: None)
        self.authorization: Optional[str] = None
        self.challenge: Optional[Tuple[str, Dict[str, str]]] = None
        self.expires = float("inf")
        self.owns_opener = opener is None

    @property
    def credentials(self) -> Optional[Credentials]:
        return self.credential_search.credentials

    @property
    def credential_search(self) -> Search:
        if self._search is None:
            self._search = search_credentials(
                self.ref.registry, self.ref.repository, environ=self._environ, home=self._home
            )
        return self._search

    def close(self) -> None:
        if self.owns_opener:
            # Then the openers are the HttpOpeners made here.
            with self._lock:
                for opener in self._openers:
                    cast(HttpOpener, opener).close()

    def _thread_opener(self) -> Callable:
        opener = getattr(self._local, "opener", None)
        if opener is None:
            opener = cast(HttpOpener, self.opener).fork() if self.owns_opener else self.opener
            with self._lock:
                self._openers.append(opener)
            self._local.opener = opener
        return opener

    def in_parallel(self, steps: Sequence[Tuple[str, Callable[[], object]]], workers: int = 8) -> list:
        """Run each ``(what, step)`` as ``retrying(what, step)``, up to
        ``workers`` at once, each thread on its own connection. Returns the
        results in the order of ``steps``. After a failure no new step
        starts; the first failure in that order is raised once all are done."""
        if workers <= 1 or len(steps) <= 1:
            return [self.retrying(what, step) for what, step in steps]
        results: list = [None] * len(steps)
        errors: Dict[int, BaseException] = {}
        todo = iter(range(len(steps)))
        take = threading.Lock()

        def work() -> None:
            while True:
                with take:
                    i = None if errors else next(todo, None)
                if i is None:
                    return
                what, step = steps[i]
                try:
                    results[i] = self.retrying(what, step)
                except BaseException as e:
                    with take:
                        errors[i] = e

        threads = [
            threading.Thread(target=work, name=f"registry-{n}", daemon=True) for n in range(min(workers, len(steps)))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[min(errors)]
        return results

    # -- plumbing --

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.ref.repository}/{path}"

    def _send(self, method: str, url: str, headers: Dict[str, str], body: Body):
        try:
            return self._thread_opener()(method, url, headers, body)
        except (OSError, http.client.HTTPException) as e:
            # OSError: socket.timeout is not a TimeoutError before Python 3.10.
            raise RegistryError(
                f"connection failed: {_network_text(e)}", method=method, url=_plain(url), temporary=_retryable(e)
            ) from e

    def _headers(self, url: str, headers: Optional[Dict[str, str]]) -> Dict[str, str]:
        headers = dict(headers or {})
        # Credentials go only to the registry itself, never to a redirect target.
        if self.authorization and url.startswith(self.base + "/"):
            if self.challenge and self.challenge[0] == "bearer" and self.clock() >= self.expires:
                with self._lock:
                    if self.challenge and self.clock() >= self.expires:  # not renewed by another thread meanwhile
                        self._authorize(self.challenge)
            headers["Authorization"] = self.authorization
        return headers

    def request(
        self,
        method: str,
        url: str,
        headers: Optional[Dict[str, str]] = None,
        body: Body = None,
        ok: Sequence[int] = (200,),
    ):
        """One exchange; a 401 gets one new authorization and one more try.
        Returns the response with its body unread for 2xx, else raises."""
        resp = self._send(method, url, self._headers(url, headers), body)
        if resp.status == 401:
            challenge = resp.headers.get("WWW-Authenticate") or ""
            _drain(resp)
            with self._lock:
                self._authorize(parse_challenge(challenge), method, url)
            resp = self._send(method, url, self._headers(url, headers), body)
        if resp.status not in ok:
            raise self._failure(method, url, resp)
        return resp

    def _failure(self, method: str, url: str, resp) -> RegistryError:
        text = _error_text(_read_some(resp, 1 << 16))
        status = resp.status
        if status == 401:
            # Never the user name: an auth entry may hold a token there.
            creds = self.credentials
            if creds is None:
                who = f"no credentials (looked in: {self.credential_search.describe()})"
            elif creds.identity_token:
                who = f"the identity token from {creds.source}"
            else:
                who = f"the credentials from {creds.source}"
            message = f"authentication failed with {who}"
        elif status == 403 or "DENIED" in text:
            message = "access denied"
        elif status == 404:
            message = "not found"
        else:
            message = f"unexpected answer {getattr(resp, 'reason', '')}".strip()
        if text:
            message += f" ({text})"
        return RegistryError(
            f"{status} {message}",
            method=method,
            url=_plain(url),
            status=status,
            temporary=status >= 500 or status == 429,
        )

    def retrying(self, what: str, step: Callable[[], object]):
        """``step`` again after 1, 2, 4... s when the failure is temporary
        (5xx, 429, a dropped connection); other errors go straight up."""
        for attempt in range(self.retries + 1):
            try:
                return step()
            except RegistryError as e:
                if not e.temporary or attempt == self.retries:
                    raise
                delay = self.backoff * 2**attempt
                self.progress(f"{what}: {e}; retrying in {delay:g} s")
                self.sleep(delay)

    # -- auth --

    def ping(self) -> None:
        """GET /v2/: learns whether and how to authenticate, and checks the
        credentials before any blob is sent."""
        self.retrying(f"connecting to {self.ref.registry}", lambda: _drain(self.request("GET", f"{self.base}/v2/")))

    def _authorize(self, challenge: Tuple[str, Dict[str, str]], method: str = "GET", url: str = "") -> None:
        scheme, params = challenge
        if scheme == "basic":
            creds = self.credentials
            if creds is None or creds.identity_token:
                raise RegistryError(self._no_credentials(creds), method=method, url=_plain(url), status=401)
            self.authorization = creds.basic()
        elif scheme == "bearer" and params.get("realm"):
            self.authorization = "Bearer " + self._token(params)
        else:
            raise RegistryError(
                f"401 with an authentication scheme this client does not speak: {scheme or '(none)'}",
                method=method,
                url=_plain(url),
                status=401,
            )
        self.challenge = challenge

    def _no_credentials(self, creds: Optional[Credentials]) -> str:
        if creds is not None:
            return (
                f"401 the registry {self.ref.registry} asks for a user and password, and the credentials "
                f"from {creds.source} are an identity token, which only a token server takes"
            )
        hint = self.credentials_hint or (
            f"log in with `podman login {self.ref.registry}` or `docker login {self.ref.registry}`, "
            "or set REGISTRY_AUTH_FILE"
        )
        return (
            f"401 authentication required and no credentials for {self.ref.registry} "
            f"(looked in: {self.credential_search.describe()}); {hint}"
        )

    def _token(self, params: Dict[str, str]) -> str:
        scopes = list(self.scopes)
        if params.get("scope") and params["scope"] not in scopes:
            scopes.append(params["scope"])
        creds = self.credentials
        if creds is not None and creds.identity_token:
            # docker's way with an identity token: an OAuth2 refresh-token grant.
            form = [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token)]
            form += [("client_id", "dockertools"), ("service", params.get("service", ""))]
            form += [("scope", " ".join(scopes))]
            url = params["realm"]
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            resp = self._send("POST", url, headers, urllib.parse.urlencode(form).encode())
            method = "POST"
        else:
            query = [("scope", s) for s in scopes]
            if params.get("service"):
                query.insert(0, ("service", params["service"]))
            url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
            headers = {"Authorization": creds.basic()} if creds else {}
            resp = self._send("GET", url, headers, None)
            method = "GET"
        if resp.status != 200:
            raise self._failure(method, url, resp)
        try:
            answer = json.loads(_drain(resp, limit=1 << 20))
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError, RecursionError):
            token, answer = None, {}
        if not token:
            raise RegistryError("token server answered without a token", method=method, url=_plain(url))
        # Refresh a little early: a request must not start with a token about to lapse.
        try:
            lifetime = float(answer.get("expires_in") or 60)
        except (TypeError, ValueError):
            lifetime = 60.0
        if not 1 <= lifetime <= 1e9:  # nan, inf, negative: the default
            lifetime = 60.0
        self.expires = self.clock() + max(lifetime - 5, 1)
        return token

    # -- blobs --

    def blob_exists(self, digest: str) -> bool:
        resp = self.request("HEAD", self.url(f"blobs/{digest}"), ok=(200, 404))
        _drain(resp)
        return resp.status == 200

    def blob_size(self, digest: str) -> Optional[int]:
        """The blob's size as HEAD answers it (-1: present, size not said), or None if absent."""
        resp = self.request("HEAD", self.url(f"blobs/{digest}"), ok=(200, 404))
        _drain(resp)
        if resp.status != 200:
            return None
        length = resp.headers.get("Content-Length") or ""
        return int(length) if length.isdigit() else -1

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

    def fetch_blob(self, digest: str, sink: Sink, size: Optional[int] = None) -> int:
        """Download a blob into ``sink``. With ``size`` (its descriptor's),
        no byte past it is read, and a blob cut short is a temporary
        failure (retried), not a digest mismatch."""
        url = self.url(f"blobs/{digest}")
        resp = self._get_following(url, {})
        got = 0
        try:
            while True:
                want = _READ_CHUNK if size is None else min(_READ_CHUNK, size - got + 1)
                try:
                    chunk = resp.read(want)
                except (OSError, http.client.HTTPException) as e:
                    # Only the network's failures: the sink's own (a full
                    # disk) go up as they are.
                    raise RegistryError(
                        f"connection lost while downloading: {_network_text(e)}", method="GET", url=url, temporary=True
                    ) from e
                if not chunk:
                    break
                got += len(chunk)
                if size is not None and got > size:
                    raise RegistryError(
                        f"blob {digest} is longer than the {size} bytes its descriptor gives", method="GET", url=url
                    )
                sink.write(chunk)
        except BaseException:
            resp.close()
            raise
        if size is not None and got < size:
            raise RegistryError(
                f"blob {digest} ended after {got} of its {size} bytes", method="GET", url=url, temporary=True
            )
        return got

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
        try:
            data = _drain(resp, limit=_MANIFEST_LIMIT)
        except RegistryError:
            raise RegistryError(
                f"manifest larger than {_MANIFEST_LIMIT} bytes", method="GET", url=_plain(url)
            ) from None
        expected = target if DIGEST_RE.match(target) else claimed
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

        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{self.offset}-{self.offset + size - 1}",
        }
        resp = self.client.request(
            "PATCH", self.location, headers, Blob("application/octet-stream", "", size, replay), ok=(202,)
        )
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
    try:
        joined = urllib.parse.urljoin(url, location)
        scheme = urllib.parse.urlsplit(joined).scheme
    except ValueError:
        joined, scheme = "", ""
    if scheme not in ("http", "https"):
        raise RegistryError(
            f"{resp.status} with a Location that is not an http(s) URL: {location[:200]!r}",
            method=method,
            url=_plain(url),
        )
    return joined


def _drain(resp, limit: int = 1 << 20) -> bytes:
    """Read a whole (small) body, so the connection can carry the next request."""
    data = resp.read(limit + 1)
    if len(data) > limit:
        resp.close()
        raise RegistryError(f"answer larger than {limit} bytes")
    return data


def _read_some(resp, limit: int) -> bytes:
    """The start of an error answer's body; the rest is dropped (with the
    connection), so a 500 with a big page is still a 500, and retried."""
    data = resp.read(limit)
    if data and resp.read(1):
        resp.close()
    return data


def _plain(url: str) -> str:
    # Upload URLs carry a long opaque _state query: not worth a line of an error.
    return url.split("?", 1)[0]


def _blob_bytes(blob: Blob) -> bytes:
    sink = MemorySink()
    blob.write_to(sink)
    return bytes(sink.data)
