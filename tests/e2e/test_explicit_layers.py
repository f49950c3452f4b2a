"""buildLayer and the layers argument (nix2container style explicit layers)."""

import json
import re
import subprocess
import uuid

import pytest
from nixhelpers import PREAMBLE, NixError, nix_build, podman_load, podman_run, read_archive, run_stream


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


def test_perms_regex_is_searched_like_nix2container(tmp_path):
    """nix2container's perms: the regex matches anywhere in the source path
    (Go's MatchString), mode is a string ("0644" or "644"), later entries win."""
    expr = """let
      layer = dockerTools.buildLayer {
        deps = [ pkgs.figlet ];
        perms = [
          { path = pkgs.figlet; regex = "figlet$"; mode = "700"; }
          { path = pkgs.figlet; regex = "standard"; mode = "0640"; uid = 5; uname = "five"; }
        ];
      };
    in dockerTools.streamLayeredImage { name = "perms"; tag = "t"; layers = [ layer ]; }"""
    archive = read_archive(run_stream(nix_build(expr, tmp_path)))
    first = {m.name.split("-figlet-2.2.5", 1)[-1]: m for m in archive.layer_members()[0] if "figlet" in m.name}
    # "figlet$": share/figlet and bin/figlet, found at the end of the path;
    # not the store path itself (it ends in -figlet-2.2.5) nor the .flf
    assert first["/bin/figlet"].mode == 0o700 and first["/share/figlet"].mode == 0o700
    assert first[""].mode == 0o555
    flf = first["/share/figlet/standard.flf"]
    assert (flf.mode, flf.uid, flf.uname) == (0o640, 5, "five")
    assert first["/bin"].mode == 0o555  # untouched


def test_build_layer_metadata_goes_into_the_history(tmp_path):
    expr = """let
      layer = dockerTools.buildLayer { deps = [ pkgs.figlet ];
        metadata = { created_by = "nix2container"; comment = "figlet alone"; author = "me"; }; };
      plain = dockerTools.buildLayer { deps = [ pkgs.hello ]; layers = [ layer ]; };
    in dockerTools.streamLayeredImage { name = "meta"; tag = "t"; layers = [ layer plain ]; }"""
    archive = read_archive(run_stream(nix_build(expr, tmp_path)))
    history = archive.config["history"]
    assert {k: history[0][k] for k in ("created_by", "comment", "author")} == {
        "created_by": "nix2container",
        "comment": "figlet alone",
        "author": "me",
    }
    assert history[1]["comment"].startswith("store paths: /nix/store/") and "created_by" not in history[1]


def test_build_layer_not_reproducible_keeps_its_tar(tmp_path):
    """reproducible = false: the tar is kept in the layer's output and the
    stream copies those bytes; its paths are still not repeated above."""
    expr = """let
      layer = dockerTools.buildLayer { deps = [ pkgs.figlet ]; reproducible = false; };
    in { inherit layer; image = dockerTools.streamLayeredImage { name = "unrepro"; tag = "t";
      layers = [ layer ]; contents = [ pkgs.figlet ]; config.Cmd = [ "/bin/figlet" "x" ]; }; }"""
    layer = nix_build(expr, tmp_path, attr="layer")
    doc = json.load(open(f"{layer}/layers.json"))
    source = doc["layers"][0]["source"]
    assert source["kind"] == "file" and source["path"] == f"{layer}/layer-0.tar"
    assert any(p.endswith("-figlet-2.2.5") for p in source["paths"])
    archive = read_archive(run_stream(nix_build(expr, tmp_path, attr="image")))  # digests checked
    layers = archive.image_layers()
    assert layers[0] == open(f"{layer}/layer-0.tar", "rb").read()
    assert store_names(archive.layer_members()[1]) == []  # figlet not repeated


@pytest.mark.parametrize(
    "args, message",
    [
        (
            "perms = [ { path = pkgs.figlet; mode = 644; } ]",
            'perms element 0: mode must be a string like "0644", got the number 644',
        ),
        ('perms = [ { path = pkgs.figlet; mode = "rw-r--r--"; } ]', 'mode "rw-r--r--" is not an octal mode'),
        ('perms = [ { path = pkgs.figlet; mask = "0644"; } ]', "perms element 0: unknown attribute mask"),
        (
            'perms = [ { regex = ".*"; } ]',
            "perms element 0: path (the store path whose files it applies to) is missing",
        ),
        (
            'perms = [ { path = pkgs.figlet; uid = "0"; } ]',
            'perms element 0: uid must be an integer, got the string "0"',
        ),
        ("perms = { path = pkgs.figlet; }", "perms must be a list"),
        ("metadata = { created_by = 1; }", "metadata.created_by must be a string, got the number 1"),
        ('metadata = { createdBy = "x"; }', "metadata.createdBy is unknown"),
        ('reproducible = "no";', "reproducible must be true or false"),
    ],
)
def test_build_layer_arguments_refused_at_evaluation(args, message, tmp_path):
    if not args.endswith(";"):
        args += ";"
    with pytest.raises(NixError) as e:
        nix_build(f"dockerTools.buildLayer {{ deps = [ pkgs.figlet ]; {args} }}", tmp_path)
    lines = [line for line in e.value.stderr.splitlines() if line.strip().startswith("error:")]
    assert message in e.value.stderr, e.value.stderr
    assert len(lines) == 1 and "Traceback" not in e.value.stderr
