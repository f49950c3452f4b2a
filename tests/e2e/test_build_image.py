"""Base images and whiteouts end to end: buildImage (runAsRoot without a
virtual machine), any fromImage, whole-config inheritance, exportImage."""

import subprocess
import tarfile

import hostile
import pytest
from hostile import record
from imagekit import memory_layer
from nixhelpers import NixError, nix_build, podman_load, podman_run, read_archive, run_stream
from tarbuild import chrdev, d, f, hard, sym, tar_bytes

from builder.formats.docker_archive import write_docker_archive
from builder.model.image import Image, canonical_json
from builder.sinks.sink import FdSink

BASE = """dockerTools.buildImage {
  name = "bi-base"; tag = "b"; copyToRoot = [ pkgs.busybox ];
  extraCommands = ''
    mkdir -p etc data/keep data/old
    echo base > etc/motd; echo gone > etc/remove-me
    echo k > data/keep/k; echo o > data/old/o
  '';
  config = { Cmd = [ "/bin/sh" "-c" "cat /etc/motd" ]; WorkingDir = "/data";
             Env = [ "FROM_BASE=1" "SHARED=base" ]; Labels.base = "yes"; };
}"""


def load(path_or_bytes):
    data = open(path_or_bytes, "rb").read() if isinstance(path_or_bytes, str) else path_or_bytes
    archive = read_archive(data)
    podman_load(archive.raw)
    return archive


@pytest.fixture(scope="module")
def run_as_root_child(session_tmp):
    out = nix_build(
        f"""let base = {BASE}; in dockerTools.buildImage {{
      name = "bi-child"; tag = "c"; fromImage = base; copyToRoot = [ pkgs.hello ];
      runAsRoot = ''
        ${{dockerTools.shadowSetup}}
        useradd -u 1001 -m bob
        mkdir -p /srv; chown 1001:1001 /srv
        rm /etc/remove-me
        rm -rf /data/keep; mkdir /data/keep; echo new > /data/keep/n
        rm -rf /data/old; echo now-a-file > /data/old
        ln /etc/motd /etc/motd-hard; ln -s motd /etc/motd-soft
      '';
      config.Env = [ "SHARED=child" ];
    }}""",
        session_tmp,
    )
    return load(out)


def last_layer(archive):
    return {m.name: m for m in archive.layer_members()[-1]}


def test_run_as_root_user_and_owner(run_as_root_child):
    assert "uid=1001(bob)" in podman_run("bi-child:c", "id", "bob")
    assert podman_run("bi-child:c", "stat", "-c", "%u:%g", "/srv") == "1001:1001\n"


def test_run_as_root_deletes_base_file_with_whiteout(run_as_root_child):
    layer = last_layer(run_as_root_child)
    assert "etc/.wh.remove-me" in layer
    assert "etc/remove-me" not in layer
    out = podman_run("bi-child:c", "sh", "-c", "test -e /etc/remove-me && echo present || echo gone")
    assert out == "gone\n"


def test_replaced_directory_gets_opaque_marker(run_as_root_child):
    layer = last_layer(run_as_root_child)
    assert "data/keep/.wh..wh..opq" in layer and "data/keep/n" in layer
    assert not any(n.startswith("data/keep/.wh.k") for n in layer)
    assert podman_run("bi-child:c", "ls", "/data/keep") == "n\n"
    # a directory replaced by a file: whiteout-free, the file wins
    assert podman_run("bi-child:c", "cat", "/data/old") == "now-a-file\n"


def test_never_added_and_whited_out_in_one_layer(run_as_root_child):
    names = [m.name for m in run_as_root_child.layer_members()[-1]]
    assert len(names) == len(set(names))
    for n in names:
        base = n.rsplit("/", 1)[-1]
        if base.startswith(".wh.") and base != ".wh..wh..opq":
            target = n[: -len(base)] + base[4:]
            assert target not in names


