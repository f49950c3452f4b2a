"""The one place where tar bytes are made.

We pack every header ourselves instead of using ``tarfile`` so that the bytes
are the same with any Python: ``tarfile`` copies float mtimes, host user
names and hardlink identities, and its PAX choices changed between versions.

Format: POSIX ustar headers; a PAX extended header (``x``) is added only
when a field does not fit (names or link targets over 100 bytes, sizes of
8 GiB and more, big ids or times). Directories are named with a trailing
slash. An archive ends with two zero blocks and is not padded further.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Iterable, Optional

from .errors import BuildError
from .sinks import Sink

__all__ = [
    "BLOCK", "END_OF_ARCHIVE", "REG", "LNK", "SYM", "CHR", "BLK", "DIR", "FIFO",
    "Stamp", "header", "padding", "write_tree", "write_store_layer", "write_file_entry",
]

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)

REG, LNK, SYM, CHR, BLK, DIR, FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
_PAX = b"x"
_PAX_NAME = b"././@PaxHeader"

_OCTAL_LIMIT = {8: 0o7777777, 12: 0o77777777777}


@dataclass(frozen=True)
class Stamp:
    """Owner and time written into entries; ``None`` keeps the file's own."""

    uid: Optional[int] = 0
    gid: Optional[int] = 0
    uname: str = ""
    gname: str = ""
    mtime: Optional[int] = 1


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _pax_record(key: bytes, value: bytes) -> bytes:
    # The length prefix counts itself, so find the fixed point.
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length = len(b"%d" % length) + len(body)
    return b"%d" % length + body


