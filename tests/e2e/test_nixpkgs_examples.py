"""nixpkgs' own dockerTools examples (pkgs/build-support/docker/examples.nix,
ported in nixpkgs_examples.nix) built with this project, loaded into podman
and run; then the checks of nixpkgs' NixOS test nixos/tests/docker-tools.nix,
as podman checks (written anew; nothing copied).

nixpkgs runs docker in a VM; here podman runs on the machine. Where that
changes a check, a comment starting "ADAPTED:" says how.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tarfile
import time
import urllib.request

import pytest
from nixhelpers import REPO, decompress, podman, podman_load, read_archive, run_stream
from registry_fixture import open_registry  # noqa: F401  (a fixture)

EXAMPLES = os.path.join(REPO, "tests", "e2e", "nixpkgs_examples.nix")
UNIX_TIME_SECOND1 = "1970-01-01T00:00:01Z"

# Every example but those pulled from a registry (tested with the registry).
IMAGES = [
    "bash", "redis", "nginx", "editors", "nix", "runAsRootExtraCommands", "unstableDate", "layered-image",
    "layered-on-top", "layered-on-top-layered", "runAsRootParentImage", "layersOrder",
    "environmentVariablesParent", "environmentVariables", "environmentVariablesLayered",
    "another-layered-image", "two-layered-image", "bulk-layer", "layered-bulk-layer", "no-store-paths",
    "nixLayered", "filesInStore", "unstableDateLayered", "bashNoTag", "bashNoTagLayered",
    "bashNoTagStreamLayered", "bashLayeredWithUser", "cross", "layeredStoreSymlink", "prefixedImage",
    "prefixedLayeredImage", "layeredImageWithFakeRootCommands", "mergedBashAndRedis",
    "mergedBashNoTagAndRedis", "mergedBashFakeRoot", "helloOnRoot", "helloOnRootNoStore",
    # added in later nixpkgs
    "layersUnpackOrder", "helloOnRootNoStoreFakechroot", "image-with-certs", "imageViaFakeChroot",
    "build-image-with-path", "layered-image-with-path", "build-image-with-architecture",
    "layered-image-with-architecture", "bashLayeredUncompressed", "bashLayeredZstdCompressed", "bashUncompressed",
    "bashZstdCompressed", "mergeVaryingCompressor", "chownTestImage", "nonRootTestImage",
    # nixos/tests/docker-tools-nix-shell.nix
    "nix-shell-basic", "nix-shell-hook", "nix-shell-inputs", "nix-shell-pass-as-file", "nix-shell-run",
    "nix-shell-command", "nix-shell-writable-home", "nix-shell-nonexistent-home", "nix-shell-build-derivation",
    "nix-layered", "nginxStream",
]  # fmt: skip
PULLED = ["nixFromDockerHub", "testNixFromDockerHub", "onTopOfPulledImage"]

_built: dict = {}


def nix_args(pulled):
    if pulled is None:
        return []
    return ["--arg", "pulled", "{ " + " ".join(f'{k} = "{v}";' for k, v in sorted(pulled.items())) + " }"]


def build(attr: str, pulled=None, extra=()) -> str:
    key = (attr, json.dumps(pulled, sort_keys=True), tuple(extra))
    if key not in _built:
        r = subprocess.run(
            ["nix-build", EXAMPLES, "-A", attr, "--no-out-link", *nix_args(pulled), *extra],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        _built[key] = r.stdout.strip().splitlines()[-1]
    return _built[key]


def evaluate(expr: str, pulled=None):
    r = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E",
         f"let examples = import {EXAMPLES} {{ }}; in {expr}", *nix_args(pulled)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def image_bytes(attr: str, pulled=None) -> bytes:
    out = build(attr, pulled)
    if os.path.isfile(out) and os.access(out, os.X_OK):
        return run_stream(out)  # streamLayeredImage: a script writing the archive
    with open(out, "rb") as f:
        return f.read()


def load(attr: str, pulled=None):
    archive = read_archive(image_bytes(attr, pulled))
    podman_load(archive.raw)
    return archive


def run(image: str, *cmd: str, check=True, user=None, volume=None, tty=False, env=()) -> subprocess.CompletedProcess:
    args = ["run", "--rm", "--network=none"]
    for e in env:
        args += ["--env", e]
    if tty:
        # nixpkgs runs these with `docker run -it`; podman gives the container
        # a terminal with -t though the test's stdin is none.
        args += ["-t"]
    if user:
        args += ["--user", user]
    if volume:
        args += ["--volume", volume]
    return podman(*args, image, *cmd, check=check)


def out(image: str, *cmd: str, **kw) -> str:
    return run(image, *cmd, **kw).stdout.decode()


def image_name(attr: str) -> str:
    return evaluate(f'examples."{attr}".imageName')


def image_tag(attr: str) -> str:
    return evaluate(f'examples."{attr}".imageTag')


def images(fmt: str) -> list:
    """`podman images --format FMT`, one entry per image. Tried again when
    another session removes an image while podman lists them (podman then
    fails on the vanished parent)."""
    for _ in range(10):
        r = podman("images", "--format", fmt, check=False)
        if r.returncode == 0:
            return r.stdout.decode().split()
        time.sleep(1)
    raise AssertionError(f"podman images failed: {r.stderr.decode()}")


def inspect(ref: str) -> dict:
    return json.loads(podman("image", "inspect", ref).stdout)[0]


def set_of_layers(ref: str) -> set:
    return set(inspect(ref)["RootFS"]["Layers"])


def store_path(expr: str) -> str:
    r = subprocess.run(
        ["nix-build", "--no-out-link", "-E", f"(import {REPO}/tests/hostpkgs.nix {{ }}).{expr}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


# --- every example evaluates, builds and loads ----------------------------------------------


@pytest.mark.parametrize("attr", IMAGES)
def test_example_builds_and_loads(attr):
    archive = load(attr)
    assert archive.manifest and all(entry["Layers"] for entry in archive.manifest)


# --- nixos/tests/docker-tools.nix, subtest by subtest --------------------------------------


def test_include_store_path():
    load("helloOnRoot")
    assert "hello" in out("hello:latest").lower()
    load("helloOnRootNoStore")
    assert run("hello:latest", check=False).returncode != 0  # includeStorePaths = false breaks it ...
    store = "/nix/store"
    # ... and a mounted store makes it work again.
    assert "hello" in out("hello:latest", volume=f"{store}:{store}:ro").lower()


def test_stable_date_by_default_and_image_tag():
    load("bash")
    # nixpkgs reads `docker inspect` with jq; podman's is read as JSON here.
    assert UNIX_TIME_SECOND1 in inspect(image_name("bash"))["Created"]
    assert "version" in out(image_name("bash"), "bash", "--version")
    tags = images("{{.Tag}}")
    assert image_tag("bash") in tags


@pytest.mark.parametrize("attr", ["bashNoTag", "bashNoTagLayered", "bashNoTagStreamLayered", "nixLayered"])
def test_image_tag_attribute_matches_the_image(attr):
    load(attr)
    tag = image_tag(attr)
    assert tag in images("{{.Tag}}")
    podman("image", "exists", f"{image_name(attr)}:{tag}")


def test_nix_store_is_initialised():
    load("nix")
    nix = store_path("nix")
    listed = out("nix:latest", "nix-store", "-qR", nix).split()
    assert nix in listed and len(listed) > 1


def test_layered_nix_store_permissions_for_a_non_root_user():
    # 755 as in nixpkgs' current test (older ones said 555, before nixpkgs
    # made /nix and /nix/store rwxr-xr-x in the store layers).
    load("bashLayeredWithUser")
    bash = store_path("bash")
    run(
        "bash-layered-with-user:latest",
        f"{bash}/bin/bash", "-c", "test 755 == $(stat --format=%a /nix) && test 755 == $(stat --format=%a /nix/store)",
        user="somebody",
    )  # fmt: skip


@pytest.mark.parametrize("attr", ["nix", "nixLayered"])
def test_nix_binary_symlinks_are_intact(attr):
    load(attr)
    nix, bash = store_path("nix"), store_path("bash")
    run(image_name(attr), f"{bash}/bin/bash", "-c", f"test nix == $(readlink {nix}/bin/nix-daemon)")


@pytest.fixture(scope="module")
def pulled(open_registry, tmp_path_factory):  # noqa: F811
    # ADAPTED: nixpkgs pulls nixos/nix from Docker Hub; there is no network
    # here, so an image holding Nix is pushed to the local registry and
    # pulled back from there by digest, with the hash `builder prefetch`
    # reports.
    tmp = tmp_path_factory.mktemp("pulled")
    archive = tmp / "nix.tar"
    # The pushed image comes from a second stand-in whose store paths are
    # all other ones: pullImage writes the layers uncompressed, and Nix
    # refuses a fixed-output download holding its own inputs' store paths
    # (here the shared glibc copy, which nixos/nix from Docker Hub does not
    # share with nixpkgs' fetcher).
    pushed = build(
        "nixLayered", extra=["--arg", "pkgs", f'import {REPO}/tests/hostpkgs.nix {{ nameSuffix = "-pushed"; }}']
    )
    with open(pushed, "rb") as f:
        archive.write_bytes(decompress(f.read()))  # skopeo 1.9 reads no gzip archive
    ref = open_registry.ref("nixos/nix:2.2.1")
    digest_file = tmp / "digest"
    subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false", "--dest-compress", "--digestfile", str(digest_file),
         f"docker-archive:{archive}", f"docker://{ref}"],
        check=True, capture_output=True,
    )  # fmt: skip
    digest = digest_file.read_text().strip()
    r = subprocess.run(
        ["python3", "-m", "builder", "prefetch", f"{open_registry.host}/nixos/nix@{digest}", "--insecure", "--json",
         "--final-image-name", "nix", "--final-image-tag", "2.2.1"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    args = json.loads(r.stdout)
    return {"registry": open_registry.host, "imageDigest": digest, "sha256": args["hash"]}


@pytest.mark.parametrize("attr", ["nixFromDockerHub", "testNixFromDockerHub"])
def test_the_pull_image_tool_works(pulled, attr):
    load(attr, pulled)
    assert "nix" in out("nix:2.2.1", "nix-store", "--version")


def test_a_pulled_image_can_be_used_as_base_image(pulled):
    load("onTopOfPulledImage", pulled)
    assert out("ontopofpulledimage:latest", "hello") == "Hello, world!\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_as_root_and_entry_point_work_nginx():
    load("nginx")
    port = _free_port()
    name = f"nginx-{port}"
    podman("run", "--name", name, "-d", "-p", f"127.0.0.1:{port}:80", image_name("nginx"))
    try:
        deadline, body = time.time() + 60, None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    body = resp.read().decode()
                break
            except OSError:
                time.sleep(1)
        logs = podman("logs", name, check=False).stdout.decode()
        assert body is not None and "Hello from NGINX" in body, logs
    finally:
        podman("rm", "--force", name, check=False)


def test_regression_34779_run_as_root_and_extra_commands():
    load("runAsRootExtraCommands")
    assert out("runasrootextracommands:latest", "cat", "extraCommands") == "(extraCommand)\n"
    assert out("runasrootextracommands:latest", "cat", "runAsRoot") == "(runAsRoot)\n"


@pytest.mark.parametrize("attr", ["unstableDate", "unstableDateLayered"])
def test_images_can_use_an_unstable_date(attr):
    load(attr)
    assert UNIX_TIME_SECOND1 not in inspect(image_name(attr))["Created"]


def test_layered_images_work():
    load("layered-image")
    assert out("layered-image:latest") == "Hello, world!\n"
    assert out("layered-image:latest", "cat", "extraCommands") == "(extraCommand)\n"


@pytest.mark.parametrize("attr", ["layered-on-top", "layered-on-top-layered"])
def test_images_on_top_of_layered_images_work(attr):
    load(attr)
    assert out(f"{attr}:latest") == "hello\n"


def test_layers_are_shared_between_images():
    load("layered-image")
    load("another-layered-image")
    assert set_of_layers("layered-image:latest") & set_of_layers("another-layered-image:latest")


def test_order_of_layers_is_correct():
    load("layersOrder")
    for index in 1, 2, 3:
        assert f"layer{index}" in out("l3:latest", "cat", f"/tmp/layer{index}")


@pytest.mark.parametrize("attr", ["environmentVariables", "environmentVariablesLayered"])
def test_environment_variables_are_inherited(attr):
    load(attr)
    env = out("child:latest", "env").splitlines()
    assert "FROM_PARENT=true" in env, "envvars from the parent should be preserved"
    assert "FROM_CHILD=true" in env, "envvars from the child should be preserved"
    assert "LAST_LAYER=child" in env, "envvars from the child should take priority"


def test_inherited_environment_variables_of_layered_images_are_resolved():
    # The config as stored in the archive (nixpkgs reads it with tar and jq).
    env = read_archive(image_bytes("environmentVariablesLayered")).config["config"]["Env"]
    assert sum(entry.startswith("LAST_LAYER") for entry in env) == 1, "envvars overridden by child should be unique"


def test_image_with_only_two_layers_loads():
    archive = load("two-layered-image")
    assert len(archive.manifest[0]["Layers"]) == 2


def test_bulk_layer_does_not_miss_store_paths():  # nixpkgs issue 78744
    load("bulk-layer")
    run("bulk-layer:latest", "ls", "/bin/hello")


def test_bulk_layer_with_a_base_image_respects_max_layers():
    load("layered-bulk-layer")
    run("layered-bulk-layer:latest", "ls", "/bin/hello")
    assert len(set_of_layers("layered-bulk-layer:latest")) == 4


def test_no_store_is_needed():
    load("no-store-paths")
    run("no-store-paths:latest", "ls", "/")
    assert run("no-store-paths:latest", "ls", "/nix/store", check=False).returncode != 0


def test_build_layered_image_does_not_change_store_path_contents():
    load("filesInStore")
    run("file-in-store:latest", "nix-store", "--verify", "--check-contents")
    r = run("file-in-store:latest")
    assert "some data" in (r.stdout + r.stderr).decode()


def test_cross_image_has_the_other_architecture():
    load("cross")
    expected = (
        "amd64" if evaluate("(import " + REPO + "/tests/hostpkgs.nix { }).system") == "aarch64-linux" else "arm64"
    )
    assert inspect(image_name("cross"))["Architecture"] == expected


def test_store_symlink_layers_are_not_dereferenced():
    load("layeredStoreSymlink")
    symlink = evaluate("examples.layeredStoreSymlink.passthru.symlink.outPath")
    build("layeredStoreSymlink.passthru.symlink")
    run("layeredstoresymlink:latest", "bash", "-c", f"test -L {symlink}")


@pytest.mark.parametrize("attr", ["prefixedImage", "prefixedLayeredImage"])
def test_registry_prefix_in_image_name(attr):
    load(attr)
    name = image_name(attr)
    assert name.startswith("registry-1.docker.io/")
    # nixpkgs: docker images --format '{{.Repository}}' | grep -F NAME
    assert [r for r in images("{{.Repository}}") if name in r]


def test_fake_root_commands_chown():
    load("layeredImageWithFakeRootCommands")
    assert out("layered-image-with-fake-root-commands:latest", "stat", "-c", "%u", "/home/jane") == "1000\n"


def _repo_tags() -> list:
    return images("{{.Repository}}-{{.Tag}}")


def test_merged_images_load_every_image():
    load("mergedBashAndRedis")
    tags = _repo_tags()
    # ADAPTED: podman names an image without a registry localhost/NAME.
    for attr in ("bash", "redis"):
        assert any(t.endswith(f"{image_name(attr)}-{image_tag(attr)}") for t in tags)
    assert "version" in out("bash:latest", "bash", "--version")
    assert "redis-cli" in out("redis:latest", "redis-cli", "--version")


def test_merged_images_load_every_image_missing_tags():
    load("mergedBashNoTagAndRedis")
    tags = _repo_tags()
    for attr in ("bashNoTag", "redis"):
        assert any(t.endswith(f"{image_name(attr)}-{image_tag(attr)}") for t in tags)
    ref = f"{image_name('bashNoTag')}:{image_tag('bashNoTag')}"
    assert "version" in out(ref, "bash", "--version")
    assert "redis-cli" in out("redis:latest", "redis-cli", "--version")


def test_merge_images_preserves_owners():
    load("mergedBashFakeRoot")
    assert out("layered-image-with-fake-root-commands:latest", "stat", "-c", "%u", "/home/jane") == "1000\n"


def test_export_image_is_a_valid_tarball():
    path = build("exportBash")
    with tarfile.open(path) as tar:
        names = tar.getnames()
    # nixpkgs greps `tar -tf` for './bin/bash' (a regular expression).
    assert any(n in ("./bin/bash", "bin/bash") for n in names), names[:20]


def test_redis_runs():
    # nixpkgs builds redis and runs only redis-cli; the server is run here too.
    load("redis")
    assert out("redis:latest", "redis-server", "--version").startswith("Redis server")


# --- checks of nixpkgs' later docker-tools.nix ---------------------------------------------


def test_include_store_path_false_with_fakechroot():
    load("helloOnRootNoStoreFakechroot")
    assert run("hello:latest", check=False).returncode != 0
    store = "/nix/store"
    assert "hello" in out("hello:latest", volume=f"{store}:{store}:ro").lower()


@pytest.mark.parametrize("attr", ["helloOnRootNoStore", "helloOnRootNoStoreFakechroot"])
def test_zero_store_paths_are_added(attr):
    # nixpkgs: crane export | tar t | grep nix/store must fail.
    archive = read_archive(image_bytes(attr))
    names = [m.name for layer in archive.layer_members() for m in layer]
    assert not [n for n in names if "nix/store/" in n]


def test_layers_unpacked_in_order_before_run_as_root():
    load("layersUnpackOrder")
    assert "abc" in out("layers-unpack-order-c:latest", "cat", "/layer-order")


def test_fake_chroot_fake_root_commands():
    load("imageViaFakeChroot")
    assert "hello" in out("image-via-fake-chroot:latest").lower()


@pytest.mark.parametrize("attr", ["build-image-with-path", "layered-image-with-path"])
def test_bare_paths_in_contents(attr):
    # ./test-dummy is a directory holding hello.txt: copied (linked) at /.
    load(attr)
    run(f"{image_name(attr)}:latest", "bash", "-c", "[[ -e /hello.txt ]]")


@pytest.mark.parametrize("attr", ["build-image-with-architecture", "layered-image-with-architecture"])
def test_architecture_in_manifests(attr):
    load(attr)
    assert inspect(f"{attr}:latest")["Architecture"] == "arm64"


def test_image_with_certs():
    load("image-with-certs")
    for path in (
        "/etc/ssl/certs/ca-bundle.crt",
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ):
        run("image-with-certs:latest", "test", "-r", path)


def test_merge_of_varying_compressors():
    load("mergeVaryingCompressor")
    for ref in ("redis:latest", "bash-uncompressed:latest", "bash-zstd:latest"):
        podman("image", "exists", ref)


def test_chown_is_persistent_in_fake_root_commands():
    load("chownTestImage")
    assert out("chown-test:latest") == "12345:12345\n"


def test_non_root_user():
    # nixpkgs loads non-root-test and then runs chown-test (its image's User
    # "user" has no passwd entry, so docker would not start it either): the
    # same here, plus what uid/gid/uname/gname are for, read in the archive.
    archive = load("nonRootTestImage")
    store_entries = [m for layer in archive.layer_members()[:-1] for m in layer if m.name.startswith("nix/store/")]
    assert store_entries and all(
        (m.uid, m.gid, m.uname, m.gname) == (1000, 1000, "user", "user") for m in store_entries
    )
    load("chownTestImage")
    assert out("chown-test:latest") == "12345:12345\n"


# --- nixos/tests/docker-tools-nix-shell.nix ------------------------------------------------


def test_build_image_with_nix_db_has_a_nix_database():
    load("nix")
    # ADAPTED: nixpkgs asks about /bin/bash, a link into the store in its
    # later nix example (copyToRoot = buildEnv); in the example ported here
    # (contents copied) /bin/bash is a copy, so the store path is asked.
    bash = store_path("bash")
    assert out("nix:latest", "nix-store", "-q", "--references", f"{bash}/bin/bash").strip()


def test_nix_shell_can_build_a_basic_derivation():
    load("nix-shell-basic")
    lines = out("nix-shell-basic:latest", "bash", "-c", "buildDerivation && $out/bin/hello").splitlines()
    assert "Hello, world!" in lines


@pytest.mark.parametrize(
    "attr, expected",
    [
        ("nix-shell-hook", "This is the shell hook!"),
        ("nix-shell-inputs", "Hello, world!"),
        ("nix-shell-pass-as-file", "this is a string"),
        ("nix-shell-run", "This shell is not interactive"),
        ("nix-shell-command", "This shell is interactive"),
    ],
)
def test_nix_shell_output(attr, expected):
    load(attr)
    assert expected in out(f"{attr}:latest", tty=True)


@pytest.mark.parametrize(
    "attr", ["nix-shell-writable-home", "nix-shell-nonexistent-home", "nix-shell-build-derivation"]
)
def test_nix_shell_succeeds(attr):
    load(attr)
    run(f"{attr}:latest", tty=True)


def test_stream_layered_image_with_nix_db():
    load("nix-layered")
    # ADAPTED: USER=root given to the container: the stand-in's Nix is
    # Debian's 2.8, which stops with "cannot figure out user name" without
    # it; nixpkgs' Nix does not need it (its example sets no USER).
    references = out("nix-layered:latest", "nix-store", "-q", "--references", "/bin/bash", env=["USER=root"]).split()
    assert references and all(r.startswith("/nix/store/") for r in references)
