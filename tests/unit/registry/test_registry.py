"""The registry client: protocol steps against a scripted opener (a real
distribution 2.8 registry and skopeo: e2e/test_registry_live.py)."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest
from authfile import b64
from httpanswer import Answer as FakeResponse
from imagekit import make_image, memory_layer
from tarbuild import layer_bytes

from builder.errors import RegistryError
from builder.model.image import OCI_MANIFEST, Blob
from builder.model.manifest import image_manifest as manifest_of
from builder.model.reference import parse_reference
from builder.registry.auth import Credentials
from builder.registry.client import RegistryClient
from builder.registry.push import push
from builder.sinks.sink import MemorySink

DIGEST = "sha256:" + "ab" * 32


class Script:
    """An opener that checks each request against the next expected one."""

    def __init__(self, *steps):
        self.steps = list(steps)
        self.calls = []

    def __call__(self, method, url, headers, body=None):
        sent = _body_bytes(body)
        self.calls.append((method, url, dict(headers), sent))
        want_method, want_path, answer = self.steps.pop(0)
        assert method == want_method and want_path in url, (method, url, want_method, want_path)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _body_bytes(body):
    if body is None or isinstance(body, bytes):
        return body
    sink = MemorySink()
    body.write_to(sink)
    return bytes(sink.data)


def client(script, sleeps=None, clock=lambda: 0.0, **kw):
    sleeps = [] if sleeps is None else sleeps
    return RegistryClient(
        parse_reference("reg.test/app:1"),
        opener=script,
        sleep=sleeps.append,
        clock=clock,
        environ={},
        home="/nonexistent",
        progress=None,
        **kw,
    )


def test_temporary_failures_are_retried_with_backoff():
    sleeps = []
    script = Script(
        ("HEAD", "/blobs/", FakeResponse(503)),
        ("HEAD", "/blobs/", ConnectionResetError("reset by peer")),
        ("HEAD", "/blobs/", http.client.RemoteDisconnected("gone")),
        ("HEAD", "/blobs/", FakeResponse(200)),
    )
    c = client(script, sleeps)
    assert c.retrying("blob", lambda: c.blob_exists(DIGEST)) is True
    assert sleeps == [1, 2, 4]


def test_retries_end_with_a_clear_error():
    sleeps = []
    script = Script(*[("GET", "/manifests/1", FakeResponse(502))] * 3)
    c = client(script, sleeps, retries=2)
    with pytest.raises(RegistryError) as e:
        c.retrying("manifest", lambda: c.get_manifest("1"))
    assert e.value.status == 502 and e.value.temporary
    assert str(e.value).startswith("GET https://reg.test/v2/app/manifests/1: 502")
    assert sleeps == [1, 2]


def test_errors_that_are_not_temporary_are_not_retried():
    sleeps = []
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
    script = Script(("GET", "/manifests/1", FakeResponse(404, body=body.encode())))
    c = client(script, sleeps)
    with pytest.raises(RegistryError, match=r"404 not found \(MANIFEST_UNKNOWN: manifest unknown\)"):
        c.retrying("manifest", lambda: c.get_manifest("1"))
    assert sleeps == []


def test_denied_is_reported_as_such():
    denied = {"code": "DENIED", "message": "requested access to the resource is denied"}
    body = json.dumps({"errors": [denied]})
    script = Script(("PUT", "/manifests/1", FakeResponse(403, body=body.encode())))
    with pytest.raises(RegistryError, match="403 access denied") as e:
        client(script).put_manifest(Blob.from_bytes(OCI_MANIFEST, b"{}"), "1")
    assert "\n" not in str(e.value) and e.value.status == 403 and e.value.method == "PUT"


def test_bearer_token_flow_with_expiry():
    now = [0.0]
    challenge = {"WWW-Authenticate": 'Bearer realm="https://auth.test/token",service="reg.test"'}

    def token(t):
        return FakeResponse(200, body=json.dumps({"token": t, "expires_in": 100}).encode())

    script = Script(
        ("GET", "/v2/", FakeResponse(401, challenge)),
        ("GET", "auth.test/token", token("t1")),
        ("GET", "/v2/", FakeResponse(200)),
        ("HEAD", "/blobs/", FakeResponse(404)),
        ("GET", "auth.test/token", token("t2")),
        ("HEAD", "/blobs/", FakeResponse(200)),
    )
    c = client(script, clock=lambda: now[0], auth=("u", "p"))
    c.ping()
    assert c.blob_exists(DIGEST) is False
    now[0] = 200.0  # past expires_in: a new token before the next request
    assert c.blob_exists(DIGEST) is True

    token_url, token_headers = script.calls[1][1], script.calls[1][2]
    assert "service=reg.test" in token_url and "scope=repository%3Aapp%3Apull" in token_url
    assert token_headers["Authorization"] == "Basic " + b64("u:p")
    assert script.calls[3][2]["Authorization"] == "Bearer t1"
    assert script.calls[5][2]["Authorization"] == "Bearer t2"


def test_basic_challenge_without_credentials_says_where_to_put_them():
    script = Script(("GET", "/v2/", FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'})))
    with pytest.raises(RegistryError, match="no credentials for reg.test .*REGISTRY_AUTH_FILE"):
        client(script).ping()


def test_no_credentials_names_every_file_looked_at(tmp_path):
    script = Script(("GET", "/v2/", FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'})))
    docker = tmp_path / "docker" / "config.json"
    docker.parent.mkdir()
    docker.write_text(json.dumps({"auths": {"other.test": {"auth": b64("u:secret")}}}))
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "DOCKER_CONFIG": str(docker.parent)}
    c = RegistryClient(parse_reference("reg.test/app:1"), opener=script, environ=env, home=str(tmp_path), progress=None)
    with pytest.raises(RegistryError) as e:
        c.ping()
    message = str(e.value)
    assert f"looked in: {tmp_path}/run/containers/auth.json (absent); " in message
    assert (
        f"{tmp_path}/.config/containers/auth.json (absent); {docker} (no entry); {tmp_path}/.dockercfg (absent))"
        in message
    )
    assert "podman login reg.test" in message and "secret" not in message


def test_an_anonymous_registry_never_runs_a_credential_helper(tmp_path):
    # A credsStore whose helper is missing would be an error, but only when
    # the registry asks for credentials.
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"credsStore": "missing"}))
    script = Script(("GET", "/v2/", FakeResponse(200)))
    c = RegistryClient(parse_reference("reg.test/app:1"), opener=script, environ={}, home=str(tmp_path), progress=None)
    c.ping()
    assert script.steps == []


def test_identity_token_is_a_refresh_token_grant():
    challenge = {"WWW-Authenticate": 'Bearer realm="https://auth.test/token",service="reg.test",scope="x"'}
    script = Script(
        ("GET", "/v2/", FakeResponse(401, challenge)),
        ("POST", "auth.test/token", FakeResponse(200, body=json.dumps({"access_token": "acc"}).encode())),
        ("GET", "/v2/", FakeResponse(200)),
    )
    c = client(script, auth=Credentials("<token>", "", "helper", identity_token="idt"))
    c.ping()
    method, url, headers, body = script.calls[1]
    assert url == "https://auth.test/token" and "Authorization" not in headers
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(urllib.parse.parse_qsl(body.decode()))
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "idt",
        "client_id": "dockertools",
        "service": "reg.test",
        "scope": "repository:app:pull x",
    }
    assert script.calls[2][2]["Authorization"] == "Bearer acc"
    # A registry that wants Basic cannot take an identity token: said so.
    script = Script(("GET", "/v2/", FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'})))
    with pytest.raises(RegistryError, match="credentials from helper are an identity token") as e:
        client(script, auth=Credentials("<token>", "", "helper", identity_token="idt")).ping()
    assert "idt" not in str(e.value)


def test_push_protocol_steps_and_bodies():
    layer = memory_layer(layer_bytes({"f": b"data"}))
    image = make_image([layer])
    manifest = manifest_of(image, "none")
    script = Script(
        ("GET", "/v2/", FakeResponse(200)),
        # Every blob whose digest is known is asked about before any is sent.
        ("HEAD", f"/blobs/{layer.diff_id}", FakeResponse(404)),
        ("HEAD", f"/blobs/{image.config_digest}", FakeResponse(200)),
        ("POST", "/blobs/uploads/", FakeResponse(202, {"Location": "/v2/app/blobs/uploads/u1?_state=s"})),
        ("PUT", "/blobs/uploads/u1?_state=s&digest=sha256%3A", FakeResponse(201)),
        ("PUT", "/manifests/1", FakeResponse(201, {"Docker-Content-Digest": manifest.blob.digest})),
    )
    lines = []
    result = push(
        image,
        "reg.test/app:1",
        encoding="none",
        opener=script,
        progress=lines.append,
        environ={},
        home="/nonexistent",
        workers=1,
    )
    assert script.steps == []
    put_blob, put_manifest = script.calls[4], script.calls[5]
    assert put_blob[0] == "PUT" and put_blob[1].startswith("https://reg.test/v2/app/blobs/uploads/u1")
    assert put_blob[3] == layer_bytes({"f": b"data"})
    assert put_manifest[2]["Content-Type"] == OCI_MANIFEST
    assert put_manifest[3] == _body_bytes(manifest.blob)
    assert (result.uploaded, result.skipped, result.manifests) == (
        [layer.diff_id],
        [image.config_digest],
        [manifest.blob.digest],
    )
    assert lines[0].startswith("layer 1/1 sha256:") and lines[0].endswith("uploaded")
    assert lines[1].endswith("skipped (already present)")


def test_mount_answered_201_sends_nothing():
    layer = memory_layer(layer_bytes({"f": b"x"}))
    c = client(
        Script(("POST", f"/blobs/uploads/?mount={layer.diff_id.replace(':', '%3A')}&from=base", FakeResponse(201)))
    )
    assert c.start_upload(layer.diff_id, mount_from="base") is None
