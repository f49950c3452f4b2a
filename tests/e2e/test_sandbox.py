"""Builds run in Nix's sandbox (conftest.py turns it on for every Nix
command of the tests): they see the store and their build directory, and
the stand-in nixpkgs and the builder need nothing else."""

import os
import subprocess

import pytest
from nixhelpers import REPO, nix_build, podman_load, podman_run, read_archive, run_stream

sandboxed = pytest.mark.skipif(
    os.environ.get("DOCKERTOOLS_TEST_SANDBOX", "true") != "true", reason="DOCKERTOOLS_TEST_SANDBOX=false"
)


@sandboxed
def test_builds_see_only_the_store(tmp_path):
    out = nix_build(
        """pkgs.runCommand "what-a-build-sees" { } ''
      for p in /usr /bin/sh /lib /etc/passwd /build; do
        if [ -e $p ]; then echo "$p present"; else echo "$p absent"; fi
      done > $out
    ''""",
        tmp_path,
    )
    seen = open(out).read().splitlines()
    assert seen == ["/usr absent", "/bin/sh absent", "/lib absent", "/etc/passwd present", "/build present"]


def test_fakechroot_commands_make_root_directories(tmp_path):
    # As users write them (and nixpkgs' examples): with the image root as /,
    # /bin and /usr/bin are the image's to make, whatever the build machine has.
    script = nix_build(
        """dockerTools.streamLayeredImage { name = "fakechroot-dirs"; tag = "t";
      contents = [ pkgs.busybox ]; enableFakechroot = true;
      fakeRootCommands = ''
        mkdir -m 0755 -p /usr/bin /opt
        ln -sfn ${pkgs.busybox}/bin/env /usr/bin/env
        ln -s ${pkgs.busybox}/bin/busybox /opt/bb
        mkdir -p /var/lib/app
        chown 1000:1000 /var/lib/app
        [ ! -e /usr/lib ] && [ ! -e /lib64 ]
      '';
      config.Cmd = [ "/usr/bin/env" ]; }""",
        tmp_path,
    )
    archive = read_archive(run_stream(script))
    tree = archive.file_tree()
    assert tree["usr/bin/env"].issym() and tree["usr/bin/env"].linkname.endswith("-busybox-static/bin/env")
    assert tree["opt/bb"].issym()
    assert (tree["var/lib/app"].uid, tree["var/lib/app"].gid) == (1000, 1000)
    podman_load(archive.raw)
    assert "PATH=" in podman_run("fakechroot-dirs:t")


STAND_IN = ["python3", "bash", "coreutils", "fakeroot", "proot", "zstd", "shadow", "busybox", "cacert"]


def test_stand_in_rebuilds_to_the_same_bytes():
    # Its programs are copies of the host's: built again, the same bytes
    # (the Python bytecode included).
    hostpkgs = os.path.join(REPO, "tests", "hostpkgs.nix")
    attrs = [a for name in STAND_IN for a in ("-A", name)]
    r = subprocess.run(["nix-build", hostpkgs, "--no-out-link", *attrs], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # One package per --check: a check holds its outputs' locks until it
    # ends, so two test runs checking several at once can wait on each other.
    for name in STAND_IN:
        r = subprocess.run(
            ["nix-build", "--check", hostpkgs, "--no-out-link", "-A", name], capture_output=True, text=True
        )
        assert r.returncode == 0, f"{name}: {r.stderr}"
