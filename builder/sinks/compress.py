"""Deterministic compression sinks.

gzip is made on every core and still depends only on the input bytes, the
level and zlib:

* The input is cut into blocks of exactly ``GZIP_BLOCK_SIZE`` bytes (the
  last one shorter, never empty unless the whole input is), wherever the
  ``write`` calls happen to fall.
* Each block is compressed on its own as a raw deflate stream, primed with
  the last 32 KiB of the block before it as a preset dictionary, and ended
  with a sync flush (an empty stored block, so the next block starts on a
  byte boundary); the last block ends the deflate stream instead. Blocks run
  in a thread pool (zlib releases the GIL) and are written in input order,
  so neither the number of threads nor their timing changes a byte.
* One gzip header: no name, no comment, mtime 0, XFL from the level, and
  OS byte 255 ("unknown"), which is what Go's ``compress/gzip`` writes, so
  it says nothing about the machine that built the layer. One trailer: the
  CRC-32 of the input (per-block CRCs, combined) and its size mod 2^32.

The result is one ordinary gzip member: ``gzip -d``, ``pigz -d``, Python's
``gzip`` and Go's reader all take it. Changing ``GZIP_LEVEL``,
``GZIP_BLOCK_SIZE`` or the zlib version can change the bytes (and the
digests of compressed layers); ``gzip_format()`` names all three.

At most ``2 × threads`` blocks are in flight (each under 1 MiB with zlib's
state), so memory is bounded however big the input; a stream that fits in
one block never starts a thread.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import zlib
from collections import deque
from typing import IO, Callable, Iterator, List, Optional, Union, cast

from builder.errors import BuildError, ImageFormatError
from builder.sinks.sink import Sink

__all__ = [
    "ENCODINGS",
    "ZSTD_COMPRESS_ARGS",
    "ZSTD_LEVEL",
    "GZIP_BLOCK_SIZE",
    "GZIP_LEVEL",
    "GZIP_OS",
    "compressor",
    "default_threads",
    "configured_zstd",
    "gzip_format",
    "use_zstd",
    "zstd_decoder",
    "zstd_program",
]

ENCODINGS = ("none", "gzip", "zstd")
GZIP_LEVEL = 6
GZIP_BLOCK_SIZE = 256 << 10
GZIP_OS = 255
ZSTD_LEVEL = 3

_WINDOW = 32 << 10  # deflate's window: the most a dictionary can give
_MEM_LEVEL = 8  # zlib's default
_INFLIGHT_PER_THREAD = 2  # blocks queued or being compressed, per thread


def gzip_format() -> str:
    """Everything the gzip bytes depend on besides the input."""
    return f"gzip-level{GZIP_LEVEL}-block{GZIP_BLOCK_SIZE}-mem{_MEM_LEVEL}-zlib{zlib.ZLIB_RUNTIME_VERSION}"


def default_threads() -> int:
    """The CPUs this process may use, and no more than ``NIX_BUILD_CORES``
    inside a Nix build that sets it (0 there means all)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    cores = os.environ.get("NIX_BUILD_CORES", "")
    if cores.isdigit() and int(cores) > 0:
        n = min(n, int(cores))
    return max(1, n)


# --- CRC-32 of a concatenation ------------------------------------------------
# Python's zlib has no crc32_combine. The CRC of A+B is CRC(A) times x^(8|B|)
# plus CRC(B), all modulo the CRC polynomial; polynomials are held the way
# zlib holds CRCs, bit-reflected (bit 31 is the x^0 coefficient).

_CRC_POLY = 0xEDB88320
_X0 = 1 << 31


def _gf2_mulmod(a: int, b: int) -> int:
    product = 0
    while a:
        if a & _X0:
            product ^= b
        a = (a << 1) & 0xFFFFFFFF
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1
    return product


def _x_pow_bytes(n: int) -> int:
    """x^(8n) modulo the CRC polynomial."""
    result, base, e = _X0, _X0 >> 8, n  # base: x^8
    while e:
        if e & 1:
            result = _gf2_mulmod(result, base)
        base = _gf2_mulmod(base, base)
        e >>= 1
    return result


