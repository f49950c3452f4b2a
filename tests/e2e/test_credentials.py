"""Credentials as docker, podman and skopeo users have them, against a real
registry with htpasswd auth: a credential helper (a real executable on
PATH) named by ``credHelpers`` or ``credsStore``, the 401 message naming
every file looked at, and a private ``pullImage`` inside a Nix build from an
auth file outside the store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest
from authfile import b64
from credhelper import install_helper
from nixhelpers import PREAMBLE, REPO, NixError, nix_build, podman_load, podman_run, read_archive
from registry_fixture import PASSWORD, USER, auth_registry  # noqa: F401 (fixture)

HELLO = """dockerTools.streamLayeredImage {
  name = "cred-hello"; tag = "t"; contents = [ pkgs.hello ]; config.Cmd = [ "/bin/hello" ]; }"""


@pytest.fixture(scope="module")
def hello_stream(session_tmp):
    return nix_build(HELLO, session_tmp)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def user_env(tmp_path, docker_config: dict) -> dict:
    """A user's environment: HOME, XDG_RUNTIME_DIR and PATH (with the test's
    helpers first) under tmp_path; ~/.docker/config.json as given."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True, exist_ok=True)
    (home / ".docker" / "config.json").write_text(json.dumps(docker_config))
    (tmp_path / "run").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "DOCKER_", "XDG_"))}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(tmp_path / "run"))
    env["PATH"] = f"{tmp_path / 'bin'}:{env.get('PATH', os.defpath)}"
    return env


def run(*cmd, env=None, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    return r


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == r.stderr.strip().splitlines()[-1], r.stderr
    return errors[0]


def skopeo_digest(ref: str) -> str:
    r = run("skopeo", "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", f"docker://{ref}")
    return json.loads(r.stdout)["Digest"]


def test_push_and_prefetch_with_credential_helpers(auth_registry, hello_stream, tmp_path):  # noqa: F811
    host = auth_registry.host
    asked = install_helper(tmp_path / "bin", "testhelper", {host: (USER, PASSWORD)})
    env = user_env(tmp_path, {"credHelpers": {host: "testhelper"}, "auths": {}})
    ref = auth_registry.ref(unique("helped") + ":1")
    r = run(hello_stream, "--push", ref, "--insecure", env=env)
    assert r.stdout.strip() == skopeo_digest(ref)
    assert open(asked).read().splitlines() == [f"get {host}"]

    # credsStore (Docker Desktop's way) for prefetch, a user command that pulls.
    asked = install_helper(tmp_path / "bin", "desktop", {host: (USER, PASSWORD)})
    env = user_env(tmp_path, {"credsStore": "desktop", "auths": {host: {}}})
    r = run(sys.executable, "-m", "builder", "prefetch", ref, "--insecure", "--json", env=env)
    assert json.loads(r.stdout)["imageDigest"] == skopeo_digest(ref)
    assert set(open(asked).read().splitlines()) == {f"get {host}"}  # once per registry session


def test_podman_auth_file_in_the_runtime_dir(auth_registry, hello_stream, tmp_path):  # noqa: F811
    env = user_env(tmp_path, {"auths": {}})
    (tmp_path / "run" / "containers").mkdir()
    (tmp_path / "run" / "containers" / "auth.json").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": b64(f"{USER}:{PASSWORD}")}}})
    )
    ref = auth_registry.ref(unique("runtime") + ":1")
    r = run(hello_stream, "--push", ref, "--insecure", env=env)
    assert r.stdout.strip() == skopeo_digest(ref)


def test_no_credentials_names_what_was_looked_at(auth_registry, hello_stream, tmp_path):  # noqa: F811
    install_helper(tmp_path / "bin", "desktop", {})
    env = user_env(tmp_path, {"credsStore": "desktop", "auths": {}})
    r = run(hello_stream, "--push", auth_registry.ref("nobody:1"), "--insecure", env=env, check=False)
    line = one_error_line(r)
    home = tmp_path / "home"
    assert f"no credentials for {auth_registry.host} (looked in: {tmp_path}/run/containers/auth.json (absent); " in line
    assert f"{home}/.docker/config.json (credsStore: docker-credential-desktop had none, no entry)" in line
    assert f"podman login {auth_registry.host}" in line


# --- a private base inside a Nix build ---------------------------------------------------------


@pytest.fixture
def build_readable(tmp_path):
    """A directory the build users (group nixbld) can reach: pytest's own
    temporary directories are private to root."""
    path = tempfile.mkdtemp(prefix="dockertools-auth-", dir="/tmp")
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path)


def auth_json(path: str, host: str, group_readable: bool = True) -> str:
    with open(path, "w") as f:
        json.dump({"auths": {host: {"auth": b64(f"{USER}:{PASSWORD}")}}}, f)
    if group_readable:
        shutil.chown(path, group="nixbld")
        os.chmod(path, 0o640)
    else:
        os.chmod(path, 0o600)
    return path


