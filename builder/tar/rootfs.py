"""What goes where in a store layer: store paths at their own place,
``copyToRoot`` trees merged at ``/``, ``perms`` applied on the way.

Entry bytes are made by ``tarstream.write_entry``; this module only decides
which entries a layer has, in which order and with which owner and mode.
Several trees merged at ``/`` (two packages that both have ``bin/``) give
each directory once: the first tree to have a name wins, as with lndir.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Dict, Iterable, List, Optional, Sequence

from builder.errors import SpecError
from builder.sinks.sink import Sink
from builder.tar.parallel import write_trees
from builder.tar.tarstream import DIR, END_OF_ARCHIVE, Stamp, header, write_entry

__all__ = ["Perm", "parse_perms", "write_layer"]


# Written out, not a dataclass: the stream and push never load dataclasses
# (inspect, ast: ~15 ms of each start); tests/unit/test_imports.py pins it.
class Perm:
    """nix2container's ``perms``: below ``path``, entries whose source path
    matches ``regex`` get this mode/owner. As there (Go's
    ``regexp.MatchString``), the regex matches anywhere in the path: ``tmp``
    matches ``/nix/store/...-x/tmp/a``; anchor it with ``^``/``$`` to say more.
    Entries apply in list order, a later one over an earlier one."""

    __slots__ = ("path", "regex", "mode", "uid", "gid", "uname", "gname")

    def __init__(
        self,
        path: str,
        regex: re.Pattern,
        mode: Optional[int],
        uid: Optional[int],
        gid: Optional[int],
        uname: Optional[str],
        gname: Optional[str],
    ) -> None:
        self.path, self.regex, self.mode = path, regex, mode
        self.uid, self.gid, self.uname, self.gname = uid, gid, uname, gname

    def applies(self, source: str) -> bool:
        return (source == self.path or source.startswith(self.path + "/")) and self.regex.search(source) is not None


def parse_perms(items: Iterable[dict]) -> List[Perm]:
    perms = []
    for i, item in enumerate(items):
        where = f"perms: entry {i}"
        if not isinstance(item, dict):
            raise SpecError(
                f"{where}: expected {{ path; regex; mode; uid; gid; uname; gname; }}, "
                f"got {type(item).__name__} {item!r:.80}"
            )
        unknown = set(item) - {"path", "regex", "mode", "uid", "gid", "uname", "gname"}
        if unknown:
            raise SpecError(
                f"{where}: unknown attribute(s) {', '.join(sorted(unknown))} "
                "(known: path, regex, mode, uid, gid, uname, gname)"
            )
        if not isinstance(item.get("path"), str):
            raise SpecError(f"{where}: path (a store path or derivation) is missing")
        regex = item.get("regex", ".*")
        if not isinstance(regex, str):
            raise SpecError(f"{where}: regex must be a string, got {regex!r:.80}")
        try:
            compiled = re.compile(regex)
        except re.error as e:
            raise SpecError(f"{where}: regex {regex!r} is not a valid regular expression ({e})") from None
        mode = _mode(item.get("mode"), where)
        for key in ("uid", "gid"):
            v = item.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise SpecError(f"{where}: {key} must be a non-negative integer, got {v!r:.80}")
        for key in ("uname", "gname"):
            v = item.get(key)
            if v is not None and not isinstance(v, str):
                raise SpecError(f"{where}: {key} must be a string, got {v!r:.80}")
        perms.append(
            Perm(
                path=item["path"].rstrip("/"),
                regex=compiled,
                mode=mode,
                uid=item.get("uid"),
                gid=item.get("gid"),
                uname=item.get("uname"),
                gname=item.get("gname"),
            )
        )
    return perms


_MODE_RE = re.compile(r"[0-7]{3,4}")


def _mode(value, where: str) -> Optional[int]:
    """nix2container's mode: a string of octal digits, "0644" or "644"."""
    if value is None:
        return None
    if isinstance(value, str) and _MODE_RE.fullmatch(value):
        return int(value, 8)
    if isinstance(value, int) and not isinstance(value, bool):
        raise SpecError(
            f'{where}: mode must be a string like "0644", got the number {value} '
            f'(a Nix integer is decimal: write "{value}" or "0{value}" if you meant octal)'
        )
    raise SpecError(f'{where}: mode {value!r:.80} is not an octal mode like "0644" or "644"')


