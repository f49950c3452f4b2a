"""Faulty registries and secrets: a registry that never answers, answers too
long or cut short, error pages too big to drain; credentials (proxy URLs,
tokens in auth files, user:password@ references) never in a message."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from authfile import auth_file, b64
from test_registry import DIGEST, FakeResponse, Script, client

from builder.errors import RegistryError, SpecError
from builder.formats import oci_layout
from builder.model.image import sha256_digest
from builder.model.reference import parse_reference
from builder.registry import client as client_module
from builder.registry import pull as pull_mod
from builder.registry.client import DEFAULT_TIMEOUT, HttpOpener, RegistryClient, proxy_for, redact_url
from builder.registry.push import push
from builder.sinks.sink import MemorySink

SECRET = "Zq7-s3cret-pw"


# --- a registry that never answers ---------------------------------------------------


@pytest.fixture
def silent_server():
    """Accepts connections, reads, never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conns.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


def test_a_registry_that_never_answers_times_out_and_says_so(silent_server):
    lines = []
    c = RegistryClient(
        parse_reference(f"{silent_server}/app:1"),
        insecure=True,
        opener=HttpOpener(timeout=0.3, environ={}),
        sleep=lambda s: None,
        environ={},
        home="/nonexistent",
        retries=2,
        progress=lines.append,
    )
    with pytest.raises(RegistryError) as e:
        c.ping()
    assert "no answer" in str(e.value) and e.value.temporary
    assert len(lines) == 2 and all("no answer" in line and "retrying" in line for line in lines)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening_is_not_retried():
    lines = []
    c = RegistryClient(
        parse_reference(f"127.0.0.1:{_closed_port()}/app:1"),
        insecure=True,
        opener=HttpOpener(timeout=5, environ={}),
        sleep=lambda s: pytest.fail("waited to retry"),
        environ={},
        home="/nonexistent",
        progress=lines.append,
    )
    with pytest.raises(RegistryError) as e:
        c.ping()
    assert "connection failed" in str(e.value) and not e.value.temporary
    assert lines == []


def test_a_name_that_does_not_resolve_is_not_retried_one_that_may_later_is():
    # (Asked of the resolver, the answer depends on the machine's DNS.)
    assert not client_module._retryable(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert client_module._retryable(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    assert client_module._retryable(ConnectionResetError())


def test_the_default_timeout_is_bounded():
    assert 0 < DEFAULT_TIMEOUT <= 120 and HttpOpener().timeout == DEFAULT_TIMEOUT


# --- answers too long, too short, too big -------------------------------------------


def test_a_500_with_a_large_body_is_retried():
    sleeps = []
    script = Script(
        ("GET", "/v2/", FakeResponse(500, body=b"<html>" + b"x" * (5 << 20))),
        ("GET", "/v2/", FakeResponse(200)),
    )
    client(script, sleeps).ping()
    assert sleeps == [1]


def test_a_manifest_too_large_says_manifest():
    script = Script(("GET", "/manifests/1", FakeResponse(200, body=b"{" + b" " * (9 << 20))))
    with pytest.raises(RegistryError, match=r"manifests/1: manifest larger than 8388608 bytes") as e:
        client(script).get_manifest("1")
    assert not e.value.temporary


class CountingResponse(FakeResponse):
    def __init__(self, status, body):
        super().__init__(status, body=body)
        self.given = 0

    def read(self, n=-1):
        data = super().read(n)
        self.given += len(data)
        return data


def test_a_blob_longer_than_its_descriptor_stops_at_the_declared_size():
    resp = CountingResponse(200, b"x" * (64 << 20))
    c = client(Script(("GET", "/blobs/", resp)))
    with pytest.raises(RegistryError, match=f"blob {DIGEST} is longer than the 1000 bytes its descriptor gives"):
        c.fetch_blob(DIGEST, MemorySink(), 1000)
    assert resp.given <= 1001


def test_a_blob_cut_short_once_is_retried(tmp_path):
    data = b"layer bytes" * 1000
    digest = sha256_digest(data)
    sleeps = []
    script = Script(
        ("GET", f"/blobs/{digest}", FakeResponse(200, body=data[:5000])),
        ("GET", f"/blobs/{digest}", FakeResponse(200, body=data)),
    )
    c = client(script, sleeps)
    oci_layout.init_layout(str(tmp_path))
    blob = pull_mod._remote_blob(c, {"digest": digest, "size": len(data)})
    pull_mod._fetch_into(c, str(tmp_path), blob, "layer 1/1")
    assert sleeps == [1]
    assert (tmp_path / "blobs" / "sha256" / digest[7:]).read_bytes() == data


def test_a_descriptor_with_a_negative_size_is_refused():
    with pytest.raises(RegistryError, match="malformed descriptor"):
        pull_mod._remote_blob(client(Script()), {"digest": DIGEST, "size": -5})


# --- nothing a user gives as a credential reaches a message ----------------------------


def test_a_proxy_password_is_not_echoed():
    env = {"https_proxy": f"socks5://alice:{SECRET}@proxy.test:1080"}
    with pytest.raises(RegistryError) as e:
        proxy_for("https", "reg.test", env)
    assert SECRET not in str(e.value) and "alice" not in str(e.value) and "proxy.test" in str(e.value)
    assert redact_url(f"http://u:{SECRET}@p:3128/x") == "http://***@p:3128/x"


def test_an_auth_token_without_colon_is_not_shown_as_a_user_name(tmp_path):
    path = auth_file(tmp_path / "auth.json", {"reg.test": {"auth": b64(SECRET)}})
    script = Script(
        ("GET", "/v2/", FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'})),
        ("GET", "/v2/", FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'})),
    )
    c = RegistryClient(
        parse_reference("reg.test/app:1"),
        opener=script,
        environ={"REGISTRY_AUTH_FILE": path},
        home="/nonexistent",
        progress=None,
    )
    with pytest.raises(RegistryError) as e:
        c.ping()
    assert "authentication failed with the credentials from " + path in str(e.value)
    assert SECRET not in str(e.value)


@pytest.mark.parametrize(
    "ref",
    [
        f"alice:{SECRET}@reg.test/app:1",
        f"docker://alice:{SECRET}@reg.test:5000/app",
        f"{SECRET}@reg.test/app",
        f"alice:{SECRET}@reg.test",
    ],
)
def test_a_reference_with_credentials_is_refused_without_repeating_them(ref):
    with pytest.raises(SpecError) as e:
        parse_reference(ref)
    assert SECRET not in str(e.value) and "credentials do not go in a reference" in str(e.value)
    with pytest.raises(SpecError) as e:
        push(None, ref, progress=None)  # refused before the image is even looked at
    assert SECRET not in str(e.value)


def test_a_token_answer_is_not_echoed():
    challenge = {"WWW-Authenticate": 'Bearer realm="https://auth.test/token",service="reg.test"'}
    script = Script(
        ("GET", "/v2/", FakeResponse(401, challenge)),
        ("GET", "auth.test/token", FakeResponse(200, body=json.dumps({"tokn": SECRET}).encode())),
    )
    with pytest.raises(RegistryError) as e:
        client(script, auth=("u", SECRET)).ping()
    assert SECRET not in str(e.value)


def test_a_full_disk_while_downloading_is_not_taken_for_the_network():
    class DiskFull(MemorySink):
        def write(self, data):
            raise OSError(28, "No space left on device")

    c = client(Script(("GET", "/blobs/", FakeResponse(200, body=b"x" * 100))))
    with pytest.raises(OSError, match="No space left"):
        c.fetch_blob(DIGEST, DiskFull(), 100)