def test_hardlinks_and_symlinks_survive(run_as_root_child):
    layer = last_layer(run_as_root_child)
    assert layer["etc/motd-soft"].issym() and layer["etc/motd-soft"].linkname == "motd"
    assert layer["etc/motd-hard"].islnk() or layer["etc/motd"].islnk()
    assert podman_run("bi-child:c", "cat", "/etc/motd-hard") == "base\n"


def test_whole_config_inherited(run_as_root_child):
    config = run_as_root_child.config["config"]
    assert config["Cmd"] == ["/bin/sh", "-c", "cat /etc/motd"]
    assert config["WorkingDir"] == "/data"
    assert config["Labels"] == {"base": "yes"}
    assert sorted(config["Env"]) == ["FROM_BASE=1", "SHARED=child"]
    assert podman_run("bi-child:c") == "base\n"
    history = run_as_root_child.config["history"]
    assert len(history) == 2


def test_layered_child_of_build_image_inherits_command_and_workdir(tmp_path):
    load(
        run_stream(
            nix_build(
                f"""let base = {BASE}; in dockerTools.streamLayeredImage {{
      name = "bi-layered"; tag = "t"; fromImage = base; contents = [ pkgs.hello ]; }}""",
                tmp_path,
            )
        )
    )
    assert podman_run("bi-layered:t") == "base\n"
    assert podman_run("bi-layered:t", "/bin/sh", "-c", "pwd") == "/data\n"
    assert podman_run("bi-layered:t", "hello") == "Hello, world!\n"


def test_entrypoint_without_cmd_clears_base_cmd(tmp_path):
    archive = read_archive(
        run_stream(
            nix_build(
                f"""let base = {BASE}; in dockerTools.streamLayeredImage {{
      name = "bi-entry"; tag = "t"; fromImage = base; config.Entrypoint = [ "/bin/echo" ]; }}""",
                tmp_path,
            )
        )
    )
    assert "Cmd" not in archive.config["config"]
    assert archive.config["config"]["Entrypoint"] == ["/bin/echo"]


def test_build_image_on_layered_image(tmp_path):
    out = nix_build(
        """let base = dockerTools.buildLayeredImage { name = "lb"; tag = "t";
        contents = [ pkgs.busybox ]; config.Cmd = [ "/bin/sh" "-c" "echo from-layered" ]; };
      in dockerTools.buildImage { name = "bi-on-layered"; tag = "t"; fromImage = base;
        runAsRoot = "mkdir -p /made; echo ok > /made/it"; }""",
        tmp_path,
    )
    load(out)
    assert podman_run("bi-on-layered:t") == "from-layered\n"
    assert podman_run("bi-on-layered:t", "cat", "/made/it") == "ok\n"


def test_build_image_without_run_as_root_is_one_layer(tmp_path):
    out = nix_build(
        """dockerTools.buildImage { name = "pure"; tag = "t"; copyToRoot = pkgs.busybox;
      uid = 5; gid = 6; config.Cmd = [ "/bin/id" "-u" ]; }""",
        tmp_path,
    )
    archive = load(out)
    assert len(archive.manifest[0]["Layers"]) == 1
    tree = archive.file_tree()
    assert tree["bin/busybox"].isreg() and tree["bin/busybox"].uid == 5
    assert any(n.startswith("nix/store/") and n.endswith("-busybox-static") for n in tree)
    assert podman_run("pure:t") == "0\n"


def test_from_oci_archive(tmp_path):
    out = nix_build(
        """let base = dockerTools.buildLayeredImage { name = "ociba"; tag = "t";
        format = "oci"; compressor = "none"; contents = [ pkgs.busybox ];
        config.Cmd = [ "/bin/sh" "-c" "echo from-oci" ]; };
      in dockerTools.streamLayeredImage { name = "on-oci"; tag = "t"; fromImage = base;
        contents = [ pkgs.hello ]; }""",
        tmp_path,
    )
    load(run_stream(out))
    assert podman_run("on-oci:t") == "from-oci\n"


