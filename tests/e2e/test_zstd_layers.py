"""zstd-compressed layers end to end: digests recorded at build time by
pkgs.zstd's program (recorded in the description), streamed bytes that match
them, podman loading and running them, a registry taking them, and images
with zstd layers (ours, or a foreign OCI archive's) used as fromImage."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from nixhelpers import nix_build, podman_load, podman_run, read_archive, read_oci_archive, read_oci_dir
from registry_fixture import open_registry  # noqa: F401 (fixture)
from test_oci_push import conf_entries, podman_pull, push, remote, run, skopeo_inspect, unique

ZSTD_OCI = "application/vnd.oci.image.layer.v1.tar+zstd"

HELLO = """dockerTools.streamLayeredImage {{
  name = "{name}"; tag = "t"; contents = [ pkgs.hello ];
  config.Cmd = [ "/bin/hello" ]; layerCompression = "zstd"; {extra} }}"""


@pytest.fixture(scope="module")
def zstd_hello(session_tmp):
    return nix_build(HELLO.format(name="zstd-hello", extra=""), session_tmp)


def description(script: str) -> dict:
    conf = [p for p in run("nix-store", "-q", "--references", script).stdout.split() if p.endswith("-conf")][0]
    with open(os.path.join(conf, "image.json")) as f:
        return json.load(f)


def test_build_records_zstd_digests_and_the_program(zstd_hello):
    doc = description(zstd_hello)
    assert doc["layerCompression"] == "zstd"
    # The program is pkgs.zstd's, from the store: the stream uses the same one.
    assert doc["zstd"].startswith("/nix/store/") and doc["zstd"].endswith("/bin/zstd")
    assert all("zstd" in e["known"] for e in doc["layers"])


def test_streamed_zstd_layers_match_the_build_and_run_in_podman(zstd_hello, tmp_path):
    entries = conf_entries(zstd_hello)
    r = subprocess.run([zstd_hello, "--format", "oci"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    assert b"note:" not in r.stderr  # every digest came from the build
    archive = read_oci_archive(r.stdout)  # every blob hashed, every layer against its diff_id
    layers = archive.image.manifest["layers"]
    assert [d["mediaType"] for d in layers] == [ZSTD_OCI] * len(layers)
    assert [(d["digest"], d["size"]) for d in layers] == [tuple(e["known"]["zstd"]) for e in entries]
    # Same bytes on a second run, and in the docker archive.
    again = subprocess.run([zstd_hello, "--format", "oci"], capture_output=True, check=True).stdout
    assert again == r.stdout
    docker = read_archive(subprocess.run([zstd_hello], capture_output=True, check=True).stdout)
    assert docker.image_layers() == archive.image.layers
    podman_load(r.stdout)
    assert podman_run("zstd-hello:t") == "Hello, world!\n"


def test_layout_directory_with_zstd_layers_reads_in_skopeo_and_umoci(zstd_hello, tmp_path):
    out = tmp_path / "layout"
    run(zstd_hello, "--output", f"{out}/")
    layout = read_oci_dir(str(out))
    assert skopeo_inspect(f"oci:{out}:t")["Digest"] == layout.image.manifest_digest
    assert all(d["mediaType"] == ZSTD_OCI for d in layout.image.manifest["layers"])


def test_compress_zstd_on_a_plain_image(tmp_path):
    script = nix_build(HELLO.format(name="zstd-late", extra="").replace('layerCompression = "zstd";', ""), tmp_path)
    r = subprocess.run([script, "--format", "oci", "--compress", "zstd"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    assert b"no zstd digest from the build" in r.stderr
    archive = read_oci_archive(r.stdout)
    assert all(d["mediaType"] == ZSTD_OCI for d in archive.image.manifest["layers"])
    podman_load(r.stdout)
    assert podman_run("zstd-late:t") == "Hello, world!\n"


def test_push_zstd_layers_and_pull_back(open_registry, zstd_hello):  # noqa: F811
    ref = open_registry.ref(unique("zstd/hello") + ":v1")
    digest = push(zstd_hello, ref).stdout.strip()
    raw = remote(ref, raw=True)
    assert [d["mediaType"] for d in raw["layers"]] == [ZSTD_OCI] * len(raw["layers"])
    assert [d["digest"] for d in raw["layers"]] == [e["known"]["zstd"][0] for e in conf_entries(zstd_hello)]
    assert remote(ref)["Digest"] == digest
    podman_pull(ref)
    assert podman_run(ref) == "Hello, world!\n"


def test_zstd_layered_archive_as_base(tmp_path):
    """A foreign-looking OCI archive whose layers are tar+zstd (what
    buildLayeredImage { format = "oci"; layerCompression = "zstd"; } writes,
    as docker/podman push them) is read as fromImage: its zstd layers are
    decompressed by pkgs.zstd and checked against their diff_ids."""
    expr = """let
      base = dockerTools.buildLayeredImage { name = "zbase"; tag = "b"; contents = [ fixtures.chainA ];
        format = "oci"; layerCompression = "zstd"; };
    in {
      inherit base;
      plain = dockerTools.streamLayeredImage { name = "zchild"; tag = "c"; fromImage = base;
        contents = [ pkgs.hello ]; config.Cmd = [ "/bin/hello" ]; };
      zstd = dockerTools.streamLayeredImage { name = "zchild2"; tag = "c"; fromImage = base;
        contents = [ pkgs.hello ]; config.Cmd = [ "/bin/hello" ]; layerCompression = "zstd"; };
    }"""
    base = nix_build(expr, tmp_path, attr="base")
    base_archive = read_oci_archive(open(base, "rb").read())
    assert all(d["mediaType"] == ZSTD_OCI for d in base_archive.image.manifest["layers"])
    n_base = len(base_archive.image.manifest["layers"])
    plain = nix_build(expr, tmp_path, attr="plain")
    data = subprocess.run([plain], capture_output=True, check=True).stdout
    child = read_archive(data)  # the base's layers, decompressed, hash to their diff_ids
    assert child.config["rootfs"]["diff_ids"][:n_base] == base_archive.image.config["rootfs"]["diff_ids"]
    podman_load(data)
    assert podman_run("zchild:c") == "Hello, world!\n"
    # Asked for zstd, the base's zstd blobs go out as they are, unchanged.
    zs = nix_build(expr, tmp_path, attr="zstd")
    oci = read_oci_archive(subprocess.run([zs, "--format", "oci"], capture_output=True, check=True).stdout)
    assert oci.image.manifest["layers"][:n_base] == base_archive.image.manifest["layers"]


def test_foreign_oci_layout_with_zstd_layers_as_base(tmp_path):
    """A base whose tar+zstd layers another tool wrote: skopeo recompresses
    an image to zstd (its own zstd library, its own frame layout) into an
    OCI layout directory, and that directory is fromImage."""
    plain = nix_build(
        'dockerTools.buildLayeredImage { name = "foreign"; tag = "f"; contents = [ fixtures.chainB ]; format = "oci"; }',
        tmp_path,
    )
    layout = tmp_path / "foreign-zstd"
    run(
        "skopeo",
        "copy",
        "-q",
        "--dest-compress-format",
        "zstd",
        f"oci-archive:{plain}:f",
        f"oci:{layout}:f",
    )
    foreign = read_oci_dir(str(layout))
    assert all(d["mediaType"] == ZSTD_OCI for d in foreign.image.manifest["layers"])
    script = nix_build(
        f"""dockerTools.streamLayeredImage {{ name = "on-foreign"; tag = "t";
          fromImage = builtins.path {{ path = {layout}; name = "foreign-zstd"; }};
          contents = [ pkgs.hello ]; config.Cmd = [ "/bin/hello" ]; }}""",
        tmp_path,
    )
    data = subprocess.run([script], capture_output=True, check=True).stdout
    child = read_archive(data)  # the foreign layers, decompressed, hash to their diff_ids
    n = len(foreign.image.manifest["layers"])
    assert child.config["rootfs"]["diff_ids"][:n] == foreign.image.config["rootfs"]["diff_ids"]
    podman_load(data)
    assert podman_run("on-foreign:t") == "Hello, world!\n"
    # Pushed with --compress zstd, skopeo's zstd blobs go up as they are.
    oci = read_oci_archive(
        subprocess.run([script, "--format", "oci", "--compress", "zstd"], capture_output=True, check=True).stdout
    )
    assert oci.image.manifest["layers"][:n] == foreign.image.manifest["layers"]
