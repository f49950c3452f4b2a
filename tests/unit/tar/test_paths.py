"""builder.tar.paths: layer entry names cleaned, and found under a root
through the symlinks already there, never outside it."""

from __future__ import annotations

import os

import pytest

from builder.errors import ImageFormatError, UnsafePathError
from builder.tar import paths


@pytest.mark.parametrize(
    "name, cleaned",
    [
        (b"a", b"a"),
        (b"./a/b", b"a/b"),
        (b"/a//b/", b"a/b"),
        (b"a/./b/.", b"a/b"),
        (b"a/../b", b"b"),
        (b"./", b""),
        (b"/", b""),
        (b".", b""),
        (b"a/b/../..", b""),
        (b"/abs/name", b"abs/name"),
    ],
)
def test_clean_name(name, cleaned):
    assert paths.clean_name(name) == cleaned


@pytest.mark.parametrize("name", [b"", b"..", b"../x", b"a/../../x", b"/../x", b"a\0b", b"./../../etc/x"])
def test_clean_name_refuses(name):
    with pytest.raises(UnsafePathError):
        paths.clean_name(name)


@pytest.mark.parametrize(
    "links, name, located",
    [
        ({}, b"a/b/c", b"a/b/c"),
        ({b"l": b"real"}, b"l/x", b"real/x"),
        ({b"l": b"/real/sub"}, b"l/x", b"real/sub/x"),
        ({b"l": b"real"}, b"l", b"l"),  # the last component is never followed
        ({b"real/up": b"../other"}, b"real/up/x", b"other/x"),
        ({b"l": b"m", b"m": b"/real"}, b"l/x", b"real/x"),
        ({b"l": b"/"}, b"l/x", b"x"),
    ],
)
def test_locate(tmp_path, links, name, located):
    root = os.fsencode(tmp_path)
    os.mkdir(root + b"/real")
    for link, target in links.items():
        os.symlink(target, root + b"/" + link)
    assert paths.locate(root, name) == located


@pytest.mark.parametrize(
    "links, name, error",
    [
        ({b"l": b"../outside"}, b"l/x", UnsafePathError),
        ({b"real/l": b"../../x"}, b"real/l/x", UnsafePathError),
        ({b"l": b"l"}, b"l/x", ImageFormatError),  # a loop
    ],
)
def test_locate_refuses(tmp_path, links, name, error):
    root = os.fsencode(tmp_path)
    os.mkdir(root + b"/real")
    for link, target in links.items():
        os.symlink(target, root + b"/" + link)
    with pytest.raises(error):
        paths.locate(root, name)


def test_locate_through_a_file_is_an_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ImageFormatError, match="not a directory"):
        paths.locate(os.fsencode(tmp_path), b"file/x")
