"""OCI archive and layout: our bytes, and what skopeo, umoci and podman make of them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import uuid

import imagekit
import pytest
from imagekit import busybox_image, layer_tar, make_image, memory_layer, simple_image
from tarbuild import layer_bytes

from builder.errors import BuildError, DigestMismatch, ImageFormatError
from builder.formats import docker_archive
from builder.formats.oci_layout import IMAGE_NAME, REF_NAME, read_oci, write_oci_archive, write_oci_layout
from builder.model import manifest
from builder.model.image import OCI_INDEX, OCI_MANIFEST, Layer, sha256_digest
from builder.model.platform import parse_platform
from builder.sinks.sink import FdSink


def needs(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed (bash tests/setup.sh)")


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def write_archive(path, images, encoding="gzip"):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_oci_archive(FdSink(fd), images, encoding)
    finally:
        os.close(fd)
    return str(path)


def members(path):
    with tarfile.open(path) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar}


def manifest_digest(image, encoding="gzip"):
    return manifest.image_manifest(image, encoding).blob.digest


# --- the archive's own shape ------------------------------------------------------


def test_archive_has_layout_index_and_docker_manifest(tmp_path):
    base = memory_layer(layer_bytes({"base.txt": b"shared"}))
    one = make_image([base, memory_layer(layer_bytes({"one": b"1"}))], label="one")
    two = make_image([base, memory_layer(layer_bytes({"two": b"2"}))], label="two")
    path = write_archive(tmp_path / "a.tar", [(one, ["app:1"]), (two, ["reg.example:5000/x/y:2"])])
    files = members(path)

    names = list(files)
    assert names[:5] == ["oci-layout", "index.json", "manifest.json", "blobs", "blobs/sha256"]
    assert json.loads(files["oci-layout"][1]) == {"imageLayoutVersion": "1.0.0"}
    for name, (info, data) in files.items():
        assert (info.uid, info.gid, info.mtime) == (0, 0, 1)
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.split("/")[-1]
    # 2 configs + 2 manifests + 3 distinct layers: the shared one is stored once.
    assert len([n for n in names if n.startswith("blobs/sha256/")]) == 7

    index = json.loads(files["index.json"][1])
    assert index["mediaType"] == OCI_INDEX
    annotations = [e["annotations"] for e in index["manifests"]]
    assert annotations == [
        {REF_NAME: "1", IMAGE_NAME: "docker.io/library/app:1"},
        {REF_NAME: "2", IMAGE_NAME: "reg.example:5000/x/y:2"},
    ]
    assert [e["digest"] for e in index["manifests"]] == [manifest_digest(one), manifest_digest(two)]

    legacy = json.loads(files["manifest.json"][1])
    assert [e["RepoTags"] for e in legacy] == [["app:1"], ["reg.example:5000/x/y:2"]]
    for entry in legacy:
        for name in [entry["Config"], *entry["Layers"]]:
            assert name in files


def test_archive_bytes_are_deterministic(tmp_path):
    image = simple_image("a", "b")
    a = write_archive(tmp_path / "a.tar", [(image, ["t:1"])])
    b = write_archive(tmp_path / "b.tar", [(simple_image("a", "b"), ["t:1"])])
    assert open(a, "rb").read() == open(b, "rb").read()


def test_archive_golden_digest(tmp_path):
    # Pinned: the same on Python 3.11, 3.12 and 3.13. A change here changes
    # every user's image digest, so it must be deliberate. (Plain layers only:
    # gzip bytes also depend on the zlib version.)
    group = [simple_image("a", "b"), simple_image("c", architecture="arm64")]
    path = write_archive(tmp_path / "g.tar", [(group, ["x:1"]), (simple_image("a", "b"), ["y:2"])], encoding="none")
    assert (
        hashlib.sha256(open(path, "rb").read()).hexdigest()
        == "45773a9296dfc45d3c10771320e5c68c7ec1a081a6151e50cd01e0199d3a1b0d"
    )


def test_manifest_digest_covers_the_bytes_written(tmp_path):
    image = simple_image("x")
    m = manifest.image_manifest(image, "gzip")
    files = members(write_archive(tmp_path / "a.tar", [(image, ["t:1"])]))
    stored = files["blobs/sha256/" + m.blob.digest.split(":")[1]][1]
    body = json.loads(stored)
    assert body["mediaType"] == OCI_MANIFEST
    assert body["config"]["digest"] == image.config_digest
    assert [d["digest"] for d in body["layers"]] == [b.digest for b in m.layers]


def test_writer_that_lies_about_size_is_caught(tmp_path):
    data = layer_bytes({"f": b"x"})
    bad = Layer(sha256_digest(data), len(data) + 512, lambda sink: sink.write(data))
    with pytest.raises(DigestMismatch):
        write_archive(tmp_path / "a.tar", [(make_image([bad]), ["t:1"])], encoding="none")


# --- other tools read it ---------------------------------------------------------------


@needs("skopeo", "umoci")
def test_skopeo_and_umoci_read_the_archive(tmp_path):
    image = simple_image("hello", "world")
    archive = write_archive(tmp_path / "a.tar", [(image, ["demo/app:v1"])])
    info = json.loads(run("skopeo", "inspect", f"oci-archive:{archive}:v1"))
    assert info["Digest"] == manifest_digest(image)
    assert info["Layers"] == [b.digest for b in manifest.image_manifest(image).layers]
    assert info["Labels"] == {"test": ""}
    # Older loaders go by manifest.json: the same tar is also a docker archive.
    legacy = json.loads(run("skopeo", "inspect", f"docker-archive:{archive}"))
    # skopeo reports a docker archive's layers decompressed: by diff_id.
    assert legacy["Layers"] == [layer.diff_id for layer in image.layers]

    copied = tmp_path / "copied"
    run("skopeo", "copy", "-q", f"oci-archive:{archive}:v1", f"oci:{copied}:v1")
    stat = run("umoci", "stat", "--image", f"{copied}:v1")
    listed = [line.split()[0] for line in stat.splitlines() if line.startswith("sha256:")]
    assert listed == info["Layers"]


@needs("umoci")
def test_umoci_unpacks_our_layout(tmp_path):
    image = make_image(
        [memory_layer(layer_bytes({"etc/greeting": b"hi\n"})), memory_layer(layer_bytes({"etc/other": b"two\n"}))]
    )
    layout = tmp_path / "layout"
    write_oci_layout(str(layout), [(image, ["demo:1"])], "gzip")
    run("umoci", "stat", "--image", f"{layout}:1")
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{layout}:1", str(bundle))
    assert (bundle / "rootfs" / "etc" / "greeting").read_text() == "hi\n"
    assert (bundle / "rootfs" / "etc" / "other").read_text() == "two\n"


@needs("podman")
@pytest.mark.skipif(not imagekit.have_busybox(), reason="no static /bin/busybox")
def test_podman_loads_and_runs_the_archive(tmp_path):
    name = f"ocitest-{uuid.uuid4().hex[:8]}"
    archive = write_archive(tmp_path / "bb.tar", [(busybox_image("from an oci archive"), [f"{name}:1"])])
    try:
        loaded = run("podman", "load", "-i", archive)
        assert f"{name}:1" in loaded
        assert run("podman", "run", "--rm", f"{name}:1") == "from an oci archive\n"
    finally:
        subprocess.run(["podman", "rmi", "-f", f"docker.io/library/{name}:1"], capture_output=True)


# --- the layout directory ---------------------------------------------------------------


def test_layout_skips_blobs_already_present(tmp_path):
    calls = []
    image = make_image([memory_layer(layer_bytes({"a": b"a"}), calls), memory_layer(layer_bytes({"b": b"b"}), calls)])
    layout = str(tmp_path / "layout")
    written = write_oci_layout(layout, [(image, ["demo:1"])], "none")
    assert len(written) == 4 and len(calls) == 2  # 2 layers, config, manifest

    calls.clear()
    assert write_oci_layout(layout, [(image, ["demo:2"])], "none") == []
    assert calls == []
    assert not [n for n in os.listdir(f"{layout}/blobs/sha256") if n.startswith(".tmp")]

    # A blob of the wrong size (a torn earlier write) is written again.
    victim = f"{layout}/blobs/sha256/{image.layers[0].diff_id.split(':')[1]}"
    with open(victim, "r+b") as f:
        f.truncate(10)
    assert write_oci_layout(layout, [(image, ["demo:1"])], "none") == [image.layers[0].diff_id]


def test_layout_index_keeps_other_tags_and_replaces_ours(tmp_path):
    layout = str(tmp_path / "layout")
    first, second = simple_image("1"), simple_image("2")
    write_oci_layout(layout, [(first, ["demo:a"]), (first, ["demo:b"])])
    write_oci_layout(layout, [(second, ["demo:b"])])
    index = json.load(open(f"{layout}/index.json"))
    by_ref = {e["annotations"][REF_NAME]: e["digest"] for e in index["manifests"]}
    assert by_ref == {"a": manifest_digest(first), "b": manifest_digest(second)}
    assert read_oci(layout, ref="b").config_digest == second.config_digest


def test_layout_refuses_a_blob_whose_bytes_do_not_match(tmp_path):
    data = layer_bytes({"f": b"real"})
    liar = memory_layer(data)
    liar.write_tar = lambda sink: sink.write(layer_bytes({"f": b"fake"}))
    layout = str(tmp_path / "layout")
    with pytest.raises(DigestMismatch):
        write_oci_layout(layout, [(make_image([liar]), ["demo:1"])], "none")
    leftovers = os.listdir(f"{layout}/blobs/sha256")
    assert liar.diff_id.split(":")[1] not in leftovers
    assert not [n for n in leftovers if n.startswith(".tmp")]
    assert not os.path.exists(f"{layout}/index.json")


# --- reading back ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["none", "gzip"])
def test_read_back_from_archive_streams_layers_in_place(tmp_path, encoding):
    image = simple_image("one", "two")
    archive = write_archive(tmp_path / "a.tar", [(image, ["demo:1"])], encoding)
    back = read_oci(archive, ref="1")
    assert back.config_bytes == image.config_bytes
    assert [l.diff_id for l in back.layers] == [l.diff_id for l in image.layers]
    for ours, theirs in zip(image.layers, back.layers):
        assert layer_tar(theirs) == layer_tar(ours)
        # The layer is a range of the archive itself, not a copy.
        assert theirs.source["path"] == archive and theirs.source["offset"] > 0
        assert theirs.source["encoding"] == encoding
    # Compressed layers keep their stored bytes: writing gzip again copies them.
    again = write_archive(tmp_path / "b.tar", [(back, ["demo:1"])], encoding)
    assert open(again, "rb").read() == open(archive, "rb").read()


def test_read_back_from_layout_dir(tmp_path):
    image = simple_image("one", "two")
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, [(image, ["demo:1"])])
    back = read_oci(layout)
    assert back.config_digest == image.config_digest
    assert [l.diff_id for l in back.layers] == [l.diff_id for l in image.layers]


def test_read_detects_a_tampered_layer(tmp_path):
    image = simple_image("payload")
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, [(image, ["demo:1"])], "none")
    blob = f"{layout}/blobs/sha256/{image.layers[0].diff_id.split(':')[1]}"
    data = bytearray(open(blob, "rb").read())
    data[data.index(b"payload")] ^= 0x20
    open(blob, "wb").write(bytes(data))
    with pytest.raises(DigestMismatch):
        read_oci(layout)


def test_read_needs_a_ref_among_several_images_and_names_them(tmp_path):
    archive = write_archive(tmp_path / "a.tar", [(simple_image("a"), ["x:one"]), (simple_image("b"), ["x:two"])])
    with pytest.raises(ImageFormatError, match="one, two"):
        read_oci(archive)
    with pytest.raises(ImageFormatError, match="no image with reference 'three'"):
        read_oci(archive, ref="three")
    assert read_oci(archive, ref="docker.io/library/x:two").config_digest == simple_image("b").config_digest


def test_read_rejects_what_is_not_a_layout(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ImageFormatError):
        read_oci(str(tmp_path / "d"))
    (tmp_path / "f").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ImageFormatError):
        read_oci(str(tmp_path / "f"))


@needs("skopeo")
def test_read_a_layout_written_by_skopeo(tmp_path):
    # An independent writer: skopeo turns our docker archive into an OCI layout.
    image = simple_image("alpha", "beta")
    docker = tmp_path / "d.tar"
    fd = os.open(docker, os.O_WRONLY | os.O_CREAT, 0o644)
    docker_archive.write_docker_archive(FdSink(fd), [(image, ["demo:1"])])
    os.close(fd)
    layout = tmp_path / "layout"
    run("skopeo", "copy", "-q", f"docker-archive:{docker}", f"oci:{layout}:latest")
    back = read_oci(str(layout), ref="latest")
    # skopeo rewrites the config when it converts; the layers stay ours.
    assert back.config["config"]["Labels"] == image.config["config"]["Labels"]
    assert [l.diff_id for l in back.layers] == [l.diff_id for l in image.layers]
    assert [layer_tar(l) for l in back.layers] == [layer_tar(l) for l in image.layers]


# --- several platforms ------------------------------------------------------------------


def multi_arch():
    return [simple_image("x86", architecture="amd64"), simple_image("arm", architecture="arm64", variant="v8")]


@needs("skopeo")
def test_multi_arch_archive_is_an_index(tmp_path):
    images = multi_arch()
    archive = write_archive(tmp_path / "m.tar", [(images, ["multi:1"])])
    raw = json.loads(run("skopeo", "inspect", "--raw", f"oci-archive:{archive}:1"))
    assert raw["mediaType"] == OCI_INDEX
    assert [m["platform"] for m in raw["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    arm = json.loads(run("skopeo", "inspect", "--override-arch", "arm64", f"oci-archive:{archive}:1"))
    assert arm["Digest"] == manifest.render(images).top.digest  # the tag's: the index
    assert arm["Architecture"] == "arm64"
    assert arm["Layers"] == [b.digest for b in manifest.image_manifest(images[1]).layers]

    assert read_oci(archive, architecture="arm64").config_digest == images[1].config_digest
    assert read_oci(archive, machine="x86_64").config_digest == images[0].config_digest
    assert read_oci(archive, machine="aarch64").config_digest == images[1].config_digest
    with pytest.raises(ImageFormatError, match="linux/s390x"):
        read_oci(archive, architecture="s390x")
    with pytest.raises(ImageFormatError, match="choose an architecture"):
        read_oci(archive, machine="riscv64")


def test_multi_arch_layout_dir(tmp_path):
    images = multi_arch()
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, [(images, ["multi:1"])])
    assert read_oci(layout, ref="1", architecture="arm64", variant="v8").platform == images[1].platform


def test_single_image_named_for_another_platform_is_refused(tmp_path):
    archive = write_archive(tmp_path / "a.tar", [(simple_image("a", architecture="arm64"), ["x:1"])])
    assert read_oci(archive, machine="x86_64").platform["architecture"] == "arm64"
    with pytest.raises(ImageFormatError, match="linux/arm64, not linux/amd64"):
        read_oci(archive, architecture="amd64")


def test_two_images_for_one_platform_is_an_error():
    with pytest.raises(BuildError, match="two images for platform linux/amd64"):
        manifest.render([simple_image("a"), simple_image("b")])


@pytest.mark.parametrize(
    "text, want",
    [
        ("linux/amd64", {"os": "linux", "architecture": "amd64"}),
        ("linux/arm/v7", {"os": "linux", "architecture": "arm", "variant": "v7"}),
    ],
)
def test_parse_platform(text, want):
    assert parse_platform(text) == want


@pytest.mark.parametrize("bad", ["amd64", "linux/", "a/b/c/d"])
def test_parse_platform_rejects(bad):
    with pytest.raises(BuildError):
        parse_platform(bad)
