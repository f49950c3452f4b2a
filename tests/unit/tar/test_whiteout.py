"""Table-driven tests of builder.tar.whiteout (its names: test_paths.py).

Every apply case is also unpacked by umoci, which must agree with us
(e2e/test_whiteout_umoci.py); the table is in support/applycases.py."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile

import pytest
from applycases import APPLY_CASES
from picture import picture
from tarbuild import chrdev, d, f, fifo, hard, opq, sym, tar_bytes, wh, write_layers

from builder.errors import ImageFormatError, UnsafePathError
from builder.sinks.sink import MemorySink
from builder.tar import whiteout
from builder.tar.tarstream import Stamp

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (owners, devices)")


# ---------------------------------------------------------------- applying


def _short(pic: dict) -> dict:
    """A picture in the few words the tables use."""
    out = {}
    for rel, (fmt, mode, uid, _gid, mtime, body, _group) in pic.items():
        if fmt == stat.S_IFREG:
            out[rel] = ("f", body, mode, uid, mtime)
        elif fmt == stat.S_IFDIR:
            out[rel] = ("d", mode, uid, mtime)
        elif fmt == stat.S_IFLNK:
            out[rel] = ("l", body)
        else:
            out[rel] = (stat.S_IFMT(fmt), body)
    return out


@pytest.mark.parametrize("layers, expected", APPLY_CASES.values(), ids=APPLY_CASES.keys())
def test_apply(tmp_path, layers, expected):
    files = write_layers(str(tmp_path / "layers"), layers)
    owners = whiteout.apply_layers(str(tmp_path / "root"), files)
    assert _short(picture(str(tmp_path / "root"), owners)) == expected


def test_hardlinks_share_the_inode_and_ignore_their_own_header(tmp_path):
    files = write_layers(
        str(tmp_path / "l"),
        [
            [f("x", b"data", 0o600, uid=5, mtime=500), hard("h1", "x", 0o755, uid=7, mtime=900)],
            [hard("h2", "/x")],
        ],
    )
    root = tmp_path / "root"
    whiteout.apply_layers(str(root), files)
    sts = [os.lstat(root / n) for n in ("x", "h1", "h2")]
    assert len({(s.st_ino, s.st_mode, s.st_mtime) for s in sts}) == 1
    assert stat.S_IMODE(sts[0].st_mode) == 0o600 and sts[0].st_nlink == 3


def test_a_hardlink_to_a_symlink_links_the_symlink(tmp_path):
    files = write_layers(str(tmp_path / "l"), [[f("x"), sym("s", "x"), hard("hs", "s")]])
    whiteout.apply_layers(str(tmp_path / "root"), files)
    assert os.readlink(tmp_path / "root" / "hs") == "x"
    assert os.lstat(tmp_path / "root" / "hs").st_ino == os.lstat(tmp_path / "root" / "s").st_ino


def test_missing_parents_are_0755_root_owned_mtime_0(tmp_path):
    files = write_layers(str(tmp_path / "l"), [[f("a/b/c", b"x", uid=5, gid=6)]])
    owners = whiteout.apply_layers(str(tmp_path / "root"), files)
    pic = picture(str(tmp_path / "root"), owners)
    assert pic[b"a"][:5] == pic[b"a/b"][:5] == (stat.S_IFDIR, 0o755, 0, 0, 0)
    assert owners == {b"a": (0, 0), b"a/b": (0, 0), b"a/b/c": (5, 6)}


def test_owners_are_recorded_without_chown(tmp_path):
    files = write_layers(
        str(tmp_path / "l"), [[d("a", uid=3, gid=4), f("a/x", uid=5, gid=6), hard("a/h", "a/x", uid=9)]]
    )
    owners = whiteout.apply_layers(str(tmp_path / "root"), files, chown=False)
    assert owners == {b"a": (3, 4), b"a/x": (5, 6), b"a/h": (5, 6)}
    assert os.lstat(tmp_path / "root" / "a" / "x").st_uid == os.geteuid()


@ROOT_ONLY
def test_owners_are_set_as_root(tmp_path):
    files = write_layers(
        str(tmp_path / "l"),
        [[d("a", uid=3, gid=4), f("a/x", b"", 0o4755, uid=5, gid=6), sym("a/s", "x", uid=7, gid=8)]],
    )
    whiteout.apply_layers(str(tmp_path / "root"), files)
    got = {n: os.lstat(tmp_path / "root" / n) for n in ("a", "a/x", "a/s")}
    assert [(s.st_uid, s.st_gid) for s in got.values()] == [(3, 4), (5, 6), (7, 8)]
    assert stat.S_IMODE(got["a/x"].st_mode) == 0o4755  # set after chown, which clears it


@ROOT_ONLY
def test_devices_and_fifos(tmp_path):
    files = write_layers(str(tmp_path / "l"), [[d("dev"), chrdev("dev/null", 1, 3), fifo("dev/p", 0o600)]])
    whiteout.apply_layers(str(tmp_path / "root"), files)
    null = os.lstat(tmp_path / "root" / "dev" / "null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISFIFO(os.lstat(tmp_path / "root" / "dev" / "p").st_mode)


def test_compressed_and_streamed_layers(tmp_path):
    plain = tar_bytes([d("a"), f("a/x", b"gz")])
    gz = tmp_path / "l.tar.gz"
    gz.write_bytes(gzip.compress(plain, mtime=0))
    whiteout.apply_layers(str(tmp_path / "root"), [str(gz), io.BytesIO(tar_bytes([f("a/y", b"s")]))])
    assert (tmp_path / "root" / "a" / "x").read_bytes() == b"gz"
    assert (tmp_path / "root" / "a" / "y").read_bytes() == b"s"


@pytest.mark.parametrize(
    "entries, message",
    [
        ([f(".wh.")], "bare .wh."),
        ([hard("h", "missing")], "no such file"),
        ([f("file"), f("file/x")], "not a directory"),
        ([sym("s", "")], "empty symlink target"),
        ([d("dir"), hard("h", "dir")], "no such file"),
        ([sym("l", "l"), f("l/x")], "too many levels"),
    ],
)
def test_malformed_layers(tmp_path, entries, message):
    files = write_layers(str(tmp_path / "l"), [entries])
    with pytest.raises(ImageFormatError, match=message) as info:
        whiteout.apply_layers(str(tmp_path / "root"), files)
    assert "layer0.tar" in str(info.value)


# ---------------------------------------------------------------- safety


def _sentinel(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_bytes(b"keep")
    return outside


SAFETY_CASES = {
    "dot-dot name": [f("../outside/sentinel", b"evil")],
    "dot-dot deeper": [d("a"), f("a/../../outside/sentinel", b"evil")],
    "dot-dot directory": [d("../outside/newdir")],
    "escaping symlink then a file through it": [sym("esc", "../outside"), f("esc/sentinel", b"evil")],
    "escaping symlink then a directory through it": [sym("esc", "../outside"), d("esc/newdir")],
    "escaping symlink deep in the tree": [d("a"), sym("a/esc", "../../outside"), f("a/esc/sentinel", b"e")],
    "chained symlinks": [sym("one", "two"), sym("two", "../outside"), f("one/sentinel", b"evil")],
    "whiteout through an escaping symlink": [sym("esc", "../outside"), wh("esc/sentinel")],
    "opaque through an escaping symlink": [sym("esc", "../outside"), opq("esc")],
    "hardlink to an outside path": [hard("h", "../outside/sentinel")],
    "hardlink through an escaping symlink": [sym("esc", "../outside"), hard("h", "esc/sentinel")],
    "whiteout named dot-dot": [f("x"), f(".wh...")],
}


@pytest.mark.parametrize("entries", SAFETY_CASES.values(), ids=SAFETY_CASES.keys())
def test_nothing_is_written_outside_the_root(tmp_path, entries):
    outside = _sentinel(tmp_path)
    files = write_layers(str(tmp_path / "l"), [[f("ok")], entries])
    with pytest.raises(UnsafePathError) as info:
        whiteout.apply_layers(str(tmp_path / "root"), files)
    assert "layer1.tar" in str(info.value)
    assert os.fsdecode(entries[-1].name) in str(info.value)
    assert sorted(os.listdir(outside)) == ["sentinel"]
    assert (outside / "sentinel").read_bytes() == b"keep"


def test_absolute_names_and_symlinks_stay_inside(tmp_path):
    # An absolute name or symlink target means the image's root, as in
    # docker, umoci and GNU tar: it lands inside, it does not fail.
    outside = _sentinel(tmp_path)
    absolute = os.fsencode(outside / "sentinel")
    files = write_layers(
        str(tmp_path / "l"),
        [
            [
                f(absolute, b"evil"),
                sym("abs", os.fsencode(outside)),
                f("abs/other", b"evil"),
                sym("top", "/"),
                f("top/x", b"x"),
            ]
        ],
    )
    root = tmp_path / "root"
    whiteout.apply_layers(str(root), files)
    assert (root / absolute.lstrip(b"/").decode()).read_bytes() == b"evil"
    assert (root / os.fsdecode(os.fsencode(outside).lstrip(b"/")) / "other").read_bytes() == b"evil"
    assert (root / "x").read_bytes() == b"x"
    assert sorted(os.listdir(outside)) == ["sentinel"]
    assert (outside / "sentinel").read_bytes() == b"keep"


def test_a_file_entry_never_writes_through_an_existing_symlink(tmp_path):
    outside = _sentinel(tmp_path)
    files = write_layers(str(tmp_path / "l"), [[sym("s", os.fsencode(outside / "sentinel"))], [f("s", b"evil")]])
    whiteout.apply_layers(str(tmp_path / "root"), files)
    assert (tmp_path / "root" / "s").read_bytes() == b"evil"
    assert not os.path.islink(tmp_path / "root" / "s")
    assert (outside / "sentinel").read_bytes() == b"keep"


def test_the_root_cannot_change_type(tmp_path):
    files = write_layers(str(tmp_path / "l"), [[sym("./", "/etc")]])
    with pytest.raises(UnsafePathError, match="root"):
        whiteout.apply_layers(str(tmp_path / "root"), files)


# ---------------------------------------------------------------- changesets


def _trees(tmp_path, lower_layers, upper_layers):
    files = write_layers(str(tmp_path / "l"), lower_layers + upper_layers)
    lower, upper = str(tmp_path / "lower"), str(tmp_path / "upper")
    whiteout.apply_layers(lower, files[: len(lower_layers)])
    whiteout.apply_layers(upper, files)
    return files[: len(lower_layers)], lower, upper


def _entries(data: bytes):
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        return [(m.name, m.type, m.mode, m.size, m.linkname) for m in tar]


BASE = [
    [
        d("etc"),
        f("etc/a", b"A"),
        f("etc/b", b"B"),
        d("usr"),
        d("usr/lib"),
        f("usr/lib/x", b"X"),
        f("usr/lib/y", b"Y"),
        sym("lib", "usr/lib"),
    ]
]

CHANGESET_CASES = {
    "nothing changed": ([], []),
    "a new file": ([[f("etc/c", b"C")]], [(b"etc", "context"), (b"etc/c", "add")]),
    "same size, new content": ([[f("etc/a", b"Z")]], [(b"etc", "context"), (b"etc/a", "modify")]),
    "mode only": ([[f("etc/a", b"A", 0o600)]], [(b"etc", "context"), (b"etc/a", "modify")]),
    "owner only": ([[f("etc/a", b"A", uid=5)]], [(b"etc", "context"), (b"etc/a", "modify")]),
    "mtime only": ([[f("etc/a", b"A", mtime=7)]], [(b"etc", "context"), (b"etc/a", "modify")]),
    "a deleted file": ([[wh("etc/a")]], [(b"etc", "context"), (b"etc/a", "delete")]),
    "a deleted tree is one whiteout": ([[wh("usr")]], [(b"usr", "delete")]),
    "a directory becomes a file": ([[f("usr", b"F")]], [(b"usr", "modify")]),
    "a file becomes a directory": (
        [[d("etc/a"), f("etc/a/in")]],
        [(b"etc", "context"), (b"etc/a", "modify"), (b"etc/a/in", "add")],
    ),
    "a directory deleted and made again": (
        [[wh("usr"), d("usr"), d("usr/lib"), f("usr/lib/x", b"X"), f("usr/lib/new")]],
        [(b"usr", "context"), (b"usr/lib", "context"), (b"usr/lib/y", "delete"), (b"usr/lib/new", "add")],
    ),
    "a symlink retargeted": ([[sym("lib", "usr")]], [(b"lib", "modify")]),
    "whiteouts come before their siblings": (
        [[f("-first"), wh("etc"), f("zz")]],
        [(b"etc", "delete"), (b"-first", "add"), (b"zz", "add")],
    ),
    "a new hardlink brings its target along": (
        [[hard("etc/h", "usr/lib/x")]],
        [
            (b"etc", "context"),
            (b"etc/h", "add"),
            (b"usr", "context"),
            (b"usr/lib", "context"),
            (b"usr/lib/x", "modify"),
        ],
    ),  # its group changed
}


@pytest.mark.parametrize("upper_layers, expected", CHANGESET_CASES.values(), ids=CHANGESET_CASES.keys())
def test_changeset(tmp_path, upper_layers, expected):
    lower_files, lower, upper = _trees(tmp_path, BASE, upper_layers)
    changes = whiteout.compute_changeset(lower, upper)
    assert [(c.path, c.kind) for c in changes] == expected
    sink = MemorySink()
    assert whiteout.write_changeset(sink, lower, upper) == changes
    layer = tmp_path / "changeset.tar"
    layer.write_bytes(sink.data)
    names = [n for n, *_ in _entries(sink.data)]
    assert names == [os.fsdecode(c.entry_name) for c in changes]
    again = whiteout.apply_layers(str(tmp_path / "again"), lower_files + [str(layer)])
    assert picture(str(tmp_path / "again"), again) == picture(upper)


def test_changeset_entries(tmp_path):
    _, lower, upper = _trees(tmp_path, BASE, [[wh("etc/a"), f("usr/lib/x", b"new"), hard("etc/h", "usr/lib/x")]])
    sink = MemorySink()
    whiteout.write_changeset(sink, lower, upper, Stamp(uid=0, gid=0, mtime=1))
    assert _entries(sink.data) == [
        ("etc", tarfile.DIRTYPE, 0o755, 0, ""),
        ("etc/.wh.a", tarfile.REGTYPE, 0o600, 0, ""),
        ("etc/h", tarfile.REGTYPE, 0o644, 3, ""),
        ("usr", tarfile.DIRTYPE, 0o755, 0, ""),
        ("usr/lib", tarfile.DIRTYPE, 0o755, 0, ""),
        ("usr/lib/x", tarfile.LNKTYPE, 0o644, 0, "etc/h"),
    ]
    plain = MemorySink()
    whiteout.write_changeset(plain, lower, upper, Stamp(uid=0, gid=0, mtime=1), hardlinks=False)
    assert [t for _, t, *_ in _entries(plain.data)].count(tarfile.LNKTYPE) == 0


def test_a_hardlinked_file_changed_in_place(tmp_path):
    base = BASE + [[hard("etc/h", "usr/lib/x")]]
    _, lower, upper = _trees(tmp_path, base, [])
    with open(tmp_path / "upper" / "usr" / "lib" / "x", "r+b") as out:
        out.write(b"Z")
    os.utime(tmp_path / "upper" / "usr" / "lib" / "x", (1000, 1000))
    changes = whiteout.compute_changeset(lower, upper)
    assert [(c.path, c.kind) for c in changes] == [
        (b"etc", "context"),
        (b"etc/h", "modify"),
        (b"usr", "context"),
        (b"usr/lib", "context"),
        (b"usr/lib/x", "modify"),
    ]
    sink = MemorySink()
    whiteout.write_changeset(sink, lower, upper)
    types = {n: (t, link) for n, t, _, _, link in _entries(sink.data)}
    assert types["etc/h"] == (tarfile.REGTYPE, "") and types["usr/lib/x"] == (tarfile.LNKTYPE, "etc/h")
    layer = tmp_path / "c.tar"
    layer.write_bytes(sink.data)
    files = write_layers(str(tmp_path / "l2"), base)
    whiteout.apply_layers(str(tmp_path / "again"), files + [str(layer)])
    assert picture(str(tmp_path / "again")) == picture(upper)


def test_changesets_are_deterministic(tmp_path):
    _, lower, upper = _trees(tmp_path, BASE, [[f("etc/c", b"C"), wh("usr/lib/y"), hard("h", "etc/a")]])
    first, second = MemorySink(), MemorySink()
    whiteout.write_changeset(first, lower, upper)
    whiteout.write_changeset(second, lower, upper)
    assert first.data == second.data


def test_end_false_leaves_the_archive_open(tmp_path):
    _, lower, upper = _trees(tmp_path, BASE, [[f("etc/c", b"C")]])
    whole, open_ = MemorySink(), MemorySink()
    whiteout.write_changeset(whole, lower, upper)
    whiteout.write_changeset(open_, lower, upper, end=False)
    assert bytes(whole.data) == bytes(open_.data) + b"\0" * 1024
    flat, flat_open = MemorySink(), MemorySink()
    files = write_layers(str(tmp_path / "l2"), BASE)
    whiteout.write_flattened(flat, files)
    whiteout.write_flattened(flat_open, files, end=False)
    assert bytes(flat.data) == bytes(flat_open.data) + b"\0" * 1024


def test_a_fixed_stamp_hides_owner_and_mtime_changes(tmp_path):
    _, lower, upper = _trees(tmp_path, BASE, [[f("etc/a", b"A", uid=5, mtime=7)]])
    assert whiteout.compute_changeset(lower, upper, Stamp(uid=0, gid=0, mtime=1)) == []
    assert whiteout.compute_changeset(lower, upper, Stamp(uid=None, gid=None, mtime=1)) != []


def test_owner_tables_replace_lstat(tmp_path):
    _, lower, upper = _trees(tmp_path, BASE, [])
    table = {b"etc/a": (42, 42)}
    changes = whiteout.compute_changeset(lower, upper, upper_owners=table)
    assert [(c.path, c.kind) for c in changes] == [(b"etc", "context"), (b"etc/a", "modify")]
    sink = MemorySink()
    whiteout.write_changeset(sink, lower, upper, upper_owners=table)
    with tarfile.open(fileobj=io.BytesIO(bytes(sink.data))) as tar:
        assert tar.getmember("etc/a").uid == 42


def test_a_real_wh_file_cannot_go_in_a_changeset(tmp_path):
    _, lower, upper = _trees(tmp_path, BASE, [])
    (tmp_path / "upper" / "etc" / ".wh.sneaky").write_text("")
    with pytest.raises(ImageFormatError, match=".wh."):
        whiteout.compute_changeset(lower, upper)


# ---------------------------------------------------------------- flattening


def test_flattened_layer_equals_the_stack(tmp_path):
    layers = BASE + [
        [wh("etc/a"), f("usr/lib/x", b"new", uid=3), hard("h", "usr/lib/x"), d("usr/lib", 0o700, mtime=50)]
    ]
    files = write_layers(str(tmp_path / "l"), layers)
    owners = whiteout.apply_layers(str(tmp_path / "stack"), files)
    sink, again = MemorySink(), MemorySink()
    whiteout.write_flattened(sink, files, workdir=str(tmp_path))
    whiteout.write_flattened(again, files, workdir=str(tmp_path))
    assert sink.data == again.data
    flat = tmp_path / "flat.tar"
    flat.write_bytes(sink.data)
    flat_owners = whiteout.apply_layers(str(tmp_path / "flat"), [str(flat)])
    assert picture(str(tmp_path / "flat"), flat_owners) == picture(str(tmp_path / "stack"), owners)
    names = [n for n, *_ in _entries(sink.data)]
    assert names == sorted(names, key=lambda n: n.encode().split(b"/")) and names[0] == "etc"
    assert not any(".wh." in n for n in names)


def test_flattening_with_a_stamp(tmp_path):
    files = write_layers(str(tmp_path / "l"), [[d("a", uid=3, mtime=9), f("a/x", uid=4, mtime=9)]])
    sink = MemorySink()
    whiteout.write_flattened(sink, files, Stamp(uid=0, gid=0, mtime=1))
    with tarfile.open(fileobj=io.BytesIO(bytes(sink.data))) as tar:
        assert {(m.name, m.uid, m.mtime) for m in tar} == {("a", 0, 1), ("a/x", 0, 1)}


def test_flattening_with_dot_names_entries_as_tar_c_dot(tmp_path):
    # exportImage: nixpkgs' `tar -C root -c .` names, a root entry first.
    files = write_layers(str(tmp_path / "l"), [[d("a"), f("a/x"), hard("a/y", "a/x"), sym("l", "a/x")]])
    sink = MemorySink()
    whiteout.write_flattened(sink, files, workdir=str(tmp_path), dot=True)
    with tarfile.open(fileobj=io.BytesIO(bytes(sink.data))) as tar:
        members = tar.getmembers()
    assert members[0].name in ("./", ".") and members[0].isdir() and members[0].mode == 0o755
    assert [m.name for m in members[1:]] == ["./a", "./a/x", "./a/y", "./l"]
    assert members[3].islnk() and members[3].linkname == "./a/x"
    # Applied again, the same tree as without the dots.
    plain = MemorySink()
    whiteout.write_flattened(plain, files, workdir=str(tmp_path))
    for data, where in ((sink.data, "dot"), (plain.data, "plain")):
        (tmp_path / f"{where}.tar").write_bytes(bytes(data))
    a = whiteout.apply_layers(str(tmp_path / "a"), [str(tmp_path / "dot.tar")])
    b = whiteout.apply_layers(str(tmp_path / "b"), [str(tmp_path / "plain.tar")])
    assert picture(str(tmp_path / "a"), a) == picture(str(tmp_path / "b"), b)
