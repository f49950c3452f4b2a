"""No credential a user gives ever reaches a message, a log line or the
store: push, pull (prefetch) and pullImage, with credentials in every form
the builder reads (REGISTRY_USERNAME/REGISTRY_PASSWORD, REGISTRY_AUTH_FILE
with ``auth`` or ``username``/``password``, podman's auth.json under
XDG_RUNTIME_DIR, docker's config.json under DOCKER_CONFIG, a proxy URL with
user:password), right or wrong, and a reference carrying user:password@.

Every run's stdout and stderr, the registry's stored blobs, and the store
outputs and derivations are searched for each secret in every spelling
(plain, base64 of user:password, URL-quoted)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.parse
import uuid

import pytest
import registry_fixture
from nixhelpers import REPO, NixError, nix_build
from registry_fixture import open_registry  # noqa: F401 (fixture)
from test_dropin import ConnectProxy

USER = "u-Kq2Zx7"
PASSWORD = "pw-Xc93LmQ4v"
TOKEN = "tok-Hh71PqZ0aa"  # an auth entry holding a token, no ":"
WRONG = "pw-Wr0ngZz91"
PROXY_USER, PROXY_PASSWORD = "px-Us3rQ", "px-Lm2Qa8T"
SECRETS = [USER, PASSWORD, TOKEN, WRONG, PROXY_USER, PROXY_PASSWORD]


def spellings(secret: str):
    yield secret
    yield urllib.parse.quote(secret)
    for pair in (f"{USER}:{secret}", f"{secret}:{PASSWORD}", f"{PROXY_USER}:{secret}", secret):
        yield base64.b64encode(pair.encode()).decode()


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        for form in spellings(secret):
            assert form not in text, f"{where}: a credential ({secret}) shows as {form!r}:\n{text[-3000:]}"


@pytest.fixture(scope="module")
def secret_registry(tmp_path_factory):
    """A registry with htpasswd auth for USER/PASSWORD (distinctive, so a
    leak cannot hide among ordinary words)."""
    if subprocess.run(["which", "docker-registry"], capture_output=True).returncode != 0:
        pytest.skip("docker-registry is not installed (bash tests/setup.sh)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry_fixture, "USER", USER)
        mp.setattr(registry_fixture, "PASSWORD", PASSWORD)
        registry = registry_fixture._start(str(tmp_path_factory.mktemp("secret-registry")), with_auth=True)
    try:
        yield registry
    finally:
        registry_fixture._stop(registry)
        for root, _, files in os.walk(os.path.join(os.path.dirname(registry.log), "storage")):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    assert_clean(f.read().decode("latin-1"), f"registry storage {name}")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return nix_build(
        'dockerTools.streamLayeredImage { name = "secret-test"; contents = [ fixtures.chainA ]; }',
        tmp_path_factory.mktemp("secret-image"),
    )


def _clean_env(**extra) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().endswith("_proxy") and not k.startswith("REGISTRY_") and k not in ("XDG_RUNTIME_DIR",)
    }
    env["DOCKER_CONFIG"] = "/nonexistent"
    env.update(extra)
    return env


def _auth(path, entry) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": entry}))
    return str(path)


def credential_forms(tmp_path, host: str, password: str):
    """(name, environment) for every way the builder reads credentials."""
    pair = base64.b64encode(f"{USER}:{password}".encode()).decode()
    runtime = tmp_path / "runtime"
    _auth(runtime / "containers" / "auth.json", {host: {"auth": pair}})
    docker = tmp_path / "docker"
    _auth(docker / "config.json", {f"https://{host}/v1/": {"auth": pair}})
    return [
        ("env", _clean_env(REGISTRY_USERNAME=USER, REGISTRY_PASSWORD=password)),
        ("auth-file", _clean_env(REGISTRY_AUTH_FILE=_auth(tmp_path / "a.json", {host: {"auth": pair}}))),
        (
            "auth-file-fields",
            _clean_env(REGISTRY_AUTH_FILE=_auth(tmp_path / "b.json", {host: {"username": USER, "password": password}})),
        ),
        ("xdg-runtime-dir", _clean_env(XDG_RUNTIME_DIR=str(runtime))),
        ("docker-config", _clean_env(DOCKER_CONFIG=str(docker))),
    ]


def _run(*cmd, env) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert "Traceback" not in r.stderr
    assert_clean(r.stdout + r.stderr, " ".join(cmd[:3]))
    return r


def _push(image, ref, env):
    return _run(image, "--push", ref, "--insecure", env=env)


def _prefetch(ref, env):
    return _run(sys.executable, "-m", "builder", "prefetch", ref, "--insecure", "--json", env=env)


def test_push_and_pull_with_credentials_in_every_form(secret_registry, image, tmp_path):
    for form, env in credential_forms(tmp_path, secret_registry.host, PASSWORD):
        ref = secret_registry.ref(f"s-{uuid.uuid4().hex[:8]}:1")
        r = _push(image, ref, env)
        assert r.returncode == 0, (form, r.stderr)
        r = _prefetch(ref, env)
        assert r.returncode == 0, (form, r.stderr)
        assert json.loads(r.stdout)["imageDigest"].startswith("sha256:")


def test_wrong_credentials_in_every_form_fail_without_showing_them(secret_registry, image, tmp_path):
    ref = secret_registry.ref("s-wrong:1")
    forms = credential_forms(tmp_path, secret_registry.host, WRONG)
    token_entry = {secret_registry.host: {"auth": base64.b64encode(TOKEN.encode()).decode()}}
    forms.append(("token", _clean_env(REGISTRY_AUTH_FILE=_auth(tmp_path / "t.json", token_entry))))
    for form, env in forms:
        for r in (_push(image, ref, env), _prefetch(ref, env)):
            assert r.returncode == 1 and "401 authentication failed" in r.stderr, (form, r.stderr)


def test_a_reference_with_user_and_password(secret_registry, image):
    host = secret_registry.host
    for ref in (f"{USER}:{PASSWORD}@{host}/s:1", f"docker://{USER}:{PASSWORD}@{host}/s:1", f"{TOKEN}@{host}/s"):
        for r in (_push(image, ref, _clean_env()), _prefetch(ref, _clean_env())):
            assert r.returncode != 0 and "credentials do not go in a reference" in r.stderr


def test_proxy_credentials(open_registry, image):  # noqa: F811 (fixture)
    ref = open_registry.ref(f"s-proxy-{uuid.uuid4().hex[:8]}:1")
    proxy = ConnectProxy()
    try:
        env = _clean_env(http_proxy=f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}")
        assert _push(image, ref, env).returncode == 0
        assert _prefetch(ref, env).returncode == 0
        assert proxy.requests
        # A proxy the builder does not speak: refused, its URL shown without credentials.
        env = _clean_env(http_proxy=f"socks5://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}")
        for r in (_push(image, ref, env), _prefetch(ref, env)):
            assert r.returncode == 1 and "only HTTP proxies are supported" in r.stderr and "***@" in r.stderr
    finally:
        proxy.close()


def _pull_expr(args: dict) -> str:
    fields = " ".join(f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()};" for k, v in args.items())
    return f"dockerTools.pullImage {{ {fields} }}"


def _store_text(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("latin-1")


def test_pull_image_through_a_proxy_with_credentials(open_registry, image, tmp_path):  # noqa: F811 (fixture)
    ref = open_registry.ref(f"s-pullimage-{uuid.uuid4().hex[:8]}:1")
    assert _push(image, ref, _clean_env()).returncode == 0
    args = json.loads(_prefetch(ref, _clean_env()).stdout)
    proxy = ConnectProxy()
    saved = {k: os.environ.get(k) for k in ("http_proxy", "https_proxy", "no_proxy", "NO_PROXY")}
    try:
        # nix-build hands the proxy variables to the fixed-output derivation.
        os.environ["http_proxy"] = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
        for key in ("https_proxy", "no_proxy", "NO_PROXY"):
            os.environ.pop(key, None)
        out = nix_build(_pull_expr(args), tmp_path)
        assert_clean(_store_text(out), "pullImage output")
        drv = subprocess.run(["nix-store", "-qd", out], capture_output=True, text=True).stdout.strip()
        assert_clean(_store_text(drv), "pullImage derivation")
        # And failing: the error line and the build log show no credential.
        os.environ["http_proxy"] = f"socks5://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
        bad = {**args, "finalImageTag": "other"}
        with pytest.raises(NixError) as e:
            nix_build(_pull_expr({**bad, "hash": ""}), tmp_path)
        assert "only HTTP proxies are supported" in e.value.stderr
        assert_clean(e.value.stderr, "failed pullImage")
    finally:
        proxy.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
