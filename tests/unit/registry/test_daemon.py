"""builder.registry.daemon: the Engine API's image load against a scripted
server on a unix socket (tests/support/engineapi.py), DOCKER_HOST, and
podman load's failures."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
import threading

import pytest
from engineapi import running_engine_api

from builder.errors import BuildError
from builder.registry.daemon import docker_endpoint, load_into_docker, load_into_podman


@pytest.fixture
def short_dir():
    # A unix socket path must stay under 108 bytes: pytest's tmp_path may not.
    d = tempfile.mkdtemp(prefix="eng-", dir="/tmp")
    yield d
    shutil.rmtree(d)


def archive(tag="app:1", size=1 << 20) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [("manifest.json", json.dumps([{"RepoTags": [tag]}]).encode()), ("big", b"x" * size)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def writer(data: bytes, pieces: int = 7):
    def write(sink):
        step = len(data) // pieces + 1
        for i in range(0, len(data), step):
            sink.write(data[i : i + step])

    return write


def test_docker_host_spellings():
    assert docker_endpoint({}) == ("unix", "/var/run/docker.sock")
    assert docker_endpoint({"DOCKER_HOST": "unix:///run/user/1/docker.sock"}) == ("unix", "/run/user/1/docker.sock")
    assert docker_endpoint({"DOCKER_HOST": "tcp://10.0.0.1"}) == ("tcp", "10.0.0.1:2375")
    assert docker_endpoint({"DOCKER_HOST": "tcp://10.0.0.1:2376/"}) == ("tcp", "10.0.0.1:2376")
    with pytest.raises(BuildError, match="TLS to the daemon is not supported"):
        docker_endpoint({"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1"})
    with pytest.raises(BuildError, match=r"DOCKER_HOST=ssh://me@h: only unix:///PATH and tcp://HOST:PORT"):
        docker_endpoint({"DOCKER_HOST": "ssh://me@h"})


def test_load_streams_the_archive_chunked_and_reports_the_daemons_answer(short_dir):
    data = archive()
    with running_engine_api(short_dir) as api:
        said = load_into_docker(writer(data), {"DOCKER_HOST": api.docker_host})
    assert said == ["Loaded image: app:1"]
    [request] = api.requests
    assert request.path == "/images/load?quiet=1"
    assert request.headers["Content-Type"] == "application/x-tar"
    assert request.headers["Transfer-Encoding"] == "chunked"
    assert request.body == data


def test_a_refused_image_is_one_clear_error(short_dir):
    answer = (200, [{"errorDetail": {"message": "invalid tar header"}, "error": "invalid tar header"}])
    with running_engine_api(short_dir, answer) as api:
        with pytest.raises(BuildError) as e:
            load_into_docker(writer(archive()), {"DOCKER_HOST": api.docker_host})
    assert str(e.value) == f"the Docker daemon at {api.docker_host} refused the image: invalid tar header"
    with running_engine_api(short_dir, (500, [{"message": "no space left on device"}])) as api:
        with pytest.raises(BuildError, match="refused the image: no space left on device$"):
            load_into_docker(writer(archive()), {"DOCKER_HOST": api.docker_host})


def test_no_daemon_says_where_it_looked(short_dir):
    sock = os.path.join(short_dir, "none.sock")
    with pytest.raises(BuildError) as e:
        load_into_docker(writer(b"x"), {"DOCKER_HOST": f"unix://{sock}"})
    assert str(e.value) == f"no Docker daemon at unix://{sock}: the socket does not exist (is docker running?)"


def test_a_failing_podman_is_reported_with_its_own_reason(tmp_path):
    fake = tmp_path / "podman"
    fake.write_text(
        "#!/bin/sh\nhead -c 10 >/dev/null\necho 'Error: payload does not match any of the supported image formats' >&2\nexit 125\n"
    )
    fake.chmod(0o755)
    with pytest.raises(BuildError) as e:
        load_into_podman(writer(archive(size=4 << 20)), {"PATH": str(tmp_path)})
    assert str(e.value) == "podman load failed: payload does not match any of the supported image formats"
    with pytest.raises(BuildError, match="podman is not on PATH"):
        load_into_podman(writer(b"x"), {"PATH": str(tmp_path / "nothing")})


def test_a_daemon_that_hangs_up_mid_stream_is_one_clear_error(short_dir):
    path = os.path.join(short_dir, "early.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def answer_early():
        conn, _ = server.accept()
        conn.recv(4096)
        body = b'{"message":"bad archive"}'
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        conn.close()

    thread = threading.Thread(target=answer_early)
    thread.start()
    try:
        with pytest.raises(BuildError) as e:
            load_into_docker(writer(archive(size=16 << 20)), {"DOCKER_HOST": f"unix://{path}"})
    finally:
        thread.join()
        server.close()
    # Whether the answer arrives before the reset is the kernel's business;
    # either way one line, no traceback.
    assert re.match(
        rf"the Docker daemon at unix://{path} (refused the image: bad archive|closed the connection: )", str(e.value)
    ), str(e.value)