def private_image(registry, stream, tmp_path, tag: str) -> dict:
    """Push ``stream`` to the registry under a new name; the pullImage
    arguments for it (prefetched with the user's credentials)."""
    ref = registry.ref(unique("private") + ":" + tag)
    creds = tmp_path / f"user-auth-{tag}.json"
    creds.write_text(json.dumps({"auths": {registry.host: {"auth": b64(f"{USER}:{PASSWORD}")}}}))
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(creds)}
    run(stream, "--push", ref, "--insecure", env=env)
    r = run(sys.executable, "-m", "builder", "prefetch", ref, "--insecure", "--json", env=env)
    return json.loads(r.stdout)


def pull_expr(args: dict) -> str:
    fields = " ".join(f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()};" for k, v in args.items())
    return f"dockerTools.pullImage {{ {fields} }}"


def visible(path: str) -> list:
    """nix-build options that show ``path`` to sandboxed builds, as the
    README tells users to (extra-sandbox-paths)."""
    return ["--option", "extra-sandbox-paths", path]


def nix_build_env(expr: str, tmp_path, env: dict, args=()) -> subprocess.CompletedProcess:
    f = tmp_path / f"expr-{uuid.uuid4().hex[:8]}.nix"
    f.write_text(PREAMBLE + expr)
    return subprocess.run(["nix-build", str(f), "--no-out-link", *args], capture_output=True, text=True, env=env)


def test_private_pull_image_with_an_auth_file(auth_registry, hello_stream, tmp_path, build_readable):  # noqa: F811
    args = private_image(auth_registry, hello_stream, tmp_path, "a")
    path = auth_json(os.path.join(build_readable, "auth.json"), auth_registry.host)
    out = nix_build(pull_expr({**args, "authFile": path}), tmp_path, args=visible(path))
    data = open(out, "rb").read()
    assert read_archive(data).manifest[0]["RepoTags"] == [f"{args['finalImageName']}:a"]
    podman_load(data)
    assert podman_run(f"{args['finalImageName']}:a") == "Hello, world!\n"
    # The secret is not in the derivation, only the file's name.
    drv = run("nix-store", "-q", "--deriver", out).stdout.strip()
    text = open(drv).read()
    assert path in text and b64(f"{USER}:{PASSWORD}") not in text


def test_private_pull_image_with_registry_auth_file_set(auth_registry, hello_stream, tmp_path, build_readable):  # noqa: F811
    args = private_image(auth_registry, hello_stream, tmp_path, "b")
    path = auth_json(os.path.join(build_readable, "auth.json"), auth_registry.host)
    r = nix_build_env(pull_expr(args), tmp_path, {**os.environ, "REGISTRY_AUTH_FILE": path}, visible(path))
    assert r.returncode == 0, r.stderr
    assert read_archive(open(r.stdout.strip(), "rb").read()).manifest[0]["RepoTags"] == [f"{args['finalImageName']}:b"]


def test_private_pull_image_failures_say_what_to_do(auth_registry, hello_stream, tmp_path, build_readable):  # noqa: F811
    args = private_image(auth_registry, hello_stream, tmp_path, "c")
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY_AUTH_FILE"}
    r = nix_build_env(pull_expr(args), tmp_path, env)
    assert r.returncode != 0
    assert (
        f"error: GET http://{auth_registry.host}/v2/: 401 authentication required and no credentials for " in r.stderr
    )
    assert "(looked in: no authFile and no REGISTRY_AUTH_FILE); a Nix build sees no HOME" in r.stderr
    assert 'authFile = "/path/auth.json"' in r.stderr and "Traceback" not in r.stderr

    private = auth_json(os.path.join(build_readable, "root-only.json"), auth_registry.host, group_readable=False)
    r = nix_build_env(pull_expr({**args, "authFile": private}), tmp_path, env, visible(private))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"error: authFile {private} is not readable by this build's user (nixbld" in r.stderr
    assert "chgrp nixbld FILE && chmod 640 FILE" in r.stderr

    missing = os.path.join(build_readable, "missing.json")
    r = nix_build_env(pull_expr({**args, "authFile": missing}), tmp_path, env)
    assert (
        f"error: authFile {missing} does not exist inside the build: Nix's sandbox shows a build only the store "
        f"and extra-sandbox-paths (nix.conf: extra-sandbox-paths = {missing})"
    ) in r.stderr


@pytest.mark.parametrize(
    "value, message",
    [
        ("./auth.json", "authFile is a path value, which Nix would copy into the world-readable store"),
        ('"${pkgs.hello}/auth.json"', "is in the Nix store, which every user can read"),
        ('"auth.json"', 'authFile "auth.json" must be an absolute path'),
        ("1", "authFile must be"),
    ],
)
def test_auth_files_that_would_leak_are_refused_at_evaluation(value, message, tmp_path):
    expr = (
        'dockerTools.pullImage { imageName = "reg.test/a"; imageDigest = "sha256:'
        + "0" * 64
        + f'"; hash = ""; authFile = {value}; }}'
    )
    with pytest.raises(NixError) as e:
        nix_build(expr, tmp_path, args=["--dry-run"])
    assert "error: dockerTools.pullImage: authFile " in e.value.stderr and message in e.value.stderr
