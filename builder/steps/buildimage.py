"""Build time: the one new layer of ``buildImage`` (``python3 builder image-layer``).

Without ``runAsRoot`` the layer is what nixpkgs makes: copyToRoot's trees
copied at ``/``, ``extraCommands`` run there, the closure's store paths, all
owned by ``uid``/``gid``.

With ``runAsRoot`` there is no virtual machine: inside one fakeroot session
the base's layers are applied to ``lower/``, copied to ``upper/``, the
contents are added, the script runs as root with ``upper/`` as ``/``
(proot), and the layer is the changeset from ``lower/`` to ``upper/``: new
and changed files and whiteouts for what was deleted (``whiteout.py``).
"""

from __future__ import annotations

import os
import stat
import subprocess
from typing import Dict, List

from builder.contract import Attrs
from builder.errors import BuildError
from builder.formats.load import load_image
from builder.model.config import epoch_of
from builder.sinks.sink import FdSink
from builder.steps import nixdb
from builder.steps.commands import chroot_prefix, command_env, rerun_under_fakeroot, run_commands
from builder.tar import whiteout
from builder.tar.tarstream import END_OF_ARCHIVE, Stamp, write_tree

__all__ = ["build_image_layer"]

_WORK = "work"


def _copy_contents(attrs: Attrs, upper: str) -> Dict[str, int]:
    """copyToRoot's trees copied (not linked) at /. Directories are made
    writable so the commands can add to them; returns their real modes."""
    keep = ["--keep-directory-symlink"] if attrs.bool("keepContentsDirlinks") else []
    for path in attrs.list("copyToRoot"):
        if not os.path.lexists(path):
            raise BuildError(f"copyToRoot: {path} does not exist")
        src = path + "/." if os.path.isdir(path) else path
        dest = upper if os.path.isdir(path) else os.path.join(upper, os.path.basename(path).split("-", 1)[-1])
        # Not --preserve=links: a store path's hardlinks depend on how it got
        # into the store (built here, substituted, optimised), not on its NAR.
        _cp(attrs, ["-R", "--no-dereference", "--preserve=mode", *keep, src, dest])
    os.chmod(upper, 0o755)
    modes = {}
    for dirpath, dirnames, _ in os.walk(upper):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            mode = os.lstat(full).st_mode
            if not stat.S_ISLNK(mode) and not mode & 0o200:
                modes[full] = stat.S_IMODE(mode)
                os.chmod(full, stat.S_IMODE(mode) | 0o200)
    return modes


def _restore_modes(modes: Dict[str, int]) -> None:
    """Give back the modes _copy_contents lifted, unless a command set its own."""
    for path, mode in modes.items():
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == mode | 0o200:
            os.chmod(path, mode)


def _cp(attrs: Attrs, args: List[str]) -> None:
    r = subprocess.run(["cp", *args], capture_output=True, text=True, env=command_env(attrs))
    if r.returncode != 0:
        raise BuildError(f"copying contents failed: {r.stderr.strip()}")


def _apply_base(attrs: Attrs, lower: str, work: str) -> None:
    base = load_image(
        attrs.str("fromImage"),
        workdir=work,
        name=attrs.str("fromImageName"),
        tag=attrs.str("fromImageTag"),
        architecture=attrs.str("architecture"),
    )
    files = []
    for i, layer in enumerate(base.layers):
        path = os.path.join(work, f"base-{i}.tar")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            sink = FdSink(fd)
            layer.write_tar(sink)
            sink.flush()
        finally:
            os.close(fd)
        files.append(path)
    whiteout.apply_layers(lower, files)
    for path in files:
        os.unlink(path)


def _store_paths(attrs: Attrs) -> List[str]:
    skip = set(attrs.list("excludePaths"))
    return sorted(node["path"] for node in attrs.list("closure") if node["path"] not in skip)


def _add_nix_db(attrs: Attrs, upper: str) -> None:
    skip = set(attrs.list("excludePaths"))
    nixdb.write_nix_db(upper, [n for n in attrs.list("closure") if n["path"] not in skip])
    nixdb.gcroots(upper, attrs.list("copyToRoot"))


_MARK = "user.dockertools.lower"


def _mark_dirs(root: str) -> bool:
    """Tag every directory before the commands run, so that one deleted and
    made again is known afterwards (inode numbers are reused at once, an
    extended attribute is not). False where the file system has none."""
    try:
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                full = os.path.join(dirpath, d)
                if not os.path.islink(full):
                    os.setxattr(full, _MARK, b"1", follow_symlinks=False)
    except OSError:
        return False
    return True


