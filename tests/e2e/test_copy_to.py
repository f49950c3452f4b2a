"""copyTo, copyToPodman and copyToDockerDaemon (nix2container's names), end
to end: the passthru executables nix-build makes, run against podman, a
real registry, skopeo, and a scripted Docker Engine API on a unix socket
(tests/support/engineapi.py) whose received archive podman then loads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
from engineapi import running_engine_api
from nixhelpers import (
    LOADED,
    nix_build,
    nix_eval,
    podman,
    podman_load,
    podman_run,
    read_archive,
    read_oci_dir,
    run_stream,
)
from registry_fixture import open_registry  # noqa: F401 (fixture)

HELLO = """dockerTools.streamLayeredImage {
  name = "copy-hello"; tag = "t"; contents = [ pkgs.hello ]; config.Cmd = [ "/bin/hello" ]; }"""
MULTI = """let
  img = architecture: dockerTools.streamLayeredImage {
    name = "copy-multi"; tag = architecture; inherit architecture; contents = [ pkgs.hello ];
    config.Cmd = [ "/bin/hello" ]; };
in dockerTools.streamMultiArchImage { name = "copy-multi"; tag = "both"; images = [ (img "amd64") (img "arm64") ]; }"""


@pytest.fixture(scope="module")
def tools(session_tmp):
    """The image's stream and its three copy executables."""
    found = {"stream": nix_build(HELLO, session_tmp)}
    for attr, program in [
        ("copyTo", "copy-to"),
        ("copyToPodman", "copy-to-podman"),
        ("copyToDockerDaemon", "copy-to-docker-daemon"),
    ]:
        found[attr] = os.path.join(nix_build(HELLO, session_tmp, attr=attr), "bin", program)
    return found


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def run(*cmd, env=None, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    return r


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], r.stderr
    return errors[0]


def forget(*names: str) -> None:
    LOADED.update(names)


def test_passthru_executables_have_main_programs(tmp_path):
    got = nix_eval(
        f"""let i = {HELLO}; l = dockerTools.buildLayeredImage {{ name = "copy-l"; contents = [ pkgs.hello ]; }};
        in [ i.copyTo.meta.mainProgram i.copyToPodman.meta.mainProgram
          i.copyToDockerDaemon.meta.mainProgram l.copyTo.meta.mainProgram ]""",
        tmp_path,
    )
    assert got == ["copy-to", "copy-to-podman", "copy-to-docker-daemon", "copy-to"]


def test_copy_to_podman(tools):
    r = run(tools["copyToPodman"])
    forget("localhost/copy-hello:t")
    assert "copy-hello:t" in r.stdout
    assert podman_run("copy-hello:t") == "Hello, world!\n"
    name = unique("renamed") + ":x"
    run(tools["copyToPodman"], name)
    forget(f"localhost/{name}")
    assert podman_run(name) == "Hello, world!\n"
    # copyTo with skopeo's spelling of podman's storage does the same.
    name = unique("via-copy-to") + ":y"
    run(tools["copyTo"], f"containers-storage:{name}")
    forget(f"localhost/{name}")
    assert podman_run(name) == "Hello, world!\n"


def test_copy_to_archives_and_layouts(tools, tmp_path):
    # docker-archive:FILE:NAME:TAG
    name = unique("dockerarchive") + ":d"
    path = tmp_path / "image.tar"
    run(tools["copyTo"], f"docker-archive:{path}:{name}")
    archive = read_archive(path.read_bytes())
    assert archive.manifest[0]["RepoTags"] == [name]
    podman_load(path.read_bytes())
    assert podman_run(name) == "Hello, world!\n"

    # oci-archive:FILE:TAG: skopeo reads the tag, podman loads it.
    path = tmp_path / "image-oci.tar"
    run(tools["copyTo"], f"oci-archive:{path}:v1")
    inspected = json.loads(run("skopeo", "inspect", f"oci-archive:{path}:v1").stdout)
    assert inspected["Labels"] is None and inspected["Layers"]
    assert run("skopeo", "inspect", f"oci-archive:{path}:v2", check=False).returncode != 0

    # oci:DIR:TAG, twice: both tags kept, as skopeo copy keeps them.
    layout = tmp_path / "layout"
    run(tools["copyTo"], f"oci:{layout}:first")
    run(tools["copyTo"], f"oci:{layout}:second", "--compress", "gzip")
    for tag in ("first", "second"):
        assert json.loads(run("skopeo", "inspect", f"oci:{layout}:{tag}").stdout)["Digest"].startswith("sha256:")
    assert len(read_oci_dir(str(layout)).index["manifests"]) == 2
    pulled = unique("from-oci-dir") + ":z"
    run("skopeo", "copy", "-q", f"oci:{layout}:second", f"containers-storage:localhost/{pulled}")
    forget(f"localhost/{pulled}")
    assert podman_run(f"localhost/{pulled}") == "Hello, world!\n"


