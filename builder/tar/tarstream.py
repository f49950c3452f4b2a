"""The one place where tar bytes are made.

We pack every header ourselves instead of using ``tarfile`` so that the bytes
are the same with any Python: ``tarfile`` copies float mtimes, host user
names and hardlink identities, and its PAX choices changed between versions.

Format: POSIX ustar headers; a PAX extended header (``x``) is added only
when a field does not fit (names or link targets over 100 bytes, sizes of
8 GiB and more, big ids or times). Directories are named with a trailing
slash. An archive ends with two zero blocks and is not padded further.

Speed: a header is made from pieces cached per (mode, owner, time, type,
names), so per entry only the name, the size and the checksum are new; a
tree is walked with one ``lstat`` per entry, and a small file costs an
``open``, one ``read`` and a ``close`` (big ones go by ``sendfile`` when the
sink is a file descriptor). ``tests/unit/tar/test_tarstream.py`` pins the bytes.
"""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple
from zlib import adler32

from builder.errors import BuildError
from builder.sinks.sink import Sink, read_exactly
from builder.tar.paths import WHITEOUT_PREFIX, refuse_whiteout_name

__all__ = [
    "BLK",
    "BLOCK",
    "CHR",
    "DIR",
    "BATCH",
    "Entry",
    "Left",
    "END_OF_ARCHIVE",
    "FIFO",
    "LNK",
    "REG",
    "SYM",
    "Stamp",
    "header",
    "pack",
    "padding",
    "refuse_whiteouts",
    "walk",
    "write_entries",
    "write_entry",
    "write_file_entry",
    "write_member",
    "write_tree",
]

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)

REG, LNK, SYM, CHR, BLK, DIR, FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
_PAX = b"x"
_PAX_NAME = b"././@PaxHeader"

_OCTAL_LIMIT = {8: 0o7777777, 12: 0o77777777777}
_MAX8 = _OCTAL_LIMIT[8]
_MAX12 = _OCTAL_LIMIT[12]

# padding(n) for every n % 512: shared, immutable.
_PADDING = tuple(b"\0" * (-n % BLOCK) for n in range(BLOCK))


# A walked entry: its path on disk, its name in the archive, its lstat.
Entry = Tuple[bytes, bytes, os.stat_result]


# Written out, not a dataclass: the stream and push never load dataclasses
# (inspect, ast: ~15 ms of each start); tests/unit/test_imports.py pins it.
class Stamp:
    """Owner and time written into entries; ``None`` keeps the file's own.
    Not to be changed: it is a cache key (``_layout``)."""

    __slots__ = ("uid", "gid", "uname", "gname", "mtime")

    def __init__(
        self, uid: Optional[int] = 0, gid: Optional[int] = 0, uname: str = "", gname: str = "", mtime: Optional[int] = 1
    ) -> None:
        self.uid, self.gid, self.uname, self.gname, self.mtime = uid, gid, uname, gname, mtime

    def _key(self) -> tuple:
        return (self.uid, self.gid, self.uname, self.gname, self.mtime)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if isinstance(other, Stamp) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Stamp(uid={!r}, gid={!r}, uname={!r}, gname={!r}, mtime={!r})".format(*self._key())


def padding(size: int) -> bytes:
    return _PADDING[size % BLOCK]


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _pax_record(key: bytes, value: bytes) -> bytes:
    # The length prefix counts itself, so find the fixed point.
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length = len(b"%d" % length) + len(body)
    return b"%d" % length + body


