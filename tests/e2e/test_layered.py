"""streamLayeredImage / buildLayeredImage end to end: real nix-build runs
through the stand-in nixpkgs, images loaded and run by podman, archives
read back byte for byte. One test per line of the conformance checklist
that these functions cover."""

import datetime
import gzip
import json
import os
import subprocess
import uuid

import pytest
from imagekit import memory_layer
from nixhelpers import (
    nix_build,
    nix_eval,
    podman,
    podman_load,
    podman_run,
    read_archive,
    read_oci_archive,
    run_stream,
)

from builder.formats.docker_archive import write_docker_archive
from builder.model.image import Image, canonical_json, sha256_digest
from builder.sinks.sink import MemorySink
from builder.tar import tarstream


def stream(expr, tmp_path, *args):
    script = nix_build(expr, tmp_path)
    return script, read_archive(run_stream(script, *args))


@pytest.fixture(scope="module")
def hello(session_tmp):
    return stream(
        """dockerTools.streamLayeredImage {
      name = "hello-e2e"; tag = "t1"; contents = [ pkgs.hello ];
      config.Cmd = [ "/bin/hello" ]; }""",
        session_tmp,
    )


def test_hello_loads_and_prints_hello(hello):
    script, archive = hello
    podman_load(archive.raw)
    assert podman_run("hello-e2e:t1") == "Hello, world!\n"


def test_a_stream_made_by_several_processes_has_the_bytes_of_one(tmp_path):
    # 5000 entries and more: the store layer's tar is made by worker
    # processes (builder/tar/parallel.py); NIX_BUILD_CORES=1 makes it in one.
    script = nix_build(
        """dockerTools.streamLayeredImage {
      name = "many-files"; tag = "t"; contents = [ fixtures.manyFiles pkgs.busybox ]; maxLayers = 2;
      config.Cmd = [ "/bin/sh" "-c" "ls -R /nix/store | wc -l" ]; }""",
        tmp_path,
    )
    several = run_stream(script)
    one = subprocess.run([script], capture_output=True, env=dict(os.environ, NIX_BUILD_CORES="1"), check=True).stdout
    assert several == one
    archive = read_archive(several)
    podman_load(archive.raw)
    assert int(podman_run("many-files:t")) > 5000


def test_runs_as_non_root_user(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage {
      name = "nonroot"; tag = "t"; contents = [ pkgs.busybox ];
      config = { Cmd = [ "/bin/id" "-u" ]; User = "1000:1000"; }; }""",
        tmp_path,
    )
    podman_load(archive.raw)
    assert podman_run("nonroot:t").strip() == "1000"


def test_nix_and_store_dirs_are_755(hello):
    _, archive = hello
    tree = archive.file_tree()
    assert tree["nix"].mode == 0o755 and tree["nix"].isdir()
    assert tree["nix/store"].mode == 0o755 and tree["nix/store"].isdir()


def test_archive_shape(hello, tmp_path):
    script, archive = hello
    config = archive.config
    assert archive.manifest[0]["RepoTags"] == ["hello-e2e:t1"]
    assert config["os"] == "linux"
    assert config["architecture"] == "amd64"
    assert config["config"]["Cmd"] == ["/bin/hello"]
    assert len(config["history"]) == len(config["rootfs"]["diff_ids"])
    path = tmp_path / "hello.tar"
    path.write_bytes(archive.raw)
    r = subprocess.run(["skopeo", "inspect", f"docker-archive:{path}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Architecture"] == "amd64"


def test_every_store_path_in_exactly_one_layer(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage {
      name = "closure"; tag = "t"; contents = [ fixtures.chainC pkgs.hello ];
      config.Cmd = [ "${fixtures.withSymlinks}/bin/data-link" ]; }""",
        tmp_path,
    )
    owners = {}
    for i, members in enumerate(archive.layer_members()):
        for m in members:
            parts = m.name.split("/")
            if len(parts) == 3 and parts[:2] == ["nix", "store"] and parts[2]:
                assert parts[2] not in owners, f"{parts[2]} in two layers"
                owners[parts[2]] = i
    names = {n.split("-", 1)[1] for n in owners}
    # contents, their references and what the config mentions
    assert {"chain-a", "chain-b", "chain-c", "hello-2.12", "busybox-static", "with-symlinks"} <= names
    assert not any("customisation-layer" in n for n in owners)