def test_copy_to_a_registry(tools, open_registry):  # noqa: F811
    ref = open_registry.ref(unique("copied") + ":r")
    r = run(tools["copyTo"], f"docker://{ref}", "--insecure")
    inspected = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{ref}").stdout)
    assert r.stdout.strip() == inspected["Digest"]


@pytest.fixture
def short_dir():
    d = tempfile.mkdtemp(prefix="eng-", dir="/tmp")  # a socket path must stay short
    yield d
    shutil.rmtree(d)


def test_copy_to_docker_daemon_speaks_the_engine_api(tools, short_dir):
    with running_engine_api(short_dir) as api:
        env = {**os.environ, "DOCKER_HOST": api.docker_host}
        r = run(tools["copyToDockerDaemon"], env=env)
        name = unique("daemon") + ":n"
        r2 = run(tools["copyTo"], f"docker-daemon:{name}", env=env)
    assert r.stdout == "Loaded image: copy-hello:t\n" and r2.stdout == f"Loaded image: {name}\n"
    first, second = api.requests
    assert first.path == "/images/load?quiet=1" and first.headers["Transfer-Encoding"] == "chunked"
    # What the daemon got is exactly the image's docker archive...
    assert first.body == run_stream(tools["stream"])
    # ...and a real engine loads and runs it.
    podman_load(second.body)
    assert podman_run(name) == "Hello, world!\n"


def test_copy_to_docker_daemon_failures(tools, short_dir):
    env = {**os.environ, "DOCKER_HOST": f"unix://{short_dir}/absent.sock"}
    line = one_error_line(run(tools["copyToDockerDaemon"], env=env, check=False))
    assert (
        line
        == f"error: no Docker daemon at unix://{short_dir}/absent.sock: the socket does not exist (is docker running?)"
    )
    answer = (200, [{"errorDetail": {"message": "unexpected EOF"}, "error": "unexpected EOF"}])
    with running_engine_api(short_dir, answer) as api:
        env = {**os.environ, "DOCKER_HOST": api.docker_host}
        line = one_error_line(run(tools["copyToDockerDaemon"], env=env, check=False))
    assert line == f"error: the Docker daemon at {api.docker_host} refused the image: unexpected EOF"


def test_bad_destinations_are_one_error_line(tools, tmp_path):
    line = one_error_line(run(tools["copyTo"], str(tmp_path / "x.tar"), check=False))
    assert "expected one of docker://HOST/NAME:TAG, docker-daemon:NAME:TAG" in line
    line = one_error_line(run(tools["copyTo"], check=False))
    assert line.startswith("error: give a destination: docker://HOST/NAME:TAG")
    line = one_error_line(run(tools["copyTo"], "oci:/tmp/x", "--insecure", check=False))
    assert line == "error: --insecure goes with a docker:// destination"
    line = one_error_line(run(tools["copyToPodman"], "Bad:Name", check=False))
    assert "is not a valid image name" in line
    # A file destination that cannot be written leaves nothing behind.
    target = tmp_path / "no" / "such" / "dir" / "image.tar"
    line = one_error_line(run(tools["copyTo"], f"docker-archive:{target}", check=False))
    assert f"cannot write {target}" in line and not target.parent.exists()


def test_copy_a_multi_platform_image(session_tmp, tmp_path, short_dir):
    copy_to = os.path.join(nix_build(MULTI, session_tmp, attr="copyTo"), "bin", "copy-to")
    line = one_error_line(run(copy_to, f"docker-archive:{tmp_path / 'm.tar'}", check=False))
    assert "copy-multi:both is a multi-platform image" in line and "oci-archive:FILE" in line
    layout = tmp_path / "multi"
    run(copy_to, f"oci:{layout}:both")
    raw = json.loads(run("skopeo", "inspect", "--raw", f"oci:{layout}:both").stdout)
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    # podman picks the host's platform from what copyToPodman streams.
    run(os.path.join(nix_build(MULTI, session_tmp, attr="copyToPodman"), "bin", "copy-to-podman"))
    forget("localhost/copy-multi:both")
    assert podman("image", "exists", "copy-multi:both", check=False).returncode == 0
