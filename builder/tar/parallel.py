"""Store trees written into a file descriptor by several processes in turn.

On a store of small files (man pages, headers, icons) one process spends its
time on per-entry work: Python packing a header around four system calls
(``lstat``, ``open``, ``read``, ``close``) that GNU tar makes in C. When a
layer's bytes go unchanged into a file descriptor (a stream into
``docker load``, a layer file), that work is shared with worker processes,
forked once per layer:

- this process lists the trees (``_chunks``: directory listings only, no
  ``lstat``) and sends the entries' names in chunks to the workers in turn
  (chunk k to worker k mod n, at most two chunks ahead of each);
- a worker ``lstat``s a chunk's entries and lays out their tar bytes in
  its memory with ``tarstream.pack`` (what one process uses); big files
  (and whatever comes after the chunk's first ``CHUNK_BYTES``) wait for
  its turn, big files go by ``sendfile``;
- each chunk's worker is given its turn in chunk order, writes the chunk
  into the file descriptor itself and says how many bytes it wrote.

So the bytes are those of one process writing the same entries, whatever
the number of workers or their timing, and they are copied once, as in one
process. A sink that changes the bytes (hashing, compressing) gets them
from one process (``Sink.output_fd`` says which is which), as does a layer
that keeps hardlinks (one table of them across the layer: ``write_tree``).
"""

from __future__ import annotations

import os
import stat
import threading
from collections import deque
from itertools import chain
from typing import Any, Callable, Deque, Iterator, List, Optional, Sequence, Set, Tuple

from builder.errors import BuildError
from builder.sinks.compress import default_threads
from builder.sinks.sink import FdSink, Sink, grow_pipe, read_exactly, write_all
from builder.tar.tarstream import Entry, Stamp, pack, refuse_whiteouts, walk, write_entries, write_member

__all__ = ["jobs", "write_trees"]

# A chunk: at most this many entries, and this many bytes of tar made ahead
# of a worker's turn (what does not fit waits for the turn).
CHUNK_ENTRIES = 512
CHUNK_BYTES = 8 << 20
# Files this big are read on the worker's turn, by sendfile.
BIG_FILE = 256 << 10
# Fewer entries than this are written by this process alone.
MIN_ENTRIES = 4096
MAX_WORKERS = 4

_INT = 8  # bytes of a number sent between the processes
_ERROR = 1 << 63  # a report with this bit: a pickled exception follows


def jobs() -> int:
    """Processes to use: the cores this one may use, as for gzip's threads
    (at most ``NIX_BUILD_CORES`` in a build), and at most ``MAX_WORKERS``."""
    return min(default_threads(), MAX_WORKERS)


def write_trees(sink: Sink, roots: Sequence[Tuple[bytes, bytes]], stamp: Stamp, workers: int = 0) -> None:
    """Every ``(path, name)`` tree of ``roots`` in turn, as ``write_tree``
    writes each with no hardlink table: the same bytes."""
    workers = workers or jobs()
    # (A fork beside other threads may copy a lock another one holds.)
    target = sink.output_fd() if workers >= 2 and threading.active_count() == 1 else None
    if target is not None and hasattr(os, "fork"):
        fd, wrote = target
        most_bytes = _chunk_bytes()
        chunks = _chunks(roots, most_bytes)
        first: List[bytes] = []
        listed = 0
        for chunk in chunks:
            first.append(chunk)
            listed += chunk.count(b"\0") // 2
            if listed >= MIN_ENTRIES:
                try:
                    pool = _Pool(workers, stamp, fd, most_bytes)
                except OSError:
                    break  # no processes to be had: this one does it all
                try:
                    pool.run(chain(first, chunks), wrote)
                finally:
                    pool.close()
                return
    for path, name in roots:
        write_entries(sink, walk(path, name), stamp)


