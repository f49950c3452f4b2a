"""Deterministic compression sinks.

gzip output carries no time and no name (zlib's own header: mtime 0, OS
byte 3), at a fixed level, so the bytes depend only on the input and zlib.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Iterator

from .errors import BuildError
from .sinks import Sink

__all__ = ["compressor", "ENCODINGS", "GZIP_LEVEL"]

ENCODINGS = ("none", "gzip", "zstd")
GZIP_LEVEL = 6


class _ZlibSink(Sink):
    def __init__(self, inner: Sink, level: int):
        self.inner = inner
        # wbits 31: gzip wrapper written by zlib itself, no name, mtime 0.
        self.z = zlib.compressobj(level, zlib.DEFLATED, 31, 9)

    def write(self, data) -> None:
        out = self.z.compress(data)
        if out:
            self.inner.write(out)

    def close(self) -> None:
        self.inner.write(self.z.flush())


class _ZstdSink(Sink):
    def __init__(self, inner: Sink, zstd_module):
        self.inner = inner
        self.c = zstd_module.ZstdCompressor(level=3)

    def write(self, data) -> None:
        out = self.c.compress(data)
        if out:
            self.inner.write(out)

    def close(self) -> None:
        self.inner.write(self.c.flush())


def _zstd_module():
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        raise BuildError("zstd compression needs a Python with compression.zstd (3.14 or newer); "
                         "use gzip or none") from None
    return zstd


@contextlib.contextmanager
def compressor(encoding: str, inner: Sink) -> Iterator[Sink]:
    """A sink that compresses into ``inner``; the stream ends on exit."""
    if encoding == "gzip":
        sink = _ZlibSink(inner, GZIP_LEVEL)
    elif encoding == "zstd":
        sink = _ZstdSink(inner, _zstd_module())
    elif encoding == "none":
        yield inner
        return
    else:
        raise BuildError(f"unknown compression {encoding!r}: expected one of {', '.join(ENCODINGS)}")
    yield sink
    sink.close()
