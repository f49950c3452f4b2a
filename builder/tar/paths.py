"""The one place where layer entry names and link targets are checked.

Readers and writers of layers both come here, so every rule about names
lives once:

* an entry name is cleaned lexically: ``./`` and leading ``/`` go away,
  ``a/../b`` becomes ``b``, and a name that climbs above the root, holds a
  NUL or is empty is refused (``UnsafePathError``). This is how docker, umoci
  and GNU tar read names, so an absolute name lands *inside* the root;
* a file of the tree being packed is never named ``.wh.*``
  (``refuse_whiteout_name``): every reader would take it for a whiteout
  and delete what it names (umoci refuses such files too);
* a name is placed under a root with ``locate``/``safe_join``: every parent
  component that is a symlink is followed the way a container would see it
  (an absolute target starts again at the root, as after a chroot), and a
  relative target that climbs above the root is refused rather than clamped.
  The last component is never followed: an entry replaces a symlink, it
  does not write through it.

Names are ``bytes`` throughout: tar names and file names are bytes, and a
round trip through ``str`` must never change one. Error messages say what
is wrong, not with which entry: callers know the layer and entry and say so.
"""

from __future__ import annotations

import os
import stat
from typing import List, Optional

from builder.errors import ImageFormatError, UnsafePathError

__all__ = ["show", "NotADirectory", "check_link_target", "clean_name", "host_path", "locate", "safe_join", "split_name"]

# Linux gives up after 40 symlinks in one lookup (MAXSYMLINKS); so do we.
_MAX_LINKS = 40


class NotADirectory(ImageFormatError):
    """A name goes through something that exists and is not a directory.
    Writing there is an error; a whiteout there has nothing to delete."""


def _components(name: bytes) -> Optional[List[bytes]]:
    """Lexical clean of ``name``; ``None`` when it climbs above the root."""
    out: List[bytes] = []
    for part in name.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not out:
                return None
            out.pop()
        else:
            out.append(part)
    return out


def clean_name(name: bytes) -> bytes:
    """A layer entry name (or hardlink target) as a relative path.

    ``b""`` is the root itself (a ``./`` entry). Raises ``UnsafePathError``
    for an empty name, a NUL byte, or a name that climbs above the root.
    """
    if not name:
        raise UnsafePathError("empty name")
    if b"\0" in name:
        raise UnsafePathError("NUL byte in name")
    parts = _components(name)
    if parts is None:
        raise UnsafePathError("name climbs above the root")
    return b"/".join(parts)


def check_link_target(target: bytes) -> bytes:
    """A symlink target is free text (it may be absolute or climb with ..):
    it is only judged when something is written through it. Linux refuses
    empty targets and no path may hold a NUL."""
    if not target:
        raise ImageFormatError("empty symlink target")
    if b"\0" in target:
        raise UnsafePathError("NUL byte in symlink target")
    return target


def split_name(rel: bytes):
    """``(parent, base)`` of a cleaned name; the root's parent is the root."""
    parent, _, base = rel.rpartition(b"/")
    return parent, base


def host_path(root: bytes, rel: bytes) -> bytes:
    return root + b"/" + rel if rel else root


def _resolve(root: bytes, rel: bytes) -> bytes:
    """Every component of ``rel`` with symlinks followed inside ``root``.

    ``rel`` names a directory: components that do not exist are kept as
    they are (they cannot be symlinks, and the caller may create them); one
    that exists but is neither a directory nor a symlink is an error, as
    ENOTDIR would be.
    """
    todo = list(reversed(rel.split(b"/"))) if rel else []
    done: List[bytes] = []
    links = 0
    while todo:
        part = todo.pop()
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not done:
                raise UnsafePathError("a symlink on the way leads out of the root")
            done.pop()
            continue
        current = b"/".join(done + [part])
        try:
            st = os.lstat(host_path(root, current))
        except FileNotFoundError:
            done.append(part)
            continue
        except NotADirectoryError:
            raise NotADirectory(f"{show(b'/'.join(done))} is not a directory") from None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise ImageFormatError("too many levels of symbolic links")
            target = os.readlink(host_path(root, current))
            if target.startswith(b"/"):
                # chroot semantics: "/x" means the image's /x, never the host's.
                done = []
            todo.extend(reversed(target.split(b"/")))
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectory(f"{show(current)} is not a directory")
        done.append(part)
    return b"/".join(done)


def locate(root: bytes, rel: bytes) -> bytes:
    """Where a cleaned name really is below ``root``, as a relative path:
    parents resolved through symlinks (never leaving the root), the last
    component kept as is."""
    parent, base = split_name(rel)
    if not base:
        return b""
    where = _resolve(root, parent)
    return where + b"/" + base if where else base


def safe_join(root: bytes, name: bytes) -> bytes:
    """The host path for entry ``name`` under ``root`` (see ``locate``)."""
    return host_path(root, locate(root, clean_name(name)))


WHITEOUT_PREFIX = b".wh."


def refuse_whiteout_name(name: bytes, what: str = "") -> None:
    """Refuse a real file named ``.wh.*`` going into a layer: docker, podman
    and umoci would read it as a whiteout and delete ``NAME`` (or, for
    ``.wh..wh..opq``, the rest of the directory). ``name`` is the entry name;
    ``what`` says where it comes from."""
    base = name.rstrip(b"/").rsplit(b"/", 1)[-1]
    if base.startswith(WHITEOUT_PREFIX):
        where = f" ({what})" if what else ""
        raise ImageFormatError(
            f"/{show(name.lstrip(b'/'))}{where}: a file named .wh.* cannot go in a layer "
            "(readers would take it for a whiteout)"
        )


def show(name: bytes) -> str:
    return os.fsdecode(name)