def _chunks(roots: Sequence[Tuple[bytes, bytes]], most_bytes: int) -> Iterator[bytes]:
    """``tarstream.walk``'s entries of every tree, in its order, as sent to
    the workers: ``path\\0name\\0`` each, in chunks of at most
    ``CHUNK_ENTRIES`` entries and ``most_bytes`` bytes. Without walk's
    ``lstat``: directory listings tell directories apart (``d_type``)."""
    parts: List[bytes] = []
    append = parts.append
    described = 0
    for root, root_name in roots:
        # Per directory being walked: its children left, which of them are
        # directories, and what makes their paths and names. The root comes
        # as the only child of a directory of no name.
        stack = [(iter((b"",)), {b""} if stat.S_ISDIR(os.lstat(root).st_mode) else set(), root, root_name)]
        while stack:
            children, dirs, base, prefix = stack[-1]
            for child in children:
                path = base + child
                name = prefix + child
                item = path + b"\0" + name + b"\0"
                append(item)
                described += len(item)
                # A path and a name are at most 4096 bytes each (PATH_MAX).
                if len(parts) >= CHUNK_ENTRIES or described + 8194 >= most_bytes:
                    yield b"".join(parts)
                    parts.clear()
                    described = 0
                if child in dirs:
                    stack.append(_listing(path, name))
                    break  # its entries come next; then on with these
            else:
                stack.pop()
    if parts:
        yield b"".join(parts)


def _listing(path: bytes, name: bytes) -> Tuple[Iterator[bytes], Set[bytes], bytes, bytes]:
    """A directory's children sorted by bytes (as ``walk`` sorts them),
    those that are directories, and the prefixes of their paths and names."""
    with os.scandir(path) as listing:
        found = list(listing)
    children = sorted([e.name for e in found])
    prefix = name + b"/" if name else b""
    refuse_whiteouts(prefix, children)
    dirs = {e.name for e in found if e.is_dir(follow_symlinks=False)}
    return iter(children), dirs, path if path.endswith(b"/") else path + b"/", prefix


class _Worker:
    """A forked process writing the chunks sent to it into ``out``, each
    when given its turn."""

    def __init__(self, stamp: Stamp, out: int, inherited: Sequence[int]):
        chunks_r, chunks_w = os.pipe()
        turns_r, turns_w = os.pipe()
        reports_r, reports_w = os.pipe()
        grow_pipe(chunks_w)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                for fd in (chunks_w, turns_w, reports_r, *inherited):
                    os.close(fd)
                _serve(chunks_r, turns_r, reports_w, out, stamp)
            finally:
                os._exit(0)  # never back into the parent's stack
        for fd in (chunks_r, turns_r, reports_w):
            os.close(fd)
        self.pid, self.chunks, self.turns, self.reports = pid, chunks_w, turns_w, reports_r
        self.most_bytes = _chunk_bytes(chunks_w)

    def fds(self) -> List[int]:
        return [self.chunks, self.turns, self.reports]

    def send(self, chunk: bytes) -> None:
        write_all(self.chunks, len(chunk).to_bytes(_INT, "big") + chunk)

    def take_turn(self) -> int:
        """Let it write its oldest chunk; returns the bytes it wrote."""
        try:
            os.write(self.turns, b"\1")
        except BrokenPipeError:
            pass  # it stopped at an error: its report says which
        head = _read_upto(self.reports, _INT)
        if len(head) < _INT:
            raise BuildError("a process writing the layer ended before its last entry")
        report = int.from_bytes(head, "big")
        if report & _ERROR:
            raise _unpickled(_read_upto(self.reports, report & ~_ERROR))
        return report

    def close(self, kill: bool) -> None:
        os.close(self.chunks)  # no more chunks: it ends
        os.close(self.turns)
        if kill:
            try:
                os.kill(self.pid, 9)  # SIGKILL
            except ProcessLookupError:
                pass
        os.waitpid(self.pid, 0)
        os.close(self.reports)


class _Pool:
    def __init__(self, workers: int, stamp: Stamp, out: int, most_bytes: int):
        self.workers: List[_Worker] = []
        self.failed = True
        try:
            for _ in range(workers):
                self.workers.append(_Worker(stamp, out, [fd for w in self.workers for fd in w.fds()]))
            if min(w.most_bytes for w in self.workers) < most_bytes:
                # A pipe grown less than the one measured (the user's pipe
                # quota ran out since): sending a chunk could wait forever.
                raise OSError("pipes to the workers are too small")
        except BaseException:
            self.close()
            raise

    def run(self, chunks: Iterator[bytes], wrote: Callable[[int], None]) -> None:
        n = len(self.workers)
        waiting: Deque[_Worker] = deque()  # chunks sent and not written, in order
        for k, chunk in enumerate(chunks):
            if len(waiting) >= 2 * n:
                wrote(waiting.popleft().take_turn())
            worker = self.workers[k % n]
            try:
                worker.send(chunk)
            except BrokenPipeError:
                # It stopped at an error in a chunk it had: what comes before
                # that chunk is written first, as one process would.
                while waiting:
                    wrote(waiting.popleft().take_turn())
                raise BuildError("a process writing the layer ended before its last entry") from None
            waiting.append(worker)
        while waiting:
            wrote(waiting.popleft().take_turn())
        self.failed = False

    def close(self) -> None:
        for worker in self.workers:
            worker.close(kill=self.failed)


