"""buildLayer and the layers argument (nix2container style explicit layers)."""

import re
import subprocess
import uuid

from nixhelpers import PREAMBLE, nix_build, podman_load, podman_run, read_archive, run_stream


def store_names(members):
    return sorted(
        {
            m.name.split("/")[2].split("-", 1)[1]
            for m in members
            if m.name.startswith("nix/store/") and m.name.count("/") >= 2 and m.name[10:]
        }
    )


def test_explicit_layer_first_and_not_repeated(tmp_path):
    archive = read_archive(
        run_stream(
            nix_build(
                """let
        deps = dockerTools.buildLayer { deps = [ pkgs.busybox ]; };
        app = dockerTools.buildLayer { deps = [ pkgs.hello ]; layers = [ deps ]; };
      in dockerTools.streamLayeredImage { name = "explicit"; tag = "t";
        layers = [ deps app ]; contents = [ pkgs.hello pkgs.figlet ]; config.Cmd = [ "/bin/hello" ]; }""",
                tmp_path,
            )
        )
    )
    per_layer = [store_names(ms) for ms in archive.layer_members()]
    assert per_layer[0] == ["busybox-static"]
    assert per_layer[1] == ["hello-2.12"]  # busybox is in the parent layer: skipped
    rest = sum(per_layer[2:], [])
    assert "figlet-2.2.5" in rest and "busybox-static" not in rest and "hello-2.12" not in rest
    podman_load(archive.raw)
    assert podman_run("explicit:t") == "Hello, world!\n"


def test_copy_to_root_and_perms(tmp_path):
    archive = read_archive(
        run_stream(
            nix_build(
                """let
        layer = dockerTools.buildLayer {
          copyToRoot = [ pkgs.hello pkgs.figlet ];
          perms = [ { path = pkgs.figlet; regex = ".*/share/figlet/.*"; mode = "0600"; uid = 7; gid = 8; } ];
        };
      in dockerTools.streamLayeredImage { name = "copyroot"; tag = "t"; layers = [ layer ];
        config.Cmd = [ "/bin/hello" ]; }""",
                tmp_path,
            )
        )
    )
    first = {m.name: m for m in archive.layer_members()[0]}
    assert first["bin/hello"].isreg() and first["bin/figlet"].isreg()
    assert [m.name for m in archive.layer_members()[0]].count("bin") == 1
    flf = first["share/figlet/standard.flf"]
    assert (flf.mode, flf.uid, flf.gid) == (0o600, 7, 8)
    # relocated, not kept in the store; busybox (referenced) is
    assert store_names(first.values()) == ["busybox-static"]
    podman_load(archive.raw)
    assert podman_run("copyroot:t") == "Hello, world!\n"


def _build_log(expr, tmp_path):
    f = tmp_path / "app.nix"
    f.write_text(PREAMBLE + expr)
    r = subprocess.run(["nix-build", str(f), "--no-out-link"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stderr


def test_unchanged_layers_not_rebuilt_when_app_changes(tmp_path):
    template = """let
        deps = dockerTools.buildLayer { deps = [ pkgs.busybox fixtures.chainC ]; maxLayers = 2; };
        app = pkgs.runCommand "app" { } "echo VERSION ${pkgs.busybox} > $out";
      in dockerTools.streamLayeredImage { name = "app"; tag = "t"; layers = [ deps ]; contents = [ app ]; }"""
    token = uuid.uuid4().hex  # a new app on every run, so something is built
    v1, v2 = template.replace("VERSION", "v1-" + token), template.replace("VERSION", "v2-" + token)
    _build_log(v1, tmp_path)
    second = _build_log(v2, tmp_path)
    assert "app-conf.drv" in second
    # the explicit layer was built by the first build (or an earlier run), never by the second
    assert not re.search(r"/[a-z0-9]{32}-layer\.drv", second)
    one = read_archive(run_stream(nix_build(v1, tmp_path)))
    two = read_archive(run_stream(nix_build(v2, tmp_path)))
    ids1, ids2 = one.config["rootfs"]["diff_ids"], two.config["rootfs"]["diff_ids"]
    assert ids1[:2] == ids2[:2] and ids1[2:] != ids2[2:]


def test_copy_to_root_bare_file_lands_at_root(tmp_path):
    # A store path that is a single file: at /<name>, not silently dropped.
    archive = read_archive(
        run_stream(
            nix_build(
                """dockerTools.streamLayeredImage {
        name = "copyroot-file"; tag = "t";
        layers = [ (dockerTools.buildLayer { copyToRoot = [ fixtures.bareFile ]; }) ]; }""",
                tmp_path,
            )
        )
    )
    first = {m.name: m for m in archive.layer_members()[0]}
    assert first["bare-file.txt"].isreg() and first["bare-file.txt"].size == len("just a file\n")


def test_copy_to_root_with_its_own_nix_directory(tmp_path):
    archive = read_archive(
        run_stream(
            nix_build(
                """let
        withNix = pkgs.runCommand "with-nix-dir" { }
          "mkdir -p $out/nix/var/app; echo ${pkgs.busybox} > $out/nix/var/app/ref";
        layer = dockerTools.buildLayer { copyToRoot = [ withNix ]; };
      in dockerTools.streamLayeredImage { name = "nixdir"; tag = "t"; layers = [ layer ]; }""",
                tmp_path,
            )
        )
    )
    names = [m.name for m in archive.layer_members()[0]]
    assert len(names) == len(set(names))
    assert "nix/var/app/ref" in names and any(n.endswith("-busybox-static") for n in names)