def test_include_store_paths_false(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage {
      name = "nostore"; tag = "t"; contents = [ pkgs.hello ]; includeStorePaths = false; }""",
        tmp_path,
    )
    assert not any(name.startswith("nix/store/") for name in archive.file_tree())


def test_created_default_and_now(hello, tmp_path):
    assert hello[1].config["created"] == "1970-01-01T00:00:01Z"
    # A new derivation each run: an output built earlier would carry its own "now".
    _, archive = stream(
        f"""dockerTools.streamLayeredImage {{
      name = "now"; tag = "t{uuid.uuid4().hex[:8]}"; created = "now"; }}""",
        tmp_path,
    )
    created = datetime.datetime.strptime(archive.config["created"], "%Y-%m-%dT%H:%M:%SZ")
    age = datetime.datetime.utcnow() - created
    assert abs(age.total_seconds()) < 600


def test_image_tag_passthru_explicit_and_derived(tmp_path):
    expr = """let img = dockerTools.streamLayeredImage { name = "Derived/Tag"; contents = [ pkgs.hello ]; };
              in img"""
    script = nix_build(expr, tmp_path)
    tag = nix_eval(expr + ".imageTag", tmp_path)
    name = nix_eval(expr + ".imageName", tmp_path)
    assert name == "derived/tag"
    archive = read_archive(run_stream(script))
    assert archive.manifest[0]["RepoTags"] == [f"derived/tag:{tag}"]
    podman_load(archive.raw)
    assert podman("image", "exists", f"derived/tag:{tag}", check=False).returncode == 0
    assert nix_eval("""(dockerTools.streamLayeredImage { name = "x"; tag = "v1"; }).imageTag""", tmp_path) == "v1"


@pytest.mark.parametrize("compressor", ["gz", "zstd", "none"])
def test_build_layered_image_compressors(compressor, tmp_path):
    out = nix_build(
        f"""dockerTools.buildLayeredImage {{
      name = "compressed-{compressor}"; tag = "t"; compressor = "{compressor}";
      contents = [ pkgs.hello ]; config.Cmd = [ "/bin/hello" ]; }}""",
        tmp_path,
    )
    data = open(out, "rb").read()
    assert (data[:2] == b"\x1f\x8b") == (compressor == "gz")
    assert (data[:4] == b"\x28\xb5\x2f\xfd") == (compressor == "zstd")
    archive = read_archive(data)
    podman_load(archive.raw)
    assert podman_run(f"compressed-{compressor}:t") == "Hello, world!\n"


def test_symlinks_kept(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage {
      name = "links"; tag = "t"; contents = [ fixtures.symlinkPath ]; }""",
        tmp_path,
    )
    tree = archive.file_tree()
    link = [m for n, m in tree.items() if n.endswith("-with-symlinks/bin/data-link")][0]
    assert link.issym() and link.linkname == "../share/data"
    path_link = [m for n, m in tree.items() if n.endswith("-symlink-path")][0]
    assert path_link.issym() and path_link.linkname.endswith("-with-symlinks")


def test_hardlinks_become_regular_files(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage {
      name = "hard"; tag = "t"; contents = [ fixtures.withHardlinks ]; }""",
        tmp_path,
    )
    tree = archive.file_tree()
    a = [m for n, m in tree.items() if n.endswith("-with-hardlinks/a")][0]
    b = [m for n, m in tree.items() if n.endswith("-with-hardlinks/b")][0]
    assert a.isreg() and b.isreg() and a.size == b.size == 5


def test_owner_and_mtime_forced(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage {
      name = "owned"; tag = "t"; contents = [ pkgs.hello ]; uid = 42; gid = 43;
      uname = "alice"; gname = "staff"; mtime = "2000-01-01T00:00:00Z"; }""",
        tmp_path,
    )
    store = [m for m in archive.layer_members()[0] if m.name.startswith("nix/store/")]
    assert store and all((m.uid, m.gid, m.uname, m.gname) == (42, 43, "alice", "staff") for m in store)
    assert all(m.mtime == 946684800 for m in store)


