"""Build time: the customisation layer (``python3 builder customise``).

contents' trees are linked together at the root (what nixpkgs' symlinkJoin
does), then ``extraCommands`` run in it, then ``fakeRootCommands`` under
fakeroot (optionally with the root as ``/`` through proot), and the tree is
packed into ``$out/layer.tar``. Packing happens inside the same fakeroot
session as the commands, so the owners they set are what ``os.lstat`` sees.
``$out/config.json`` holds the image config, so that Nix records the store
paths it mentions as references of this output.
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

from builder.contract import CustomiseSpec
from builder.errors import BuildError, SpecError
from builder.model.config import epoch_of
from builder.sinks.sink import FdSink
from builder.steps import nixdb
from builder.steps.commands import chroot_prefix, command_env, rerun_under_fakeroot, run_commands
from builder.tar.tarstream import END_OF_ARCHIVE, Stamp, write_tree

__all__ = ["customise", "link_contents", "pack"]

_ROOT = "root"


def _link_tree(src: str, dest: str) -> None:
    """Directories are made, everything else becomes a symlink to the store.
    The first of several contents to provide a path wins, as with lndir."""
    for name in sorted(os.listdir(src)):
        s, d = os.path.join(src, name), os.path.join(dest, name)
        if os.path.isdir(s) and not os.path.islink(s):
            if os.path.islink(d) or (os.path.lexists(d) and not os.path.isdir(d)):
                continue
            os.makedirs(d, exist_ok=True)
            _link_tree(s, d)
        elif not os.path.lexists(d):
            os.symlink(s, d)


def link_contents(root: str, contents: List[str]) -> None:
    for path in contents:
        if not os.path.lexists(path):
            raise SpecError(f"contents: {path} does not exist")
        if os.path.isdir(path):
            _link_tree(path, root)
        else:
            # A bare file lands at / under its name without the hash.
            name = os.path.basename(path).split("-", 1)[-1]
            if not os.path.lexists(os.path.join(root, name)):
                os.symlink(path, os.path.join(root, name))


def pack(root: str, out_tar: str, mtime: int, keep_owners: bool) -> None:
    """Everything below ``root`` as a layer; owners as lstat shows them
    (fakeroot's) or root's, never the build user's."""
    stamp = Stamp(uid=None if keep_owners else 0, gid=None if keep_owners else 0, mtime=mtime)
    fd = os.open(out_tar, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
    try:
        sink = FdSink(fd)
        write_tree(sink, os.fsencode(root), b"", stamp, hardlinks={}, include_root=False)
        sink.write(END_OF_ARCHIVE)
        sink.flush()
    except PermissionError as e:
        where = os.path.relpath(os.fsdecode(e.filename or root), root)
        raise BuildError(
            f"cannot read /{where} to pack the layer ({e.strerror}): the commands left it "
            "unreadable to the build user (chmod 000?)"
        ) from None
    finally:
        os.close(fd)


def add_nix_db(root: str, spec: CustomiseSpec) -> None:
    """Register the closure of contents in nix/var/nix/db, root their paths."""
    if spec.nixdb_closure is None:
        raise SpecError("nixdbClosure: missing (includeNixDB needs exportReferencesGraph.nixdbClosure)")
    nixdb.write_nix_db(root, spec.nixdb_closure)
    nixdb.gcroots(root, spec.contents)


def _nix_owner(spec: CustomiseSpec) -> Optional[Tuple[int, int]]:
    owner = (spec.nix_uid, spec.nix_gid)
    return owner if spec.include_nix_db and owner != (0, 0) else None


def _chown_nix(root: str, owner: Tuple[int, int]) -> None:
    """Inside fakeroot: /nix, /nix/store and the database belong to the user
    who runs Nix in the container (entries here win over the store layers')."""
    os.makedirs(os.path.join(root, "nix", "store"), exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "nix")):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.lchown(name, *owner)


def customise(spec: CustomiseSpec) -> None:
    os.makedirs(spec.out)
    with open(os.path.join(spec.out, "config.json"), "w") as f:
        f.write(spec.config_json)
    root = os.path.abspath(_ROOT)
    os.makedirs(root)
    link_contents(root, spec.contents)
    if spec.include_nix_db:
        add_nix_db(root, spec)
    env = command_env(spec.tools, spec.bash, spec.out)
    run_commands("extraCommands", spec.extra_commands, root, env)
    if spec.fake_root_commands.strip() or spec.enable_fakechroot or _nix_owner(spec):
        # Re-enter ourselves under fakeroot: commands and packing share one session.
        rerun_under_fakeroot(spec.fakeroot, spec.python, "customise-fakeroot", {**os.environ, "PATH": env["PATH"]})
        return
    pack(root, os.path.join(spec.out, "layer.tar"), epoch_of(spec.mtime), keep_owners=False)


def customise_fakeroot(spec: CustomiseSpec) -> None:
    """The half of ``customise`` that runs inside fakeroot."""
    root = os.path.abspath(_ROOT)
    env = command_env(spec.tools, spec.bash, spec.out)
    prefix = chroot_prefix(spec.proot, root) if spec.enable_fakechroot else []
    run_commands("fakeRootCommands", spec.fake_root_commands, root, env, prefix)
    owner = _nix_owner(spec)
    if owner:
        _chown_nix(root, owner)
    pack(root, os.path.join(spec.out, "layer.tar"), epoch_of(spec.mtime), keep_owners=True)
