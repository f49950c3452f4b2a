"""builder.model.reference: image references as docker and podman read them."""

from __future__ import annotations

import pytest

from builder.errors import SpecError
from builder.model.reference import Reference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "text, want",
    [
        ("127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app", "latest")),
        ("docker://127.0.0.1:5000/a/b:v1.2", Reference("127.0.0.1:5000", "a/b", "v1.2")),
        ("localhost/x@" + DIGEST, Reference("localhost", "x", None, DIGEST)),
        ("ghcr.io/o/r:t@" + DIGEST, Reference("ghcr.io", "o/r", "t", DIGEST)),
        ("app", Reference("docker.io", "library/app", "latest")),
        ("user/app:1", Reference("docker.io", "user/app", "1")),
    ],
)
def test_parse_reference(text, want):
    assert parse_reference(text) == want


@pytest.mark.parametrize(
    "bad", ["host.io/UPPER:1", "host.io/a:bad tag", "host.io/a@sha256:xyz", "host.io/a:" + "t" * 200]
)
def test_parse_reference_rejects(bad):
    with pytest.raises(SpecError):
        parse_reference(bad)


def test_reference_text_and_docker_hub_host():
    ref = parse_reference("app:1")
    assert str(ref) == "docker.io/library/app:1" and ref.api_host == "registry-1.docker.io"
    assert parse_reference("h.io/a@" + DIGEST).target == DIGEST
