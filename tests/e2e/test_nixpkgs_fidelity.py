"""What nixpkgs' own manual, examples and tests do, done the same way here:
copyToRoot merging, keepContentsDirlinks, output names, overrideAttrs,
layeringPipeline, files named like whiteouts, cross images."""

import tarfile

import pytest
from nixhelpers import REPO, NixError, nix_build, nix_eval, podman_load, podman_run, read_archive, run_stream


def last_layer(path):
    archive = read_archive(open(path, "rb").read())
    return archive, {m.name.rstrip("/"): m for m in archive.layer_members()[-1]}


def test_copy_to_root_trees_sharing_a_directory(tmp_path):
    # The nixpkgs manual's own example: hello and binSh both have bin/.
    out = nix_build(
        """dockerTools.buildImage {
      name = "fid-binsh"; tag = "t";
      copyToRoot = [ pkgs.hello dockerTools.binSh ];
      config.Cmd = [ "/bin/hello" ];
    }""",
        tmp_path,
    )
    archive, members = last_layer(out)
    assert members["bin/hello"].isfile()
    assert members["bin/sh"].issym() and members["bin/sh"].linkname.endswith("/bin/bash")
    # The store's directory mode, as rsync -a keeps it.
    assert members["bin"].mode == 0o555
    podman_load(archive.raw)
    assert podman_run("fid-binsh:t").strip() == "Hello, world!"


def test_run_as_root_over_a_base_linking_the_same_store_files(tmp_path):
    # The base's /bin/busybox is a link to the very file copyToRoot copies.
    out = nix_build(
        """let base = dockerTools.streamLayeredImage { name = "fid-linked-base"; tag = "b"; contents = [ pkgs.busybox ]; };
    in dockerTools.buildImage {
      name = "fid-over-links"; tag = "t"; fromImage = base;
      copyToRoot = [ pkgs.busybox ];
      runAsRoot = "mkdir -p /made";
      config.Cmd = [ "/bin/busybox" "ls" "/made" ];
    }""",
        tmp_path,
    )
    archive, members = last_layer(out)
    assert members["bin/busybox"].isfile()
    assert members["made"].isdir()
    podman_load(archive.raw)
    assert podman_run("fid-over-links:t") == ""


@pytest.mark.parametrize("keep", [False, True])
def test_keep_contents_dirlinks(tmp_path, keep):
    out = nix_build(
        f"""dockerTools.buildImage {{
      name = "fid-dirlinks"; tag = "t"; copyToRoot = [ fixtures.dirLinks ];
      keepContentsDirlinks = {"true" if keep else "false"};
    }}""",
        tmp_path,
    )
    _, members = last_layer(out)
    if keep:
        # rsync -K: links to directories stay links.
        assert members["linked"].issym() and members["linked"].linkname == "real"
        assert members["hellobin"].issym() and members["hellobin"].linkname.endswith("-hello-2.12/bin")
        assert "linked/f" not in members
    else:
        # rsync -k: they become the directories they point to.
        assert members["linked"].isdir() and members["linked/f"].isfile()
        assert members["hellobin"].isdir() and members["hellobin/hello"].isfile()


def test_output_names_are_nixpkgs(tmp_path):
    names = nix_eval(
        """let img = dockerTools.buildImage { name = "reg.example/team/app"; tag = "t"; };
           layered = dockerTools.buildLayeredImage { name = "app"; tag = "t"; };
        in [ img.name layered.name (dockerTools.exportImage { fromImage = img; }).name
             (dockerTools.exportImage { fromImage = img; name = "flat.tar"; }).name ]""",
        tmp_path,
    )
    assert names == ["docker-image-app.tar.gz", "app.tar.gz", "docker-image-app.tar.gz", "flat.tar"]


def test_export_image_names_entries_as_tar_does(tmp_path):
    out = nix_build(
        """dockerTools.exportImage { fromImage = dockerTools.buildImage {
             name = "fid-export"; tag = "t"; copyToRoot = [ pkgs.hello ]; }; }""",
        tmp_path,
    )
    with tarfile.open(out) as t:
        members = t.getmembers()
    assert members[0].name in ("./", ".") and members[0].isdir() and members[0].mode == 0o755
    assert all(m.name.startswith("./") or m.name == "." for m in members)
    names = {m.name.rstrip("/") for m in members}
    assert "./bin/hello" in names and "./nix/store" in names