def _ustar_general(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    kind: bytes,
    linkname: bytes,
    uname: bytes,
    gname: bytes,
    devmajor: int,
    devminor: int,
) -> bytes:
    """Field by field. Only used for values that overflow their fields (the
    header then grows past 512 bytes, as it always did); see ``_ustar``."""
    block = bytearray(BLOCK)
    block[0 : len(name)] = name
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(uid, 8)
    block[116:124] = _octal(gid, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(mtime, 12)
    block[148:156] = b" " * 8
    block[156:157] = kind
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = b"ustar\x0000"
    block[265 : 265 + len(uname)] = uname
    block[297 : 297 + len(gname)] = gname
    block[329:337] = _octal(devmajor, 8)
    block[337:345] = _octal(devminor, 8)
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _bytesum(data: bytes) -> int:
    """sum(data) for at most 256 bytes (names, link targets, numbers), in C:
    Adler-32's low half is 1 + the byte sum modulo 65521, and 256 bytes sum
    to at most 65280."""
    return (adler32(data) & 0xFFFF) - 1


@lru_cache(maxsize=4096)
def _fixed_fields(
    mode: int, uid: int, gid: int, mtime: int, kind: bytes, uname: bytes, gname: bytes, devmajor: int, devminor: int
):
    """The parts of a header that do not depend on name, size or link target:
    bytes 100-124 (mode, uid, gid), 136-148 (mtime), 156-512 with an empty
    link target, and the checksum of them all plus the checksum field's
    eight spaces."""
    ids = b"%07o\0%07o\0%07o\0" % (mode, uid, gid)
    mt = b"%011o\0" % mtime
    tail = b"".join(
        (
            kind,
            b"\0" * 100,
            b"ustar\x0000",
            uname.ljust(32, b"\0"),
            gname.ljust(32, b"\0"),
            b"%07o\0%07o\0" % (devmajor, devminor),
            b"\0" * 167,
        )
    )
    return ids, mt, tail, sum(ids) + sum(mt) + sum(tail) + 8 * 32


def _ustar(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    kind: bytes,
    linkname: bytes,
    uname: bytes,
    gname: bytes,
    devmajor: int,
    devminor: int,
) -> bytes:
    if not (
        0 <= mode <= _MAX8
        and 0 <= uid <= _MAX8
        and 0 <= gid <= _MAX8
        and 0 <= size <= _MAX12
        and 0 <= mtime <= _MAX12
        and 0 <= devmajor <= _MAX8
        and 0 <= devminor <= _MAX8
        and len(name) <= 100
        and len(linkname) <= 100
        and len(kind) == 1
        and len(uname) <= 32
        and len(gname) <= 32
    ):
        return _ustar_general(name, mode, uid, gid, size, mtime, kind, linkname, uname, gname, devmajor, devminor)
    ids, mt, tail, check = _fixed_fields(mode, uid, gid, mtime, kind, bytes(uname), bytes(gname), devmajor, devminor)
    name = bytes(name)
    sz = b"%011o\0" % size
    check += _bytesum(name) + _bytesum(sz)
    if linkname:
        linkname = bytes(linkname)
        check += _bytesum(linkname)
        tail = kind + linkname.ljust(100, b"\0") + tail[101:]
    return b"".join((name.ljust(100, b"\0"), ids, sz, mt, b"%06o\0 " % check, tail))


@lru_cache(maxsize=256)
def _owner_names(uname: str, gname: str):
    return uname.encode()[:32], gname.encode()[:32]


def header(
    name: bytes,
    kind: bytes,
    mode: int,
    uid: int,
    gid: int,
    mtime: int,
    size: int = 0,
    linkname: bytes = b"",
    uname: str = "",
    gname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: Optional[Dict[str, bytes]] = None,
) -> bytes:
    """Header block(s) for one entry; a PAX header first when needed."""
    ub, gb = _owner_names(uname, gname)
    if (
        len(name) <= 100
        and len(linkname) <= 100
        and size <= _MAX12
        and 0 <= mtime <= _MAX12
        and uid <= _MAX8
        and gid <= _MAX8
        and not xattrs
    ):
        return _ustar(name, mode, uid, gid, size, mtime, kind, linkname, ub, gb, devmajor, devminor)
    records = []
    if len(name) > 100:
        records.append(_pax_record(b"path", name))
        name = name[:100]
    if len(linkname) > 100:
        records.append(_pax_record(b"linkpath", linkname))
        linkname = linkname[:100]
    if size > _MAX12:
        records.append(_pax_record(b"size", b"%d" % size))
        size = 0
    if not 0 <= mtime <= _MAX12:
        records.append(_pax_record(b"mtime", b"%d" % mtime))
        mtime = 0 if mtime < 0 else _MAX12
    if uid > _MAX8:
        records.append(_pax_record(b"uid", b"%d" % uid))
        uid = 0
    if gid > _MAX8:
        records.append(_pax_record(b"gid", b"%d" % gid))
        gid = 0
    for key, value in sorted((xattrs or {}).items()):
        records.append(_pax_record(b"SCHILY.xattr." + key.encode(), value))
    entry = _ustar(name, mode, uid, gid, size, mtime, kind, linkname, ub, gb, devmajor, devminor)
    if not records:
        return entry
    body = b"".join(records)
    pax = _ustar(_PAX_NAME, 0o644, 0, 0, len(body), max(0, min(mtime, _MAX12)), _PAX, b"", b"", b"", 0, 0)
    return pax + body + padding(len(body)) + entry


def write_file_entry(sink: Sink, name: bytes, mode: int, data: bytes, stamp: Stamp) -> None:
    """A regular file whose contents are in memory (generated files)."""
    sink.write(
        header(
            name,
            REG,
            mode,
            stamp.uid or 0,
            stamp.gid or 0,
            stamp.mtime or 0,
            len(data),
            uname=stamp.uname,
            gname=stamp.gname,
        )
    )
    sink.write(data)
    sink.write(padding(len(data)))


def write_member(sink: Sink, path: bytes, head: bytes, size: int) -> None:
    """An entry's header (``head``), then ``size`` bytes of the file at
    ``path`` and their padding: what ``pack`` leaves to the sink."""
    if not size:
        # Nothing to read: an empty file is not even opened.
        sink.write(head)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        framed = getattr(sink, "write_framed", None)
        if framed is not None:
            framed(head, fd, size, _PADDING[size % BLOCK])
        else:  # a sink that does not derive from Sink
            sink.write(head)
            sink.copy_file(fd, size)
            sink.write(_PADDING[size % BLOCK])
    finally:
        os.close(fd)


def _member(path: bytes, name: bytes, st: os.stat_result, stamp: Stamp, hardlinks: Optional[dict]) -> Tuple[bytes, int]:
    """One entry's header, and how many bytes of ``path`` follow it (a
    regular file's contents; 0 for anything else)."""
    refuse_whiteout_name(name)
    mode = stat.S_IMODE(st.st_mode)
    uid = st.st_uid if stamp.uid is None else stamp.uid
    gid = st.st_gid if stamp.gid is None else stamp.gid
    mtime = int(st.st_mtime) if stamp.mtime is None else stamp.mtime
    uname, gname = stamp.uname, stamp.gname
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFDIR:
        return header(name + b"/", DIR, mode, uid, gid, mtime, 0, b"", uname, gname), 0
    if fmt == stat.S_IFREG:
        if hardlinks is not None and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = hardlinks.get(key)
            if first is not None:
                return header(name, LNK, mode, uid, gid, mtime, 0, first, uname, gname), 0
            hardlinks[key] = name
        size = st.st_size
        return header(name, REG, mode, uid, gid, mtime, size, b"", uname, gname), size
    if fmt == stat.S_IFLNK:
        return header(name, SYM, mode, uid, gid, mtime, 0, os.readlink(path), uname, gname), 0
    if fmt in (stat.S_IFCHR, stat.S_IFBLK):
        kind = CHR if fmt == stat.S_IFCHR else BLK
        dev = st.st_rdev
        return header(name, kind, mode, uid, gid, mtime, 0, b"", uname, gname, os.major(dev), os.minor(dev)), 0
    if fmt == stat.S_IFIFO:
        return header(name, FIFO, mode, uid, gid, mtime, 0, b"", uname, gname), 0
    raise BuildError(f"{os.fsdecode(path)}: cannot put a socket or unknown file type in a layer")


def refuse_whiteouts(prefix: bytes, names: Sequence[bytes]) -> None:
    """A directory listing's names (under ``prefix``) must not be whiteouts:
    a real file named ``.wh.*`` would delete a file from the layers below.
    (One search of the names joined, as names never hold a NUL byte.)"""
    if b"\0" + WHITEOUT_PREFIX in b"\0" + b"\0".join(names):
        for n in names:
            if n[:4] == WHITEOUT_PREFIX:
                refuse_whiteout_name(prefix + n)


def walk(path: bytes, name: bytes, include_root: bool = True) -> Iterator[Entry]:
    """``path`` and everything below it as ``(path, name, lstat)``: pre-order,
    children sorted by bytes (never by listing order or locale)."""
    lstat, listdir = os.lstat, os.listdir
    st = lstat(path)
    if include_root:
        yield path, name, st
    if not stat.S_ISDIR(st.st_mode):
        return
    stack: List[Tuple[bytes, bytes]] = []

    def push_children(dirpath: bytes, dirname: bytes) -> None:
        base = dirpath if dirpath.endswith(b"/") else dirpath + b"/"
        prefix = dirname + b"/" if dirname else b""
        names = listdir(dirpath)
        refuse_whiteouts(prefix, names)
        names.sort(reverse=True)
        stack.extend([(base + n, prefix + n) for n in names])

    push_children(path, name)
    dir_type = stat.S_IFDIR
    while stack:
        path, name = stack.pop()
        st = lstat(path)
        yield path, name, st
        if st.st_mode & 0o170000 == dir_type:
            push_children(path, name)


def write_tree(
    sink: Sink, path: bytes, name: bytes, stamp: Stamp, hardlinks: Optional[dict] = None, include_root: bool = True
) -> None:
    """Write ``path`` and everything below it (see ``walk``).

    ``hardlinks`` is a dict shared across one layer to keep hardlinks as
    typeflag 1 entries; ``None`` writes every link as its own regular file
    (store layers: the bytes must not depend on store optimisation).
    """
    write_entries(sink, walk(path, name, include_root), stamp, hardlinks)


def write_entries(sink: Sink, entries: Iterable[Entry], stamp: Stamp, hardlinks: Optional[dict] = None) -> None:
    """Write walked entries (``walk``'s, in its order) with their contents:
    laid out by ``pack`` in batches of about ``BATCH`` bytes, each given to
    the sink in one call, files of ``SMALL_FILE`` bytes and more given to
    the sink on their own (which may ``sendfile`` them)."""
    parts: List[bytes] = []
    rest = iter(entries)
    write_parts = getattr(sink, "write_parts", None)  # not on a sink that does not derive from Sink
    while True:
        laid, left = pack(parts, rest, stamp, hardlinks, SMALL_FILE, BATCH)
        if parts:
            if write_parts is not None:
                write_parts(parts)
            else:
                sink.write(b"".join(parts))
            parts.clear()
        if left is not None:
            write_member(sink, *left)
        elif laid < BATCH:
            return


# Bytes laid out before they go to the sink (one write of a pipe's worth:
# see sinks/sink.py), and the size from which a file's contents go to the
# sink on their own instead.
BATCH = 64 << 10
SMALL_FILE = 64 << 10

# An entry left to the caller by pack: its path, its header, and how many
# bytes of the file at that path follow the header.
Left = Tuple[bytes, bytes, int]


@lru_cache(maxsize=64)
def _layout(stamp: Stamp):
    """What ``pack`` needs for a stamp, made once (pack is called per batch):
    the kinds it lays out itself (none unless the stamp fixes owner and
    time), a cache of header fields per ``st_mode``, the PAX header of a
    long name, and the fixed owner and time."""
    s_uid, s_gid, s_mtime = stamp.uid, stamp.gid, stamp.mtime
    fixed = (
        s_uid is not None
        and s_gid is not None
        and s_mtime is not None
        and 0 <= s_uid <= _MAX8
        and 0 <= s_gid <= _MAX8
        and 0 <= s_mtime <= _MAX12
    )
    # Only used when ``fixed``, and then none of them is None.
    f_uid, f_gid, f_mtime = s_uid or 0, s_gid or 0, s_mtime or 0
    kinds = {stat.S_IFREG: REG, stat.S_IFDIR: DIR, stat.S_IFLNK: SYM} if fixed else {}
    # st_mode (type and permissions) -> the header's fixed fields for it
    fields: Dict[int, Tuple[bytes, bytes, bytes, int]] = {}
    # Names over 100 bytes (common under /nix/store/<hash>-<name>/) get a PAX
    # "path" record first: header()'s bytes, with the PAX header's fixed
    # fields computed once.
    pax_ids, pax_mt, pax_tail, pax_check = _fixed_fields(0o644, 0, 0, f_mtime, _PAX, b"", b"", 0, 0)
    pax_check += _bytesum(_PAX_NAME)
    pax_name = _PAX_NAME.ljust(100, b"\0")
    pad = _PADDING

    # len(name) -> what comes before and after the name: the PAX header and
    # its record's length prefix, the record's newline and the padding.
    around: Dict[int, Tuple[bytes, bytes]] = {}

    def long_name(full: bytes) -> bytes:
        known = around.get(len(full))
        if known is None:
            # _pax_record(b"path", full): the length prefix counts its own
            # digits; two steps reach the fixed point.
            core = len(full) + 7
            n = core + len(b"%d" % (core + len(b"%d" % core)))
            sz = b"%011o\0" % n
            block = b"".join((pax_name, pax_ids, sz, pax_mt, b"%06o\0 " % (pax_check + _bytesum(sz)), pax_tail))
            known = around[len(full)] = (block + b"%d path=" % n, b"\n" + pad[n % BLOCK])
        return known[0] + full + known[1]

    return kinds, fields, long_name, f_uid, f_gid, f_mtime


def pack(
    parts: List[bytes], entries: Iterator[Entry], stamp: Stamp, hardlinks: Optional[dict], big: int, budget: int
) -> Tuple[int, Optional[Left]]:
    """Lay out entries taken from ``entries`` as bytes appended to
    ``parts`` (headers, contents, padding), until they run out, or the bytes
    laid out reach ``budget``, or one is left to the caller: a file of
    ``big`` bytes or more, returned with its header made and its contents
    unread. Returns the bytes laid out and the entry left, if any.

    The loop is ``_member`` inlined for directories, regular files and
    symlinks when the stamp fixes owner and time, with the header packed in
    place (the same bytes as ``header()``, which does the rest: long link
    targets, big files, other kinds, owners and times from the files). Per
    small file, that leaves Python a header's few joins and a list's
    appends; the rest is ``lstat``, ``open``, one ``read`` and ``close``.
    The bytes are kept as they were read (no copy into a buffer): a sink
    writes them with one ``writev``.
    """
    kinds, fields, long_name, f_uid, f_gid, f_mtime = _layout(stamp)
    uname, gname = stamp.uname, stamp.gname
    laid = 0
    append = parts.append
    readlink, open_, read, close = os.readlink, os.open, os.read, os.close
    rdonly = os.O_RDONLY
    pad = _PADDING
    zeros = b"\0"
    ub, gb = _owner_names(uname, gname)

    # _bytesum inlined below: (adler32(b) & 0xFFFF) - 1, the -1s folded into check.
    for path, name, st in entries:
        m = st.st_mode
        f = fields.get(m)
        if f is None:
            kind = kinds.get(m & 0o170000)
            if kind is not None:
                f = fields[m] = _fixed_fields(m & 0o7777, f_uid, f_gid, f_mtime, kind, ub, gb, 0, 0)
        size = 0
        if f is None:
            head, size = _member(path, name, st, stamp, hardlinks)
        elif f[2][0] == 48:  # b"0": regular file
            ids, mt, tail, check = f
            size = st.st_size
            if hardlinks is not None and st.st_nlink > 1:
                head, size = _member(path, name, st, stamp, hardlinks)
            elif size <= _MAX12:
                sz = b"%011o\0" % size
                short = name if len(name) <= 100 else name[:100]
                head = b"".join(
                    (
                        b"" if short is name else long_name(name),
                        short.ljust(100, zeros),
                        ids,
                        sz,
                        mt,
                        b"%06o\0 " % (check - 2 + (adler32(short) & 0xFFFF) + (adler32(sz) & 0xFFFF)),
                        tail,
                    )
                )
            else:
                head = header(name, REG, m & 0o7777, f_uid, f_gid, f_mtime, size, b"", uname, gname)
        elif f[2][0] == 53:  # b"5": directory
            ids, mt, tail, check = f
            dname = name + b"/"
            short = dname if len(dname) <= 100 else dname[:100]
            head = b"".join(
                (
                    b"" if short is dname else long_name(dname),
                    short.ljust(100, zeros),
                    ids,
                    b"00000000000\0",
                    mt,
                    b"%06o\0 " % (check - 1 + (adler32(short) & 0xFFFF) + _SIZE0_SUM),
                    tail,
                )
            )
        else:  # symlink
            ids, mt, tail, check = f
            target = readlink(path)
            if len(target) <= 100:
                short = name if len(name) <= 100 else name[:100]
                head = b"".join(
                    (
                        b"" if short is name else long_name(name),
                        short.ljust(100, zeros),
                        ids,
                        b"00000000000\0",
                        mt,
                        b"%06o\0 " % (check - 2 + (adler32(short) & 0xFFFF) + _SIZE0_SUM + (adler32(target) & 0xFFFF)),
                        tail[:1],
                        target.ljust(100, zeros),
                        tail[101:],
                    )
                )
            else:
                head = header(name, SYM, m & 0o7777, f_uid, f_gid, f_mtime, 0, target, uname, gname)
        if size >= big:
            return laid, (path, head, size)
        append(head)
        if size:
            fd = open_(path, rdonly)
            try:
                data = read(fd, size)
                append(data if len(data) == size else read_exactly(fd, size, data))
            finally:
                close(fd)
            laid += size
            tail = pad[size % BLOCK]
            if tail:
                append(tail)
                laid += len(tail)
        laid += len(head)
        if laid >= budget:
            return laid, None
    return laid, None


_SIZE0_SUM = sum(b"%011o\0" % 0)


def write_entry(
    sink: Sink, path: bytes, name: bytes, st: os.stat_result, stamp: Stamp, hardlinks: Optional[dict] = None
) -> None:
    """One entry for a path already lstat'ed. Changesets and flattened trees
    choose their entries, and each entry's owner, themselves."""
    write_member(sink, path, *_member(path, name, st, stamp, hardlinks))
