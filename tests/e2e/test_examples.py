"""Every example of examples.nix builds (through the stand-in) and runs."""

import json
import os
import subprocess

import pytest
from nixhelpers import REPO, podman_load, podman_run, read_archive, run_stream

STANDIN = ["--arg", "pkgs", f"import {REPO}/tests/hostpkgs.nix {{}}"]


def build(attr):
    r = subprocess.run(
        ["nix-build", os.path.join(REPO, "examples.nix"), "-A", attr, "--no-out-link", *STANDIN],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def attrs():
    r = subprocess.run(
        [
            "nix-instantiate",
            "--eval",
            "--json",
            "-E",
            f"builtins.attrNames (import {REPO}/examples.nix {{ pkgs = import {REPO}/tests/hostpkgs.nix {{}}; }})",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout)


def test_examples_cover_the_required_kinds():
    assert {"hello", "layered", "onBase", "fakeRoot"} <= set(attrs())


@pytest.mark.parametrize("attr", attrs())
def test_example_builds_and_loads(attr):
    out = build(attr)
    data = open(out, "rb").read() if not os.access(out, os.X_OK) or os.path.isdir(out) else run_stream(out)
    archive = read_archive(data)
    podman_load(archive.raw)
    tag = archive.manifest[0]["RepoTags"][0]
    expected = {"hello": "Hello, world!\n", "layered": "== layered ==\n", "onBase": "== layered ==\n"}
    if attr in expected:
        assert podman_run(tag) == expected[attr]
    if attr == "fakeRoot":
        out = podman_run(tag)
        assert " 1000 " in out.splitlines()[0]


def builder_derivations(attr):
    """The example's derivations that run the builder: the stream or archive
    and every step before it (customisation layer, description, ...)."""
    r = subprocess.run(
        ["nix-instantiate", os.path.join(REPO, "examples.nix"), "-A", attr, *STANDIN],
        capture_output=True,
        text=True,
        check=True,
    )
    drv = r.stdout.strip().splitlines()[-1]
    closure = subprocess.run(["nix-store", "-qR", drv], capture_output=True, text=True, check=True).stdout.split()
    return [d for d in closure if d.endswith(".drv") and "-dockertools-builder" in open(d).read()]


@pytest.mark.parametrize("attr", attrs())
def test_example_rebuilds_to_the_same_bytes(attr):
    # nix-build --check: built again (in the sandbox), every output must be
    # bit for bit the one already in the store; here for each step, not only
    # the last one.
    build(attr)
    drvs = builder_derivations(attr)
    assert len(drvs) >= 3
    r = subprocess.run(["nix-store", "--realise", "--check", *drvs], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        ["nix-build", "--check", os.path.join(REPO, "examples.nix"), "-A", attr, "--no-out-link", *STANDIN],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
