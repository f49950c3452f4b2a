"""Where a finished archive goes: stdout, or a file that appears only whole.

A file output is written to a temporary name beside it and renamed at the
end, so a failed build never leaves something that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, Optional

from . import compress
from .errors import BuildError
from .sinks import FdSink, Sink

__all__ = ["open_output"]


@contextlib.contextmanager
def _target(path: Optional[str]) -> Iterator[int]:
    if path is None or path == "-":
        fd = sys.stdout.fileno()
        if os.isatty(fd):
            raise BuildError("refusing to write an image archive to a terminal: "
                             "pipe it (| podman load) or give --output FILE")
        yield fd
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        raise BuildError(f"cannot write {path}: {e.strerror}") from None
    try:
        yield fd
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


@contextlib.contextmanager
def open_output(path: Optional[str], compression: str = "none") -> Iterator[Sink]:
    """A sink for a whole archive, optionally compressed as a whole."""
    with _target(path) as fd:
        raw = FdSink(fd)
        with compress.compressor(compression, raw) as sink:
            yield sink
        raw.flush()
