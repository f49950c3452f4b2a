"""A real file named .wh.NAME never goes into a layer: every reader would
take it for a whiteout and delete NAME. One check (paths.refuse_whiteout_name)
in every writer: store layers, the customisation layer, buildImage's layer,
changesets."""

from __future__ import annotations

import os

import pytest

from builder.errors import ImageFormatError
from builder.sinks.sink import MemorySink
from builder.steps.customise import pack
from builder.tar import paths, rootfs, whiteout
from builder.tar.tarstream import Stamp, write_entry, write_tree


def store_path(tmp_path, name="abc-pkg", wh="etc/.wh.passwd"):
    p = tmp_path / "store" / name
    (p / os.path.dirname(wh)).mkdir(parents=True)
    (p / wh).write_text("not a whiteout")
    (p / "etc" / "passwd").write_text("root")
    return str(p)


@pytest.mark.parametrize("name", [b".wh.x", b"a/.wh.x", b"a/.wh..wh..opq", b"a/b/.wh.c/"])
def test_refused_names(name):
    with pytest.raises(ImageFormatError, match=r"a file named \.wh\.\* cannot go in a layer"):
        paths.refuse_whiteout_name(name)


@pytest.mark.parametrize("name", [b"a/x.wh.y", b"wh.x", b"a/.whx", b"a/b.wh./c"])
def test_allowed_names(name):
    paths.refuse_whiteout_name(name)


@pytest.mark.parametrize("stamp", [Stamp(), Stamp(uid=None, gid=None, mtime=None)])
def test_write_tree_refuses_naming_the_entry(tmp_path, stamp):
    # Both the fast path (fixed owners) and the general one.
    p = store_path(tmp_path)
    with pytest.raises(ImageFormatError, match=r"^/nix/store/abc-pkg/etc/\.wh\.passwd: a file named"):
        write_tree(MemorySink(), os.fsencode(p), b"nix/store/abc-pkg", stamp)


def test_write_entry_refuses(tmp_path):
    p = store_path(tmp_path)
    wh = os.path.join(p, "etc/.wh.passwd")
    with pytest.raises(ImageFormatError, match=r"^/etc/\.wh\.passwd: "):
        write_entry(MemorySink(), os.fsencode(wh), b"etc/.wh.passwd", os.lstat(wh), Stamp())


@pytest.mark.parametrize("perms", [[], [{"path": "PATH", "regex": ".*", "mode": "0644"}]])
def test_store_layers_refuse(tmp_path, perms):
    p = store_path(tmp_path)
    parsed = rootfs.parse_perms([dict(x, path=p) for x in perms])
    with pytest.raises(ImageFormatError, match=r"/store/abc-pkg/etc/\.wh\.passwd: a file named"):
        rootfs.write_layer(MemorySink(), [p], Stamp(), perms=parsed)


def test_copy_to_root_trees_in_layers_refuse(tmp_path):
    p = store_path(tmp_path)
    with pytest.raises(ImageFormatError, match=r"^/etc/\.wh\.passwd: a file named"):
        rootfs.write_layer(MemorySink(), [], Stamp(), roots=[p])


def test_customisation_layer_refuses(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / ".wh..wh..opq").write_text("")
    with pytest.raises(ImageFormatError, match=r"^/etc/\.wh\.\.wh\.\.opq: a file named"):
        pack(str(root), str(tmp_path / "layer.tar"), 1, keep_owners=False)


def test_changesets_refuse_with_the_same_check(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / ".wh.motd").write_text("")
    with pytest.raises(ImageFormatError, match=r"^/etc/\.wh\.motd: a file named"):
        whiteout.compute_changeset(str(lower), str(upper))
