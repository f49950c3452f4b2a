"""builder.registry.auth: WWW-Authenticate challenges, and credentials from
the environment and auth files."""

from __future__ import annotations

import json
import os

import pytest
from authfile import auth_file, b64
from credhelper import install_helper

from builder.errors import RegistryError
from builder.registry.auth import auth_files, find_credentials, parse_challenge, search_credentials


def test_parse_challenge_keeps_commas_inside_quotes():
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "reg.example",
        "scope": "repository:a/b:pull,push",
    }
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def test_credentials_come_from_env_then_auth_files(tmp_path):
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    auth_file(
        home / ".docker" / "config.json",
        {"https://reg.example:5000/v1/": {"auth": b64("d:dp")}, "https://index.docker.io/v1/": {"auth": b64("hub:x")}},
    )
    found = find_credentials("reg.example:5000", environ={}, home=str(home))
    assert (found.username, found.password) == ("d", "dp")
    assert find_credentials("docker.io", environ={}, home=str(home)).username == "hub"
    assert find_credentials("other.example", environ={}, home=str(home)) is None

    explicit = auth_file(tmp_path / "auth.json", {"reg.example:5000": {"auth": b64("f:fp:with:colons")}})
    found = find_credentials("reg.example:5000", environ={"REGISTRY_AUTH_FILE": explicit}, home=str(home))
    assert (found.username, found.password, found.source) == ("f", "fp:with:colons", explicit)

    env = {"REGISTRY_USERNAME": "e", "REGISTRY_PASSWORD": "ep", "REGISTRY_AUTH_FILE": explicit}
    assert find_credentials("reg.example:5000", environ=env, home=str(home)).username == "e"
    assert "ep" not in repr(find_credentials("reg.example:5000", environ=env))


def test_a_named_auth_file_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(RegistryError, match="cannot read credentials"):
        find_credentials("h", environ={"REGISTRY_AUTH_FILE": str(tmp_path / "none.json")})


# --- where docker, podman and skopeo keep credentials ---------------------------------------


def _env(tmp_path, **extra):
    """An environment naming only tmp_path's files (no real $HOME, no /run)."""
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "PATH": str(tmp_path / "bin"), **extra}
    return env, str(tmp_path / "home")


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def test_auth_files_in_the_order_containers_auth_json_gives(tmp_path):
    home = "/h"
    assert auth_files({}, home, uid=1000) == [
        ("/run/containers/1000/auth.json", False),
        ("/h/.config/containers/auth.json", False),
        ("/h/.docker/config.json", False),
        ("/h/.dockercfg", True),
    ]
    env = {"XDG_RUNTIME_DIR": "/run/user/7", "XDG_CONFIG_HOME": "/cfg", "DOCKER_CONFIG": "/dk"}
    assert [p for p, _ in auth_files(env, home, uid=7)] == [
        "/run/user/7/containers/auth.json",
        "/cfg/containers/auth.json",
        "/dk/config.json",
        "/h/.dockercfg",
    ]
    # An explicit file is the only one, as podman and skopeo take it.
    assert auth_files({"REGISTRY_AUTH_FILE": "/x.json", **env}, home) == [("/x.json", False)]


def test_each_file_is_read_in_turn_until_one_has_the_host(tmp_path):
    env, home = _env(tmp_path)
    _write(tmp_path / "run/containers/auth.json", {"auths": {"a.test": {"auth": b64("runtime:1")}}})
    _write(tmp_path / "home/.config/containers/auth.json", {"auths": {"b.test": {"auth": b64("config:2")}}})
    _write(tmp_path / "home/.docker/config.json", {"auths": {"https://c.test/v1/": {"auth": b64("docker:3")}}})
    _write(tmp_path / "home/.dockercfg", {"d.test": {"auth": b64("legacy:4"), "email": "x@y"}})
    for host, user in [("a.test", "runtime"), ("b.test", "config"), ("c.test", "docker"), ("d.test", "legacy")]:
        assert find_credentials(host, environ=env, home=home).username == user
    search = search_credentials("e.test", environ=env, home=home)
    assert search.credentials is None
    assert [t.split(" (")[0] for t in search.tried] == [
        str(tmp_path / "run/containers/auth.json"),
        str(tmp_path / "home/.config/containers/auth.json"),
        str(tmp_path / "home/.docker/config.json"),
        str(tmp_path / "home/.dockercfg"),
    ]


