"""OCI archive and layout: what skopeo, umoci and podman make of ours, and
ours reading what skopeo wrote (our bytes alone: unit/formats/test_oci_layout.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import imagekit
import pytest
from imagekit import (
    busybox_image,
    layer_tar,
    make_image,
    manifest_digest,
    memory_layer,
    multi_arch,
    simple_image,
)
from imagekit import write_oci_archive_file as write_archive
from tarbuild import layer_bytes

from builder.errors import ImageFormatError
from builder.formats import docker_archive
from builder.formats.oci_layout import read_oci, write_oci_layout
from builder.model import manifest
from builder.model.image import OCI_INDEX
from builder.sinks.sink import FdSink


def needs(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed (bash tests/setup.sh)")


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


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
