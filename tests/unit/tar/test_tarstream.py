"""The tar writer's bytes are pinned.

Layer digests are recorded at build time and the same tar is generated
again later (push, load, stream), possibly by a newer builder: any change in
the bytes breaks every image description already built. The digests below
were taken from the first implementation; a change that moves one of them is
a format change, never an optimisation.

The fixture tree is made by the test itself (content, modes and times are
fixed), so the digests do not depend on the machine.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.sinks.sink import CountSink, FdSink, HashSink, MemorySink
from builder.tar import tarstream
from builder.tar.rootfs import write_layer as write_store_layer
from builder.tar.tarstream import DIR, LNK, REG, SYM, Stamp, header, write_tree

STAMP = Stamp()  # uid 0, gid 0, no names, mtime 1
NAMED = Stamp(uid=0, gid=0, uname="root", gname="root", mtime=1700000000)
OWN_TIMES = Stamp(uid=1000, gid=100, uname="user", gname="users", mtime=None)

LONG_DIR = "d" * 60
LONG_FILE = "n" * 70 + ".txt"  # LONG_DIR/LONG_FILE is over 100 bytes
LONG_COMPONENT = "x" * 150  # one name over 100 bytes on its own
LONG_TARGET = "../" + "t" * 120  # a symlink target over 100 bytes
UNICODE = "ünïcødé-名前.txt"
FILE_TIME = 1234567890

# cat, in Python: the unit suite needs nothing on PATH but python3.
_CAT = "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)"


def _content(seed: str, size: int) -> bytes:
    """Deterministic bytes that do not compress to nothing."""
    out = bytearray()
    block = seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def make_fixture(root: str) -> None:
    """The tree every digest below was taken from. Do not change it."""

    def put(rel, data, mode):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)

    os.makedirs(root)
    put("a.txt", b"hello\n", 0o644)
    put("empty-file", b"", 0o600)
    put("exec.sh", b"#!/bin/sh\necho hi\n", 0o755)
    put("block-512", _content("512", 512), 0o644)
    put("block-513", _content("513", 513), 0o640)
    put("big.bin", _content("big", 200 * 1024 + 7), 0o444)  # above the sendfile threshold
    put("setuid", b"s", 0o4755)
    put("sub/nested/deeper/file", b"deep\n", 0o644)
    put(os.path.join(LONG_DIR, LONG_FILE), b"long path\n", 0o644)
    put(os.path.join(LONG_DIR, LONG_COMPONENT), b"long component\n", 0o600)
    put(UNICODE, b"non-ascii\n", 0o644)
    put("hard1", b"same inode\n", 0o644)
    os.link(os.path.join(root, "hard1"), os.path.join(root, "hard2"))
    os.link(os.path.join(root, "hard1"), os.path.join(root, "sub", "hard3"))
    os.link(os.path.join(root, LONG_DIR, LONG_COMPONENT), os.path.join(root, "z-long-hardlink"))
    os.symlink("../a.txt", os.path.join(root, "sub", "link-rel"))
    os.symlink("does/not/exist", os.path.join(root, "dangling"))
    os.symlink(LONG_TARGET, os.path.join(root, "long-target"))
    os.symlink("sub", os.path.join(root, "dir-link"))
    os.mkfifo(os.path.join(root, "fifo"), 0o644)
    os.mkdir(os.path.join(root, "empty-dir"))
    for d in ("empty-dir", "sub", "sub/nested", "sub/nested/deeper", LONG_DIR):
        os.chmod(os.path.join(root, d), 0o755)
    os.chmod(os.path.join(root, "empty-dir"), 0o700)
    os.chmod(os.path.join(root, "fifo"), 0o644)
    os.chmod(root, 0o755)
    # Children first, so setting a time does not move the parent's again.
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (FILE_TIME, FILE_TIME), follow_symlinks=False)
    os.utime(root, (FILE_TIME, FILE_TIME))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tar") / "fixture")
    make_fixture(root)
    return root


def _tar_bytes(fn) -> bytes:
    sink = MemorySink()
    fn(sink)
    return bytes(sink.data)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree_archive(tree, stamp, hardlinks, include_root=True):
    def fn(sink):
        write_tree(sink, os.fsencode(tree), b"fixture", stamp, hardlinks=hardlinks, include_root=include_root)
        sink.write(tarstream.END_OF_ARCHIVE)

    return _tar_bytes(fn)


# Taken from the first implementation (see the module docstring).
GOLDEN_TREE = {
    ("STAMP", "copies"): "4c842cadee1a28fd5845e7137a06baf9c011facbbaba9e47d85d7df8be0d4071",
    ("STAMP", "links"): "24d1262e7e0d8a028eb268d78088fc61cf1c82148abdf35ad40f4233476e25ce",
    ("NAMED", "copies"): "1f8463fb976d12f947ab165f117bf0b29ab29b62dc7feb684c4f74fbf072edf5",
    ("NAMED", "links"): "8739e2e28bf8103a7f8d90cec3ef41db953bfb046a86174954d9e74bc14c1174",
    ("OWN_TIMES", "copies"): "efb457d7bf89c7373450fba3df9b578e67f1524372fccb16479a0a2549d2dd21",
    ("OWN_TIMES", "links"): "0150f808c12f832fafb7cbc09bf0ca0f8c642e1be6166a9abf74fb14cb18eac4",
    ("STAMP", "children"): "ce1c786306c2baa7da8395bd5716371c32e90787da54163451ea9d1a4ff4b297",
}
GOLDEN_STORE_LAYER = "c6b59627d195ed17a472412ab5fd45ddaf4a51919ab6fc611fca34724075d35b"
GOLDEN_HEADERS = "a0c69fa8cfd918b18493fc7e35f8b67376cfccc20cb6a8cfb0a7a34ff32d8c84"
GOLDEN_HEADER_EDGES = "6facae60a30884134d3efd2e880f740884b6a974ec1d00d516b1e1e03b0f0df8"

STAMPS = {"STAMP": STAMP, "NAMED": NAMED, "OWN_TIMES": OWN_TIMES}


@pytest.mark.parametrize("stamp_name", sorted(STAMPS))
@pytest.mark.parametrize("links", ["copies", "links"])
def test_write_tree_golden(tree, stamp_name, links):
    data = _tree_archive(tree, STAMPS[stamp_name], None if links == "copies" else {})
    assert _sha(data) == GOLDEN_TREE[(stamp_name, links)]


def test_write_tree_without_root_golden(tree):
    data = _tree_archive(tree, STAMP, None, include_root=False)
    assert _sha(data) == GOLDEN_TREE[("STAMP", "children")]


def _store(tmp_path):
    """A fake store under a relative ``nix/store`` so the names are fixed."""
    store = tmp_path / "nix" / "store"
    make_fixture(str(store / "aaaa-fixture"))
    os.makedirs(store / "bbbb-single")
    (store / "bbbb-single" / "f").write_bytes(b"single\n")
    os.chmod(store / "bbbb-single" / "f", 0o444)
    os.chmod(store / "bbbb-single", 0o555)
    (store / "cccc-file").write_bytes(b"a store path that is a file\n")
    os.chmod(store / "cccc-file", 0o555)
    os.symlink("aaaa-fixture", store / "dddd-link")
    return ["nix/store/dddd-link", "nix/store/aaaa-fixture", "nix/store/cccc-file", "nix/store/bbbb-single"]


def test_write_store_layer_golden(tmp_path, monkeypatch):
    paths = _store(tmp_path)
    monkeypatch.chdir(tmp_path)
    data = _tar_bytes(lambda sink: write_store_layer(sink, paths, NAMED))
    assert _sha(data) == GOLDEN_STORE_LAYER
    assert data.endswith(tarstream.END_OF_ARCHIVE)
    assert len(data) % tarstream.BLOCK == 0
    # An empty layer is only the end marker.
    assert _tar_bytes(lambda sink: write_store_layer(sink, [], NAMED)) == tarstream.END_OF_ARCHIVE


def _header_cases():
    yield header(b"short", REG, 0o644, 0, 0, 1, 10)
    yield header(b"dir/", DIR, 0o755, 1, 2, 3, uname="root", gname="wheel")
    yield header(b"p" * 100, REG, 0o644, 0, 0, 1, 1)
    yield header(b"p" * 101, REG, 0o644, 0, 0, 1, 1)
    yield header(b"q" * 300, SYM, 0o777, 0, 0, 1, linkname=b"l" * 250)
    yield header(b"hard", LNK, 0o644, 0, 0, 1, linkname=b"target")
    yield header(b"huge", REG, 0o644, 0, 0, 1, 8 << 30)
    yield header(b"huge-1", REG, 0o644, 0, 0, 1, (8 << 30) - 1)
    yield header(b"ids", REG, 0o644, 2**21, 2**30, 1, 0)
    yield header(b"ids-max", REG, 0o644, 2**21 - 1, 2**21 - 1, 1, 0)
    yield header(b"old", REG, 0o644, 0, 0, -5, 0)
    yield header(b"future", REG, 0o644, 0, 0, 2**40, 0)
    yield header(b"x", REG, 0o644, 0, 0, 1, 0, xattrs={"user.b": b"2", "security.a": b"\0\1"})
    yield header(b"dev", tarstream.CHR, 0o600, 0, 0, 1, devmajor=1, devminor=3)
    yield header(b"blk", tarstream.BLK, 0o600, 0, 0, 1, devmajor=8, devminor=300)
    yield header(b"fifo", tarstream.FIFO, 0o644, 0, 0, 1)
    yield header("ü".encode() * 60, REG, 0o644, 0, 0, 1, uname="ünï" * 20, gname="g")
    # PAX record lengths right where the length prefix gains a digit.
    for n in range(80, 120):
        yield header(b"r" * n, REG, 0o644, 0, 0, 1)
    for n in range(985, 1005):
        yield header(b"s" * n, REG, 0o644, 0, 0, 1)


def test_header_golden():
    blocks = list(_header_cases())
    for b in blocks:
        assert len(b) % tarstream.BLOCK == 0
    assert _sha(b"".join(blocks)) == GOLDEN_HEADERS


def _edge_header_cases():
    m8, m12 = 0o7777777, 0o77777777777
    yield header(b"uid-neg", REG, 0o644, -1, -2, 1, 3)
    yield header(b"dev-max", tarstream.CHR, 0o600, 0, 0, 1, devmajor=m8, devminor=m8)
    # Fields that overflow: the header grows past 512 bytes (as it always
    # did); pinned only so that no change goes unnoticed.
    yield header(b"dev-over", tarstream.BLK, 0o600, 0, 0, 1, devmajor=m8 + 1, devminor=0)
    yield header(b"mode-over", REG, 0o17777777, 0, 0, 1)
    yield header(b"size-max", REG, 0o644, 0, 0, 1, m12)
    yield header(b"size-over", REG, 0o644, 0, 0, 1, m12 + 1)
    yield header(b"mtime-max", REG, 0o644, 0, 0, m12)
    yield header(b"mtime-over", REG, 0o644, 0, 0, m12 + 1)
    yield header(b"ids-max", REG, 0o644, m8, m8, 1)
    yield header(b"ids-over", REG, 0o644, m8 + 1, m8 + 1, 1)
    yield header(bytearray(b"buffer-name"), SYM, 0o777, 0, 0, 1, linkname=bytearray(b"buffer-target"))
    yield header(b"n" * 100, SYM, 0o777, 0, 0, 1, linkname=b"l" * 100)
    yield header(b"n" * 100, SYM, 0o777, 0, 0, 1, linkname=b"l" * 101)
    yield header(b"\xff" * 100, REG, 0o7777, 0, 0, 1, m12, uname="\xff" * 40, gname="g" * 32)
    yield header(b"empty-xattrs", REG, 0o644, 0, 0, 1, xattrs={})
    yield header(b"", DIR, 0o755, 0, 0, 0)
    yield tarstream.padding(0) + tarstream.padding(5) + tarstream.padding(512) + tarstream.padding(-1)


def test_header_edges_golden():
    data = b"".join(_edge_header_cases())
    assert (_sha(data), len(data)) == (GOLDEN_HEADER_EDGES, 12798)


@settings(max_examples=400, deadline=None)
@given(
    name=st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=160),
    kind=st.sampled_from([REG, SYM, LNK]),
    mode=st.integers(0, 0o7777),
    uid=st.integers(0, 2**32),
    gid=st.integers(0, 2**32),
    mtime=st.integers(-(2**34), 2**36),
    size=st.integers(0, 3000),
    target=st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=160),
    uname=st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40),
)
def test_header_reads_back(name, kind, mode, uid, gid, mtime, size, target, uname):
    if kind != REG:
        size = 0
    raw_name, raw_target = name.encode(), target.encode() if kind != REG else b""
    blocks = header(raw_name, kind, mode, uid, gid, mtime, size, raw_target, uname=uname, gname="g")
    assert len(blocks) % tarstream.BLOCK == 0
    data = blocks + b"\1" * size + tarstream.padding(size) + tarstream.END_OF_ARCHIVE
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        (m,) = tf.getmembers()
    assert m.name == name and m.mode == mode and m.size == size
    assert (m.uid, m.gid, m.mtime) == (uid, gid, mtime)
    assert m.type == kind and m.linkname == (target if kind != REG else "")
    if len(uname.encode()) <= 32:
        assert m.uname == uname


def test_padding():
    assert tarstream.padding(0) == b""
    assert tarstream.padding(1) == b"\0" * 511
    assert tarstream.padding(512) == b""
    assert tarstream.padding(1023) == b"\0"


def test_write_file_entry():
    data = _tar_bytes(lambda s: tarstream.write_file_entry(s, b"etc/x", 0o600, b"abc", NAMED))
    assert len(data) == 1024
    with tarfile.open(fileobj=io.BytesIO(data + tarstream.END_OF_ARCHIVE)) as tf:
        (m,) = tf.getmembers()
        assert (m.name, m.mode, m.size, m.mtime, m.uname) == ("etc/x", 0o600, 3, 1700000000, "root")
        assert tf.extractfile(m).read() == b"abc"


# --- every sink sees the same bytes -------------------------------------------


def test_sinks_agree(tree, tmp_path):
    data = _tree_archive(tree, STAMP, None)
    fs = os.fsencode(tree)

    def produce(sink):
        write_tree(sink, fs, b"fixture", STAMP)
        sink.write(tarstream.END_OF_ARCHIVE)

    h = HashSink()
    produce(h)
    assert h.digest == "sha256:" + _sha(data) and h.size == len(data)
    c = CountSink()
    produce(c)
    assert c.size == len(data)

    # A regular file (sendfile works) ...
    out = tmp_path / "out.tar"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        s = FdSink(fd)
        produce(s)
        s.flush()
    finally:
        os.close(fd)
    assert out.read_bytes() == data
    # ... and a pipe, read by another process.
    piped = tmp_path / "piped.tar"
    r, w = os.pipe()
    with open(piped, "wb") as dest:
        reader = subprocess.Popen([sys.executable, "-c", _CAT], stdin=r, stdout=dest)
    os.close(r)
    try:
        s = FdSink(w)
        produce(s)
        s.flush()
    finally:
        os.close(w)
    assert reader.wait() == 0
    assert piped.read_bytes() == data


def test_sinks_without_write_framed(tree):
    """Producers also take duck-typed sinks with only write and copy_file."""
    out = io.BytesIO()

    class Duck:
        def write(self, data):
            out.write(data)

        def copy_file(self, fd, size):
            out.write(os.read(fd, size))

    for stamp in (STAMP, OWN_TIMES):
        out.seek(0)
        out.truncate()
        write_tree(Duck(), os.fsencode(tree), b"fixture", stamp)
        out.write(tarstream.END_OF_ARCHIVE)
        assert out.getvalue() == _tree_archive(tree, stamp, None)


def test_fd_sink_grows_a_pipe():
    fcntl = pytest.importorskip("fcntl")
    if not hasattr(fcntl, "F_GETPIPE_SZ"):
        pytest.skip("no F_GETPIPE_SZ")
    r, w = os.pipe()
    try:
        before = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        FdSink(w)
        after = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        assert after >= before  # grown when the user's pipe quota allows
    finally:
        os.close(r)
        os.close(w)


# --- readers agree on what is in it -------------------------------------------


def _expected_entries(tree, hardlinks: bool):
    """name -> (type, mode, size, link target) walking the tree like the writer."""
    expected = {}
    seen = {}

    def visit(path, name):
        st = os.lstat(path)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            expected[name + "/"] = ("dir", mode, 0, "")
            for child in sorted(os.listdir(os.fsencode(path))):
                visit(os.path.join(path, os.fsdecode(child)), name + "/" + os.fsdecode(child))
        elif stat.S_ISLNK(st.st_mode):
            expected[name] = ("sym", mode, 0, os.readlink(path))
        elif stat.S_ISFIFO(st.st_mode):
            expected[name] = ("fifo", mode, 0, "")
        else:
            key = (st.st_dev, st.st_ino)
            if hardlinks and st.st_nlink > 1 and key in seen:
                expected[name] = ("hard", mode, 0, seen[key])
            else:
                seen.setdefault(key, name)
                expected[name] = ("reg", mode, st.st_size, "")

    visit(tree, "fixture")
    return expected


@pytest.mark.parametrize("hardlinks", [False, True])
def test_python_tarfile_reads_it(tree, hardlinks):
    data = _tree_archive(tree, NAMED, {} if hardlinks else None)
    expected = _expected_entries(tree, hardlinks)
    got = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            name = m.name + ("/" if m.isdir() else "")
            kind = (
                "dir" if m.isdir() else "sym" if m.issym() else "hard" if m.islnk() else "fifo" if m.isfifo() else "reg"
            )
            got[name] = (kind, m.mode, m.size, m.linkname)
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "root", "root", 1700000000)
            if kind == "reg":
                src = os.path.join(os.path.dirname(tree), m.name)
                with open(src, "rb") as f:
                    assert tf.extractfile(m).read() == f.read(), m.name
    assert got == expected
    names = set(got)
    assert f"fixture/{LONG_DIR}/{LONG_FILE}" in names
    assert f"fixture/{LONG_DIR}/{LONG_COMPONENT}" in names
    assert f"fixture/{UNICODE}" in names
    assert "fixture/empty-dir/" in names
    assert got["fixture/long-target"][3] == LONG_TARGET
    if hardlinks:
        assert got["fixture/hard2"] == ("hard", 0o644, 0, "fixture/hard1")
        assert got["fixture/z-long-hardlink"][3] == f"fixture/{LONG_DIR}/{LONG_COMPONENT}"


_TAR_TYPES = {"d": "dir", "l": "sym", "h": "hard", "p": "fifo", "-": "reg"}


def _parse_mode(perms: str) -> int:
    bits = 0
    for i, ch in enumerate(perms[1:]):
        if ch not in "-":
            bits |= 1 << (8 - i)
    if perms[3] in "sS":
        bits |= stat.S_ISUID
    if perms[6] in "sS":
        bits |= stat.S_ISGID
    if perms[9] in "tT":
        bits |= stat.S_ISVTX
    if perms[3] == "S":
        bits &= ~stat.S_IXUSR
    if perms[6] == "S":
        bits &= ~stat.S_IXGRP
    if perms[9] == "T":
        bits &= ~stat.S_IXOTH
    return bits


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
@pytest.mark.parametrize("hardlinks", [False, True])
def test_gnu_tar_reads_it(tree, tmp_path, hardlinks):
    data = _tree_archive(tree, NAMED, {} if hardlinks else None)
    archive = tmp_path / "a.tar"
    archive.write_bytes(data)
    env = dict(os.environ, LC_ALL="C", TZ="UTC")
    out = subprocess.run(
        ["tar", "--quoting-style=literal", "--numeric-owner", "-tvf", str(archive)],
        check=True,
        stdout=subprocess.PIPE,
        env=env,
    ).stdout
    expected = _expected_entries(tree, hardlinks)
    got = {}
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        perms, owner, size, _date, _time, rest = line.split(None, 5)
        kind = _TAR_TYPES[perms[0]]
        target = ""
        if kind == "sym":
            rest, target = rest.split(" -> ", 1)
        elif kind == "hard":
            rest, target = rest.split(" link to ", 1)
        got[rest] = (kind, _parse_mode(perms), int(size), target)
        assert owner == "0/0"
    assert got == expected
    # And it unpacks to the same contents.
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(dest)], check=True, env=env)
    for name, (kind, _mode, _size, _t) in expected.items():
        if kind == "reg":
            with open(os.path.join(os.path.dirname(tree), name), "rb") as a, open(dest / name, "rb") as b:
                assert a.read() == b.read(), name


def test_write_tree_fast_path_matches_header_for_long_names(tmp_path):
    """write_tree packs headers in place, PAX "path" records too; each entry
    must be what header() (the general path) makes, for names around 100
    bytes and around the PAX length prefix's digit boundaries."""
    root = tmp_path / "r"
    root.mkdir()
    for n in (98, 99, 100, 101, 102, 150, 200, 240):
        sub = root / ("d" * min(n, 200))
        sub.mkdir(exist_ok=True)
        (sub / ("f" * min(n, 240))).write_bytes(b"x" * n)
        (sub / ("l" * min(n, 240))).symlink_to("target")
    deep = root.joinpath(*["e" * 200] * 4)  # names of 990-1010 bytes: the prefix gains a digit
    deep.mkdir(parents=True)
    for n in range(115, 145):
        (deep / ("g" * n)).write_bytes(b"")
    stamp = tarstream.Stamp(uid=0, gid=0, uname="root", gname="root", mtime=1)
    fast = MemorySink()
    tarstream.write_tree(fast, os.fsencode(root), b"p" * 60, stamp)
    slow = MemorySink()

    def walk(path: bytes, name: bytes) -> None:
        st = os.lstat(path)
        tarstream.write_entry(slow, path, name, st, stamp)
        if stat.S_ISDIR(st.st_mode):
            for child in sorted(os.listdir(path)):
                walk(os.path.join(path, child), name + b"/" + child)

    walk(os.fsencode(root), b"p" * 60)
    assert bytes(fast.data) == bytes(slow.data)


@settings(max_examples=40, deadline=None)
@given(
    budget=st.integers(min_value=1, max_value=300_000),
    big=st.integers(min_value=0, max_value=300_000),
    links=st.booleans(),
)
def test_pack_in_any_batches_lays_out_the_bytes_of_write_tree(tree, budget, big, links):
    """Whatever its budget and its size of a big file, ``pack`` lays out
    entries in order, stops once the budget is reached, and leaves big files
    to its caller (header made, contents unread): together, the bytes of
    write_tree."""
    stamp = NAMED
    hardlinks = {} if links else None
    entries = tarstream.walk(os.fsencode(tree), b"fixture")
    out = MemorySink()
    while True:
        parts: list = []
        laid, left = tarstream.pack(parts, entries, stamp, hardlinks, big, budget)
        assert laid == sum(map(len, parts))
        if parts:
            assert laid >= budget or left is not None or next(entries, None) is None
        out.write(b"".join(parts))
        if left is not None:
            path, head, size = left
            assert size >= big
            tarstream.write_member(out, path, head, size)
        elif laid < budget:
            break
    out.write(tarstream.END_OF_ARCHIVE)
    assert _sha(bytes(out.data)) == GOLDEN_TREE[("NAMED", "links" if links else "copies")]