def test_pick_image_from_multi_image_archive(tmp_path):
    out = nix_build(
        """let merged = dockerTools.mergeImages [
        (dockerTools.streamLayeredImage { name = "first"; tag = "1"; contents = [ pkgs.busybox ];
           config.Cmd = [ "/bin/echo" "first" ]; })
        (dockerTools.streamLayeredImage { name = "second"; tag = "2"; contents = [ pkgs.busybox ];
           config.Cmd = [ "/bin/echo" "second" ]; }) ];
      in dockerTools.streamLayeredImage { name = "picked"; tag = "t"; fromImage = merged;
        fromImageName = "second"; fromImageTag = "2"; }""",
        tmp_path,
    )
    load(run_stream(out))
    assert podman_run("picked:t") == "second\n"


def _base_archive(tmp_path, layers, name="crafted.tar"):
    """A docker archive written by our own pieces, for bases no tool makes."""
    image_layers = [memory_layer(tar_bytes(entries)) for entries in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in image_layers]},
    }
    path = tmp_path / name
    with open(path, "wb") as f:
        sink = FdSink(f.fileno())
        write_docker_archive(sink, [(Image(canonical_json(config), image_layers), ["crafted:t"])])
        sink.flush()
    return path


def _file(name, data=b"x", mode=0o644):
    return f(name, data, mode, mtime=1)


def test_base_with_the_same_layer_twice(tmp_path):
    busybox_layer = [d("bin", mtime=1), _file("bin/greeting", b"hi\n")]
    base = _base_archive(tmp_path, [busybox_layer, busybox_layer])
    archive = read_archive(
        run_stream(
            nix_build(
                f"""dockerTools.streamLayeredImage {{
      name = "twice"; tag = "t"; fromImage = {base}; contents = [ pkgs.busybox ];
      config.Cmd = [ "/bin/cat" "/bin/greeting" ]; }}""",
                tmp_path,
            )
        )
    )
    ids = archive.config["rootfs"]["diff_ids"]
    assert ids[0] == ids[1]
    podman_load(archive.raw)
    assert podman_run("twice:t") == "hi\n"


@pytest.mark.parametrize(
    "entries, what",
    [
        ([_file("../escape")], "../escape"),
        (
            [sym("link", "../../../../tmp", mtime=1), _file("link/planted")],
            "link/planted",
        ),
        ([hard("hard", "../../etc/passwd", mtime=1)], "hard"),
    ],
)
def test_unsafe_base_stops_with_layer_and_entry(entries, what, tmp_path):
    base = _base_archive(tmp_path, [entries])
    with pytest.raises(NixError) as err:
        nix_build(
            f"""dockerTools.buildImage {{ name = "unsafe"; fromImage = {base};
          runAsRoot = "true"; }}""",
            tmp_path,
        )
    assert "Traceback" not in err.value.stderr
    assert "layer" in err.value.stderr and what.split("/")[0] in err.value.stderr


