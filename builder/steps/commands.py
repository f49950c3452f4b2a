"""User commands at build time: ``extraCommands``, ``fakeRootCommands``,
``runAsRoot``. Their environment, the fakeroot session a step re-enters
itself in, and proot making an image root look like ``/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import List, Optional, Sequence

from builder.errors import BuildError, SpecError

__all__ = ["chroot_prefix", "command_env", "rerun_under_fakeroot", "run_commands"]

# The ``builder`` package's own directory: ``python3 -I DIR`` runs its
# ``__main__``.
_BUILDER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_commands(what: str, script: str, cwd: str, env: dict, argv_prefix: Sequence[str] = ()) -> None:
    if not script.strip():
        return
    argv = list(argv_prefix) + [env["BASH"], "-e", "-c", script]
    result = subprocess.run(argv, cwd=cwd, env=env)
    if result.returncode < 0:
        raise BuildError(f"{what} was killed by signal {-result.returncode}")
    if result.returncode != 0:
        raise BuildError(f"{what} failed with exit code {result.returncode}")


def command_env(tools: Sequence[str], bash: str, out: str) -> dict:
    """The commands' environment: ``tools``' bin directories on PATH."""
    path = ":".join(os.path.join(p, "bin") for p in tools)
    # The build's environment is kept: under fakeroot it carries LD_PRELOAD
    # and FAKEROOTKEY, without which chown would not be faked.
    return {
        **os.environ,
        "PATH": path,
        "BASH": bash,
        "HOME": "/homeless-shelter",
        "out": out,
    }


def chroot_prefix(proot: Optional[str], root: str) -> List[str]:
    """proot makes the image root look like ``/``: nothing of the build's
    file system is seen but the store (where the commands' programs and
    their libraries are), /proc and /dev."""
    if not proot:
        raise SpecError("proot: missing (the commands run with the image root as /)")
    store = os.environ.get("NIX_STORE") or "/nix/store"
    return [proot, "-r", root, "-w", "/", "-b", store, "-b", "/proc", "-b", "/dev"]


def rerun_under_fakeroot(fakeroot: Optional[str], python: Optional[str], step: str, env: Optional[dict] = None) -> None:
    """Run build step ``step`` of this builder inside one fakeroot session, so
    the owners commands set are what ``os.lstat`` sees when packing. The
    step reads the same .attrs.json. ``python`` is used when Python cannot
    name its own executable."""
    if not fakeroot:
        raise SpecError(f"fakeroot: missing (needed to run {step})")
    python = sys.executable or python
    if not python:
        raise SpecError(f"python: missing (needed to run {step})")
    argv = [fakeroot, "--", python, "-I", "-B", _BUILDER_DIR, step]
    # fakeroot records an owner, then also tries the real chown and forgives
    # only EPERM; in a sandbox's user namespace an unmapped owner is EINVAL,
    # and chown would fail. The real chown cannot succeed in a build anyway.
    env = {**(os.environ if env is None else env), "FAKEROOTDONTTRYCHOWN": "1"}
    if subprocess.run(argv, env=env).returncode != 0:
        # The session itself printed what went wrong.
        raise BuildError("", already_reported=True)
