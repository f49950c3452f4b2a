"""OCI output, registries and multi-arch end to end (issue 5): real nix-build
runs through the stand-in nixpkgs, a real distribution registry on
127.0.0.1, podman and skopeo reading what we wrote.

Every archive read here goes through nixhelpers.read_archive (docker) or
read_oci_archive (OCI), which check each blob against its digest: digests
of compressed layers computed at build time must match the streamed bytes.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid

import pytest
from nixhelpers import (
    LOADED,
    REPO,
    NixError,
    nix_build,
    podman,
    podman_load,
    podman_run,
    read_archive,
    read_oci_archive,
    read_oci_dir,
    run_stream,
)
from registry_fixture import PASSWORD, USER, auth_registry, open_registry  # noqa: F401 (fixtures)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def run(*cmd, env=None, check=True, cwd=None) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    return r


def skopeo_inspect(*args) -> dict:
    return json.loads(run("skopeo", "inspect", *args).stdout)


def remote(ref: str, raw: bool = False) -> dict:
    return skopeo_inspect(*(["--raw"] if raw else []), "--tls-verify=false", f"docker://{ref}")


def one_error_line(r: subprocess.CompletedProcess) -> str:
    """A clean failure: non-zero exit, exactly one line on stderr, no traceback."""
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], r.stderr
    return errors[0]


def push(script: str, ref: str, *args, env=None) -> subprocess.CompletedProcess:
    return run(script, "--push", ref, "--insecure", *args, env=env)


def blob_files(registry) -> set:
    """The blobs the registry stores (layers, configs and manifests alike)."""
    root = os.path.join(os.path.dirname(registry.log), "storage", "docker", "registry", "v2", "blobs", "sha256")
    return {name for _, dirs, _ in os.walk(root) for name in dirs if len(name) == 64}


def manifest_status(registry, repo: str, tag: str) -> int:
    req = urllib.request.Request(
        f"http://{registry.host}/v2/{repo}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


HELLO = """dockerTools.streamLayeredImage {{
  name = "{name}"; tag = "{tag}"; contents = [ pkgs.hello ];
  config.Cmd = [ "/bin/hello" ]; {extra} }}"""


def hello(tmp_path, name="oci-hello", tag="t", extra="") -> str:
    return nix_build(HELLO.format(name=name, tag=tag, extra=extra), tmp_path)


@pytest.fixture(scope="module")
def gz_hello(session_tmp):
    """An image whose gzip layer digests were computed at build time."""
    return hello(session_tmp, "oci-hello-gz", "t", 'layerCompression = "gzip";')


def conf_entries(script: str) -> list:
    conf = run("nix-store", "-q", "--references", script).stdout.split()
    conf = [p for p in conf if p.endswith("-conf")][0]
    with open(os.path.join(conf, "image.json")) as f:
        return json.load(f)["layers"]


def podman_pull(ref: str) -> None:
    podman("pull", "-q", "--tls-verify=false", ref)
    LOADED.add(ref)


# --- OCI output --------------------------------------------------------------------------


def test_oci_archive_loads_in_podman_and_skopeo(tmp_path):
    script = hello(tmp_path, "oci-plain", "t1")
    data = run_stream(script, "--format", "oci")
    archive = read_oci_archive(data)
    assert archive.ref_names() == ["t1"]
    assert archive.image.config["config"]["Cmd"] == ["/bin/hello"]
    path = tmp_path / "image.tar"
    path.write_bytes(data)
    info = skopeo_inspect(f"oci-archive:{path}:t1")
    assert info["Digest"] == archive.image.manifest_digest
    podman_load(data)
    assert podman_run("oci-plain:t1") == "Hello, world!\n"


def test_compressed_digests_from_the_build_match_the_streamed_bytes(gz_hello, tmp_path):
    entries = conf_entries(gz_hello)
    assert all("gzip" in e["known"] for e in entries)
    r = subprocess.run([gz_hello, "--format", "oci"], capture_output=True)
    assert r.returncode == 0 and b"note:" not in r.stderr  # nothing compressed twice
    archive = read_oci_archive(r.stdout)  # every blob hashed here
    layers = archive.image.manifest["layers"]
    assert [d["mediaType"] for d in layers] == ["application/vnd.oci.image.layer.v1.tar+gzip"] * len(layers)
    assert [(d["digest"], d["size"]) for d in layers] == [tuple(e["known"]["gzip"]) for e in entries]
    # The docker archive takes the same compressed bytes.
    docker = read_archive(run_stream(gz_hello))
    assert docker.image_layers() == archive.image.layers
    podman_load(r.stdout)
    assert podman_run("oci-hello-gz:t") == "Hello, world!\n"


def test_stream_compresses_when_asked_even_without_build_digests(tmp_path):
    script = hello(tmp_path, "oci-late-gz", "t")
    r = subprocess.run([script, "--format", "oci", "--compress", "gzip"], capture_output=True)
    assert r.returncode == 0
    assert b"no gzip digest from the build" in r.stderr
    archive = read_oci_archive(r.stdout)
    assert all(d["mediaType"].endswith("+gzip") for d in archive.image.manifest["layers"])


def test_oci_layout_directory_output(gz_hello, tmp_path):
    out = tmp_path / "layout"
    run(gz_hello, "--output", f"{out}/")
    layout = read_oci_dir(str(out))
    assert layout.ref_names() == ["t"]
    assert skopeo_inspect(f"oci:{out}:t")["Digest"] == layout.image.manifest_digest
    run("umoci", "stat", "--image", f"{out}:t")
    # Explicitly, into an existing directory: blobs already there are kept.
    run(gz_hello, "--format", "oci-dir", "--output", str(out))
    assert read_oci_dir(str(out)).image.manifest_digest == layout.image.manifest_digest


def test_build_layered_image_oci_with_gzip_layers(tmp_path):
    out = nix_build(
        """dockerTools.buildLayeredImage {
      name = "oci-built"; tag = "t"; contents = [ pkgs.hello ]; config.Cmd = [ "/bin/hello" ];
      format = "oci"; layerCompression = "gzip"; }""",
        tmp_path,
    )
    data = open(out, "rb").read()
    assert data[:2] != b"\x1f\x8b"  # compressed layers: the archive is not compressed again
    archive = read_oci_archive(data)
    assert all(d["mediaType"].endswith("+gzip") for d in archive.image.manifest["layers"])
    assert skopeo_inspect(f"oci-archive:{out}:t")["Digest"] == archive.image.manifest_digest
    podman_load(data)
    assert podman_run("oci-built:t") == "Hello, world!\n"


def test_build_layered_image_defaults_unchanged(tmp_path):
    out = nix_build(
        """dockerTools.buildLayeredImage { name = "still-docker"; tag = "t";
      contents = [ pkgs.hello ]; }""",
        tmp_path,
    )
    data = open(out, "rb").read()
    assert data[:2] == b"\x1f\x8b" and out.endswith(".tar.gz")
    archive = read_archive(data)
    assert all(name.endswith("/layer.tar") for name in archive.manifest[0]["Layers"])


@pytest.mark.parametrize(
    "expr, message",
    [
        ('dockerTools.buildLayeredImage { name = "f"; format = "tar"; }', 'format "tar" is unknown'),
        (
            'dockerTools.streamLayeredImage { name = "f"; layerCompression = "bz2"; }',
            'layerCompression "bz2" is unknown',
        ),
        (
            'dockerTools.pullImage { imageName = "a/b"; imageDigest = "sha256:' + "0" * 64 + '"; }',
            "pullImage: hash is missing",
        ),
        (
            'dockerTools.pullImage { imageName = "a/b"; imageDigest = "latest"; hash = ""; }',
            'imageDigest "latest" is not a sha256 digest',
        ),
        ('dockerTools.buildMultiArchImage { name = "m"; images = [ ]; }', "images must be a non-empty list"),
    ],
)
def test_bad_arguments_fail_at_evaluation(expr, message, tmp_path):
    with pytest.raises(NixError) as e:
        nix_build(expr, tmp_path)
    assert message in e.value.stderr


def test_stream_flag_conflicts_are_one_line(gz_hello, tmp_path):
    for args, message in [
        (["--push", "127.0.0.1:1/x:1", "--output", str(tmp_path / "x")], "--push and --output"),
        (["--push", "127.0.0.1:1/x:1", "--format", "oci-dir"], "--format oci-dir writes a directory; with --push"),
        (["--insecure", "--output", str(tmp_path / "x")], "--insecure goes with --push"),
        (["--format", "docker", "--output", f"{tmp_path}/"], "a docker archive is a file"),
    ]:
        r = subprocess.run([gz_hello, *args], capture_output=True, text=True)
        assert message in one_error_line(r)


# --- push ----------------------------------------------------------------------------------


def test_push_then_pull_back_with_skopeo_and_run_with_podman(open_registry, gz_hello, tmp_path):
    ref = open_registry.ref(unique("pushed/hello") + ":v1")
    r = push(gz_hello, f"docker://{ref}")
    digest = r.stdout.strip()
    assert digest.startswith("sha256:") and len(r.stdout.splitlines()) == 1
    assert "layer 1/" in r.stderr and "uploaded" in r.stderr
    info = remote(ref)
    assert info["Digest"] == digest
    assert info["Layers"] == [e["known"]["gzip"][0] for e in conf_entries(gz_hello)]
    # skopeo re-reads and checks every blob while copying.
    run("skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'back'}:v1")
    assert read_oci_dir(str(tmp_path / "back")).image.config["config"]["Cmd"] == ["/bin/hello"]
    podman_pull(ref)
    assert podman_run(ref) == "Hello, world!\n"


def test_push_docker_media_types(open_registry, gz_hello):
    ref = open_registry.ref(unique("dockerish") + ":1")
    push(gz_hello, ref, "--format", "docker")
    raw = remote(ref, raw=True)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert raw["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"


def test_second_version_uploads_only_its_top_layer(open_registry, tmp_path):
    repo = unique("incremental")
    scripts = [
        hello(tmp_path, "incremental", "t", f'layerCompression = "gzip"; extraCommands = "echo {v} > version";')
        for v in ("v1", "v2")
    ]
    push(scripts[0], open_registry.ref(f"{repo}:1"))
    before = blob_files(open_registry)
    r = push(scripts[1], open_registry.ref(f"{repo}:2"))
    after = blob_files(open_registry)

    lines = r.stderr.splitlines()
    layer_lines = [line for line in lines if line.startswith("layer ")]
    n = len(conf_entries(scripts[1]))
    assert len(layer_lines) == n >= 3
    assert all(line.endswith("skipped (already present)") for line in layer_lines[:-1])
    assert layer_lines[-1].startswith(f"layer {n}/{n}") and layer_lines[-1].endswith("uploaded")
    assert [line for line in lines if line.startswith("config ")][0].endswith("uploaded")
    assert "2 blob(s) uploaded" in r.stderr and f"{n - 1} already present" in r.stderr
    assert "1 manifest(s)" in r.stderr

    # On the registry: exactly the new top layer, config and manifest were added.
    one, two = remote(open_registry.ref(f"{repo}:1")), remote(open_registry.ref(f"{repo}:2"))
    assert one["Layers"][:-1] == two["Layers"][:-1] and one["Layers"][-1] != two["Layers"][-1]
    config = remote(open_registry.ref(f"{repo}:2"), raw=True)["config"]["digest"]
    assert {"sha256:" + h for h in after - before} == {two["Layers"][-1], config, r.stdout.strip()}


def test_copy_to_registry(open_registry, tmp_path):
    expr = HELLO.format(name="copied", tag="c1", extra='layerCompression = "gzip";')
    tool = nix_build(expr, tmp_path, attr="copyToRegistry")
    exe = os.path.join(tool, "bin", "copy-to-registry")
    ref = open_registry.ref(unique("copied") + ":c1")
    r = run(exe, f"docker://{ref}", "--insecure")
    assert remote(ref)["Digest"] == r.stdout.strip()
    # buildLayeredImage has it too, pushing the same image.
    built = nix_build(
        """dockerTools.buildLayeredImage { name = "copied"; tag = "c1";
      contents = [ pkgs.hello ]; config.Cmd = [ "/bin/hello" ]; layerCompression = "gzip"; }""",
        tmp_path,
        attr="copyToRegistry",
    )
    r2 = run(os.path.join(built, "bin", "copy-to-registry"), ref, "--insecure")
    assert r2.stdout == r.stdout and "0 blob(s) uploaded" in r2.stderr


def _auth_file(tmp_path, host: str, password: str) -> str:
    path = tmp_path / "auth.json"
    token = base64.b64encode(f"{USER}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return str(path)


def test_push_with_credentials_from_an_auth_file(auth_registry, gz_hello, tmp_path):
    env = {**os.environ, "REGISTRY_AUTH_FILE": _auth_file(tmp_path, auth_registry.host, PASSWORD)}
    ref = auth_registry.ref(unique("private") + ":1")
    r = push(gz_hello, ref, env=env)
    info = skopeo_inspect("--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", f"docker://{ref}")
    assert info["Digest"] == r.stdout.strip()


def test_wrong_password_fails_cleanly(auth_registry, gz_hello, tmp_path):
    env = {**os.environ, "REGISTRY_AUTH_FILE": _auth_file(tmp_path, auth_registry.host, "Xq9-bad")}
    r = subprocess.run(
        [gz_hello, "--push", auth_registry.ref("private:1"), "--insecure"], capture_output=True, text=True, env=env
    )
    line = one_error_line(r)
    assert r.returncode == 1 and r.stdout == ""
    assert "401 authentication failed with the credentials from" in line
    assert "Xq9-bad" not in line


class StallingProxy:
    """Relays TCP to the registry until ``budget`` bytes came from the client,
    then stops forwarding (a network gone quiet), so that a push is surely
    killed half-way through a layer."""

    def __init__(self, target: str, budget: int):
        self.target = target.split(":")
        self.budget = budget
        self.forwarded = 0
        self.stalled = threading.Event()
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.sockets = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection((self.target[0], int(self.target[1])))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src, dst, counted: bool) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if counted:
                    with self.lock:
                        if self.forwarded + len(data) > self.budget:
                            self.stalled.set()
                            self.closing.wait()
                            return
                        self.forwarded += len(data)
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.closing.set()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


def test_killed_push_leaves_no_tag_and_a_second_push_completes(open_registry, tmp_path):
    # Two layers of 3 MB (uncompressed, so the sizes are what goes over the wire).
    script = nix_build(
        """let
        big = n: pkgs.runCommand "big-${n}" { }
          "dd if=/dev/zero of=$out bs=1000 count=3000 2>/dev/null; echo ${n} >> $out";
      in dockerTools.streamLayeredImage { name = "killed"; tag = "k";
        contents = [ (big "one") (big "two") ]; maxLayers = 3; }""",
        tmp_path,
    )
    repo = unique("killed")
    proxy = StallingProxy(open_registry.host, budget=4_000_000)
    try:
        p = subprocess.Popen(
            [script, "--push", f"{proxy.host}/{repo}:k", "--insecure"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proxy.stalled.wait(60), "the push never reached the budget"
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        out, err = p.communicate()
    finally:
        proxy.close()
    assert p.returncode == -signal.SIGKILL and out == b""
    assert b"uploaded" in err  # at least one layer made it
    assert manifest_status(open_registry, repo, "k") == 404

    r = push(script, open_registry.ref(f"{repo}:k"), "--compress", "none")
    assert "skipped (already present)" in r.stderr and r.stderr.count(" uploaded") >= 2
    assert manifest_status(open_registry, repo, "k") == 200
    assert remote(open_registry.ref(f"{repo}:k"))["Digest"] == r.stdout.strip()


# --- pullImage and prefetch ------------------------------------------------------------------


def prefetch(ref: str, *args) -> dict:
    r = run(sys.executable, "-m", "builder", "prefetch", ref, "--insecure", "--json", *args, cwd=REPO)
    return json.loads(r.stdout)


def pull_expr(args: dict) -> str:
    fields = " ".join(f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()};" for k, v in args.items())
    return f"dockerTools.pullImage {{ {fields} }}"


def test_pull_image_with_the_prefetched_hash(open_registry, gz_hello, tmp_path):
    name = open_registry.ref(unique("pullme"))
    pushed = push(gz_hello, f"{name}:v1").stdout.strip()
    args = prefetch(f"{name}:v1")
    assert args["imageDigest"] == pushed and args["hash"].startswith("sha256-")
    assert (args["finalImageName"], args["finalImageTag"], args["tlsVerify"]) == (name, "v1", False)

    out = nix_build(pull_expr(args), tmp_path)
    assert os.path.basename(out).split("-", 1)[1].startswith("docker-image-127.0.0.1-")
    data = open(out, "rb").read()
    archive = read_archive(data)
    assert archive.manifest[0]["RepoTags"] == [f"{name}:v1"]
    assert archive.config["config"]["Cmd"] == ["/bin/hello"]
    podman_load(data)
    assert podman_run(f"{name}:v1") == "Hello, world!\n"

    # As a base image: its layers first, its Cmd inherited.
    child = nix_build(
        f"""let base = {pull_expr(args)};
      in dockerTools.streamLayeredImage {{ name = "on-pulled"; tag = "c"; fromImage = base;
        contents = [ pkgs.figlet ]; }}""",
        tmp_path,
    )
    child_archive = read_archive(run_stream(child))
    base_ids = archive.config["rootfs"]["diff_ids"]
    assert child_archive.config["rootfs"]["diff_ids"][: len(base_ids)] == base_ids
    podman_load(child_archive.raw)
    assert podman_run("on-pulled:c") == "Hello, world!\n"


def test_pull_image_wrong_hash_is_refused(open_registry, gz_hello, tmp_path):
    name = open_registry.ref(unique("wronghash"))
    push(gz_hello, f"{name}:1")
    args = prefetch(f"{name}:1")
    args["hash"] = "sha256-" + base64.b64encode(b"\0" * 32).decode()
    with pytest.raises(NixError) as e:
        nix_build(pull_expr(args), tmp_path)
    assert "hash mismatch" in e.value.stderr


# --- multi-arch -------------------------------------------------------------------------------

MULTI = """let
  img = architecture: dockerTools.streamLayeredImage {
    name = "multi"; tag = architecture; inherit architecture; contents = [ pkgs.hello ];
    config.Cmd = [ "/bin/hello" ]; layerCompression = "gzip"; };
