"""The registry client against a real distribution 2.8 registry: push and
pull checked with skopeo and podman (protocol steps alone:
unit/registry/test_registry.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import imagekit
import pytest
from authfile import auth_file, b64
from imagekit import busybox_image, failing_layer, make_image, memory_layer, simple_image
from registry_fixture import PASSWORD, USER, auth_registry, open_registry  # noqa: F401 (fixtures)
from tarbuild import layer_bytes

from builder.errors import RegistryError
from builder.formats import oci_layout
from builder.model.image import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from builder.model.manifest import image_manifest as manifest_of
from builder.model.reference import parse_reference
from builder.registry.auth import Credentials
from builder.registry.client import HttpOpener, RegistryClient
from builder.registry.pull import pull
from builder.registry.push import push
from builder.sinks.sink import FdSink, Sink

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
    assert "authentication failed with the credentials from test" in str(e.value)
    assert "\n" not in str(e.value) and "wrong" not in str(e.value) and USER not in str(e.value)
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


# --- the blob-info cache ------------------------------------------------------------------


def _diff_ids_hold(ref: str, tmp_path) -> None:
    """What the registry serves is the image: every gzip layer unpacks to
    the diff_id its config names (skopeo checks the compressed digests)."""
    import gzip
    import hashlib

    out = tmp_path / f"check-{uuid.uuid4().hex[:6]}"
    run("skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{out}:x")
    index = json.loads((out / "index.json").read_text())
    blob = lambda d: (out / "blobs" / "sha256" / d.split(":")[1]).read_bytes()  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    got = [
        "sha256:" + hashlib.sha256(gzip.decompress(blob(layer["digest"]))).hexdigest() for layer in manifest["layers"]
    ]
    assert got == config["rootfs"]["diff_ids"]


@needs_skopeo
def test_a_gzip_repush_compresses_only_the_changed_layer(open_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    files = [layer_bytes({f"lib{i}.so": os.urandom(50_000) + b"\0" * 200_000}) for i in range(3)]
    calls: list = []
    ref = open_registry.ref(unique("blobcache") + ":1")
    first = make_image(
        [memory_layer(data, calls) for data in files] + [memory_layer(layer_bytes({"app": b"v1"}), calls)]
    )
    push(first, ref, insecure=True, encoding="gzip", progress=None)
    assert len(calls) == 4  # each layer made once: compressed into a temporary file, sent from it

    # As after a rebuild: new Layer objects, nothing known about their gzip form.
    calls.clear()
    app = memory_layer(layer_bytes({"app": b"v2"}), calls)
    second = make_image([memory_layer(data, calls) for data in files] + [app])
    result = push(second, ref, insecure=True, encoding="gzip", progress=None)
    assert calls == [app.diff_id]  # the unchanged layers were not even read
    assert len(result.cached) == 3 and result.uploaded == [app.known["gzip"][0], second.config_digest]
    assert skopeo_inspect(ref)["Digest"] == result.digest
    _diff_ids_hold(ref, tmp_path)

    # Another repository on the same registry: the cache knows where the
    # blobs are, so they are mounted, still without compressing.
    calls.clear()
    other = open_registry.ref(unique("blobcache-other") + ":1")
    third = make_image(
        [memory_layer(data, calls) for data in files] + [memory_layer(layer_bytes({"app": b"v2"}), calls)]
    )
    result = push(third, other, insecure=True, encoding="gzip", progress=None)
    assert calls == [] and len(result.mounted) == 4
    _diff_ids_hold(other, tmp_path)


@needs_skopeo
def test_damaged_or_stale_cache_entries_cost_a_request_not_a_wrong_image(open_registry, tmp_path, monkeypatch):
    from builder.registry.blobcache import BlobCache, cache_path, format_of

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a, b, c = (layer_bytes({n: os.urandom(1000)}) for n in "abc")
    ref = open_registry.ref(unique("wrong-entry") + ":1")
    push(make_image([memory_layer(x) for x in (a, b, c)]), ref, insecure=True, encoding="gzip", progress=None)
    fmt = format_of("gzip")
    la, lb, lc = memory_layer(a), memory_layer(b), memory_layer(c)
    cache = BlobCache(cache_path())
    (a_digest, _, _), (b_digest, b_size, _) = cache.lookup(la.diff_id, fmt), cache.lookup(lb.diff_id, fmt)
    # Stale: c's entry names a blob the registry does not have.
    missing = "sha256:" + "0" * 64
    cache.remember(lc.diff_id, fmt, missing, 123)
    cache.save()
    # Damaged: a's entry edited to name b's blob (present, maybe the same size).
    path = cache_path()
    with open(path) as f:
        doc = json.load(f)
    doc["entries"][f"{la.diff_id} {fmt}"].update(digest=b_digest, size=b_size)
    with open(path, "w") as f:
        json.dump(doc, f)
    result = push(make_image([la, lb, lc]), ref, insecure=True, encoding="gzip", progress=None)
    assert result.cached == [b_digest] and result.stale == [missing]
    assert la.known["gzip"][0] == a_digest  # compressed again, not taken from the damaged entry
    _diff_ids_hold(ref, tmp_path)


def test_cli_repush_with_compress_gzip_uses_the_cache(open_registry, tmp_path):
    from builder.formats.description import write_description

    entries, layers = [], []
    for i in range(3):
        data = layer_bytes({f"f{i}": os.urandom(20_000)})
        tar = tmp_path / f"layer{i}.tar"
        tar.write_bytes(data)
        layer = memory_layer(data)
        layers.append(layer)
        source = {"kind": "file", "path": str(tar), "offset": 0, "size": len(data), "encoding": "none"}
        source.update(storedDigest=layer.diff_id, storedSize=len(data))
        entries.append({"diffId": layer.diff_id, "size": len(data), "source": source})
    description = str(tmp_path / "desc")
    write_description(description, config_bytes=make_image(layers).config_bytes, entries=entries, repo_tag="app:1")
    ref = open_registry.ref(unique("cli-blobcache") + ":1")
    # The layer files stand in for store paths: a description names only
    # files in the store, and NIX_STORE_DIR says where that is.
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), NIX_STORE_DIR=str(tmp_path))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    command = [shutil.which("python3") or "python3", "-m", "builder", "push", description, ref]

    def cli_push() -> str:
        proc = subprocess.run(
            command + ["--insecure", "--compress", "gzip"], capture_output=True, text=True, env=env, cwd=repo
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    first = cli_push()
    assert "from the blob-info cache" not in first and "4 blob(s) uploaded" in first
    second = cli_push()
    assert "3 compressed digest(s) from the blob-info cache, confirmed by the registry" in second
    assert "0 blob(s) uploaded" in second and "not confirmed" not in second
    assert os.path.exists(tmp_path / "cache" / "nix-docker-tools" / "blob-info.json")
    _diff_ids_hold(ref, tmp_path)