def test_export_image_is_merged_root_and_deterministic(tmp_path):
    expr = f"""let base = {BASE};
      child = dockerTools.buildImage {{ name = "exp"; fromImage = base; runAsRoot = "rm /etc/remove-me"; }};
      in dockerTools.exportImage {{ fromImage = child; }}"""
    out = nix_build(expr, tmp_path)
    with tarfile.open(out) as t:
        names = {m.name.rstrip("/").removeprefix("./") for m in t.getmembers()}
    assert "bin/sh" in names and "etc/motd" in names
    assert "etc/remove-me" not in names and not any(".wh." in n for n in names)
    drv = subprocess.run(["nix-store", "-qd", out], capture_output=True, text=True).stdout.strip()
    r = subprocess.run(["nix-store", "--realise", "--check", drv], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "records, message",
    [
        (record("uid", str(2**66)), f"uid {2**66} is out of range"),
        (record("mtime", "1e400"), "mtime inf is out of range"),
        (b"0 x=\n", "a malformed PAX record"),
    ],
)
def test_hostile_base_headers_under_run_as_root(records, message, tmp_path):
    # Built byte by byte: no tool writes these headers.
    bad = hostile.layer(hostile.entry(b"ok", b"1"), hostile.pax(records) + hostile.entry(b"bad", b"x"))
    lay = memory_layer(bad)
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [lay.diff_id]}}
    path = tmp_path / "hostile.tar"
    with open(path, "wb") as out:
        sink = FdSink(out.fileno())
        write_docker_archive(sink, [(Image(canonical_json(config), [lay]), ["hostile:t"])])
        sink.flush()
    for fn in ('buildImage { name = "h"; runAsRoot = "true";', "exportImage {"):
        with pytest.raises(NixError) as err:
            nix_build(f"dockerTools.{fn} fromImage = {path}; }}", tmp_path)
        assert "Traceback" not in err.value.stderr
        errors = [
            line for line in err.value.stderr.splitlines() if line.startswith("error: ") and " failed" not in line
        ]
        assert len(errors) == 1 and message in errors[0], err.value.stderr


def test_export_image_keeps_device_nodes_owners_and_mode_0000_files(tmp_path):
    # A RHEL-like base: /etc/shadow is mode 0000, /dev/null a device node.
    base = _base_archive(
        tmp_path,
        [
            [
                d("etc", mtime=1),
                f("etc/shadow", b"root:!!:19000::::::\n", 0o000, mtime=1),
                f("etc/owned", b"x", 0o640, uid=1000, gid=100, mtime=1),
                d("dev", mtime=1),
                chrdev("dev/null", 1, 3),
            ]
        ],
        name="rhel-like.tar",
    )
    out = nix_build(f"dockerTools.exportImage {{ fromImage = {base}; }}", tmp_path)
    with tarfile.open(out) as t:
        members = {m.name.rstrip("/"): m for m in t.getmembers()}
        shadow = t.extractfile(members["etc/shadow"]).read()
    assert members["etc/shadow"].mode == 0o000 and shadow == b"root:!!:19000::::::\n"
    assert (members["etc/owned"].uid, members["etc/owned"].gid) == (1000, 100)
    null = members["dev/null"]
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3) and null.mode == 0o666


@pytest.mark.parametrize("architecture", ["amd64", "arm64"])
def test_multi_platform_base_picked_by_architecture(architecture, tmp_path):
    archive = read_archive(
        run_stream(
            nix_build(
                f"""let
        one = arch: dockerTools.streamLayeredImage {{ name = "mp"; tag = arch; architecture = arch;
          contents = [ pkgs.busybox ]; config.Labels.arch = arch; }};
        index = dockerTools.buildMultiArchImage {{ name = "mp"; tag = "all"; images = [ (one "amd64") (one "arm64") ]; }};
      in dockerTools.streamLayeredImage {{ name = "mp-child"; tag = "t"; fromImage = index;
        architecture = "{architecture}"; contents = [ pkgs.hello ]; }}""",
                tmp_path,
            )
        )
    )
    assert archive.config["config"]["Labels"] == {"arch": architecture}
    assert archive.config["architecture"] == architecture


def test_copy_to_root_hardlinks_do_not_reach_the_layer(tmp_path):
    # A store path's hardlinks are not part of its NAR: built here, it has
    # them; substituted or imported, it does not. The layer must not differ.
    out = nix_build(
        """dockerTools.buildImage {
      name = "bi-hard"; tag = "t"; copyToRoot = [ fixtures.withHardlinks ]; }""",
        tmp_path,
    )
    layer = last_layer(read_archive(open(out, "rb").read()))
    assert layer["a"].isreg() and layer["b"].isreg() and layer["a"].size == layer["b"].size == 5
