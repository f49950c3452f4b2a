"""buildImage's ``copyToRoot``: each tree copied over the image root in turn,
as nixpkgs copies it (``rsync -a`` with ``-k``, or ``-K`` when
``keepContentsDirlinks`` is set).

- Trees merge: two of them sharing ``bin/`` give one ``bin/`` holding both.
- A file, symlink or directory replaces what the root has at that name (it is
  renamed into place, never written through a symlink, so a base image's
  ``/bin/busybox -> /nix/store/...`` is replaced, not copied onto itself).
- ``keep_dirlinks = False`` (rsync ``-k``): a symlink to a directory in a
  tree is copied as that directory.
  ``keep_dirlinks = True`` (rsync ``-K``): symlinks stay symlinks, and a
  symlink the root already has to a directory is followed as that directory
  when a tree has a directory there (resolved inside the root, as the image
  sees it).
- Modes are kept; directories stay writable to their owner while the build
  adds to them, and the modes they should have are returned (the last tree
  to carry a directory sets it) for :func:`restore_modes` to give back once
  the commands have run.
- Hardlinks are not kept (a store path's hardlinks depend on how it got into
  the store, not on its NAR); owners are set when the layer is packed.
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import Dict, List, Optional

from builder.errors import BuildError

__all__ = ["copy_to_root", "restore_modes"]


def copy_to_root(trees: List[str], root: str, keep_dirlinks: bool) -> Dict[str, int]:
    """Copy every tree of ``trees`` over ``root``, in order. A tree that is a
    file lands at ``/<name>`` (its store name without the hash). Returns the
    directories whose modes were lifted, with the modes they should have."""
    modes: Dict[str, int] = {}
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)  # a base image's root may be read-only
    for tree in trees:
        if not os.path.lexists(tree):
            raise BuildError(f"copyToRoot: {tree} does not exist")
        if os.path.isdir(tree):
            _merge_dir(os.path.realpath(tree), root, root, keep_dirlinks, modes, tree)
        else:
            name = os.path.basename(tree).split("-", 1)[-1]
            _copy_entry(tree, os.path.join(root, name), root, keep_dirlinks, modes, tree)
    # The root itself: rsync gives it the trees' mode; nixpkgs then makes it
    # writable (chmod ug+w layer). Docker ignores the root entry's mode.
    os.chmod(root, 0o755)
    modes.pop(root, None)
    return modes


def restore_modes(modes: Dict[str, int]) -> None:
    """Give back the modes :func:`copy_to_root` lifted, unless a command set
    one of its own (or removed the directory)."""
    for path, mode in modes.items():
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == mode | 0o700:
            os.chmod(path, mode)


def _within(root: str, path: str) -> str:
    """``path`` as the image sees it, for messages."""
    rel = os.path.relpath(path, root)
    return "/" if rel == "." else "/" + rel


def _merge_dir(src: str, dest: str, root: str, keep: bool, modes: Dict[str, int], tree: str) -> None:
    """The entries of directory ``src`` copied into directory ``dest``."""
    try:
        names = sorted(os.listdir(src))
    except PermissionError as e:
        raise BuildError(f"copyToRoot: cannot read {src} ({e.strerror})") from None
    for name in names:
        _copy_entry(os.path.join(src, name), os.path.join(dest, name), root, keep, modes, tree)


def _dirlink_target(dest: str, root: str) -> Optional[str]:
    """Where symlink ``dest`` leads inside the image root, when that is a
    directory there; None otherwise."""
    seen = 0
    path = dest
    while os.path.islink(path):
        seen += 1
        if seen > 40:
            return None
        target = os.readlink(path)
        if os.path.isabs(target):
            path = os.path.join(root, target.lstrip("/"))
        else:
            path = os.path.join(os.path.dirname(path), target)
        path = os.path.normpath(path)
        if path != root and not path.startswith(root + os.sep):
            return None
    # Components of the target may themselves be links: resolve them inside the root.
    real = os.path.realpath(path)
    real_root = os.path.realpath(root)
    if real != real_root and not real.startswith(real_root + os.sep):
        return None
    return path if os.path.isdir(path) else None


def _make_way(dest: str, root: str, tree: str, src: str) -> None:
    """Remove what ``dest`` is so that something of another kind can take
    its place; a non-empty directory is not removed (rsync refuses too)."""
    if not os.path.lexists(dest):
        return
    if os.path.isdir(dest) and not os.path.islink(dest):
        try:
            os.rmdir(dest)
        except OSError:
            raise BuildError(
                f"copyToRoot: {src} would replace the directory {_within(root, dest)}, "
                f"which an earlier tree filled, with a non-directory"
            ) from None
        return
    os.unlink(dest)


def _copy_entry(src: str, dest: str, root: str, keep: bool, modes: Dict[str, int], tree: str) -> None:
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        if not keep and os.path.isdir(src):
            # rsync -k: a link to a directory is copied as the directory.
            _copy_dir(os.path.realpath(src), os.stat(src), dest, root, keep, modes, tree)
            return
        target = os.readlink(src)
        _make_way(dest, root, tree, src)
        os.symlink(target, dest)
        return
    if stat.S_ISDIR(st.st_mode):
        _copy_dir(src, st, dest, root, keep, modes, tree)
        return
    if stat.S_ISREG(st.st_mode):
        # Written beside and renamed into place: never through a symlink
        # the root has at that name.
        tmp = os.path.join(os.path.dirname(dest), f".copyroot-{os.path.basename(dest)}")
        shutil.copyfile(src, tmp, follow_symlinks=False)
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        if os.path.isdir(dest) and not os.path.islink(dest):
            _make_way(dest, root, tree, src)
        os.replace(tmp, dest)
        return
    raise BuildError(f"copyToRoot: {src} is neither a file, a directory nor a symlink")


def _copy_dir(src: str, st: os.stat_result, dest: str, root: str, keep: bool, modes: Dict[str, int], tree: str) -> None:
    into = dest
    if os.path.islink(dest):
        target = _dirlink_target(dest, root) if keep else None
        if target is not None:
            # rsync -K: the root's link to a directory is that directory.
            into = target
        elif keep and os.path.isdir(dest):
            # rsync -K would follow it out of the root, into the store.
            raise BuildError(
                f"copyToRoot: {src} is a directory where an earlier tree left the symlink "
                f"{_within(root, dest)} -> {os.readlink(dest)}; with keepContentsDirlinks = true "
                "it would be copied into that store path, which cannot be written: "
                "join the trees into one (buildEnv) or leave keepContentsDirlinks false"
            )
        else:
            os.unlink(dest)
    elif os.path.lexists(dest) and not os.path.isdir(dest):
        os.unlink(dest)
    if not os.path.lexists(into):
        os.mkdir(into, 0o700)
    mode = stat.S_IMODE(st.st_mode)
    current = stat.S_IMODE(os.lstat(into).st_mode)
    if current & 0o700 != 0o700:
        os.chmod(into, current | 0o700)
    # The mode the directory ends with: the tree's (the last to carry it).
    modes[into] = mode
    os.chmod(into, mode | 0o700)
    _merge_dir(src, into, root, keep, modes, tree)
