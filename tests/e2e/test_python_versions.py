"""Same inputs, same bytes, with every Python the builder supports.

The machine has several CPython versions under pyenv (see the machine notes);
each one streams the same description, plain and with gzip layers, and must
write exactly the bytes the build's Python (Debian's 3.11) described.
"""

import glob
import os
import subprocess

import pytest
from nixhelpers import REPO, nix_build, read_archive, run_stream

SUPPORTED = ("3.9", "3.10", "3.11", "3.12", "3.13")


def pythons():
    found = {}
    for exe in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python3"))):
        version = exe.split("/versions/")[1].split("/")[0]
        minor = ".".join(version.split(".")[:2])
        if minor in SUPPORTED:
            found[minor] = exe
    return found


@pytest.fixture(scope="module")
def described(session_tmp):
    script = nix_build(
        """dockerTools.streamLayeredImage { name = "pyversions"; tag = "t";
      contents = [ pkgs.hello fixtures.withSymlinks fixtures.withHardlinks fixtures.bareFile ];
      layerCompression = "gzip"; }""",
        session_tmp,
    )
    return script, run_stream(script, "--compress", "none"), run_stream(script, "--compress", "gzip")


def test_at_least_three_pythons_here():
    assert len(pythons()) >= 3, pythons()


@pytest.mark.parametrize("minor", sorted(pythons()))
def test_stream_bytes_identical(minor, described):
    script, plain, gzipped = described
    description = open(script).read().split("'stream', '")[1].split("'")[0]
    exe = pythons()[minor]
    for flags, expected in ((["--compress", "none"], plain), (["--compress", "gzip"], gzipped)):
        r = subprocess.run(
            [exe, "-I", "-B", os.path.join(REPO, "builder"), "stream", description, *flags], capture_output=True
        )
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == expected, f"Python {minor} wrote other bytes with {flags}"
    read_archive(plain)
    read_archive(gzipped)
