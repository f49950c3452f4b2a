"""builder.steps.copy: destinations as skopeo spells them."""

from __future__ import annotations

import pytest

from builder.errors import SpecError
from builder.steps.copy import Destination, _name_tag, _oci_ref, parse_destination


@pytest.mark.parametrize(
    "text, want",
    [
        ("docker://reg.test:5000/team/app:1", Destination("docker", "", "reg.test:5000/team/app:1")),
        ("docker-daemon:app:1", Destination("docker-daemon", "", "app:1")),
        ("docker-daemon:", Destination("docker-daemon", "", "")),
        ("containers-storage:localhost/app:2", Destination("containers-storage", "", "localhost/app:2")),
        ("docker-archive:/tmp/a.tar", Destination("docker-archive", "/tmp/a.tar", "")),
        (
            "docker-archive:/tmp/a.tar:reg.test:5000/app:3",
            Destination("docker-archive", "/tmp/a.tar", "reg.test:5000/app:3"),
        ),
        ("oci-archive:out.tar:v1", Destination("oci-archive", "out.tar", "v1")),
        ("oci:dir", Destination("oci", "dir", "")),
        ("oci:dir:v2", Destination("oci", "dir", "v2")),
    ],
)
def test_destinations(text, want):
    assert parse_destination(text) == want


@pytest.mark.parametrize(
    "text, message",
    [
        ("/tmp/a.tar", "expected one of docker://HOST/NAME:TAG, docker-daemon:NAME:TAG"),
        ("dir:/tmp/x", "expected one of"),
        ("docker:reg/app:1", r"a registry is docker://HOST\[:PORT\]/NAME:TAG"),
        ("oci-archive:", "the file is missing"),
        ("oci::tag", "the directory is missing"),
    ],
)
def test_bad_destinations(text, message):
    with pytest.raises(SpecError, match=message):
        parse_destination(text)


def test_names_and_tags_of_the_copy():
    assert _name_tag("", "own:t", "x") == "own:t"
    assert _name_tag("other", "own:t", "x") == "other:latest"
    assert _name_tag("reg.test:5000/a/b:2", "own:t", "x") == "reg.test:5000/a/b:2"
    assert _oci_ref("v9", "reg.test/own:t", "oci") == "reg.test/own:v9"
    assert _oci_ref("x/y:1", "own:t", "oci") == "x/y:1"
    with pytest.raises(SpecError, match="a digest cannot name a copy"):
        _name_tag("a@sha256:" + "0" * 64, "own:t", "docker-daemon")
    with pytest.raises(SpecError, match="not a valid image name"):
        _name_tag("Upper:1", "own:t", "docker-daemon")
