"""A comparable picture of an unpacked tree: what whiteout.apply_layers made,
or what ``umoci unpack`` made from the same layers."""

from __future__ import annotations

import os
import stat
from typing import Dict, Optional

# umoci stamps directories it creates or changes on its own (missing
# parents, parents of whiteouts) with the current time; generated headers
# use small mtimes, so anything later than this came from the clock.
CLOCK_MTIME = 10**8


def picture(
    root: str, owners: Optional[Dict[bytes, tuple]] = None, *, clock_dirs: bool = False, hardlinks: bool = True
) -> Dict[bytes, tuple]:
    """path -> (type, mode, uid, gid, mtime, content or target, link group).

    ``owners`` replaces lstat's owners (a side table); ``clock_dirs`` drops
    directory mtimes set from the clock (see CLOCK_MTIME)."""
    root_b = os.fsencode(root)
    out = {}
    inodes: Dict[tuple, list] = {}
    for dirpath, dirnames, filenames in os.walk(root_b):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root_b)
            st = os.lstat(path)
            fmt = stat.S_IFMT(st.st_mode)
            mode = 0 if fmt == stat.S_IFLNK else stat.S_IMODE(st.st_mode)
            uid, gid = (owners or {}).get(rel, (st.st_uid, st.st_gid))
            mtime = int(st.st_mtime)
            if clock_dirs and fmt == stat.S_IFDIR and mtime > CLOCK_MTIME:
                mtime = None
            if fmt == stat.S_IFREG:
                with open(path, "rb") as src:
                    body = src.read()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif fmt == stat.S_IFLNK:
                body = os.readlink(path)
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                body = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                body = b""
            out[rel] = [fmt, mode, uid, gid, mtime, body, ()]
    if hardlinks:
        for group in inodes.values():
            for rel in group:
                out[rel][6] = tuple(sorted(group))
    return {rel: tuple(v) for rel, v in out.items()}


def drop_clock_mtimes(a: dict, b: dict) -> tuple:
    """Directory mtimes compared only where both sides have one."""
    a, b = dict(a), dict(b)
    for rel in set(a) & set(b):
        if a[rel][4] is None or b[rel][4] is None:
            a[rel] = a[rel][:4] + (None,) + a[rel][5:]
            b[rel] = b[rel][:4] + (None,) + b[rel][5:]
    return a, b
