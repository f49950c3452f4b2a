"""What the builder tells a person on stderr while it works: progress
lines, notes, sizes and digests in a readable form. Errors are printed by
``cli`` alone."""

from __future__ import annotations

import sys

__all__ = ["human_size", "progress_line", "short_digest"]


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def short_digest(digest: str) -> str:
    return digest[:19] + "…"


def progress_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
