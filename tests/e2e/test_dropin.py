"""Drop-in details of nixpkgs' dockerTools a user expression may rely on:
`.override`, passthru attributes (`stream`, `buildArgs`), arguments accepted
for compatibility (pullImage's `outputHash`), `layeringPipeline`, the
nix-shell images, and pullImage behind an HTTP proxy."""

import json
import os
import select
import socket
import subprocess
import sys
import threading
import uuid

import pytest
from nixhelpers import REPO, nix_build, nix_eval, podman_load, podman_run, read_archive, run_stream
from registry_fixture import open_registry  # noqa: F401 (fixture)


def test_override_builds_again_with_changed_arguments(tmp_path):
    tags = nix_eval(
        """let
      s = dockerTools.streamLayeredImage { name = "o"; tag = "a"; };
      l = dockerTools.buildLayeredImage { name = "l"; tag = "a"; };
      i = dockerTools.buildImage { name = "i"; tag = "a"; };
    in [ (s.override { tag = "b"; }).imageTag (s.override (old: { name = old.name + "x"; })).imageName
         (l.override { tag = "c"; }).imageTag (i.override { tag = "d"; }).imageTag
         ((s.override { tag = "e"; }).override { name = "p"; }).imageName ]""",
        tmp_path,
    )
    assert tags == ["b", "ox", "c", "d", "p"]


def test_passthru_stream_and_build_args(tmp_path):
    values = nix_eval(
        """let
      l = dockerTools.buildLayeredImage { name = "l"; contents = [ fixtures.chainA ]; };
      i = dockerTools.buildImage { name = "i"; tag = "t"; copyToRoot = fixtures.chainA; };
    in [ l.stream.isExe (l.stream.imageTag == l.imageTag) (l.stream.imageName == l.imageName)
         i.buildArgs.tag i.buildArgs.name ]""",
        tmp_path,
    )
    assert values == [True, True, True, "t", "i"]


def test_the_default_layering_pipeline_gives_the_default_layers(tmp_path):
    # nixpkgs' own pipeline when none is given: popularity, then the layers left.
    images = [
        read_archive(
            run_stream(
                nix_build(
                    f"""dockerTools.streamLayeredImage {{ name = "pipe"; tag = "t"; maxLayers = 3;
      contents = [ fixtures.chainC pkgs.hello ]; {extra} }}""",
                    tmp_path,
                )
            )
        )
        for extra in ("", """layeringPipeline = [ [ "popularity_contest" ] [ "limit_layers" 2 ] ];""")
    ]
    assert images[0].config["rootfs"] == images[1].config["rootfs"]
    assert len(images[0].config["rootfs"]["diff_ids"]) == 3


def test_pull_image_hash_spellings(tmp_path):
    digest = "sha256:" + "0" * 64
    sri = "sha256-" + "A" * 43 + "="
    attrs = nix_eval(
        f"""let p = args: dockerTools.pullImage ({{ imageName = "nixos/nix"; imageDigest = "{digest}"; }} // args);
      show = d: [ d.outputHash (d.outputHashAlgo or null) ];
    in [ (show (p {{ hash = "{sri}"; }})) (show (p {{ hash = ""; }}))
         (show (p {{ outputHash = "{sri}"; outputHashAlgo = "sha256"; }}))
         (builtins.elem "https_proxy" (p {{ hash = "{sri}"; }}).impureEnvVars) ]""",
        tmp_path,
    )
    assert attrs == [[sri, None], ["", "sha256"], [sri, "sha256"], True]


# --- nix-shell images ------------------------------------------------------------------------

SHELL = "${pkgs.busybox}/bin/sh"  # the smallest shell that runs in images


def test_stream_nix_shell_image_builds_the_derivation_inside(tmp_path):
    script = nix_build(
        f"""dockerTools.streamNixShellImage {{ drv = fixtures.chainB; tag = "t"; shell = "{SHELL}";
      run = ''echo "name=$name home=$HOME top=$NIX_BUILD_TOP pwd=$(pwd)"; buildDerivation && cat $out/b''; }}""",
        tmp_path,
    )
    archive = read_archive(run_stream(script))
    config = archive.config["config"]
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/build"
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["name"] == "chain-b" and env["out"].endswith("-chain-b") and "args" not in env
    podman_load(archive.raw)
    out = podman_run("chain-b-env:t").splitlines()
    assert out[0] == "name=chain-b home=/build top=/build pwd=/build"
    assert out[1].endswith("-chain-a")  # chain-b built in the container: its file names chain-a


