"""The one tar builder of the tests: layer tars written entry by entry with
builder.tarstream's headers, so a test states exactly what a layer holds
(owners, times, whiteouts, hardlinks, devices, unsafe names)."""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Sequence

from builder.tar import tarstream


class E(NamedTuple):
    """One layer entry as a test writes it."""

    kind: bytes
    name: bytes
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1000
    link: bytes = b""
    dev: tuple = (0, 0)


def _b(name) -> bytes:
    return name.encode() if isinstance(name, str) else name


def f(name, data=b"", mode=0o644, uid=0, gid=0, mtime=1000) -> E:
    return E(tarstream.REG, _b(name), _b(data), mode, uid, gid, mtime)


def d(name, mode=0o755, uid=0, gid=0, mtime=1000) -> E:
    return E(tarstream.DIR, _b(name), b"", mode, uid, gid, mtime)


def sym(name, target, uid=0, gid=0, mtime=1000) -> E:
    return E(tarstream.SYM, _b(name), b"", 0o777, uid, gid, mtime, _b(target))


def hard(name, target, mode=0o644, uid=0, gid=0, mtime=1000) -> E:
    return E(tarstream.LNK, _b(name), b"", mode, uid, gid, mtime, _b(target))


def fifo(name, mode=0o644, mtime=1000) -> E:
    return E(tarstream.FIFO, _b(name), b"", mode, 0, 0, mtime)


def chrdev(name, major, minor, mode=0o666) -> E:
    return E(tarstream.CHR, _b(name), b"", mode, 0, 0, 1000, b"", (major, minor))


def wh(name) -> E:
    parent, _, base = _b(name).rpartition(b"/")
    return f((parent + b"/" if parent else b"") + b".wh." + base, mode=0o600)


def opq(directory) -> E:
    return f(_b(directory).rstrip(b"/") + b"/.wh..wh..opq", mode=0o600)


def tar_bytes(entries: Sequence[E]) -> bytes:
    out = []
    for e in entries:
        name = e.name + b"/" if e.kind == tarstream.DIR and not e.name.endswith(b"/") else e.name
        out.append(
            tarstream.header(
                name,
                e.kind,
                e.mode,
                e.uid,
                e.gid,
                e.mtime,
                size=len(e.data),
                linkname=e.link,
                devmajor=e.dev[0],
                devminor=e.dev[1],
            )
        )
        out.append(e.data + tarstream.padding(len(e.data)))
    out.append(tarstream.END_OF_ARCHIVE)
    return b"".join(out)


def write_layers(directory: str, layers: Sequence[Sequence[E]]) -> List[str]:
    os.makedirs(directory, exist_ok=True)
    files = []
    for i, entries in enumerate(layers):
        path = os.path.join(directory, f"layer{i}.tar")
        with open(path, "wb") as out:
            out.write(tar_bytes(entries))
        files.append(path)
    return files


def layer_bytes(files: Dict[str, bytes], mode: int = 0o644) -> bytes:
    """A tar of regular files (parent directories added), sorted by name,
    every entry owned by root with mtime 1."""
    entries = []
    dirs = set()
    for name in sorted(files):
        parts = name.split("/")[:-1]
        for i in range(len(parts)):
            parent = "/".join(parts[: i + 1]) + "/"
            if parent not in dirs:
                dirs.add(parent)
                entries.append(d(parent, mtime=1))
        entries.append(f(name, files[name], mode, mtime=1))
    return tar_bytes(entries)