def test_on_layered_base_runs_and_inherits(tmp_path):
    expr = """let base = dockerTools.buildLayeredImage {
        name = "base-img"; tag = "b"; contents = [ pkgs.hello ];
        config = { Cmd = [ "/bin/hello" ]; Env = [ "A=base" "B=base" ]; WorkingDir = "/nix"; }; };
      in dockerTools.streamLayeredImage {
        name = "child-img"; tag = "c"; fromImage = base; contents = [ pkgs.busybox ];
        config.Env = [ "B=child" "C=child" ]; }"""
    _, archive = stream(expr, tmp_path)
    env = archive.config["config"]["Env"]
    assert sorted(env) == ["A=base", "B=child", "C=child"]
    assert archive.config["config"]["WorkingDir"] == "/nix"
    podman_load(archive.raw)
    assert podman_run("child-img:c") == "Hello, world!\n"
    assert "B=child" in podman_run("child-img:c", "/bin/env")


def test_a_compressed_base_is_not_kept_unpacked_in_the_description(tmp_path):
    # A 64 MiB layer of zeros in a gzip archive of a few hundred kB: the
    # description (the -conf output) keeps the layer compressed, not the
    # unpacked archive; the image is unchanged, plain and gzip.
    zeros = 64 << 20
    layer = tarstream.header(b"zeros", tarstream.REG, 0o644, 0, 0, 1, zeros) + bytes(zeros) + tarstream.END_OF_ARCHIVE
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]}}
    image = Image(canonical_json(config), [memory_layer(layer)])
    base = tmp_path / "base.tar.gz"
    sink = MemorySink()
    write_docker_archive(sink, [(image, ["zeros:1"])])
    base.write_bytes(gzip.compress(bytes(sink.data), compresslevel=9, mtime=0))
    assert base.stat().st_size < 1 << 20
    script, archive = stream(
        f"""dockerTools.streamLayeredImage {{ name = "on-zeros"; tag = "t"; fromImage = {base};
          contents = [ fixtures.chainA ]; layerCompression = "gzip"; }}""",
        tmp_path,
    )
    conf = [
        p
        for p in subprocess.run(["nix-store", "-qR", script], capture_output=True, text=True).stdout.split()
        if p.endswith("-conf")
    ][0]
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(conf) for f in fs)
    assert size < 4 << 20, os.listdir(conf)
    assert archive.config["rootfs"]["diff_ids"][0] == sha256_digest(layer)
    read_oci_archive(run_stream(script, "--format", "oci"))  # checks every blob, gzip layers included


def test_base_layers_first_and_order_kept(tmp_path):
    expr = """let base = dockerTools.streamLayeredImage {
        name = "order-base"; tag = "b"; contents = [ fixtures.chainC ]; };
      in dockerTools.streamLayeredImage {
        name = "order-child"; tag = "c"; fromImage = base; contents = [ pkgs.hello ]; }"""
    _, archive = stream(expr, tmp_path)
    layers = archive.layer_members()
    names = [
        sorted(
            m.name.split("/")[2].split("-", 1)[1]
            for m in ls
            if m.name.count("/") == 2 and m.name.startswith("nix/store/") and m.name[10:]
        )
        for ls in layers
    ]
    # base: chain-a (most popular) then chain-b, chain-c, then base's customisation layer
    assert names[0] == ["chain-a"] and names[1] == ["chain-b"] and names[2] == ["chain-c"]
    assert names[3] == []  # base customisation layer
    assert "hello-2.12" in sum(names[4:], [])


def test_shares_layers_with_overlapping_image(tmp_path):
    _, one = stream(
        """dockerTools.streamLayeredImage { name = "share1"; tag = "t";
      contents = [ pkgs.hello ]; }""",
        tmp_path,
    )
    _, two = stream(
        """dockerTools.streamLayeredImage { name = "share2"; tag = "t";
      contents = [ pkgs.hello pkgs.figlet ]; }""",
        tmp_path,
    )
    common = set(one.config["rootfs"]["diff_ids"]) & set(two.config["rootfs"]["diff_ids"])
    assert common


