"""nix2container's perms, as rootfs reads them: the regex is searched
anywhere in the source path; mode is a string of octal digits."""

import pytest

from builder.errors import SpecError
from builder.tar.rootfs import parse_perms

STORE = "/nix/store/aaaa-app"


def one(**item):
    return parse_perms([{"path": STORE, **item}])[0]


@pytest.mark.parametrize(
    "regex, source, applies",
    [
        ("tmp", f"{STORE}/var/tmp/a", True),  # anywhere, like Go's MatchString
        ("tmp", f"{STORE}/var/log", False),
        ("^tmp", f"{STORE}/tmp", False),  # anchored: the path starts with /nix
        ("/tmp$", f"{STORE}/tmp", True),
        ("/tmp$", f"{STORE}/tmp/x", False),
        (".*", STORE, True),
        (".*", "/nix/store/bbbb-other/tmp", False),  # outside path: never
    ],
)
def test_regex_is_searched(regex, source, applies):
    assert one(regex=regex).applies(source) is applies


@pytest.mark.parametrize("mode, want", [("0644", 0o644), ("644", 0o644), ("4755", 0o4755), (None, None)])
def test_mode_strings(mode, want):
    assert one(mode=mode).mode == want


@pytest.mark.parametrize(
    "mode, message",
    [
        (644, 'mode must be a string like "0644", got the number 644'),
        ("rw-r--r--", "is not an octal mode"),
        ("0o644", "is not an octal mode"),
        ("99", "is not an octal mode"),
        (True, "is not an octal mode"),
    ],
)
def test_bad_modes(mode, message):
    with pytest.raises(SpecError, match="perms: entry 0: .*" + message):
        one(mode=mode)
