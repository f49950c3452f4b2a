"""Build time: a small tree of text files, directories and symlinks
(``python3 builder files``), for helpers like fakeNss and binSh that need
no shell and no stdenv.

``files`` is a list of ``{"path": "etc/passwd", "text": "...", "mode": 420}``,
``{"path": "bin/sh", "symlink": "/nix/store/..."}`` or
``{"path": "var/empty", "directory": true}``.
"""

from __future__ import annotations

import os

from builder.contract import FilesSpec
from builder.errors import SpecError

__all__ = ["write_files"]


def _target(out: str, rel: str) -> str:
    parts = rel.strip("/").split("/")
    if not rel.strip("/") or any(p in ("", ".", "..") for p in parts):
        raise SpecError(f"files: {rel!r} is not a plain relative path")
    return os.path.join(out, *parts)


def write_files(spec: FilesSpec) -> None:
    out = spec.out
    os.makedirs(out)
    for i, entry in enumerate(spec.files):
        if not isinstance(entry, dict) or "path" not in entry:
            raise SpecError(f"files: entry {i} needs a path")
        target = _target(out, entry["path"])
        if entry.get("directory"):
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if "symlink" in entry:
            os.symlink(entry["symlink"], target)
        elif "text" in entry:
            with open(target, "w") as f:
                f.write(entry["text"])
            os.chmod(target, entry.get("mode", 0o444))
        else:
            raise SpecError(f"files: {entry['path']}: needs text, symlink or directory")