def test_build_nix_shell_image(tmp_path):
    out = nix_build(
        f"""dockerTools.buildNixShellImage {{ drv = fixtures.chainA; tag = "t"; shell = "{SHELL}";
      command = "echo $name"; }}""",
        tmp_path,
    )
    assert out.endswith("-chain-a-env.tar.gz")
    archive = read_archive(open(out, "rb").read())
    assert archive.manifest[0]["RepoTags"] == ["chain-a-env:t"]
    podman_load(archive.raw)
    assert podman_run("chain-a-env:t") == "chain-a\n"


def test_nix_shell_image_bad_arguments(tmp_path):
    from nixhelpers import NixError

    with pytest.raises(NixError) as err:
        nix_build('dockerTools.streamNixShellImage { drv = "x"; }', tmp_path)
    assert 'dockerTools.streamNixShellImage: drv must be a derivation, got the string "x"' in err.value.stderr
    with pytest.raises(NixError) as err:
        nix_build('dockerTools.streamNixShellImage { drv = fixtures.chainA; command = "a"; run = "b"; }', tmp_path)
    assert "give command or run, not both" in err.value.stderr


# --- pullImage (and push) behind an HTTP proxy ----------------------------------------------


class ConnectProxy:
    """A CONNECT-only HTTP proxy on loopback that records what it was asked."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.requests = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client):
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            request, _, rest = head.partition(b"\r\n\r\n")
            self.requests.append(request.decode())
            method, target, _ = request.split(b"\r\n")[0].split(b" ")
            if method != b"CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = target.decode().rsplit(":", 1)
            with socket.create_connection((host, int(port))) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                sockets = [client, upstream]
                while True:
                    readable, _, _ = select.select(sockets, [], [], 30)
                    if not readable:
                        return
                    for s in readable:
                        data = s.recv(65536)
                        if not data:
                            return
                        (upstream if s is client else client).sendall(data)

    def close(self):
        self.server.close()


def test_prefetch_through_a_proxy(open_registry, tmp_path):
    script = nix_build('dockerTools.streamLayeredImage { name = "proxied"; contents = [ fixtures.chainA ]; }', tmp_path)
    ref = open_registry.ref(f"proxied-{uuid.uuid4().hex[:8]}") + ":t"
    r = subprocess.run([script, "--push", ref, "--insecure"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    proxy = ConnectProxy()
    try:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["http_proxy"] = f"http://user:secret@127.0.0.1:{proxy.port}"
        r = subprocess.run(
            [sys.executable, "-m", "builder", "prefetch", ref, "--insecure", "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
        )
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["imageDigest"].startswith("sha256:")
        assert proxy.requests and all(req.startswith(f"CONNECT {open_registry.host} ") for req in proxy.requests)
        # user:secret, as the proxy URL gave them
        assert all("Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=" in req for req in proxy.requests)
        # no_proxy exempts the registry: nothing goes through the proxy.
        seen = len(proxy.requests)
        env["no_proxy"] = "127.0.0.1"
        r = subprocess.run(
            [sys.executable, "-m", "builder", "prefetch", ref, "--insecure", "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
        )
        assert r.returncode == 0, r.stderr
        assert len(proxy.requests) == seen
    finally:
        proxy.close()


def test_config_null_and_mtime_without_offset(tmp_path):
    # config = null as buildImage takes it; a time without an offset is UTC.
    script = nix_build(
        """dockerTools.streamLayeredImage { name = "lenient"; config = null;
      contents = [ fixtures.chainA ]; mtime = "2024-01-01T00:00:00"; }""",
        tmp_path,
    )
    archive = read_archive(run_stream(script))
    store_layer = next(m for m in archive.layer_members() if any(x.name == "nix/store" for x in m))
    assert {m.mtime for m in store_layer} == {1704067200}
