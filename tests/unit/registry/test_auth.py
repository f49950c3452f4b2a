"""builder.registry.auth: WWW-Authenticate challenges, and credentials from
the environment and auth files."""

from __future__ import annotations

import pytest
from authfile import auth_file, b64

from builder.errors import RegistryError
from builder.registry.auth import find_credentials, parse_challenge


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