# A chunk as made ahead of its turn: batches of bytes laid out by
# ``pack``, entries it left (their header made, their file sent on the
# turn), and the entries after the chunk's budget ran out, written on the
# turn itself.
_Plan = List[Tuple[str, Any]]  # (_LAID, List[bytes]), (_LEFT, Left), (_LATER, List[Entry])
_LAID, _LEFT, _LATER = "laid", "left", "later"


def _serve(chunks: int, turns: int, reports: int, out: int, stamp: Stamp) -> None:  # pragma: no cover - child
    direct = FdSink(out)
    try:
        while True:
            head = _read_upto(chunks, _INT)
            if len(head) < _INT:
                return  # no more chunks
            fields = read_exactly(chunks, int.from_bytes(head, "big")).split(b"\0")
            paths = fields[0:-1:2]
            plan = _make(zip(paths, fields[1::2], map(os.lstat, paths)), stamp)
            if not _read_upto(turns, 1):
                return
            before = direct.written
            for kind, item in plan:
                if kind is _LAID:
                    direct.write_parts(item)
                elif kind is _LEFT:
                    write_member(direct, *item)
                else:
                    write_entries(direct, item, stamp)
            direct.flush()
            write_all(reports, (direct.written - before).to_bytes(_INT, "big"))
    except BaseException as e:
        error = _pickled(e)
        try:
            write_all(reports, (len(error) | _ERROR).to_bytes(_INT, "big") + error)
        except OSError:
            pass  # the parent is gone


def _make(entries: Iterator[Entry], stamp: Stamp) -> _Plan:  # pragma: no cover - child
    """A chunk's tar bytes made ahead, but for big files and, once
    ``CHUNK_BYTES`` are laid out, everything after: those are left for the
    turn."""
    plan: _Plan = []
    budget = CHUNK_BYTES
    while True:
        parts: List[bytes] = []
        laid, left = pack(parts, entries, stamp, None, BIG_FILE, budget)
        if parts:
            plan.append((_LAID, parts))
        if left is not None:
            plan.append((_LEFT, left))
            budget -= laid
            continue
        if laid >= budget:
            rest = list(entries)
            if rest:
                plan.append((_LATER, rest))
        return plan


# pickle is imported only when a worker fails: it is not needed otherwise.


def _pickled(error: BaseException) -> bytes:
    import pickle

    try:
        return pickle.dumps(error)
    except Exception:
        return pickle.dumps(BuildError(str(error)))


def _unpickled(data: bytes) -> BaseException:
    import pickle

    try:
        error = pickle.loads(data)  # from our own child
    except Exception:
        error = None
    if isinstance(error, BaseException):
        return error
    return BuildError("a process writing the layer failed")


def _read_upto(fd: int, size: int) -> bytes:
    """``size`` bytes from a pipe, fewer when it ends first."""
    data = b""
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            break
        data += more
    return data


def _chunk_bytes(fd: Optional[int] = None) -> int:
    """The most bytes a chunk may have: two always fit in a worker's pipe
    (``fd``, or a new one grown as theirs are), so sending one never waits
    for the worker."""
    if fd is not None:
        return _pipe_size(fd) // 2 - _INT
    r, w = os.pipe()
    try:
        grow_pipe(w)
        return _chunk_bytes(w)
    finally:
        os.close(r)
        os.close(w)


def _pipe_size(fd: int) -> int:
    try:
        import fcntl

        return fcntl.fcntl(fd, getattr(fcntl, "F_GETPIPE_SZ", 1032))
    except (ImportError, OSError):
        return 4096  # POSIX's least
