"""Byte sinks: where layer and archive bytes go.

Every producer of bytes (tar writer, archive writer, compressor) writes into
a sink with two calls: ``write(data)`` and ``copy_file(fd, size)``. The second
lets a sink that ends in a real file descriptor move file contents with
``os.sendfile`` without the bytes passing through Python, while a hashing
sink reads them itself. Producers never need to know which sink they feed.
"""

from __future__ import annotations

import os
import stat
from types import ModuleType
from typing import Callable, List, Optional, Tuple

fcntl: Optional[ModuleType]
try:
    import fcntl
except ImportError:  # not on POSIX
    fcntl = None

__all__ = [
    "CountSink",
    "FdSink",
    "HashSink",
    "MemorySink",
    "Sink",
    "TeeSink",
    "grow_pipe",
    "output_fd_counted",
    "read_exactly",
    "write_all",
    "writev_all",
]

# Small writes are gathered into one buffer: a pipe write per tar header
# would cost a system call per file. Not much more than that, though: a big
# write into a pipe waits for the reader to drain all of it, while smaller
# ones let both sides run at once.
_BUFFER_LIMIT = 64 << 10
# An output pipe is grown to this (Linux; the unprivileged maximum by
# default), so the reader falls behind less often.
_PIPE_SIZE = 1 << 20
# Below this a file is read and buffered; above it, handed to sendfile.
_SENDFILE_MIN = 64 << 10
_READ_CHUNK = 1 << 20
# Buffers per writev: Linux's IOV_MAX (POSIX promises at least 16).
_IOV_MAX = 1024


class Sink:
    """Base sink: subclasses implement ``write``; ``copy_file`` reads."""

    def write(self, data) -> None:
        """Take ``data`` (bytes, or a memoryview of a buffer the caller
        fills again once this returns: copy what must be kept)."""
        raise NotImplementedError

    def copy_file(self, fd: int, size: int) -> None:
        """Write exactly ``size`` bytes read from ``fd`` (at its offset)."""
        remaining = size
        while remaining:
            chunk = os.read(fd, min(remaining, _READ_CHUNK))
            if not chunk:
                raise OSError(f"file shrank while reading: {remaining} bytes missing")
            self.write(chunk)
            remaining -= len(chunk)

    def write_framed(self, head: bytes, fd: int, size: int, tail: bytes) -> None:
        """``head``, then ``size`` bytes read from ``fd``, then ``tail``: one
        call per tar member, which sinks may serve with fewer steps."""
        self.write(head)
        self.copy_file(fd, size)
        self.write(tail)

    def write_parts(self, parts: List[bytes]) -> None:
        """Every one of ``parts`` in turn: one call per batch of small tar
        members, which a file descriptor takes in one ``writev``."""
        self.write(b"".join(parts))

    def output_fd(self) -> Optional[Tuple[int, Callable[[int], None]]]:
        """The file descriptor this sink's bytes end in unchanged, flushed,
        and what to call with the number of bytes others wrote into it
        directly (``tar.parallel``); None when the sink changes or keeps
        them (a hash, a compressor, memory)."""
        return None

    def flush(self) -> None:
        pass


def _wait_writable(fd: int) -> None:
    import select

    select.select([], [fd], [])


def _sha256():
    # hashlib loads OpenSSL (over 10 ms): only sinks that hash pay for it.
    import hashlib

    return hashlib.sha256()


def write_all(fd: int, data) -> None:
    """All of ``data`` into ``fd``, however many writes that takes."""
    with memoryview(data) as view:
        done = 0
        while done < len(view):
            try:
                done += os.write(fd, view[done:])
            except BlockingIOError:
                _wait_writable(fd)  # a non-blocking pipe someone handed us, full


def writev_all(fd: int, parts: List[bytes]) -> int:
    """All of ``parts`` into ``fd`` with as few ``writev`` calls as the
    system's limit on buffers per call allows; returns the bytes written."""
    total = 0
    start = 0
    while start < len(parts):
        batch = parts[start : start + _IOV_MAX]
        size = sum(map(len, batch))
        try:
            done = os.writev(fd, batch)
        except BlockingIOError:
            _wait_writable(fd)  # a non-blocking pipe someone handed us, full
            continue
        if done < size:  # a pipe or file took part of it: the rest one by one
            for part in batch:
                if done >= len(part):
                    done -= len(part)
                    continue
                write_all(fd, memoryview(part)[done:])
                done = 0
        total += size
        start += _IOV_MAX
    return total


def output_fd_counted(inner: Sink, count: Callable[[int], None]) -> Optional[Tuple[int, Callable[[int], None]]]:
    """``inner.output_fd()`` for a sink that passes bytes on to ``inner``
    and counts them: bytes written into the descriptor directly are
    counted too."""
    target = inner.output_fd()
    if target is None:
        return None
    fd, wrote = target

    def counted(n: int) -> None:
        wrote(n)
        count(n)

    return fd, counted


