"""A real registry (distribution 2.8, `docker-registry serve`) on loopback.

Two session-wide fixtures: ``open_registry`` (no auth) and
``auth_registry`` (htpasswd, user ``user`` password ``pass``). Each runs in
its own temporary storage on a free port and is stopped by its pid.
Import both names into a test module to use them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional

import pytest

USER, PASSWORD = "user", "pass"


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    process: subprocess.Popen
    log: str

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(storage: str, port: int, htpasswd: Optional[str]) -> str:
    auth = f"auth:\n  htpasswd:\n    realm: test-registry\n    path: {htpasswd}\n" if htpasswd else ""
    return (
        f"version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )


def _wait_ready(host: str, process: subprocess.Popen, log: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {open(log).read()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for credentials
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("docker-registry did not start within 20 s")


def _start(tmp: str, with_auth: bool) -> Registry:
    htpasswd = None
    if with_auth:
        line = subprocess.run(
            ["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True
        ).stdout.strip()
        htpasswd = f"{tmp}/htpasswd"
        with open(htpasswd, "w") as f:
            f.write(line + "\n")
    port = _free_port()
    config = f"{tmp}/config.yml"
    with open(config, "w") as f:
        f.write(_config(f"{tmp}/storage", port, htpasswd))
    log = f"{tmp}/registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(["docker-registry", "serve", config], stdout=out, stderr=subprocess.STDOUT)
    host = f"127.0.0.1:{port}"
    try:
        _wait_ready(host, process, log)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return Registry(host, process, log)


def _stop(registry: Registry) -> None:
    registry.process.terminate()
    try:
        registry.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        registry.process.kill()
        registry.process.wait()


def _fixture(tmp_path_factory, with_auth: bool):
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (bash tests/setup.sh)")
    registry = _start(str(tmp_path_factory.mktemp("registry")), with_auth)
    try:
        yield registry
    finally:
        _stop(registry)


@pytest.fixture(scope="session")
def open_registry(tmp_path_factory):
    yield from _fixture(tmp_path_factory, with_auth=False)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory):
    if shutil.which("htpasswd") is None:
        pytest.skip("htpasswd is not installed (bash tests/setup.sh)")
    yield from _fixture(tmp_path_factory, with_auth=True)
