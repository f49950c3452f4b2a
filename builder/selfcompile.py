"""The builder with its bytecode, as Nix installs it (``src`` in nix/builder.nix).

Every step and script runs ``python3 -IB`` (scripts ``-IBS``): no bytecode is written, so a
module without its ``.pyc`` is compiled again on every run (for a push, about
60 ms of its time). The copy made here carries hash-based ``.pyc`` files that
are never checked against their source (nothing in the store changes), so
Python loads them as they are. Run with ``PYTHONHASHSEED=0`` for the same
bytes every time (constant sets are written in their iteration order).
"""

from __future__ import annotations

import compileall
import os
import py_compile
import shutil

__all__ = ["copy_compiled"]


def copy_compiled(sources: str, out: str) -> None:
    """Copy ``sources``/builder to ``out``/builder (no old bytecode) and compile it there."""
    target = os.path.join(out, "builder")
    shutil.copytree(
        os.path.join(sources, "builder"),
        target,
        copy_function=shutil.copyfile,  # writable copies of read-only store files
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for root, dirs, _files in os.walk(target):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
    os.chmod(target, 0o755)
    ok = compileall.compile_dir(
        target, quiet=1, workers=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )
    if not ok:
        raise SystemExit(f"compiling {target} failed")
