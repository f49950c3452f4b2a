"""The registry client: protocol steps against a scripted opener, then
push and pull against a real distribution 2.8 registry checked with skopeo."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import shutil
import subprocess
import uuid

import imagekit
import pytest
from imagekit import busybox_image, failing_layer, make_image, memory_layer, simple_image
from registry_fixture import PASSWORD, USER, auth_registry, open_registry  # noqa: F401 (fixtures)
from tarbuild import layer_bytes

from builder.errors import RegistryError, SpecError
from builder.formats import oci_layout
from builder.model.image import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Blob
from builder.model.manifest import image_manifest as manifest_of
from builder.model.reference import Reference, parse_reference
from builder.registry.auth import Credentials, find_credentials, parse_challenge
from builder.registry.client import HttpOpener, RegistryClient
from builder.registry.pull import pull
from builder.registry.push import push
from builder.sinks.sink import FdSink, MemorySink, Sink

DIGEST = "sha256:" + "ab" * 32


# --- references, challenges, credentials -------------------------------------------------


@pytest.mark.parametrize(
    "text, want",
    [
        ("127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app", "latest")),
        ("docker://127.0.0.1:5000/a/b:v1.2", Reference("127.0.0.1:5000", "a/b", "v1.2")),
        ("localhost/x@" + DIGEST, Reference("localhost", "x", None, DIGEST)),
        ("ghcr.io/o/r:t@" + DIGEST, Reference("ghcr.io", "o/r", "t", DIGEST)),
        ("app", Reference("docker.io", "library/app", "latest")),
        ("user/app:1", Reference("docker.io", "user/app", "1")),
    ],
)
def test_parse_reference(text, want):
    assert parse_reference(text) == want


@pytest.mark.parametrize(
    "bad", ["host.io/UPPER:1", "host.io/a:bad tag", "host.io/a@sha256:xyz", "host.io/a:" + "t" * 200]
)
def test_parse_reference_rejects(bad):
    with pytest.raises(SpecError):
        parse_reference(bad)


def test_reference_text_and_docker_hub_host():
    ref = parse_reference("app:1")
    assert str(ref) == "docker.io/library/app:1" and ref.api_host == "registry-1.docker.io"
    assert parse_reference("h.io/a@" + DIGEST).target == DIGEST


def test_parse_challenge_keeps_commas_inside_quotes():
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "reg.example",
        "scope": "repository:a/b:pull,push",
    }
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def auth_file(path, entries):
    path.write_text(json.dumps({"auths": entries}))
    return str(path)


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_credentials_come_from_env_then_auth_files(tmp_path):
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    auth_file(
        home / ".docker" / "config.json",
        {"https://reg.example:5000/v1/": {"auth": b64("d:dp")}, "https://index.docker.io/v1/": {"auth": b64("hub:x")}},
    )
    found = find_credentials("reg.example:5000", environ={}, home=str(home))
    assert (found.username, found.password) == ("d", "dp")
    assert find_credentials("docker.io", environ={}, home=str(home)).username == "hub"
    assert find_credentials("other.example", environ={}, home=str(home)) is None

    explicit = auth_file(tmp_path / "auth.json", {"reg.example:5000": {"auth": b64("f:fp:with:colons")}})
    found = find_credentials("reg.example:5000", environ={"REGISTRY_AUTH_FILE": explicit}, home=str(home))
    assert (found.username, found.password, found.source) == ("f", "fp:with:colons", explicit)

    env = {"REGISTRY_USERNAME": "e", "REGISTRY_PASSWORD": "ep", "REGISTRY_AUTH_FILE": explicit}
    assert find_credentials("reg.example:5000", environ=env, home=str(home)).username == "e"
    assert "ep" not in repr(find_credentials("reg.example:5000", environ=env))


def test_a_named_auth_file_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(RegistryError, match="cannot read credentials"):
        find_credentials("h", environ={"REGISTRY_AUTH_FILE": str(tmp_path / "none.json")})


# --- protocol steps against a scripted opener ----------------------------------------------


class FakeResponse:
    def __init__(self, status, headers=None, body=b""):
        self.status = status
        self.reason = http.client.responses.get(status, "")
        self.headers = http.client.HTTPMessage()
        for key, value in (headers or {}).items():
            self.headers[key] = value
        self.body = io.BytesIO(body)

    def read(self, n=-1):
        return self.body.read(-1 if n is None else n)

    def close(self):
        pass


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


def test_push_protocol_steps_and_bodies():
    layer = memory_layer(layer_bytes({"f": b"data"}))
    image = make_image([layer])
    manifest = manifest_of(image, "none")
    script = Script(
        ("GET", "/v2/", FakeResponse(200)),
        ("HEAD", f"/blobs/{layer.diff_id}", FakeResponse(404)),
        ("POST", "/blobs/uploads/", FakeResponse(202, {"Location": "/v2/app/blobs/uploads/u1?_state=s"})),
        ("PUT", "/blobs/uploads/u1?_state=s&digest=sha256%3A", FakeResponse(201)),
        ("HEAD", f"/blobs/{image.config_digest}", FakeResponse(200)),
        ("PUT", "/manifests/1", FakeResponse(201, {"Docker-Content-Digest": manifest.blob.digest})),
    )
    lines = []
    result = push(
        image, "reg.test/app:1", encoding="none", opener=script, progress=lines.append, environ={}, home="/nonexistent"
    )
    assert script.steps == []
    put_blob, put_manifest = script.calls[3], script.calls[5]
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


# --- a real registry ----------------------------------------------------------------------


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def skopeo_inspect(ref: str, *extra: str) -> dict:
    return json.loads(run("skopeo", "inspect", "--tls-verify=false", *extra, f"docker://{ref}"))


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")


@needs_skopeo
def test_push_inspect_and_pull_back(open_registry, tmp_path):
    image = simple_image("bottom", "top")
    ref = open_registry.ref(unique("demo/app") + ":v1")
    result = push(image, ref, insecure=True, progress=None)
    manifest = manifest_of(image, "gzip")
    assert result.digest == manifest.blob.digest

    info = skopeo_inspect(ref)
    assert info["Digest"] == manifest.blob.digest
    assert info["Layers"] == [b.digest for b in manifest.layers]

    back = pull(ref, str(tmp_path / "pulled"), insecure=True, progress=None)
    assert back.config_bytes == image.config_bytes
    assert [l.diff_id for l in back.layers] == [l.diff_id for l in image.layers]
    assert back.layers[0].known["gzip"][0] == manifest.layers[0].digest
    # The pull directory is an OCI layout that skopeo reads too.
    local = json.loads(run("skopeo", "inspect", f"oci:{tmp_path / 'pulled'}:{parse_reference(ref)}"))
    assert local["Digest"] == manifest.blob.digest


def test_second_push_sends_only_what_changed(open_registry):
    calls = []
    base = [memory_layer(layer_bytes({f"base{i}": b"b" * (i + 1)}), calls) for i in range(3)]
    first = make_image(base + [memory_layer(layer_bytes({"app": b"v1"}), calls)])
    top = memory_layer(layer_bytes({"app": b"v2"}), calls)
    second = make_image(base + [top])
    ref = open_registry.ref(unique("incremental") + ":latest")
    push(first, ref, insecure=True, encoding="none", progress=None)

    calls.clear()
    lines = []
    result = push(second, ref, insecure=True, encoding="none", progress=lines.append)
    assert result.uploaded == [top.diff_id, second.config_digest]
    assert result.skipped == [layer.diff_id for layer in base]
    assert result.manifests == [manifest_of(second, "none").blob.digest]
    assert calls == [top.diff_id]  # skipped layers were never generated
    assert [line.split()[-1] for line in lines[:4]] == ["present)"] * 3 + ["uploaded"]


@needs_skopeo
def test_chunked_upload_of_a_big_blob(open_registry, tmp_path):
    big = memory_layer(layer_bytes({"noise.bin": os.urandom(200_000)}))
    image = make_image([big])
    ref = open_registry.ref(unique("chunked") + ":1")
    result = push(image, ref, insecure=True, encoding="gzip", chunk_size=64 << 10, progress=None)
    assert big.known["gzip"][1] > 3 * (64 << 10)  # several PATCHes
    assert skopeo_inspect(ref)["Layers"] == [big.known["gzip"][0]]
    assert result.bytes_uploaded == big.known["gzip"][1] + len(image.config_bytes)
    # skopeo re-reads and checks every blob while copying.
    run("skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'c'}:1")


@needs_skopeo
def test_multi_arch_push_and_platform_pull(open_registry, tmp_path):
    images = [simple_image("x86", architecture="amd64"), simple_image("arm", architecture="arm64", variant="v8")]
    ref = open_registry.ref(unique("multi") + ":1")
    result = push(images, ref, insecure=True, progress=None)
    assert len(result.manifests) == 3
    raw = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    assert raw["mediaType"] == OCI_INDEX and len(raw["manifests"]) == 2
    assert skopeo_inspect(ref, "--override-arch", "arm64")["Architecture"] == "arm64"

    arm = pull(ref, str(tmp_path / "p"), platform="linux/arm64", insecure=True, progress=None)
    assert arm.config_digest == images[1].config_digest
    x86 = pull(ref, str(tmp_path / "p"), insecure=True, progress=None, machine="x86_64")
    assert x86.config_digest == images[0].config_digest
    with pytest.raises(Exception, match="linux/s390x"):
        pull(ref, str(tmp_path / "p"), platform="linux/s390x", insecure=True, progress=None)


@needs_skopeo
def test_docker_media_types_for_older_registries(open_registry, tmp_path):
    images = [simple_image("x86", architecture="amd64"), simple_image("arm", architecture="arm64")]
    ref = open_registry.ref(unique("dockerish") + ":1")
    push(images, ref, insecure=True, progress=None, flavour="docker")
    raw = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    assert raw["mediaType"] == DOCKER_LIST
    arm_digest = [m["digest"] for m in raw["manifests"] if m["platform"]["architecture"] == "arm64"][0]
    repo = ref.rsplit(":", 1)[0]
    arm = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{repo}@{arm_digest}"))
    assert arm["mediaType"] == DOCKER_MANIFEST
    assert arm["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    back = pull(ref, str(tmp_path / "p"), platform="linux/arm64", insecure=True, progress=None)
    assert back.config_digest == images[1].config_digest


def test_cross_repository_mount(open_registry):
    base = memory_layer(layer_bytes({"base": b"shared base"}))
    source = open_registry.ref(unique("base") + ":1")
    push(make_image([base]), source, insecure=True, encoding="none", progress=None)
    child = make_image([base, memory_layer(layer_bytes({"child": b"c"}))])
    result = push(
        child,
        open_registry.ref(unique("child") + ":1"),
        insecure=True,
        encoding="none",
        progress=None,
        mount_from=parse_reference(source).repository,
    )
    assert result.mounted == [base.diff_id]
    assert base.diff_id not in result.uploaded


@needs_skopeo
def test_a_push_killed_half_way_leaves_no_tag_and_can_be_redone(open_registry, tmp_path):
    good = layer_bytes({"first": b"1"})
    data = layer_bytes({"big": os.urandom(100_000)})
    broken = make_image([memory_layer(good), failing_layer(data, after=50_000)])
    ref = open_registry.ref(unique("killed") + ":1")
    with pytest.raises(RuntimeError, match="layer writer killed"):
        push(broken, ref, insecure=True, encoding="none", progress=None)
    c = RegistryClient(parse_reference(ref), insecure=True, progress=None)
    with pytest.raises(RegistryError) as e:
        c.get_manifest("1")
    assert e.value.status == 404

    fixed = make_image([memory_layer(good), memory_layer(data)])
    assert fixed.config_bytes == broken.config_bytes
    result = push(fixed, ref, insecure=True, encoding="none", progress=None)
    assert result.skipped == [fixed.layers[0].diff_id]
    assert fixed.layers[1].diff_id in result.uploaded
    assert skopeo_inspect(ref)["Digest"] == result.digest


def test_an_abandoned_download_does_not_poison_the_connection(open_registry):
    big = memory_layer(layer_bytes({"big": os.urandom(3 << 20)}))
    ref = open_registry.ref(unique("abandon") + ":1")
    push(make_image([big]), ref, insecure=True, encoding="none", progress=None)

    class DiskFull(Sink):
        def write(self, data):
            raise OSError("no space left on device")

    c = RegistryClient(parse_reference(ref), insecure=True, progress=None)
    with pytest.raises(OSError, match="no space left"):
        c.fetch_blob(big.diff_id, DiskFull())
    # The same client (and opener) goes on: the half-read connection was dropped.
    assert c.blob_exists(big.diff_id)
    data, media_type = c.get_manifest("1")
    assert media_type == OCI_MANIFEST and json.loads(data)["layers"][0]["digest"] == big.diff_id


@needs_skopeo
def test_pull_an_image_pushed_by_skopeo(open_registry, tmp_path):
    image = simple_image("made", "here")
    archive = tmp_path / "a.tar"
    fd = os.open(archive, os.O_WRONLY | os.O_CREAT, 0o644)
    oci_layout.write_oci_archive(FdSink(fd), [(image, ["x:1"])], "gzip")
    os.close(fd)
    ref = open_registry.ref(unique("by-skopeo") + ":1")
    run("skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci-archive:{archive}:1", f"docker://{ref}")
    back = pull(ref, str(tmp_path / "p"), insecure=True, progress=None)
    assert [l.diff_id for l in back.layers] == [l.diff_id for l in image.layers]
    assert back.config["config"] == image.config["config"]


@pytest.mark.skipif(
    shutil.which("podman") is None or not imagekit.have_busybox(), reason="needs podman and a static busybox"
)
def test_podman_pulls_and_runs_what_we_pushed(open_registry):
    ref = open_registry.ref(unique("runnable") + ":1")
    push(busybox_image("pushed to a registry"), ref, insecure=True, progress=None)
    try:
        run("podman", "pull", "-q", "--tls-verify=false", ref)
        assert run("podman", "run", "--rm", ref) == "pushed to a registry\n"
    finally:
        subprocess.run(["podman", "rmi", "-f", ref], capture_output=True)


# --- a registry with htpasswd auth -------------------------------------------------------


class Counting:
    """The real opener, recording each request's method and path."""

    def __init__(self):
        self.inner = HttpOpener()
        self.seen = []

    def __call__(self, method, url, headers, body=None):
        self.seen.append((method, url.split("?")[0].split("/v2/", 1)[-1]))
        return self.inner(method, url, headers, body)


