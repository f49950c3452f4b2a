"""What nixpkgs' own manual, examples and tests do, done the same way here:
copyToRoot merging, keepContentsDirlinks, output names, overrideAttrs."""

import pytest
from nixhelpers import nix_build, podman_load, podman_run, read_archive

# A tree with a link to a directory inside it and one to another store path.
DIRLINKS = """builtins.derivation {
  name = "dirlinks"; system = pkgs.system; builder = "/bin/sh";
  args = [ "-ec" "PATH=/usr/bin:/bin; mkdir -p $out/real; echo x > $out/real/f; ln -s real $out/linked; ln -s ${pkgs.hello}/bin $out/hellobin" ];
}"""


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
      name = "fid-dirlinks"; tag = "t"; copyToRoot = [ ({DIRLINKS}) ];
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
