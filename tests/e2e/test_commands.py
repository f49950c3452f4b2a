"""The commands users run, as Nix writes them: the stream executable,
copy-to-registry and prefetch-image (nix-prefetch-docker's options and
output): their --help, progress on stderr, --quiet."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from nixhelpers import PREAMBLE, REPO, nix_build
from registry_fixture import open_registry  # noqa: F401 (fixture)
from test_oci_push import push, unique


@pytest.fixture(scope="module")
def app(session_tmp):
    return nix_build(
        'dockerTools.streamLayeredImage { name = "cmd-app"; tag = "t"; contents = [ fixtures.chainA ]; }', session_tmp
    )


@pytest.fixture(scope="module")
def prefetch_image(session_tmp):
    return nix_build("dockerTools.prefetchImage", session_tmp) + "/bin/prefetch-image"


def helped(*cmd) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return r.stdout


def test_stream_executable_help(app):
    text = helped(app, "--help")
    assert text.startswith("usage: stream-cmd-app [-h]")
    assert "builder stream" not in text and "DESCRIPTION" not in text
    assert "stream-cmd-app | podman load" in text and "--push registry.example.com/team/app:1.0" in text
    assert "credentials" in text and "REGISTRY_USERNAME" in text


def test_copy_to_registry_help(app, session_tmp):
    script = nix_build(
        'let i = dockerTools.streamLayeredImage { name = "cmd-app"; tag = "t"; contents = [ fixtures.chainA ]; };'
        " in i.copyToRegistry",
        session_tmp,
    )
    text = helped(f"{script}/bin/copy-to-registry", "--help")
    assert text.startswith("usage: copy-to-registry [-h]") and "builder push" not in text
    assert "copy-to-registry registry.example.com/team/app:1.0" in text and "podman login" in text


def test_copy_to_help(session_tmp):
    image = (
        'let i = dockerTools.streamLayeredImage { name = "cmd-app"; tag = "t"; contents = [ fixtures.chainA ]; }; in'
    )
    copy_to = nix_build(f"{image} i.copyTo", session_tmp)
    text = helped(f"{copy_to}/bin/copy-to", "--help")
    assert text.startswith("usage: copy-to [-h]") and "builder copy" not in text and "source" not in text
    assert "copy-to oci-archive:app.tar:1.0" in text and "docker-daemon:" in text and "podman login" in text
    to_podman = nix_build(f"{image} i.copyToPodman", session_tmp)
    assert helped(f"{to_podman}/bin/copy-to-podman", "--help").startswith("usage: copy-to-podman [-h]")


def test_prefetch_image_like_nix_prefetch_docker(open_registry, app, prefetch_image):  # noqa: F811
    name = open_registry.ref(unique("prefetched"))
    push(app, f"{name}:v1")
    # IMAGE_NAME IMAGE_TAG, as nix-prefetch-docker takes them: Nix on stdout.
    r = subprocess.run([prefetch_image, name, "v1", "--insecure"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("{\n  imageName = ") and 'finalImageTag = "v1";' in r.stdout
    assert 'hash = "sha256-' in r.stdout and 'imageDigest = "sha256:' in r.stdout
    # The same through --image-name/--image-tag, as JSON, and quietly: nothing on stderr.
    q = subprocess.run(
        [prefetch_image, "--image-name", name, "--image-tag", "v1", "--insecure", "--json", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert q.returncode == 0 and q.stderr == "", q.stderr
    args = json.loads(q.stdout)
    assert f'hash = "{args["hash"]}";' in r.stdout
    # The builder's own subcommand agrees; --image-digest pins the same bytes.
    same = subprocess.run(
        [sys.executable, "-m", "builder", "prefetch", f"{name}:v1", "--insecure", "--json", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert json.loads(same.stdout) == args
    pinned = subprocess.run(
        [prefetch_image, name, args["imageDigest"], "--final-image-tag", "v1", "--insecure", "--json", "-q"],
        capture_output=True,
        text=True,
    )
    assert json.loads(pinned.stdout)["hash"] == args["hash"]


def test_prefetch_image_mistakes_are_one_line(prefetch_image):
    r = subprocess.run([prefetch_image, "a/b:1", "2"], capture_output=True, text=True)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.splitlines() == ["error: the tag (or digest) is given twice"]


@pytest.fixture(scope="module")
def big(session_tmp):
    return nix_build(
        'dockerTools.streamLayeredImage { name = "cmd-big"; tag = "t"; contents = [ fixtures.bigRandom ]; }',
        session_tmp,
    )


def test_progress_while_streaming_and_compressing(big, tmp_path):
    """Seconds of work (120 MB compressed twice: no gzip digests were
    recorded) show progress on stderr: a line per layer, bytes done of the
    total; stdout or the output file gets only the image."""
    out = tmp_path / "img.tar"
    r = subprocess.run([big, "--compress", "gzip", "--output", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert any(line.startswith("layer ") and "/" in line for line in lines), r.stderr
    amounts = [line for line in lines if line.startswith("writing cmd-big:t: ") and "%)" in line]
    assert amounts and all(" / " in line for line in amounts)
    assert lines[-1].startswith("writing cmd-big:t: ") and " in " in lines[-1]
    assert "\r" not in r.stderr  # not a terminal: lines, no bar
    quiet = subprocess.run(
        [big, "--compress", "gzip", "--output", str(tmp_path / "q.tar"), "--quiet"], capture_output=True, text=True
    )
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert (tmp_path / "q.tar").read_bytes() == out.read_bytes()


def test_progress_while_a_big_layer_uploads(open_registry, big):  # noqa: F811
    """gzip made before it goes up (no digests from the build: compressed
    into a temporary file, then sent): seconds for one layer, shown as bytes
    done of its size before its "uploaded" line."""
    ref = open_registry.ref(unique("cmd-big") + ":t")
    r = push(big, ref, "--compress", "gzip")
    lines = r.stderr.splitlines()
    sending = [
        line for line in lines if line.startswith(("layer 1/2 compressing: ", "layer 1/2 uploading: ")) and "%)" in line
    ]
    assert sending, r.stderr
    done = next(i for i, line in enumerate(lines) if line.startswith("layer 1/2 ") and line.endswith("uploaded"))
    assert lines.index(sending[0]) < done
    quiet = push(big, open_registry.ref(unique("cmd-big") + ":q"), "--compress", "gzip", "--quiet")
    assert quiet.stderr == ""
    assert quiet.stdout.strip() == r.stdout.strip()  # the digest, alone on stdout


def test_build_layered_image_shows_progress_in_the_build_log(session_tmp):
    """buildLayeredImage compresses the whole archive with gzip in the
    build: its log shows the layers and bytes as they go."""
    f = session_tmp / "big-archive.nix"
    # A fresh build each run (a cached one shows no log).
    f.write_text(
        PREAMBLE + 'dockerTools.buildLayeredImage { name = "cmd-big-archive"; contents = [ fixtures.bigRandom ]; '
        f'extraCommands = "echo {uuid.uuid4().hex} > run"; }}'
    )
    r = subprocess.run(["nix-build", str(f), "--no-out-link"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "layer 1/2: 120.0 MB" in r.stderr and "writing cmd-big-archive:" in r.stderr, r.stderr[-3000:]