def test_override_attrs_and_override_derivation(tmp_path):
    got = nix_eval(
        """let img = dockerTools.buildImage { name = "fid-oa"; tag = "t"; passthru.extra = 1; meta.note = "m"; };
           a = img.overrideAttrs (old: { name = "renamed-" + old.name; });
           b = img.overrideAttrs (final: prev: { name = "fp-" + prev.name; });
           c = img.overrideAttrs { name = "set.tar.gz"; };
           # As nixpkgs users write it: old.meta is there.
           m = img.overrideAttrs (old: { meta = old.meta // { mainProgram = "x"; }; });
           d = img.overrideDerivation (old: { name = "od-" + old.name; });
           stream = dockerTools.streamLayeredImage { name = "fid-oa"; tag = "t"; };
           s = stream.overrideAttrs (old: { name = old.name + "-2"; });
        in {
          names = [ a.name b.name c.name d.name s.name ];
          kept = [ a.extra a.passthru.extra a.meta.note a.imageTag a.imageName d.extra s.isExe ];
          differs = a.drvPath != img.drvPath && d.drvPath != img.drvPath;
          chained = (a.overrideAttrs (old: { name = old.name + "-again"; })).name;
          meta = [ m.meta.note m.meta.mainProgram (m.drvPath == img.drvPath) ];
          # exportImage and mergeImages carry passthru and meta; streamNixShellImage has .override.
          others = [ ((dockerTools.exportImage { fromImage = img; }) ? passthru)
                     ((dockerTools.exportImage { fromImage = img; }) ? meta)
                     ((dockerTools.mergeImages [ img ]) ? passthru)
                     ((dockerTools.mergeImages [ img ]) ? meta)
                     ((dockerTools.streamNixShellImage { drv = fixtures.chainA; }) ? override) ];
        }""",
        tmp_path,
    )
    assert got["names"] == [
        "renamed-docker-image-fid-oa.tar.gz",
        "fp-docker-image-fid-oa.tar.gz",
        "set.tar.gz",
        "od-docker-image-fid-oa.tar.gz",
        "stream-fid-oa-2",
    ]
    assert got["kept"] == [1, 1, "m", "t", "fid-oa", 1, True]
    assert got["differs"] is True
    assert got["chained"] == "renamed-docker-image-fid-oa.tar.gz-again"
    assert got["meta"] == ["m", "x", True]
    assert got["others"] == [True] * 5


def test_override_attrs_result_builds(tmp_path):
    out = nix_build(
        """(dockerTools.buildImage { name = "fid-oab"; tag = "t"; copyToRoot = [ pkgs.hello ]; })
           .overrideAttrs (old: { name = "fid-oab-renamed.tar.gz"; })""",
        tmp_path,
    )
    assert out.endswith("-fid-oab-renamed.tar.gz")
    archive = read_archive(open(out, "rb").read())
    assert archive.manifest[0]["RepoTags"] == ["fid-oab:t"]


def store_names(members):
    """The store path names a layer holds: chain-a for /nix/store/HASH-chain-a."""
    parts = [m.name.split("/") for m in members if m.name.startswith("nix/store/")]
    return sorted({p[2].split("-", 1)[1] for p in parts if len(p) > 2 and p[2]})


def test_layering_pipeline(tmp_path):
    # The chain in one layer of its own; the rest by popularity in at most two.
    script = nix_build(
        """dockerTools.streamLayeredImage {
      name = "fid-pipeline"; tag = "t";
      contents = [ pkgs.hello pkgs.figlet fixtures.chainC ];
      config.Cmd = [ "/bin/hello" ];
      layeringPipeline = [
        [ "subcomponent_out" [ fixtures.chainC ] ]
        [ "over" "rest" [ "pipe" [ [ "popularity_contest" ] [ "limit_layers" 2 ] ] ] ]
      ];
    }""",
        tmp_path,
    )
    archive = read_archive(run_stream(script))
    layers = [store_names(m) for m in archive.layer_members()]
    assert layers == [
        ["chain-a", "chain-b", "chain-c"],
        ["busybox-static"],
        ["figlet-2.2.5", "hello-2.12"],
        [],  # the customisation layer
    ]
    podman_load(archive.raw)
    assert podman_run("fid-pipeline:t").strip() == "Hello, world!"


def test_layering_pipeline_from_a_file_and_its_mistakes(tmp_path):
    out = nix_build(
        """dockerTools.buildLayeredImage {
      name = "fid-pipeline-file"; tag = "t"; contents = [ pkgs.hello pkgs.figlet ];
      layeringPipeline = builtins.toFile "pipeline.json"
        (builtins.toJSON [ [ "popularity_contest" ] [ "reverse" ] [ "limit_layers" 2 ] ]);
    }""",
        tmp_path,
    )
    layers = [store_names(m) for m in read_archive(open(out, "rb").read()).layer_members()]
    # Least popular first now: hello or figlet (they tie: the store path decides),
    # then the other one merged with busybox, the most popular; then customisation.
    assert len(layers) == 3 and layers[2] == [] and layers[0] in (["figlet-2.2.5"], ["hello-2.12"])
    assert sorted(layers[0] + layers[1]) == ["busybox-static", "figlet-2.2.5", "hello-2.12"]
    with pytest.raises(NixError) as err:
        nix_build(
            """dockerTools.streamLayeredImage { name = "fid-bad"; contents = [ pkgs.hello ];
              layeringPipeline = [ [ "popularity_contest" ] [ "frobnicate" ] ]; }""",
            tmp_path,
        )
    assert 'error: layeringPipeline: step 2: unknown step "frobnicate"' in err.value.stderr
    assert "Traceback" not in err.value.stderr


