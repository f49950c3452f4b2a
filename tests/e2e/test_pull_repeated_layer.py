"""pullImage of an image whose manifest names one layer twice (docker
builds such images: two steps making the same change). As `docker save`
writes it: the blob stored once, the manifest's Layers keeping the order;
and so in everything made from it."""

import base64
import io
import json
import subprocess
import tarfile
import uuid

from imagekit import make_image, memory_layer
from nixhelpers import nix_build, podman, podman_load, read_archive
from registry_fixture import open_registry  # noqa: F401 (fixture)
from tarbuild import f, tar_bytes

from builder.registry.push import push
from builder.sinks.sink import HashSink
from builder.steps.pull_image import write_pulled


def members(data: bytes):
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return [m.name for m in t.getmembers()], t


def test_pull_image_with_a_repeated_layer(open_registry, tmp_path):
    same = tar_bytes([f("a", b"same")])
    image = make_image([memory_layer(same), memory_layer(tar_bytes([f("b", b"other")])), memory_layer(same)])
    name = open_registry.ref(f"repeated-{uuid.uuid4().hex[:8]}")
    pushed = push(image, f"{name}:v1", insecure=True, progress=None).digest
    hashed = HashSink()
    write_pulled(hashed, image_name=name, image_digest=pushed, final_ref=f"{name}:v1", arch="amd64", tls_verify=False)
    sri = "sha256-" + base64.b64encode(bytes.fromhex(hashed.digest.split(":", 1)[1])).decode()
    pull = f"""dockerTools.pullImage {{ imageName = "{name}"; imageDigest = "{pushed}"; hash = "{sri}";
      finalImageTag = "v1"; tlsVerify = false; arch = "amd64"; }}"""
    out = nix_build(pull, tmp_path)
    data = open(out, "rb").read()
    names, _ = members(data)
    with tarfile.open(out) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    layers = manifest[0]["Layers"]
    assert len(layers) == 3 and layers[0] == layers[2] != layers[1]
    assert len(names) == len(set(names)) and layers[0] in names
    archive = read_archive(data)
    diff_ids = archive.config["rootfs"]["diff_ids"]
    assert diff_ids[0] == diff_ids[2] != diff_ids[1]
    podman_load(data)
    assert podman("image", "inspect", f"{name}:v1").returncode == 0

    # As a base image, in every format the stream writes, and merged.
    child = nix_build(
        f'dockerTools.streamLayeredImage {{ name = "on-repeated"; tag = "c"; fromImage = {pull}; }}', tmp_path
    )
    for fmt in ("docker", "oci"):
        raw = subprocess.run([child, "--format", fmt], capture_output=True, check=True).stdout
        names, _ = members(raw)
        assert len(names) == len(set(names)), (fmt, names)
    assert (
        read_archive(subprocess.run([child], capture_output=True, check=True).stdout).config["rootfs"]["diff_ids"][:3]
        == diff_ids
    )
    merged = nix_build(f"dockerTools.mergeImages [ ({pull}) ]", tmp_path)
    names, _ = members(open(merged, "rb").read())
    assert len(names) == len(set(names))
