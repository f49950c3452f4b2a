"""The flake, offline: its nixpkgs input replaced by the stand-in."""

import os
import shutil
import subprocess

from nixhelpers import REPO, read_archive, run_stream

FEATURES = ["--extra-experimental-features", "nix-command flakes"]


def _standin_flake(tmp_path):
    d = tmp_path / "nixpkgs-standin"
    d.mkdir()
    shutil.copy(os.path.join(REPO, "tests", "hostpkgs.nix"), d / "hostpkgs.nix")
    (d / "flake.nix").write_text("""{
      outputs = { self }: {
        legacyPackages.x86_64-linux = import ./hostpkgs.nix { system = "x86_64-linux"; };
        legacyPackages.aarch64-linux = import ./hostpkgs.nix { system = "aarch64-linux"; };
      };
    }""")
    return d


def _flake_copy(tmp_path):
    """The repository's tracked files, as a flake sees them (a git tree)."""
    d = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for f in files:
        if os.path.exists(os.path.join(REPO, f)):
            os.makedirs(d / os.path.dirname(f), exist_ok=True)
            shutil.copy2(os.path.join(REPO, f), d / f)
    subprocess.run(["git", "init", "-q"], cwd=d, check=True)
    subprocess.run(["git", "add", "-A"], cwd=d, check=True)
    return d


def test_nix_build_flake_example(tmp_path):
    standin = _standin_flake(tmp_path)
    repo = _flake_copy(tmp_path)
    link = tmp_path / "result"
    r = subprocess.run(
        [
            "nix",
            *FEATURES,
            "build",
            # The stand-in reads the host's programs when evaluated.
            "--impure",
            f"{repo}#hello",
            "--out-link",
            str(link),
            "--no-write-lock-file",
            "--override-input",
            "nixpkgs",
            f"path:{standin}",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    archive = read_archive(run_stream(os.readlink(link)))
    assert archive.manifest[0]["RepoTags"] == ["hello:latest"]


def test_overlay_replaces_docker_tools(tmp_path):
    standin = _standin_flake(tmp_path)
    repo = _flake_copy(tmp_path)
    # The overlay needs no nixpkgs input: apply it to the stand-in directly.
    expr = (
        f"let flake = (import {repo}/flake.nix).outputs {{ self = null; nixpkgs = null; }}; "
        f"pkgs = (import {standin}/hostpkgs.nix {{}}) // {{ dockerTools = {{ old = true; }}; }}; "
        "final = pkgs // (flake.overlays.default final pkgs); "
        "in builtins.attrNames final.dockerTools"
    )
    r = subprocess.run(["nix", *FEATURES, "eval", "--json", "--impure", "--expr", expr], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = r.stdout
    assert "buildLayeredImage" in names and "streamLayeredImage" in names and "old" in names


def test_overlay_on_a_package_set_without_docker_tools(tmp_path):
    standin = _standin_flake(tmp_path)
    repo = _flake_copy(tmp_path)
    expr = (
        f"let flake = (import {repo}/flake.nix).outputs {{ self = null; nixpkgs = null; }}; "
        f'pkgs = builtins.removeAttrs (import {standin}/hostpkgs.nix {{}}) [ "dockerTools" ]; '
        "final = pkgs // (flake.overlays.default final pkgs); "
        "in builtins.attrNames final.dockerTools"
    )
    r = subprocess.run(["nix", *FEATURES, "eval", "--json", "--impure", "--expr", expr], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = r.stdout
    assert "buildLayeredImage" in names and "pullImage" in names


def test_nix_run_prefetch_image_app(tmp_path):
    standin = _standin_flake(tmp_path)
    repo = _flake_copy(tmp_path)
    r = subprocess.run(
        [
            "nix",
            *FEATURES,
            "run",
            # The stand-in reads the host's programs when evaluated.
            "--impure",
            f"{repo}#prefetch-image",
            "--no-write-lock-file",
            "--override-input",
            "nixpkgs",
            f"path:{standin}",
            "--",
            "--help",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: prefetch-image [-h]") and "--image-digest" in r.stdout
    # Also a package: nix build .#prefetch-image
    link = tmp_path / "result"
    r = subprocess.run(
        [
            "nix",
            *FEATURES,
            "build",
            "--impure",
            f"{repo}#prefetch-image",
            "--out-link",
            str(link),
            "--no-write-lock-file",
            "--override-input",
            "nixpkgs",
            f"path:{standin}",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert os.access(os.path.join(os.readlink(link), "bin", "prefetch-image"), os.X_OK)
