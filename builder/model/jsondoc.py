"""JSON documents from outside (manifests, configs, indexes, descriptions):
size checked before a byte is read, nesting bounded, one clear error.

``json`` alone reads a 1 GiB manifest.json whole, recurses until Python
gives up on ``[[[[...`` and reads ``/dev/zero`` until memory runs out.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from builder.errors import ImageFormatError

__all__ = ["CONFIG_LIMIT", "INDEX_LIMIT", "MANIFEST_LIMIT", "MAX_DEPTH", "check_size", "parse_json", "read_json_file"]

# Registries must take manifests of 4 MiB (distribution-spec); twice that is
# not a manifest. Configs carry history and env, indexes list platforms: a
# real one is kilobytes, these bounds leave room without trusting a header.
MANIFEST_LIMIT = 8 << 20
CONFIG_LIMIT = 32 << 20
INDEX_LIMIT = 32 << 20
MAX_DEPTH = 200


def _size_text(n: int) -> str:
    return f"{n} bytes" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"


def check_size(size: int, limit: int, what: str) -> None:
    """Refuse a document of ``size`` bytes before reading it."""
    if size > limit:
        raise ImageFormatError(f"{what}: {_size_text(size)}, more than the {_size_text(limit)} read for one")


def _depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return True


def parse_json(data: bytes, what: str) -> Any:
    """``data`` parsed, or one ImageFormatError naming ``what``."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ImageFormatError(f"{what}: JSON nested more than {MAX_DEPTH} deep") from None
    except ValueError as e:
        text = str(e)
        raise ImageFormatError(f"{what}: not JSON ({text[:200]})") from None
    if not _depth_ok(value):
        raise ImageFormatError(f"{what}: JSON nested more than {MAX_DEPTH} deep")
    return value


def read_json_file(path: str, limit: int, what: str) -> Any:
    """A regular file's JSON (a FIFO or ``/dev/zero`` is refused unread)."""
    return parse_json(read_limited(path, limit, what), what)


def read_limited(path: str, limit: int, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise ImageFormatError(f"{what}: cannot read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageFormatError(f"{what}: not a regular file")
        check_size(st.st_size, limit, what)
        data = f.read(limit + 1)
    check_size(len(data), limit, what)
    return data
