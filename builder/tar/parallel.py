"""Store trees written into a file descriptor by several processes in turn.

On a store of small files (man pages, headers, icons) one process spends its
time on per-entry work: Python packing a header around four system calls
(``lstat``, ``open``, ``read``, ``close``) that GNU tar makes in C. When a
layer's bytes go unchanged into a file descriptor (a stream into
``docker load``, a layer file), that work is shared with worker processes,
forked once per layer:

- this process lists the trees (``_names``: directory listings only, no
  ``lstat``) and sends the entries' names in chunks to the workers in turn
  (chunk k to worker k mod n, at most two chunks ahead of each);
- a worker ``lstat``s a chunk's entries and makes their tar bytes with
  ``tarstream.write_entries`` (the function one process uses) in its
  memory; big files (and whatever would overflow its buffer) wait for its
  turn and go by ``sendfile``;
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
from itertools import chain, islice
from typing import Callable, Deque, Iterator, List, Sequence, Tuple, Union

from builder.errors import BuildError
from builder.sinks.compress import default_threads
from builder.sinks.sink import FdSink, Sink, grow_pipe, read_exactly, write_all
from builder.tar.tarstream import Entry, Stamp, refuse_whiteouts, walk, write_entries

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
        names = chain.from_iterable(_names(path, name) for path, name in roots)
        first = list(islice(names, MIN_ENTRIES))
        if len(first) == MIN_ENTRIES:
            fd, wrote = target
            try:
                pool = _Pool(workers, stamp, fd)
            except OSError:
                pool = None  # no processes to be had: this one does it all
            if pool is not None:
                try:
                    pool.run(chain(first, names), wrote)
                finally:
                    pool.close()
                return
    for path, name in roots:
        write_entries(sink, walk(path, name), stamp)


def _names(path: bytes, name: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """``tarstream.walk``'s entries, in its order, without its ``lstat``:
    directory listings tell directories apart (``d_type``)."""
    yield path, name
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        return
    stack: List[Tuple[bytes, bytes, bool]] = []
    scandir = os.scandir

    def push_children(dirpath: bytes, dirname: bytes) -> None:
        with scandir(dirpath) as listing:
            children = [(e.name, e.is_dir(follow_symlinks=False)) for e in listing]
        base = dirpath if dirpath.endswith(b"/") else dirpath + b"/"
        prefix = dirname + b"/" if dirname else b""
        refuse_whiteouts(prefix, [child for child, _ in children])
        children.sort(reverse=True)
        stack.extend([(base + child, prefix + child, is_dir) for child, is_dir in children])

    push_children(path, name)
    while stack:
        path, name, is_dir = stack.pop()
        yield path, name
        if is_dir:
            push_children(path, name)


def _chunks(names: Iterator[Tuple[bytes, bytes]], most_bytes: int) -> Iterator[bytes]:
    """Names in chunks as sent: ``path\\0name\\0``..., at most ``most_bytes``."""
    parts: List[bytes] = []
    described = 0
    for path, name in names:
        parts.append(path)
        parts.append(name)
        described += len(path) + len(name) + 2
        # A path and a name are at most 4096 bytes each (PATH_MAX).
        if len(parts) >= 2 * CHUNK_ENTRIES or described + 8194 >= most_bytes:
            yield b"\0".join(parts) + b"\0"
            parts, described = [], 0
    if parts:
        yield b"\0".join(parts) + b"\0"


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
        self.reaped = False
        # Two chunks always fit in the pipe, so sending one never waits
        # for the worker.
        self.most_bytes = _pipe_size(chunks_w) // 2 - _INT

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
    def __init__(self, workers: int, stamp: Stamp, out: int):
        self.workers: List[_Worker] = []
        self.failed = True
        try:
            for _ in range(workers):
                self.workers.append(_Worker(stamp, out, [fd for w in self.workers for fd in w.fds()]))
        except BaseException:
            self.close()
            raise

    def run(self, names: Iterator[Tuple[bytes, bytes]], wrote: Callable[[int], None]) -> None:
        n = len(self.workers)
        waiting: Deque[_Worker] = deque()  # chunks sent and not written, in order
        most_bytes = min(w.most_bytes for w in self.workers)
        for k, chunk in enumerate(_chunks(names, most_bytes)):
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


class _BufferSink(Sink):
    """A chunk's tar bytes made ahead of the turn, in a buffer allocated
    once (one grown and freed per chunk costs a page fault per 4 KiB);
    files are read straight into it."""

    def __init__(self, capacity: int):
        self.buffer = bytearray(capacity)
        self.view = memoryview(self.buffer)
        self.used = 0

    def write(self, data) -> None:
        end = self.used + len(data)
        self.buffer[self.used : end] = data
        self.used = end

    def write_framed(self, head: bytes, fd: int, size: int, tail: bytes) -> None:
        end = self.used + len(head)
        self.buffer[self.used : end] = head
        while size:
            got = os.readv(fd, [self.view[end : end + size]])
            if not got:
                raise OSError(f"file shrank while reading: {size} bytes missing")
            end += got
            size -= got
        self.buffer[end : end + len(tail)] = tail
        self.used = end + len(tail)

    def copy_file(self, fd: int, size: int) -> None:
        self.write_framed(b"", fd, size, b"")


# A chunk made ahead of its turn: spans of the buffer, and runs of entries
# written on the turn itself.
_Plan = List[Union[Tuple[int, int], List[Entry]]]


def _serve(chunks: int, turns: int, reports: int, out: int, stamp: Stamp) -> None:  # pragma: no cover - child
    made = _BufferSink(CHUNK_BYTES)
    direct = FdSink(out)
    try:
        while True:
            head = _read_upto(chunks, _INT)
            if len(head) < _INT:
                return  # no more chunks
            fields = read_exactly(chunks, int.from_bytes(head, "big")).split(b"\0")
            plan = _make(made, zip(fields[0:-1:2], fields[1::2]), stamp)
            if not _read_upto(turns, 1):
                return
            before = direct.written
            for item in plan:
                if isinstance(item, tuple):
                    direct.write_unbuffered(made.view[item[0] : item[1]])
                else:
                    write_entries(direct, item, stamp)
                    direct.flush()
            made.used = 0
            write_all(reports, (direct.written - before).to_bytes(_INT, "big"))
    except BaseException as e:
        error = _pickled(e)
        try:
            write_all(reports, (len(error) | _ERROR).to_bytes(_INT, "big") + error)
        except OSError:
            pass  # the parent is gone


def _make(made: _BufferSink, names, stamp: Stamp) -> _Plan:  # pragma: no cover - child
    """A chunk's tar bytes made ahead into ``made``, but for big files and,
    once the buffer would overflow, everything after: those are left for
    the turn."""
    plan: _Plan = []
    run: List[Entry] = []  # being made ahead
    later: List[Entry] = []  # left for the turn
    lstat, reg = os.lstat, stat.S_IFREG
    start = budget = 0
    for path, name in names:
        entry = (path, name, lstat(path))
        if later and budget > CHUNK_BYTES:
            later.append(entry)
            continue
        st = entry[2]
        big = st.st_mode & 0o170000 == reg and st.st_size >= BIG_FILE
        if not big:
            # At least what the entry takes: contents (or a link's target)
            # and headers, a PAX one for a long name included.
            budget += st.st_size + len(name) + 3072
            if budget <= CHUNK_BYTES:
                if later:
                    plan.append(later)
                    later = []
                run.append(entry)
                continue
        if run:
            write_entries(made, run, stamp)
            plan.append((start, made.used))
            start, run = made.used, []
        later.append(entry)
    if run:
        write_entries(made, run, stamp)
        plan.append((start, made.used))
    if later:
        plan.append(later)
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


def _pipe_size(fd: int) -> int:
    try:
        import fcntl

        return fcntl.fcntl(fd, getattr(fcntl, "F_GETPIPE_SZ", 1032))
    except (ImportError, OSError):
        return 4096  # POSIX's least