def _replaced_dirs(root: str, lower: str) -> List[bytes]:
    """Directories of the base that the commands deleted and made again:
    they get an opaque marker instead of a whiteout per child."""
    replaced = []
    broot = os.fsencode(root)
    for dirpath, dirnames, _ in os.walk(broot):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            rel = os.path.relpath(full, broot)
            if os.path.islink(full) or not os.path.isdir(os.path.join(os.fsencode(lower), rel)):
                continue
            try:
                os.getxattr(full, _MARK, follow_symlinks=False)
            except OSError:
                replaced.append(rel)
    return sorted(replaced)


def _clear_marks(root: str) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            try:
                os.removexattr(full, _MARK, follow_symlinks=False)
            except OSError:
                pass


def _write_layer(attrs: Attrs, lower: str, upper: str, diff: bool, replaced: List[bytes] = ()) -> None:
    mtime = epoch_of(attrs.data.get("mtime", 1))
    if _store_paths(attrs):
        # /nix/store in the layer, even when the base has none.
        os.makedirs(os.path.join(upper, "nix", "store"), mode=0o755, exist_ok=True)
    fd = os.open(os.path.join(attrs.out, "layer.tar"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
    try:
        sink = FdSink(fd)
        if diff:
            # Owners as the commands left them (fakeroot's, seen by lstat).
            whiteout.write_changeset(
                sink, lower, upper, Stamp(uid=None, gid=None, mtime=mtime), end=False, replaced=replaced
            )
        else:
            owner = Stamp(uid=attrs.int("uid", 0), gid=attrs.int("gid", 0), mtime=mtime)
            write_tree(sink, os.fsencode(upper), b"", owner, hardlinks={}, include_root=False)
        store_stamp = Stamp(uid=attrs.int("uid", 0), gid=attrs.int("gid", 0), mtime=mtime)
        for p in _store_paths(attrs):
            if lower and os.path.lexists(os.path.join(lower, p.lstrip("/"))):
                continue  # the base has it already
            # Store files: hardlinks written as files, whatever the store's optimisation.
            write_tree(sink, os.fsencode(p), os.fsencode(p).lstrip(b"/"), store_stamp)
        sink.write(END_OF_ARCHIVE)
        sink.flush()
    except PermissionError as e:
        where = os.fsdecode(e.filename or upper)
        if where.startswith(upper + "/"):
            where = where[len(upper) :]
        raise BuildError(
            f"cannot read {where} to pack the layer ({e.strerror}): the commands left it "
            "unreadable to the build user (chmod 000?)"
        ) from None
    finally:
        os.close(fd)


def build_image_layer(attrs: Attrs) -> None:
    out = attrs.out
    os.makedirs(out)
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(attrs.str("configJSON", "{}"))
    if attrs.str("runAsRoot", "").strip():
        # Everything from applying the base to packing happens in one
        # fakeroot session, so owners are kept all the way.
        rerun_under_fakeroot(attrs, "image-layer-fakeroot")
        return
    work = os.path.abspath(_WORK)
    upper = os.path.join(work, "upper")
    os.makedirs(upper)
    modes = _copy_contents(attrs, upper)
    if attrs.bool("includeNixDB"):
        _add_nix_db(attrs, upper)
    run_commands("extraCommands", attrs.str("extraCommands", ""), upper, command_env(attrs))
    _restore_modes(modes)
    _write_layer(attrs, "", upper, diff=False)


def build_image_layer_fakeroot(attrs: Attrs) -> None:
    work = os.path.abspath(_WORK)
    lower, upper = os.path.join(work, "lower"), os.path.join(work, "upper")
    os.makedirs(lower)
    if attrs.str("fromImage"):
        _apply_base(attrs, lower, work)
    # cp -a keeps owners (faked), modes, times and hardlinks of the base.
    _cp(attrs, ["-a", lower, upper])
    modes = _copy_contents(attrs, upper)
    if attrs.bool("includeNixDB"):
        _add_nix_db(attrs, upper)
    env = command_env(attrs)
    marked = _mark_dirs(upper)
    run_commands("runAsRoot", attrs.str("runAsRoot", ""), upper, env, chroot_prefix(attrs, upper))
    run_commands("extraCommands", attrs.str("extraCommands", ""), upper, env)
    replaced = _replaced_dirs(upper, lower) if marked else []
    if marked:
        _clear_marks(upper)
    _restore_modes(modes)
    _write_layer(attrs, lower, upper, diff=True, replaced=replaced)