def _ustar(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
           kind: bytes, linkname: bytes, uname: bytes, gname: bytes,
           devmajor: int, devminor: int) -> bytes:
    block = bytearray(BLOCK)
    block[0:len(name)] = name
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(uid, 8)
    block[116:124] = _octal(gid, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(mtime, 12)
    block[148:156] = b" " * 8
    block[156:157] = kind
    block[157:157 + len(linkname)] = linkname
    block[257:265] = b"ustar\x0000"
    block[265:265 + len(uname)] = uname
    block[297:297 + len(gname)] = gname
    block[329:337] = _octal(devmajor, 8)
    block[337:345] = _octal(devminor, 8)
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def header(name: bytes, kind: bytes, mode: int, uid: int, gid: int, mtime: int,
           size: int = 0, linkname: bytes = b"", uname: str = "", gname: str = "",
           devmajor: int = 0, devminor: int = 0, xattrs: Optional[dict] = None) -> bytes:
    """Header block(s) for one entry; a PAX header first when needed."""
    records = []
    if len(name) > 100:
        records.append(_pax_record(b"path", name))
        name = name[:100]
    if len(linkname) > 100:
        records.append(_pax_record(b"linkpath", linkname))
        linkname = linkname[:100]
    if size > _OCTAL_LIMIT[12]:
        records.append(_pax_record(b"size", b"%d" % size))
        size = 0
    if not 0 <= mtime <= _OCTAL_LIMIT[12]:
        records.append(_pax_record(b"mtime", b"%d" % mtime))
        mtime = 0 if mtime < 0 else _OCTAL_LIMIT[12]
    if uid > _OCTAL_LIMIT[8]:
        records.append(_pax_record(b"uid", b"%d" % uid))
        uid = 0
    if gid > _OCTAL_LIMIT[8]:
        records.append(_pax_record(b"gid", b"%d" % gid))
        gid = 0
    for key in sorted(xattrs or ()):
        records.append(_pax_record(b"SCHILY.xattr." + key.encode(), xattrs[key]))
    ub, gb = uname.encode()[:32], gname.encode()[:32]
    entry = _ustar(name, mode, uid, gid, size, mtime, kind, linkname, ub, gb,
                   devmajor, devminor)
    if not records:
        return entry
    body = b"".join(records)
    pax = _ustar(_PAX_NAME, 0o644, 0, 0, len(body), max(0, min(mtime, _OCTAL_LIMIT[12])),
                 _PAX, b"", b"", b"", 0, 0)
    return pax + body + padding(len(body)) + entry


def write_file_entry(sink: Sink, name: bytes, mode: int, data: bytes, stamp: Stamp) -> None:
    """A regular file whose contents are in memory (generated files)."""
    sink.write(header(name, REG, mode, stamp.uid or 0, stamp.gid or 0, stamp.mtime or 0,
                      len(data), uname=stamp.uname, gname=stamp.gname))
    sink.write(data)
    sink.write(padding(len(data)))


def _sorted_children(path: bytes):
    # Sorted by bytes: never depend on directory listing order or locale.
    with os.scandir(path) as it:
        return sorted((e.name, e.path) for e in it)


def _entry(sink: Sink, path: bytes, name: bytes, st: os.stat_result, stamp: Stamp,
           hardlinks: Optional[dict]) -> bool:
    """Write one entry's header (and contents). True when it is a directory."""
    mode = stat.S_IMODE(st.st_mode)
    uid = st.st_uid if stamp.uid is None else stamp.uid
    gid = st.st_gid if stamp.gid is None else stamp.gid
    mtime = int(st.st_mtime) if stamp.mtime is None else stamp.mtime
    common = dict(uname=stamp.uname, gname=stamp.gname)
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFDIR:
        sink.write(header(name + b"/", DIR, mode, uid, gid, mtime, **common))
        return True
    if fmt == stat.S_IFREG:
        if hardlinks is not None and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = hardlinks.get(key)
            if first is not None:
                sink.write(header(name, LNK, mode, uid, gid, mtime, linkname=first, **common))
                return False
            hardlinks[key] = name
        sink.write(header(name, REG, mode, uid, gid, mtime, st.st_size, **common))
        fd = os.open(path, os.O_RDONLY)
        try:
            sink.copy_file(fd, st.st_size)
        finally:
            os.close(fd)
        sink.write(padding(st.st_size))
    elif fmt == stat.S_IFLNK:
        sink.write(header(name, SYM, mode, uid, gid, mtime, linkname=os.readlink(path), **common))
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        kind = CHR if fmt == stat.S_IFCHR else BLK
        sink.write(header(name, kind, mode, uid, gid, mtime, devmajor=os.major(st.st_rdev),
                          devminor=os.minor(st.st_rdev), **common))
    elif fmt == stat.S_IFIFO:
        sink.write(header(name, FIFO, mode, uid, gid, mtime, **common))
    else:
        raise BuildError(f"{os.fsdecode(path)}: cannot put a socket or unknown file type in a layer")
    return False


def write_tree(sink: Sink, path: bytes, name: bytes, stamp: Stamp,
               hardlinks: Optional[dict] = None, include_root: bool = True) -> None:
    """Write ``path`` and everything below it, pre-order, children sorted.

    ``hardlinks`` is a dict shared across one layer to keep hardlinks as
    typeflag 1 entries; ``None`` writes every link as its own regular file
    (store layers: the bytes must not depend on store optimisation).
    """
    stack = [(path, name, include_root)]
    while stack:
        path, name, write_self = stack.pop()
        st = os.lstat(path)
        is_dir = stat.S_ISDIR(st.st_mode)
        if write_self:
            _entry(sink, path, name, st, stamp, hardlinks)
        if is_dir:
            prefix = name + b"/" if name else b""
            children = _sorted_children(path)
            stack.extend((cpath, prefix + cname, True) for cname, cpath in reversed(children))


def write_store_layer(sink: Sink, paths: Iterable[str], stamp: Stamp) -> None:
    """A layer of whole store paths, with ``nix/`` and ``nix/store/`` first."""
    paths = sorted(paths)
    if paths:
        store_dir = os.path.dirname(paths[0])
        parts = store_dir.strip("/").split("/")
        for i in range(len(parts)):
            sink.write(header("/".join(parts[: i + 1]).encode() + b"/", DIR, 0o755,
                              stamp.uid or 0, stamp.gid or 0, stamp.mtime or 0,
                              uname=stamp.uname, gname=stamp.gname))
    for p in paths:
        raw = os.fsencode(p)
        write_tree(sink, raw, raw.lstrip(b"/"), stamp)
    sink.write(END_OF_ARCHIVE)


def write_entry(sink: Sink, path: bytes, name: bytes, st: os.stat_result, stamp: Stamp,
                hardlinks: Optional[dict] = None) -> None:
    """One entry for a path already lstat'ed. Changesets and flattened trees
    choose their entries, and each entry's owner, themselves."""
    _entry(sink, path, name, st, stamp, hardlinks)
