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
import subprocess
from typing import Dict, List, Sequence

from builder.contract import ImageLayerSpec
from builder.errors import BuildError
from builder.formats.load import load_image
from builder.model.config import epoch_of
from builder.sinks.sink import FdSink
from builder.steps import nixdb
from builder.steps.commands import chroot_prefix, command_env, rerun_under_fakeroot, run_commands
from builder.steps.copyroot import copy_to_root, restore_modes
from builder.tar import whiteout
from builder.tar.parallel import write_trees
from builder.tar.tarstream import END_OF_ARCHIVE, Stamp, write_tree

__all__ = ["build_image_layer"]

_WORK = "work"


def _copy_contents(spec: ImageLayerSpec, upper: str) -> Dict[str, int]:
    """copyToRoot's trees copied (not linked) at /, as nixpkgs' rsync copies
    them; returns the directory modes to give back after the commands."""
    return copy_to_root(spec.copy_to_root, upper, spec.keep_contents_dirlinks)


def _env(spec: ImageLayerSpec) -> dict:
    return command_env(spec.tools, spec.bash, spec.out)


def _cp(spec: ImageLayerSpec, args: List[str]) -> None:
    r = subprocess.run(["cp", *args], capture_output=True, text=True, env=_env(spec))
    if r.returncode != 0:
        raise BuildError(f"copying contents failed: {r.stderr.strip()}")


def _apply_base(spec: ImageLayerSpec, from_image: str, lower: str, work: str) -> None:
    base = load_image(
        from_image,
        workdir=work,
        name=spec.from_image_name,
        tag=spec.from_image_tag,
        architecture=spec.architecture,
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


def _store_paths(spec: ImageLayerSpec) -> List[str]:
    skip = set(spec.exclude_paths)
    return sorted(node["path"] for node in spec.closure if node["path"] not in skip)


def _add_nix_db(spec: ImageLayerSpec, upper: str) -> None:
    skip = set(spec.exclude_paths)
    nixdb.write_nix_db(upper, [n for n in spec.closure if n["path"] not in skip])
    nixdb.gcroots(upper, spec.copy_to_root)


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


def _write_layer(spec: ImageLayerSpec, lower: str, upper: str, diff: bool, replaced: Sequence[bytes] = ()) -> None:
    mtime = epoch_of(spec.mtime)
    if _store_paths(spec):
        # /nix/store in the layer, even when the base has none.
        os.makedirs(os.path.join(upper, "nix", "store"), mode=0o755, exist_ok=True)
    fd = os.open(os.path.join(spec.out, "layer.tar"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
    try:
        sink = FdSink(fd)
        if diff:
            # Owners as the commands left them (fakeroot's, seen by lstat).
            whiteout.write_changeset(
                sink, lower, upper, Stamp(uid=None, gid=None, mtime=mtime), end=False, replaced=replaced
            )
        else:
            owner = Stamp(uid=spec.uid, gid=spec.gid, mtime=mtime)
            write_tree(sink, os.fsencode(upper), b"", owner, hardlinks={}, include_root=False)
        store_stamp = Stamp(uid=spec.uid, gid=spec.gid, mtime=mtime)
        # Store files: hardlinks written as files, whatever the store's
        # optimisation; paths the base has already are left out.
        new = [p for p in _store_paths(spec) if not (lower and os.path.lexists(os.path.join(lower, p.lstrip("/"))))]
        write_trees(sink, [(os.fsencode(p), os.fsencode(p).lstrip(b"/")) for p in new], store_stamp)
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


def build_image_layer(spec: ImageLayerSpec) -> None:
    os.makedirs(spec.out)
    if spec.run_as_root.strip():
        # Everything from applying the base to packing happens in one
        # fakeroot session, so owners are kept all the way.
        rerun_under_fakeroot(spec.fakeroot, spec.python, "image-layer-fakeroot")
        return
    work = os.path.abspath(_WORK)
    upper = os.path.join(work, "upper")
    os.makedirs(upper)
    modes = _copy_contents(spec, upper)
    if spec.include_nix_db:
        _add_nix_db(spec, upper)
    run_commands("extraCommands", spec.extra_commands, upper, _env(spec))
    restore_modes(modes)
    _write_layer(spec, "", upper, diff=False)


def build_image_layer_fakeroot(spec: ImageLayerSpec) -> None:
    work = os.path.abspath(_WORK)
    lower, upper = os.path.join(work, "lower"), os.path.join(work, "upper")
    os.makedirs(lower)
    if spec.from_image:
        _apply_base(spec, spec.from_image, lower, work)
    # cp -a keeps owners (faked), modes, times and hardlinks of the base.
    _cp(spec, ["-a", lower, upper])
    modes = _copy_contents(spec, upper)
    if spec.include_nix_db:
        _add_nix_db(spec, upper)
    env = _env(spec)
    marked = _mark_dirs(upper)
    run_commands("runAsRoot", spec.run_as_root, upper, env, chroot_prefix(spec.proot, upper))
    run_commands("extraCommands", spec.extra_commands, upper, env)
    replaced = _replaced_dirs(upper, lower) if marked else []
    if marked:
        _clear_marks(upper)
    restore_modes(modes)
    _write_layer(spec, lower, upper, diff=True, replaced=replaced)
