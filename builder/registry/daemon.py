"""Loading an image into a local engine: the Docker Engine API's
``POST /images/load`` on the daemon's socket, and ``podman load``.

Both take an image archive as a stream; ``write`` (a function of a Sink)
writes it. Nothing is spooled to disk on our side: the archive goes onto
the socket (chunked transfer encoding) or podman's stdin as it is made.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
from typing import Callable, List, Mapping, Optional, Tuple

from builder.errors import BuildError
from builder.sinks.sink import FdSink, Sink

__all__ = ["DEFAULT_DOCKER_HOST", "DaemonError", "docker_endpoint", "load_into_docker", "load_into_podman"]

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_CHUNK = 256 << 10
_ANSWER_LIMIT = 1 << 20
Writer = Callable[[Sink], None]


class DaemonError(BuildError):
    """The daemon or podman refused the image, or could not be reached."""


def docker_endpoint(environ: Mapping[str, str]) -> Tuple[str, str]:
    """``DOCKER_HOST`` (default unix:///var/run/docker.sock) -> ("unix", PATH)
    or ("tcp", HOST:PORT). TLS (DOCKER_TLS_VERIFY) and ssh:// are refused
    with a clear message rather than half supported."""
    host = environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    scheme, sep, rest = host.partition("://")
    if scheme == "unix" and sep and rest:
        return "unix", rest
    if scheme in ("tcp", "http") and sep and rest:
        if environ.get("DOCKER_TLS_VERIFY"):
            raise DaemonError(f"DOCKER_HOST={host} with DOCKER_TLS_VERIFY: TLS to the daemon is not supported")
        hostport = rest.rstrip("/")
        return "tcp", hostport if ":" in hostport.rsplit("]", 1)[-1] else hostport + ":2375"
    raise DaemonError(f"DOCKER_HOST={host}: only unix:///PATH and tcp://HOST:PORT (no TLS) are supported")


class _ChunkedSink(Sink):
    """Writes onto a socket in HTTP/1.1 chunked transfer encoding."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()
        self.sent = 0

    def write(self, data) -> None:
        self.buffer += data
        if len(self.buffer) >= _CHUNK:
            self.flush()

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as e:  # the daemon went away or stopped reading
            raise _SendFailed(e.strerror or str(e) or type(e).__name__) from e

    def flush(self) -> None:
        if self.buffer:
            self._send(b"%x\r\n" % len(self.buffer) + bytes(self.buffer) + b"\r\n")
            self.sent += len(self.buffer)
            self.buffer.clear()

    def finish(self) -> None:
        self.flush()
        self._send(b"0\r\n\r\n")


class _SendFailed(Exception):
    pass


def _connect(endpoint: Tuple[str, str], where: str, timeout: float) -> socket.socket:
    kind, address = endpoint
    try:
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        host, _, port = address.rpartition(":")
        return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except FileNotFoundError:
        raise DaemonError(f"no Docker daemon at {where}: the socket does not exist (is docker running?)") from None
    except PermissionError:
        raise DaemonError(
            f"permission denied on {where}: be root or in the group that owns the socket (usually docker)"
        ) from None
    except OSError as e:
        raise DaemonError(f"cannot reach the Docker daemon at {where}: {e.strerror or e}") from None


def _answer_messages(body: bytes) -> Tuple[List[str], Optional[str]]:
    """The daemon's JSON message stream -> (what it said, its error or None)."""
    said, error = [], None
    for line in body.decode(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            said.append(line)
            continue
        if not isinstance(message, dict):
            continue
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            error = str(message.get("error") or (detail.get("message") if isinstance(detail, dict) else detail))
        elif isinstance(message.get("stream"), str):
            said.extend(message["stream"].strip().splitlines())
        elif isinstance(message.get("message"), str):
            error = message["message"]
    return said, error


def load_into_docker(write: Writer, environ: Optional[Mapping[str, str]] = None, timeout: float = 600.0) -> List[str]:
    """``POST /images/load`` with the archive ``write`` makes; returns what
    the daemon said (``Loaded image: NAME:TAG``)."""
    env = os.environ if environ is None else environ
    endpoint = docker_endpoint(env)
    where = f"unix://{endpoint[1]}" if endpoint[0] == "unix" else f"tcp://{endpoint[1]}"
    sock = _connect(endpoint, where, timeout)
    try:
        host = "docker" if endpoint[0] == "unix" else endpoint[1]
        head = (
            "POST /images/load?quiet=1 HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            "User-Agent: dockertools-builder\r\n"
            "Content-Type: application/x-tar\r\n"
            "Transfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n"
        )
        sink = _ChunkedSink(sock)
        send_error: Optional[_SendFailed] = None
        try:
            sink._send(head.encode())
            write(sink)
            sink.finish()
        except _SendFailed as e:
            send_error = e  # the daemon may have answered why: read it below
        response = http.client.HTTPResponse(sock, method="POST")
        try:
            response.begin()
            body = response.read(_ANSWER_LIMIT)
        except (OSError, http.client.HTTPException) as e:
            cause = send_error or e
            raise DaemonError(f"the Docker daemon at {where} closed the connection: {cause}") from None
        said, error = _answer_messages(body)
        if response.status != 200 or error or send_error:
            reason = error or (said[-1] if said else "") or f"{response.status} {response.reason}"
            raise DaemonError(f"the Docker daemon at {where} refused the image: {reason}")
        return said
    finally:
        sock.close()


def load_into_podman(write: Writer, environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """``podman load`` with the archive on its stdin; returns the lines it
    printed on stdout (``Loaded image: NAME:TAG``)."""
    env = dict(os.environ if environ is None else environ)
    program = shutil.which("podman", path=env.get("PATH", os.defpath))
    if program is None:
        raise DaemonError("podman is not on PATH (copyToPodman runs the host's podman load)")
    # podman's own output goes to files: a pipe it filled while we still
    # write its stdin would stop both.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen([program, "load"], stdin=subprocess.PIPE, stdout=out, stderr=err, env=env)
        stdin = process.stdin
        assert stdin is not None
        broken = False
        try:
            sink = FdSink(stdin.fileno())
            write(sink)
            sink.flush()
        except BrokenPipeError:
            broken = True  # podman stopped reading: its stderr says why
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            try:
                stdin.close()
            except BrokenPipeError:
                broken = True
        code = process.wait()
        out.seek(0)
        err.seek(0)
        said = [line for line in out.read().decode(errors="replace").splitlines() if line.strip()]
        complaint = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()]
    if code != 0 or broken:
        reason = complaint[-1] if complaint else f"exit status {code}"
        if reason.startswith("Error: "):
            reason = reason[len("Error: ") :]
        raise DaemonError(f"podman load failed: {reason}")
    return said