@pytest.mark.parametrize(
    "expr, where",
    [
        # A store path in a store layer (the config names it: not linked at /).
        (
            'dockerTools.streamLayeredImage { name = "wh"; config.Cmd = [ "${fixtures.whiteoutNamed}/etc/passwd" ]; }',
            "-has-wh/etc/.wh.passwd",
        ),
        # Contents are linked at /: the link would be a whiteout too.
        ('dockerTools.streamLayeredImage { name = "wh"; contents = [ fixtures.whiteoutNamed ]; }', "/etc/.wh.passwd"),
        # The customisation layer.
        (
            'dockerTools.streamLayeredImage { name = "wh"; extraCommands = "mkdir etc; touch etc/.wh.passwd"; }',
            "/etc/.wh.passwd",
        ),
        # buildImage's layer, with and without runAsRoot.
        ('dockerTools.buildImage { name = "wh"; copyToRoot = [ fixtures.whiteoutNamed ]; }', "/etc/.wh.passwd"),
        (
            'dockerTools.buildImage { name = "wh"; copyToRoot = [ fixtures.whiteoutNamed ]; runAsRoot = "true"; }',
            "/etc/.wh.passwd",
        ),
    ],
)
def test_files_named_like_whiteouts_are_refused(tmp_path, expr, where):
    with pytest.raises(NixError) as err:
        nix_build(expr, tmp_path)
    lines = [line for line in err.value.stderr.splitlines() if line.startswith("error: /")]
    assert len(lines) == 1 and where + ": a file named .wh.* cannot go in a layer" in lines[0], err.value.stderr
    assert "Traceback" not in err.value.stderr


# pkgsCross.aarch64-multiplatform as seen from here: images for aarch64,
# built on this machine with its tools (buildPackages). Taking any build tool
# from the aarch64 set fails evaluation.
CROSS = f"""let
  cross = pkgs // {{
    system = "aarch64-linux";
    stdenv = {{ hostPlatform.system = "aarch64-linux"; buildPlatform.system = pkgs.system; }};
    buildPackages = pkgs;
  }} // builtins.listToAttrs (map (n: {{ name = n; value = throw "build tool ${{n}} taken from the host platform"; }})
    [ "python3" "bash" "coreutils" "fakeroot" "proot" "zstd" "cacert" "shadow" ]);
  crossTools = import {REPO}/default.nix {{ pkgs = cross; }};
in"""


def test_cross_images_build_here_for_the_host_platform(tmp_path):
    layered = nix_build(
        CROSS
        + """ crossTools.buildLayeredImage { name = "fid-cross"; tag = "t"; contents = [ fixtures.chainA ];
          fakeRootCommands = "mkdir -p etc; chown 1:1 etc"; compressor = "zstd"; }""",
        tmp_path,
    )
    archive = read_archive(open(layered, "rb").read())
    assert (archive.config["architecture"], archive.config.get("variant")) == ("arm64", "v8")
    image = nix_build(
        CROSS
        + """ crossTools.buildImage { name = "fid-cross-bi"; tag = "t"; copyToRoot = [ fixtures.chainA ];
          runAsRoot = "mkdir /made"; }""",
        tmp_path,
    )
    archive = read_archive(open(image, "rb").read())
    assert archive.config["architecture"] == "arm64"
    assert "made" in archive.file_tree()
    systems = nix_eval(
        CROSS
        + """ [ (crossTools.streamLayeredImage { name = "s"; }).system (crossTools.buildImage { name = "b"; }).system
              (crossTools.streamLayeredImage { name = "s"; }).conf.system ]""",
        tmp_path,
    )
    host = nix_eval("pkgs.system", tmp_path)
    assert systems == [host] * 3


def test_enable_fakechroot_sees_the_image_root_not_the_builds(tmp_path):
    # nixpkgs' examples make /bin, /lib, /usr/bin in images that have none:
    # nothing of the build machine may be in the way (or be written to).
    script = nix_build(
        """dockerTools.streamLayeredImage {
      name = "fid-fakechroot"; tag = "t"; contents = [ pkgs.busybox ];
      enableFakechroot = true;
      fakeRootCommands = ''
        mkdir /lib /lib64
        mkdir -m 0755 -p /usr/bin
        ln -s ${pkgs.hello}/bin/hello /usr/bin/hello
        chown 7:7 /usr/bin
      '';
      config.Cmd = [ "/usr/bin/hello" ];
    }""",
        tmp_path,
    )
    archive = read_archive(run_stream(script))
    members = {m.name.rstrip("/"): m for m in archive.layer_members()[-1]}
    assert members["lib"].isdir() and members["lib64"].isdir()
    assert members["usr/bin"].isdir() and members["usr/bin"].uid == 7
    assert members["usr/bin/hello"].issym()
    podman_load(archive.raw)
    assert podman_run("fid-fakechroot:t").strip() == "Hello, world!"
