"""builder.model.platform: os/architecture[/variant] as a user writes it."""

from __future__ import annotations

import pytest

from builder.errors import BuildError
from builder.model.platform import parse_platform


@pytest.mark.parametrize(
    "text, want",
    [
        ("linux/amd64", {"os": "linux", "architecture": "amd64"}),
        ("linux/arm/v7", {"os": "linux", "architecture": "arm", "variant": "v7"}),
    ],
)
def test_parse_platform(text, want):
    assert parse_platform(text) == want


@pytest.mark.parametrize("bad", ["amd64", "linux/", "a/b/c/d"])
def test_parse_platform_rejects(bad):
    with pytest.raises(BuildError):
        parse_platform(bad)