def test_the_most_specific_namespace_key_wins(tmp_path):
    env, home = _env(tmp_path)
    _write(
        tmp_path / "run/containers/auth.json",
        {
            "auths": {
                "quay.test": {"auth": b64("host:h")},
                "quay.test/team": {"auth": b64("team:t")},
                "quay.test/team/app": {"auth": b64("app:a")},
            }
        },
    )
    assert find_credentials("quay.test", repository="team/app", environ=env, home=home).username == "app"
    assert find_credentials("quay.test", repository="team/other", environ=env, home=home).username == "team"
    assert find_credentials("quay.test", repository="teamx/app", environ=env, home=home).username == "host"


def test_cred_helpers_and_creds_store_are_run_with_the_host_on_stdin(tmp_path):
    env, home = _env(tmp_path)
    asked = install_helper(
        tmp_path / "bin",
        "ecr",
        {"1.dkr.ecr.test": ("AWS", "ecr-secret"), "https://index.docker.io/v1/": ("<token>", "hub-identity")},
    )
    store_asked = install_helper(tmp_path / "bin", "desktop", {"ghcr.test": ("octo", "gh-secret")})
    config = _write(
        tmp_path / "home/.docker/config.json",
        {
            "credsStore": "desktop",
            "credHelpers": {"1.dkr.ecr.test": "ecr", "docker.io": "ecr"},
            "auths": {"plain.test": {"auth": b64("plain:p")}, "ghcr.test": {}},
        },
    )
    found = find_credentials("1.dkr.ecr.test", environ=env, home=home)
    assert (found.username, found.password, found.identity_token) == ("AWS", "ecr-secret", None)
    assert found.source == f"credential helper docker-credential-ecr (from {config} credHelpers)"
    hub = find_credentials("docker.io", environ=env, home=home)
    assert (hub.username, hub.identity_token) == ("<token>", "hub-identity")
    assert open(asked).read().splitlines() == ["get 1.dkr.ecr.test", "get https://index.docker.io/v1/"]
    gh = find_credentials("ghcr.test", environ=env, home=home)
    assert (gh.username, gh.password) == ("octo", "gh-secret")
    # The store has nothing for plain.test: the file's own entry is used.
    assert find_credentials("plain.test", environ=env, home=home).username == "plain"
    assert open(store_asked).read().splitlines() == ["get ghcr.test", "get plain.test"]
    search = search_credentials("none.test", environ=env, home=home)
    assert search.credentials is None
    assert f"{config} (credsStore: docker-credential-desktop had none, no entry)" in search.tried
    for secret in ("ecr-secret", "hub-identity", "gh-secret"):
        assert secret not in repr(found) + repr(hub) + repr(gh) + search.describe()


def test_a_missing_or_broken_helper_is_one_clear_error(tmp_path):
    env, home = _env(tmp_path)
    config = _write(tmp_path / "home/.docker/config.json", {"credHelpers": {"gcr.test": "gcloud"}})
    with pytest.raises(RegistryError) as e:
        find_credentials("gcr.test", environ=env, home=home)
    assert str(e.value) == (
        f"credential helper docker-credential-gcloud (from {config} credHelpers) is not on PATH: "
        f"install it, or remove it from {config} credHelpers"
    )
    # Other hosts do not run (or need) that helper.
    assert find_credentials("other.test", environ=env, home=home) is None
    broken = tmp_path / "bin" / "docker-credential-gcloud"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text("#!/bin/sh\necho 'token expired, run gcloud auth login'\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(RegistryError, match=r"failed for gcr.test \(exit 3\): token expired, run gcloud auth login$"):
        find_credentials("gcr.test", environ=env, home=home)
    broken.write_text("#!/bin/sh\necho not json\n")
    with pytest.raises(RegistryError, match="answered for gcr.test with something that is not its JSON"):
        find_credentials("gcr.test", environ=env, home=home)


def test_identity_tokens_in_auth_files(tmp_path):
    env, home = _env(tmp_path)
    _write(tmp_path / "home/.docker/config.json", {"auths": {"id.test": {"identitytoken": "refresh-me"}}})
    found = find_credentials("id.test", environ=env, home=home)
    assert (found.username, found.identity_token) == ("<token>", "refresh-me")
    assert "refresh-me" not in repr(found)


def test_helpers_are_not_run_when_told_not_to(tmp_path):
    env, home = _env(tmp_path)
    asked = install_helper(tmp_path / "bin", "desktop", {"h.test": ("u", "p")})
    path = _write(tmp_path / "auth.json", {"credsStore": "desktop", "auths": {}})
    search = search_credentials("h.test", environ={**env, "REGISTRY_AUTH_FILE": path}, home=home, helpers=False)
    assert search.credentials is None
    assert search.tried == [
        f"$REGISTRY_AUTH_FILE {path} (credsStore: docker-credential-desktop not run here, no entry)"
    ]
    assert not os.path.exists(asked)