def test_max_layers_2_loads(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage { name = "two"; tag = "t";
      contents = [ pkgs.hello pkgs.figlet ]; maxLayers = 2; config.Cmd = [ "/bin/hello" ]; }""",
        tmp_path,
    )
    assert len(archive.manifest[0]["Layers"]) == 2
    podman_load(archive.raw)
    assert podman_run("two:t") == "Hello, world!\n"


def test_bulk_layer_keeps_every_path(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage { name = "bulk"; tag = "t";
      contents = fixtures.many 30; maxLayers = 5; }""",
        tmp_path,
    )
    assert len(archive.manifest[0]["Layers"]) == 5
    found = {
        m.name.split("/")[2]
        for ls in archive.layer_members()
        for m in ls
        if m.name.count("/") == 2 and m.name.startswith("nix/store/") and m.name[10:]
    }
    assert sum(1 for n in found if "-many-" in n) == 30


def test_base_and_max_layers_4(tmp_path):
    _, archive = stream(
        """let base = dockerTools.streamLayeredImage { name = "b4"; tag = "b";
        contents = [ pkgs.busybox ]; maxLayers = 2; };
      in dockerTools.streamLayeredImage { name = "c4"; tag = "t"; fromImage = base;
        contents = fixtures.many 10; maxLayers = 4; }""",
        tmp_path,
    )
    assert len(archive.manifest[0]["Layers"]) == 4


def test_registry_prefix_kept(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage { name = "registry.example.com:5000/Team/App";
      tag = "t"; }""",
        tmp_path,
    )
    assert archive.manifest[0]["RepoTags"] == ["registry.example.com:5000/team/app:t"]


@pytest.mark.parametrize("fakechroot", [False, True])
def test_fake_root_commands_chown(fakechroot, tmp_path):
    prefix = "/" if fakechroot else ""
    _, archive = stream(
        f"""dockerTools.streamLayeredImage {{
      name = "alice"; tag = "{str(fakechroot).lower()}"; contents = [ pkgs.busybox ];
      enableFakechroot = {str(fakechroot).lower()};
      fakeRootCommands = ''
        mkdir -p {prefix}home/alice
        chown 1000:1000 {prefix}home/alice
      '';
      config.Cmd = [ "/bin/sh" "-c" "stat -c %u:%g /home/alice" ]; }}""",
        tmp_path,
    )
    tree = archive.file_tree()
    assert (tree["home/alice"].uid, tree["home/alice"].gid) == (1000, 1000)
    assert (tree["home"].uid, tree["home"].gid) == (0, 0)
    podman_load(archive.raw)
    out = podman_run(f"alice:{str(fakechroot).lower()}", "/bin/sh", "-c", "ls -nd /home/alice")
    assert " 1000 " in out and out.split()[3] == "1000"


def test_store_paths_referenced_by_commands_included(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage {
      name = "refs"; tag = "t";
      extraCommands = "echo ${fixtures.referenced}/ref > pointer";
      fakeRootCommands = "mkdir -p etc; echo ${fixtures.chainA} > etc/chain"; }""",
        tmp_path,
    )
    stores = {
        m.name.split("/")[2].split("-", 1)[1]
        for ls in archive.layer_members()
        for m in ls
        if m.name.count("/") == 2 and m.name.startswith("nix/store/") and m.name[10:]
    }
    assert {"referenced-by-commands", "chain-a"} <= stores


def test_bare_file_in_contents_at_root(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage {
      name = "bare"; tag = "t"; contents = [ fixtures.bareFile pkgs.busybox ];
      config.Cmd = [ "/bin/cat" "/bare-file.txt" ]; }""",
        tmp_path,
    )
    podman_load(archive.raw)
    assert podman_run("bare:t") == "just a file\n"


def test_architecture_arm64(tmp_path):
    _, archive = stream(
        """dockerTools.streamLayeredImage { name = "arm"; tag = "t";
      architecture = "arm64"; }""",
        tmp_path,
    )
    assert archive.config["architecture"] == "arm64"
    assert archive.config.get("variant") == "v8"


def test_reproducible_stream_and_build(hello, tmp_path):
    script, archive = hello
    assert run_stream(script) == archive.raw
    # Rebuild every derivation of the image and compare outputs bit for bit.
    drv = subprocess.run(["nix-store", "-qd", script], capture_output=True, text=True).stdout.strip()
    reqs = subprocess.run(["nix-store", "-qR", drv], capture_output=True, text=True).stdout.split()
    ours = [d for d in reqs if d.endswith(".drv") and ("hello-e2e" in d)]
    assert ours
    r = subprocess.run(["nix-store", "--realise", "--check", *ours], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