def read_exactly(fd: int, size: int, data: bytes = b"") -> bytes:
    """``size`` bytes from ``fd``; ``data``: what a first read already gave."""
    if not data:
        data = os.read(fd, size)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.read(fd, size - got)
        if not more:
            raise OSError(f"file shrank while reading: {size - got} bytes missing")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def grow_pipe(fd: int) -> None:
    """Give an output pipe a bigger buffer; anything else is left alone."""
    if fcntl is None:
        return
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is None:
        return
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return
        if fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < _PIPE_SIZE:
            fcntl.fcntl(fd, setsize, _PIPE_SIZE)
    except OSError:
        pass  # over the user's pipe quota, or not allowed: the default works


class FdSink(Sink):
    """Buffered writes to a file descriptor; big files go by sendfile."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()
        self.written = 0
        grow_pipe(fd)

    def write(self, data) -> None:
        if len(data) >= _BUFFER_LIMIT:  # big bytes go as they are, not through the buffer
            self.flush()
            self._write_out(data)
            return
        self.buffer += data
        if len(self.buffer) >= _BUFFER_LIMIT:
            self.flush()

    def write_parts(self, parts: List[bytes]) -> None:
        self.flush()
        self.written += writev_all(self.fd, parts)

    def flush(self) -> None:
        self._write_out(self.buffer)
        self.buffer.clear()

    def _write_out(self, data) -> None:
        write_all(self.fd, data)
        self.written += len(data)

    def output_fd(self) -> Optional[Tuple[int, Callable[[int], None]]]:
        self.flush()
        return self.fd, self._count

    def _count(self, n: int) -> None:
        self.written += n

    def write_framed(self, head: bytes, fd: int, size: int, tail: bytes) -> None:
        if size >= _SENDFILE_MIN:
            Sink.write_framed(self, head, fd, size, tail)
            return
        buffer = self.buffer
        buffer += head
        if size:
            data = os.read(fd, size)
            buffer += data if len(data) == size else read_exactly(fd, size, data)
        buffer += tail
        if len(buffer) >= _BUFFER_LIMIT:
            self.flush()

    def copy_file(self, fd: int, size: int) -> None:
        if size < _SENDFILE_MIN:
            self.write(read_exactly(fd, size))
            return
        self.flush()
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        remaining = size
        while remaining:
            try:
                sent = os.sendfile(self.fd, fd, offset, remaining)
            except BlockingIOError:
                _wait_writable(self.fd)
                continue
            except OSError:
                # Some outputs (old kernels, certain pipes) refuse sendfile.
                self.written += size - remaining
                os.lseek(fd, offset, os.SEEK_SET)
                Sink.copy_file(self, fd, remaining)
                self.flush()
                return
            if sent == 0:
                raise OSError(f"file shrank while reading: {remaining} bytes missing")
            offset += sent
            remaining -= sent
        # sendfile with an offset leaves the file's own offset alone; move it
        # past what was sent, so the next read (a caller copying a big file
        # in pieces) goes on from there, as every sink's copy_file does.
        os.lseek(fd, offset, os.SEEK_SET)
        self.written += size


class HashSink(Sink):
    """Counts and sha256-hashes everything written; keeps nothing."""

    def __init__(self):
        self.hash = _sha256()
        self.size = 0
        self._buf = bytearray(_READ_CHUNK)

    def write(self, data) -> None:
        self.hash.update(data)
        self.size += len(data)

    def copy_file(self, fd: int, size: int) -> None:
        view = memoryview(self._buf)
        remaining = size
        while remaining:
            n = os.readv(fd, [view[: min(remaining, _READ_CHUNK)]])
            if n == 0:
                raise OSError(f"file shrank while reading: {remaining} bytes missing")
            # hashlib releases the GIL on large updates, so layers hash in parallel.
            self.hash.update(view[:n])
            remaining -= n
        self.size += size

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class CountSink(Sink):
    """Only counts bytes: sizes without reading file contents."""

    def __init__(self):
        self.size = 0

    def write(self, data) -> None:
        self.size += len(data)

    def copy_file(self, fd: int, size: int) -> None:
        self.size += size


class MemorySink(Sink):
    """Keeps everything written, in ``data``: a layer or archive in memory."""

    def __init__(self):
        self.data = bytearray()

    def write(self, data) -> None:
        self.data += data


class TeeSink(Sink):
    """Writes to an inner sink and hashes the same bytes on the way."""

    def __init__(self, inner: Sink):
        self.inner = inner
        self.hash = _sha256()
        self.size = 0

    def write(self, data) -> None:
        self.hash.update(data)
        self.size += len(data)
        self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()
