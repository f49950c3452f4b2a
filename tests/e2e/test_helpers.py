"""Helpers for contents (issue: fakeNss, binSh, usrBinEnv, caCertificates,
shadowSetup) and Nix inside images (includeNixDB), checked in running
containers and with this machine's Nix."""

import io
import os
import subprocess
import tarfile

import pytest
from nixhelpers import nix_build, podman_load, podman_run, read_archive, run_stream


def image(expr, tmp_path):
    archive = read_archive(run_stream(nix_build(expr, tmp_path)))
    podman_load(archive.raw)
    return archive


def test_fake_nss_whoami_is_root(tmp_path):
    image(
        """dockerTools.streamLayeredImage { name = "nss"; tag = "t";
      contents = [ dockerTools.fakeNss pkgs.busybox ]; }""",
        tmp_path,
    )
    assert podman_run("nss:t", "/bin/whoami") == "root\n"
    assert podman_run("nss:t", "/bin/whoami", user="65534") == "nobody\n"


def test_fake_nss_override(tmp_path):
    image(
        """dockerTools.streamLayeredImage { name = "nss2"; tag = "t";
      contents = [ (dockerTools.fakeNss.override { extraPasswdLines = [ "app:x:1000:1000::/var/empty:/bin/sh" ]; })
                   pkgs.busybox ]; }""",
        tmp_path,
    )
    assert podman_run("nss2:t", "/bin/whoami", user="1000") == "app\n"


def test_bin_sh_and_usr_bin_env_run(tmp_path):
    image(
        """dockerTools.streamLayeredImage { name = "shenv"; tag = "t";
      contents = [ dockerTools.binSh dockerTools.usrBinEnv ]; }""",
        tmp_path,
    )
    assert podman_run("shenv:t", "/bin/sh", "-c", "echo from-sh") == "from-sh\n"
    assert "HOME=" in podman_run("shenv:t", "/usr/bin/env")


def test_ca_certificates_at_three_paths(tmp_path):
    image(
        """dockerTools.streamLayeredImage { name = "cacert"; tag = "t";
      contents = [ dockerTools.caCertificates pkgs.busybox ]; }""",
        tmp_path,
    )
    script = (
        "for f in /etc/ssl/certs/ca-bundle.crt /etc/ssl/certs/ca-certificates.crt "
        "/etc/pki/tls/certs/ca-bundle.crt; do head -n 1 $f; done"
    )
    out = podman_run("cacert:t", "/bin/sh", "-c", script).splitlines()
    assert out == ["-----BEGIN CERTIFICATE-----"] * 3


def test_shadow_setup_useradd(tmp_path):
    archive = image(
        """dockerTools.streamLayeredImage { name = "shadow"; tag = "t";
      contents = [ pkgs.busybox ]; enableFakechroot = true;
      fakeRootCommands = ''
        ${dockerTools.shadowSetup}
        useradd -u 1234 -m alice
      ''; }""",
        tmp_path,
    )
    tree = archive.file_tree()
    assert tree["home/alice"].uid == 1234
    assert "alice:x:1234" in podman_run("shadow:t", "/bin/cat", "/etc/passwd")


def _unpack(archive, root):
    for data in archive.image_layers():
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            t.extractall(root, numeric_owner=True)


@pytest.fixture(scope="module")
def nixdb_image(session_tmp):
    script = nix_build(
        """dockerTools.streamLayeredImageWithNixDb { name = "nixdb"; tag = "t";
      contents = [ pkgs.hello fixtures.chainC ]; }""",
        session_tmp,
    )
    return script, read_archive(run_stream(script))


def test_nix_db_verifies_with_real_nix(nixdb_image, tmp_path):
    _, archive = nixdb_image
    root = tmp_path / "root"
    _unpack(archive, root)
    r = subprocess.run(
        ["nix-store", "--store", str(root), "--verify", "--check-contents"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "error" not in r.stderr.lower()
    hello = [n for n in os.listdir(root / "nix/store") if n.endswith("-hello-2.12")][0]
    r = subprocess.run(
        ["nix-store", "--store", str(root), "-qR", f"/nix/store/{hello}"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    names = sorted(p.split("-", 1)[1] for p in r.stdout.split())
    assert names == ["busybox-static", "hello-2.12"]
    roots = os.listdir(root / "nix/var/nix/gcroots/docker")
    assert any(r.endswith("-chain-c") for r in roots)


def test_nix_db_byte_identical_between_builds(nixdb_image):
    script, _ = nixdb_image
    drv = subprocess.run(["nix-store", "-qd", script], capture_output=True, text=True).stdout.strip()
    custom = [
        d
        for d in subprocess.run(["nix-store", "-qR", drv], capture_output=True, text=True).stdout.split()
        if d.endswith("nixdb-customisation-layer.drv")
    ]
    assert custom
    r = subprocess.run(["nix-store", "--realise", "--check", *custom], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_nix_owner_for_non_root_nix(tmp_path):
    archive = read_archive(
        run_stream(
            nix_build(
                """dockerTools.streamLayeredImage {
      name = "nixuser"; tag = "t"; contents = [ pkgs.hello ]; includeNixDB = true;
      nixUid = 1000; nixGid = 100; }""",
                tmp_path,
            )
        )
    )
    tree = archive.file_tree()
    for path in ("nix", "nix/store", "nix/var/nix/db", "nix/var/nix/db/db.sqlite"):
        assert (tree[path].uid, tree[path].gid) == (1000, 100), path


def test_build_image_with_nix_db_verifies(tmp_path):
    out = nix_build(
        """dockerTools.buildImageWithNixDb { name = "bi-nixdb"; tag = "t";
      copyToRoot = [ pkgs.hello ]; }""",
        tmp_path,
    )
    archive = read_archive(open(out, "rb").read())
    root = tmp_path / "root"
    _unpack(archive, root)
    r = subprocess.run(
        ["nix-store", "--store", str(root), "--verify", "--check-contents"], capture_output=True, text=True
    )
    assert r.returncode == 0 and "error" not in r.stderr.lower(), r.stderr
    hello = [n for n in os.listdir(root / "nix/store") if n.endswith("-hello-2.12")][0]
    r = subprocess.run(
        ["nix-store", "--store", str(root), "-qR", f"/nix/store/{hello}"], capture_output=True, text=True
    )
    assert sorted(p.split("-", 1)[1] for p in r.stdout.split()) == ["busybox-static", "hello-2.12"]
