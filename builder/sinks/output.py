"""Where a finished archive goes: stdout, or a file that appears only whole.

A file output is written to a temporary name beside it and renamed at the
end, so a failed build never leaves something that looks finished.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from typing import Iterator, Optional

from builder.errors import BuildError
from builder.sinks import compress
from builder.sinks.sink import FdSink, Sink

__all__ = ["OUTPUT_ERRORS", "open_output"]


# Write errors that are the output's fault, not a bug: reported in one line.
OUTPUT_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


@contextlib.contextmanager
def _reported(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        if e.errno not in OUTPUT_ERRORS or e.filename is not None:
            raise
        raise BuildError(f"cannot write {what}: {e.strerror}") from None


def _is_special(path: str) -> bool:
    """A device, FIFO or socket (/dev/null, a named pipe): written in place,
    never replaced by a file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _descriptor_named(path: str) -> Optional[int]:
    """The file descriptor a name like /dev/stdout or /dev/fd/3 means: it is
    written as it is, as ``-`` writes stdout (replacing the file behind it
    would leave the shell's descriptor on a deleted file)."""
    names = {"/dev/stdout": 1, "/dev/stderr": 2}
    if path in names:
        return names[path]
    for prefix in ("/dev/fd/", "/proc/self/fd/"):
        if path.startswith(prefix) and path[len(prefix) :].isdigit():
            return int(path[len(prefix) :])
    return None


@contextlib.contextmanager
def _target(path: Optional[str]) -> Iterator[int]:
    if path == "":
        raise BuildError("--output is empty: give a file name, or - for stdout")
    named = None if path is None else _descriptor_named(path)
    if path is not None and named is not None:
        try:
            os.fstat(named)
        except OSError:
            raise BuildError(f"cannot write {path}: file descriptor {named} is not open") from None
        with _reported(path):
            yield named
        return
    if path is None or path == "-":
        if sys.stdout is None:
            raise BuildError("stdout is closed: pipe the image (| podman load) or give --output FILE")
        fd = sys.stdout.fileno()
        if os.isatty(fd):
            raise BuildError(
                "refusing to write an image archive to a terminal: pipe it (| podman load) or give --output FILE"
            )
        with _reported("to stdout"):
            yield fd
        return
    if _is_special(path):
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as e:
            raise BuildError(f"cannot write {path}: {e.strerror}") from None
        try:
            with _reported(path):
                yield fd
        finally:
            os.close(fd)
        return
    if path.endswith("/") or os.path.isdir(path):
        raise BuildError(f"cannot write {path}: it is a directory (give a file name)")
    # A symlink (/dev/stdout onto a file, out.tar -> builds/v1.tar) is
    # written through: the file it names is replaced, never the link.
    real = os.path.realpath(path) if os.path.islink(path) else path
    tmp = f"{real}.tmp-{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        raise BuildError(f"cannot write {path}: {e.strerror}") from None
    try:
        with _reported(path):
            yield fd
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, real)
    except OSError as e:
        os.unlink(tmp)
        raise BuildError(f"cannot write {path}: {e.strerror}") from None


@contextlib.contextmanager
def open_output(path: Optional[str], compression: str = "none", zstd_program: Optional[str] = None) -> Iterator[Sink]:
    """A sink for a whole archive, optionally compressed as a whole."""
    with _target(path) as fd:
        raw = FdSink(fd)
        with compress.compressor(compression, raw, program=zstd_program) as sink:
            yield sink
        raw.flush()