@needs_skopeo
def test_push_with_credentials_from_an_auth_file(auth_registry, tmp_path):
    path = auth_file(tmp_path / "auth.json", {auth_registry.host: {"auth": b64(f"{USER}:{PASSWORD}")}})
    ref = auth_registry.ref(unique("private") + ":1")
    image = simple_image("secret")
    push(image, ref, insecure=True, progress=None, environ={"REGISTRY_AUTH_FILE": path})
    assert skopeo_inspect(ref, "--creds", f"{USER}:{PASSWORD}")["Digest"] == manifest_of(image).blob.digest
    back = pull(ref, str(tmp_path / "p"), insecure=True, progress=None, auth=(USER, PASSWORD))
    assert back.config_digest == image.config_digest


def test_wrong_password_fails_cleanly_before_any_upload(auth_registry):
    opener = Counting()
    with pytest.raises(RegistryError) as e:
        push(
            simple_image("x"),
            auth_registry.ref("private:1"),
            insecure=True,
            progress=None,
            auth=Credentials(USER, "wrong", "test"),
            opener=opener,
        )
    assert e.value.status == 401 and not e.value.temporary
    assert f"authentication failed for user '{USER}' (from test)" in str(e.value)
    assert "\n" not in str(e.value) and "wrong" not in str(e.value)
    assert {method for method, _ in opener.seen} == {"GET"}


def test_no_credentials_for_a_registry_that_wants_them(auth_registry, tmp_path):
    with pytest.raises(RegistryError, match=f"no credentials for {auth_registry.host}"):
        push(
            simple_image("x"),
            auth_registry.ref("private:1"),
            insecure=True,
            progress=None,
            environ={},
            home=str(tmp_path),
        )
