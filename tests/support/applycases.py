"""How layer stacks unpack: each case is layers (tarbuild entries) and the
tree whiteout.apply_layers must make of them, in the few words of F, D and L.
umoci must agree on every case (e2e/test_whiteout_umoci.py)."""

from __future__ import annotations

from tarbuild import d, f, opq, sym, wh


def F(data=b"", mode=0o644, uid=0, mtime=1000):
    return ("f", data, mode, uid, mtime)


def D(mode=0o755, uid=0, mtime=1000):
    return ("d", mode, uid, mtime)


def L(target):
    return ("l", target)


APPLY_CASES = {
    "files and dirs": (
        [[d("a", 0o750, mtime=5), f("a/x", b"1", 0o600, uid=7, mtime=6), sym("a/s", "x")]],
        {b"a": D(0o750, mtime=5), b"a/x": F(b"1", 0o600, uid=7, mtime=6), b"a/s": L(b"x")},
    ),
    "whiteout a file": ([[d("a"), f("a/x"), f("a/y")], [wh("a/x")]], {b"a": D(), b"a/y": F()}),
    "whiteout a directory and all below": ([[d("a"), d("a/b"), f("a/b/x"), f("k")], [wh("a")]], {b"k": F()}),
    "whiteout of a missing path makes nothing": ([[f("k")], [wh("nope/x"), wh("y")]], {b"k": F()}),
    "opaque hides lower children only": (
        [[d("a"), f("a/old"), d("a/sub"), f("a/sub/x")], [d("a", 0o700), f("a/new"), opq("a"), f("a/later")]],
        {b"a": D(0o700), b"a/new": F(), b"a/later": F()},
    ),
    "opaque keeps the parents of this layer's paths": (
        [[d("a"), f("a/x"), d("a/s"), f("a/s/old")], [d("a"), d("a/s"), f("a/s/n"), opq("a")]],
        {b"a": D(), b"a/s": D(), b"a/s/n": F()},
    ),
    "a whiteout never deletes what its own layer wrote": (
        [[d("a"), f("a/x")], [d("a"), f("a/y"), wh("a/y"), wh("a/x")]],
        {b"a": D(), b"a/y": F()},
    ),
    "whiteout then the same name again": ([[d("a"), f("a/x")], [wh("a"), d("a"), f("a/y")]], {b"a": D(), b"a/y": F()}),
    "a file replaces a directory": ([[d("a"), f("a/x")], [f("a", b"now a file")]], {b"a": F(b"now a file")}),
    "a directory replaces a file": ([[f("a", b"file")], [d("a", 0o711), f("a/x")]], {b"a": D(0o711), b"a/x": F()}),
    "a symlink replaces a directory": ([[d("a"), f("a/x"), d("b")], [sym("a", "b")]], {b"a": L(b"b"), b"b": D()}),
    "a directory over a directory keeps its children": (
        [[d("k", 0o700, uid=1), f("k/x")], [d("k", 0o755, uid=3, mtime=9)]],
        {b"k": D(0o755, uid=3, mtime=9), b"k/x": F()},
    ),
    "directory mtimes survive later children": (
        [[d("a", mtime=100), f("a/x"), d("e", mtime=100), f("e/y")], [f("a/z"), wh("e/y")]],
        {b"a": D(mtime=100), b"a/x": F(), b"a/z": F(), b"e": D(mtime=100)},
    ),
    "entries through in-root symlinks": (
        [[d("real"), sym("rel", "real"), sym("abs", "/real")], [f("rel/a", b"1"), f("abs/b", b"2")]],
        {b"real": D(), b"rel": L(b"real"), b"abs": L(b"/real"), b"real/a": F(b"1"), b"real/b": F(b"2")},
    ),
    "a whiteout through a symlinked parent": (
        [[d("real"), f("real/x"), f("real/y"), sym("ln", "real")], [wh("ln/x")]],
        {b"real": D(), b"real/y": F(), b"ln": L(b"real")},
    ),
    "a directory entry replaces a symlink to a directory": (
        [[d("real"), f("real/x"), sym("ln", "real")], [d("ln"), f("ln/y")]],
        {b"real": D(), b"real/x": F(), b"ln": D(), b"ln/y": F()},
    ),
    "modes with special bits": (
        [
            [
                d("t", 0o1777),
                f("t/su", b"", 0o4755),
                f("t/sg", b"", 0o2711),
                f("t/none", b"", 0o000),
                d("t/ro", 0o555),
                f("t/ro/x", b"", 0o444),
            ]
        ],
        {
            b"t": D(0o1777),
            b"t/su": F(mode=0o4755),
            b"t/sg": F(mode=0o2711),
            b"t/none": F(mode=0o000),
            b"t/ro": D(0o555),
            b"t/ro/x": F(mode=0o444),
        },
    ),
    "a later layer writes into a read-only directory": (
        [[d("ro", 0o555), f("ro/x")], [f("ro/y", b"y")]],
        {b"ro": D(0o555), b"ro/x": F(), b"ro/y": F(b"y")},
    ),
    "aufs metadata is skipped": ([[f("k"), d(".wh..wh.plnk", 0o700), f(".wh..wh.aufs")]], {b"k": F()}),
    "a ./ entry sets the root's metadata only": ([[d("./", 0o755), f("k")]], {b"k": F()}),
}