in dockerTools.buildMultiArchImage {
  name = "multi"; tag = "both"; layerCompression = "gzip";
  images = [ (img "amd64") (img "arm64") ]; }"""


def test_multi_arch_index_archive_and_push(open_registry, tmp_path):
    out = nix_build(MULTI, tmp_path)
    data = open(out, "rb").read()
    archive = read_oci_archive(data)
    assert [i.platform for i in archive.images] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    raw = skopeo_inspect("--raw", f"oci-archive:{out}:both")
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert {m["platform"]["architecture"] for m in raw["manifests"]} == {"amd64", "arm64"}
    assert skopeo_inspect("--override-arch", "arm64", f"oci-archive:{out}:both")["Architecture"] == "arm64"
    podman_load(data)  # podman takes the host's platform
    assert podman_run("multi:both") == "Hello, world!\n"

    tool = nix_build(MULTI, tmp_path, attr="copyToRegistry")
    ref = open_registry.ref(unique("multi") + ":both")
    r = run(os.path.join(tool, "bin", "copy-to-registry"), ref, "--insecure")
    assert r.stdout.strip() == archive.index["manifests"][0]["digest"]
    raw = remote(ref, raw=True)
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    assert "3 manifest(s)" in r.stderr

    # pullImage resolves the index digest to the platform asked for.
    args = prefetch(ref, "--arch", "arm64")
    assert args["imageDigest"] == r.stdout.strip() and args["arch"] == "arm64"
    pulled = read_archive(open(nix_build(pull_expr(args), tmp_path), "rb").read())
    assert pulled.config["architecture"] == "arm64" and pulled.config["variant"] == "v8"


def test_multi_arch_stream_to_stdout_and_layout(tmp_path):
    script = nix_build(MULTI, tmp_path, attr="stream")
    archive = read_oci_archive(run_stream(script))  # OCI by default
    assert len(archive.images) == 2
    run(script, "--output", f"{tmp_path}/layout/")
    assert len(read_oci_dir(str(tmp_path / "layout")).images) == 2
    r = subprocess.run([script, "--format", "docker"], capture_output=True, text=True)
    assert "multi-platform image" in one_error_line(r)


def test_multi_arch_from_archives(tmp_path):
    # Archives (an OCI one, a docker one) are read and checked at build time.
    out = nix_build(
        """let
        arm = dockerTools.buildLayeredImage { name = "arc"; tag = "arm"; architecture = "arm64";
          contents = [ pkgs.hello ]; format = "oci"; layerCompression = "gzip"; };
        x86 = dockerTools.buildLayeredImage { name = "arc"; tag = "x86"; contents = [ pkgs.hello ]; };
      in dockerTools.buildMultiArchImage { name = "arc"; tag = "both";
        images = [ "${arm}" "${x86}" ]; layerCompression = "gzip"; }""",
        tmp_path,
    )
    archive = read_oci_archive(open(out, "rb").read())
    assert [i.config["architecture"] for i in archive.images] == ["arm64", "amd64"]
    assert skopeo_inspect("--raw", f"oci-archive:{out}:both")["manifests"][1]["platform"] == {
        "architecture": "amd64",
        "os": "linux",
    }


def test_multi_arch_two_images_for_one_platform_fail(tmp_path):
    with pytest.raises(NixError) as e:
        nix_build(
            """let img = tag: dockerTools.streamLayeredImage { name = "dup"; inherit tag; };
          in dockerTools.buildMultiArchImage { name = "dup"; images = [ (img "a") (img "b") ]; }""",
            tmp_path,
        )
    assert "are both for linux/amd64" in e.value.stderr and "Traceback" not in e.value.stderr


# --- the pieces, without Nix ------------------------------------------------------------------


def test_measure_tar_records_what_the_stream_writes():
    import imagekit

    from builder.sinks.sink import HashSink
    from builder.steps.known import measure_tar

    data = imagekit.layer_bytes({"a/b": b"x" * 100_000, "c": os.urandom(5000)})
    layer = imagekit.memory_layer(data)
    diff_id, size, known = measure_tar(layer.write_tar, ["gzip"])
    assert (diff_id, size) == (layer.diff_id, layer.size)
    streamed = HashSink()
    blob = layer.blob("gzip")  # no probe: nothing known yet, so it measures
    blob.write_to(streamed)
    assert known["gzip"] == (streamed.digest, streamed.size) == (blob.digest, blob.size)


@pytest.mark.parametrize(
    "text, want",
    [
        ("nixos/nix", ("nixos/nix", None, None)),
        ("docker://127.0.0.1:5000/a/b:v1", ("127.0.0.1:5000/a/b", "v1", None)),
        ("host:5000/app", ("host:5000/app", None, None)),
        ("app@sha256:" + "a" * 64, ("app", None, "sha256:" + "a" * 64)),
    ],
)
def test_split_name(text, want):
    from builder.model.reference import split_reference

    assert split_reference(text) == want