def _adjusted(source: str, st: os.stat_result, stamp: Stamp, perms: Sequence[Perm]):
    for perm in perms:
        if perm.applies(source):
            if perm.mode is not None:
                fields = list(st)
                fields[0] = stat.S_IFMT(st.st_mode) | perm.mode
                st = os.stat_result(fields)
            stamp = Stamp(
                uid=perm.uid if perm.uid is not None else stamp.uid,
                gid=perm.gid if perm.gid is not None else stamp.gid,
                uname=perm.uname if perm.uname is not None else stamp.uname,
                gname=perm.gname if perm.gname is not None else stamp.gname,
                mtime=stamp.mtime,
            )
    return st, stamp


def _walk_merged(sink: Sink, sources: List[bytes], name: bytes, stamp: Stamp, perms: Sequence[Perm]) -> None:
    """The children of several directories that share one place in the image."""
    children: Dict[bytes, List[bytes]] = {}
    for src in sources:
        if not name and not os.path.isdir(src):
            # A bare file of copyToRoot lands at / under its name without the hash.
            children.setdefault(os.path.basename(src).split(b"-", 1)[-1], []).append(src)
            continue
        for child in sorted(os.listdir(src)):
            children.setdefault(child, []).append(os.path.join(src, child))
    for child in sorted(children):
        paths = children[child]
        child_name = name + child
        st = os.lstat(paths[0])
        if stat.S_ISDIR(st.st_mode):
            dirs = [p for p in paths if os.path.isdir(p) and not os.path.islink(p)]
            _write_one(sink, paths[0], child_name, st, stamp, perms)
            _walk_merged(sink, dirs, child_name + b"/", stamp, perms)
        else:
            _write_one(sink, paths[0], child_name, st, stamp, perms)


def _write_one(sink: Sink, path: bytes, name: bytes, st, stamp: Stamp, perms) -> None:
    if perms:
        st, stamp = _adjusted(os.fsdecode(path), st, stamp, perms)
    write_entry(sink, path, name, st, stamp)


def _write_store_path(sink: Sink, path: bytes, stamp: Stamp, perms: Sequence[Perm]) -> None:
    st = os.lstat(path)
    _write_one(sink, path, path.lstrip(b"/"), st, stamp, perms)
    if stat.S_ISDIR(st.st_mode):
        _walk_merged(sink, [path], path.lstrip(b"/") + b"/", stamp, perms)


def write_layer(
    sink: Sink, paths: Iterable[str], stamp: Stamp, roots: Sequence[str] = (), perms: Sequence[Perm] = ()
) -> None:
    """A layer: ``roots`` merged at ``/``, then ``nix/``, ``nix/store/`` and
    each store path whole."""
    for p in list(roots) + list(paths):
        if not os.path.lexists(p):
            raise SpecError(
                f"{p} is missing: the image names it, but it is not in the store "
                "(garbage-collected? build the image again)"
            )
    if roots:
        _walk_merged(sink, [os.fsencode(r) for r in roots], b"", stamp, perms)
    paths = sorted(paths)
    if paths:
        store_dir = os.path.dirname(paths[0]).strip("/").split("/")
        for i in range(len(store_dir)):
            if any(os.path.isdir(os.path.join(r, *store_dir[: i + 1])) for r in roots):
                continue  # a copyToRoot tree has this directory: written above already
            sink.write(
                header(
                    "/".join(store_dir[: i + 1]).encode() + b"/",
                    DIR,
                    0o755,
                    stamp.uid or 0,
                    stamp.gid or 0,
                    stamp.mtime or 0,
                    uname=stamp.uname,
                    gname=stamp.gname,
                )
            )
    if perms:
        for p in paths:
            _write_store_path(sink, os.fsencode(p), stamp, perms)
    else:
        write_trees(sink, [(os.fsencode(p), os.fsencode(p).lstrip(b"/")) for p in paths], stamp)
    sink.write(END_OF_ARCHIVE)