_BLOCK_SHIFT = _x_pow_bytes(GZIP_BLOCK_SIZE)


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib.crc32(a + b) from zlib.crc32(a), zlib.crc32(b) and len(b)."""
    shift = _BLOCK_SHIFT if len2 == GZIP_BLOCK_SIZE else _x_pow_bytes(len2)
    return _gf2_mulmod(shift, crc1) ^ crc2


# --- gzip ---------------------------------------------------------------------


def _gzip_header(level: int) -> bytes:
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    # magic, CM=deflate, FLG=0, MTIME=0, XFL, OS
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes((xfl, GZIP_OS))


def _deflate_block(block: bytes, zdict: bytes, last: bool, level: int):
    if zdict:
        z = zlib.compressobj(level, zlib.DEFLATED, -15, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, zdict)
    else:
        z = zlib.compressobj(level, zlib.DEFLATED, -15, _MEM_LEVEL)
    head = z.compress(block)
    tail = z.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return (head + tail if head else tail), zlib.crc32(block), len(block)


class _Job:
    """A call a _Pool thread makes; ``result()`` waits for it."""

    def __init__(self, fn: Callable, args: tuple):
        self.fn, self.args = fn, args
        self.finished = threading.Event()
        self.cancelled = False
        self.value = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        if not self.cancelled:
            try:
                self.value = self.fn(*self.args)
            except BaseException as e:
                self.error = e
        self.finished.set()

    def done(self) -> bool:
        return self.finished.is_set()

    def cancel(self) -> None:
        self.cancelled = True

    def result(self):
        self.finished.wait()
        if self.error is not None:
            raise self.error
        return self.value


class _Pool:
    """The threads block compression runs on, jobs taken in order.
    (concurrent.futures would do, but loads logging: 10 ms of every push
    that compresses a layer.)"""

    def __init__(self, threads: int):
        import queue

        self.jobs: queue.SimpleQueue[Optional[_Job]] = queue.SimpleQueue()
        self.threads: List[threading.Thread] = []
        for n in range(threads):
            t = threading.Thread(target=self._work, name=f"gzip-{n}", daemon=True)
            t.start()
            self.threads.append(t)

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            job.run()

    def submit(self, fn: Callable, *args) -> _Job:
        job = _Job(fn, args)
        self.jobs.put(job)
        return job

    def shutdown(self) -> None:
        """Waits for the threads; jobs cancelled before they started are skipped."""
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join()


class _GzipSink(Sink):
    """Block-parallel, deterministic gzip into ``inner`` (see the module notes)."""

    def __init__(
        self, inner: Sink, level: int = GZIP_LEVEL, threads: Optional[int] = None, block_size: int = GZIP_BLOCK_SIZE
    ):
        if block_size < _WINDOW:
            raise ValueError("gzip block size must be at least 32 KiB")
        self.inner = inner
        self.level = level
        self.block_size = block_size
        self.threads = max(1, threads or default_threads())
        self.pending = bytearray()
        self.zdict = b""
        self.crc = 0
        self.size = 0
        self.inflight: deque = deque()
        self.pool: Optional[_Pool] = None
        self.inner.write(_gzip_header(level))

    def write(self, data) -> None:
        pending = self.pending
        pending += data
        bs = self.block_size
        # A block leaves only once more input follows it: the last block is
        # known at close, and then ends the stream.
        if len(pending) > bs:
            view = memoryview(pending)
            start = 0
            while len(pending) - start > bs:
                self._submit(bytes(view[start : start + bs]))
                start += bs
            view.release()
            del pending[:start]

    def _submit(self, block: bytes) -> None:
        zdict, self.zdict = self.zdict, block[-_WINDOW:]
        if self.threads == 1:
            self._emit(*_deflate_block(block, zdict, False, self.level))
            return
        if self.pool is None:
            self.pool = _Pool(self.threads)
        self.inflight.append(self.pool.submit(_deflate_block, block, zdict, False, self.level))
        # Bounded: wait for the oldest block when the queue is full; write out
        # whatever else is already done.
        inflight = self.inflight
        if len(inflight) >= _INFLIGHT_PER_THREAD * self.threads:
            self._emit(*inflight.popleft().result())
        while inflight and inflight[0].done():
            self._emit(*inflight.popleft().result())

    def _emit(self, out: bytes, crc: int, n: int) -> None:
        self.crc = crc32_combine(self.crc, crc, n)
        self.size += n
        self.inner.write(out)

    def close(self) -> None:
        try:
            while self.inflight:
                self._emit(*self.inflight.popleft().result())
            self._emit(*_deflate_block(bytes(self.pending), self.zdict, True, self.level))
            self.pending.clear()
            self.inner.write(struct.pack("<II", self.crc, self.size & 0xFFFFFFFF))
        finally:
            self._shutdown()

    def abort(self) -> None:
        for f in self.inflight:
            f.cancel()
        self.inflight.clear()
        self._shutdown()

    def _shutdown(self) -> None:
        if self.pool is not None:
            for job in self.inflight:
                job.cancel()
            self.pool.shutdown()
            self.pool = None


# --- zstd ---------------------------------------------------------------------
#
# The standard library has no zstd (before 3.14, and the builder keeps to what
# every supported Python has), so zstd is the ``zstd`` program of pkgs.zstd,
# whose store path the build records (``use_zstd``). Its bytes depend only on
# the input, the flags below and the program's version:
#
# * ``--single-thread``: compression in the calling thread. ``-T1`` and up
#   write other (equal among themselves) bytes, and a zstd built without
#   threads can only do this mode, so this is the one every build can repeat.
# * input always on a pipe, and ``--no-content-size``: the frame never
#   records a size that only a file input would give;
# * ``--check``: the content checksum, said explicitly (not left to defaults);
# * a fixed level (``ZSTD_LEVEL``) and no ``ZSTD_CLEVEL``/``ZSTD_NBTHREADS``
#   from the environment.

ZSTD_COMPRESS_ARGS = (f"-{ZSTD_LEVEL}", "--single-thread", "--check", "--no-content-size", "--no-progress", "-q", "-c")
ZSTD_DECOMPRESS_ARGS = ("-d", "--no-progress", "-q", "-c")

_zstd_program: Optional[str] = None


def use_zstd(program: Optional[str]) -> None:
    """The zstd program (pkgs.zstd's, recorded at build time) for every zstd
    compression and decompression of this process."""
    global _zstd_program
    if program:
        _zstd_program = program


def configured_zstd() -> Optional[str]:
    """The program ``use_zstd`` chose, if any."""
    return _zstd_program


def zstd_program() -> str:
    """The zstd program: the recorded one, else ``zstd`` on PATH."""
    if _zstd_program:
        return _zstd_program
    import shutil  # zstd only, outside a build: not loaded otherwise

    program = shutil.which("zstd")
    if not program:
        raise BuildError(
            "zstd needs the zstd program (pkgs.zstd): images built here record it; outside a build, put zstd on PATH"
        )
    return program


class _ZstdProgramSink(Sink):
    """Bytes through a ``zstd`` program (compressing, or with ``-d``
    decompressing) into ``inner``: written here, read back by a thread."""

    def __init__(self, inner: Sink, program: str, args=ZSTD_COMPRESS_ARGS, what: str = "zstd"):
        self.inner = inner
        self.what = what
        self.decompressing = "-d" in args
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZSTD_")}
        import subprocess  # zstd only: not loaded otherwise

        try:
            self.proc = subprocess.Popen(
                [program, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
            )
        except OSError as e:
            raise BuildError(f"cannot run {program}: {e.strerror}") from None
        # All three are pipes (PIPE above), so never None.
        self.stdin = cast(IO[bytes], self.proc.stdin)
        self.stdout = cast(IO[bytes], self.proc.stdout)
        self.stderr = cast(IO[bytes], self.proc.stderr)
        self.error: Optional[BaseException] = None
        self.messages = b""
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.err_reader = threading.Thread(target=self._drain_errors, daemon=True)
        self.err_reader.start()

    def _drain(self) -> None:
        try:
            while True:
                chunk = self.stdout.read1(1 << 20) if hasattr(self.stdout, "read1") else self.stdout.read(1 << 20)
                if not chunk:
                    return
                self.inner.write(chunk)
        except BaseException as e:  # handed to the writing thread in close()
            self.error = e
            # Keep the pipe flowing so the writer never blocks on a full one.
            while self.stdout.read(1 << 20):
                pass

    def _drain_errors(self) -> None:
        self.messages = self.stderr.read()[-2000:]

    def write(self, data) -> None:
        try:
            self.stdin.write(data)
        except BrokenPipeError:
            self._finish()

    def _finish(self) -> None:
        try:
            self.stdin.close()
        except BrokenPipeError:
            pass
        self.reader.join()
        self.err_reader.join()
        code = self.proc.wait()
        if self.error is not None:
            raise self.error
        if code != 0:
            detail = self.messages.decode(errors="replace").strip().splitlines()
            reason = detail[-1] if detail else f"exit code {code}"
            if self.decompressing:
                raise ImageFormatError(f"{self.what}: broken zstd data ({reason})")
            raise BuildError(f"zstd failed: {reason}")

    def close(self) -> None:
        self._finish()

    def abort(self) -> None:
        self.proc.kill()
        self.reader.join()
        self.err_reader.join()
        self.proc.wait()


@contextlib.contextmanager
def zstd_decoder(inner: Sink, what: str) -> Iterator[Sink]:
    """A sink taking zstd bytes and writing them decompressed into ``inner``;
    broken data is an ImageFormatError naming ``what``."""
    sink = _ZstdProgramSink(inner, zstd_program(), ZSTD_DECOMPRESS_ARGS, what)
    try:
        yield sink
    except BaseException:
        sink.abort()
        raise
    sink.close()


@contextlib.contextmanager
def compressor(
    encoding: str, inner: Sink, *, threads: Optional[int] = None, program: Optional[str] = None
) -> Iterator[Sink]:
    """A sink that compresses into ``inner``; the stream ends on exit.

    ``threads`` only changes the speed of gzip, never its bytes (default:
    the CPUs this process may run on). If the body raises, the stream is
    left unfinished and the worker threads are stopped. ``program``: the
    zstd executable, when not the one ``use_zstd`` recorded.
    """
    sink: Union[_GzipSink, _ZstdProgramSink]
    if encoding == "gzip":
        sink = _GzipSink(inner, GZIP_LEVEL, threads)
    elif encoding == "zstd":
        sink = _ZstdProgramSink(inner, program or zstd_program())
    elif encoding == "none":
        yield inner
        return
    else:
        raise BuildError(f"unknown compression {encoding!r}: expected one of {', '.join(ENCODINGS)}")
    try:
        yield sink
    except BaseException:
        sink.abort()
        raise
    sink.close()
