"""A scripted Docker Engine API on a unix socket: ``POST /images/load`` as
dockerd answers it, for tests of copyToDockerDaemon without a daemon. It
checks the request as dockerd would need it, reads the chunked body, keeps
it, and answers with the JSON message stream dockerd sends."""

from __future__ import annotations

import json
import os
import re
import socketserver
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import List, Optional


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes


@dataclass
class EngineApi:
    socket_path: str
    # What to answer: (status, JSON message lines). Default: dockerd's success.
    answer: Optional[tuple] = None
    requests: List[Received] = field(default_factory=list)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"


def _read_chunked(rfile) -> bytes:
    body = bytearray()
    while True:
        size_line = rfile.readline()
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        body += rfile.read(size)
        assert rfile.read(2) == b"\r\n", "a chunk must end in CRLF"


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    api: EngineApi


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format, *args) -> None:
        pass

    def do_POST(self) -> None:
        api = self.server.api
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(self.rfile)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        api.requests.append(Received("POST", self.path, dict(self.headers), body))
        if not re.match(r"^(/v1\.[0-9]+)?/images/load$", self.path.split("?")[0]):
            self._send(404, [{"message": f"page not found: {self.path}"}])
            return
        if self.headers.get("Content-Type") != "application/x-tar":
            self._send(400, [{"message": "Content-Type must be application/x-tar"}])
            return
        if api.answer is not None:
            self._send(*api.answer)
            return
        repo_tags = _repo_tags(body)
        self._send(200, [{"stream": f"Loaded image: {tag}\n"} for tag in repo_tags])

    def _send(self, status: int, messages: list) -> None:
        data = b"".join(json.dumps(m).encode() + b"\r\n" for m in messages)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


def _repo_tags(body: bytes) -> List[str]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    return [tag for entry in manifest for tag in entry.get("RepoTags") or []]


class running_engine_api:
    """``with running_engine_api(dir) as api:`` a server at dir/docker.sock."""

    def __init__(self, directory, answer: Optional[tuple] = None):
        self.api = EngineApi(os.path.join(str(directory), "docker.sock"), answer)

    def __enter__(self) -> EngineApi:
        self.server = _Server(self.api.socket_path, _Handler)
        self.server.api = self.api
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self.api

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.api.socket_path)
