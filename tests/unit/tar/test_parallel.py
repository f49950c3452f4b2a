"""Store trees written by worker processes: the bytes of one process.

The chunk sizes are shrunk for the tests, so that a tree of a few hundred
entries has many chunks, big files between made-ahead runs and chunks whose
buffer overflows, with every number of workers.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import tempfile
import threading
import time
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import BuildError
from builder.formats.members import _Counting
from builder.report import Progress, ProgressSink
from builder.sinks.sink import FdSink, HashSink, MemorySink
from builder.tar import parallel
from builder.tar.tarstream import Stamp, walk, write_tree

STAMP = Stamp(uid=0, gid=0, uname="root", gname="root", mtime=1)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ENTRIES", 8)
    monkeypatch.setattr(parallel, "CHUNK_ENTRIES", 7)
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 40_000)
    monkeypatch.setattr(parallel, "BIG_FILE", 3000)


def _store(tmp_path, n: int = 3, files: int = 60):
    """Store-like trees: small and big files, long names and link targets,
    empty files and directories, an executable, a FIFO."""
    roots = []
    for i in range(n):
        root = tmp_path / f"{i:032d}-pkg-{i}"
        (root / "share" / ("d" * 90)).mkdir(parents=True)
        (root / "empty-dir").mkdir()
        for j in range(files):
            sub = root / "share" / ("d" * 90 if j % 3 else "")
            size = (j * 997) % 9000 if j % 5 else 0
            (sub / f"file-{j:03d}").write_bytes(bytes([j % 251]) * size)
        big = root / "bin" / "big"
        big.parent.mkdir()
        big.write_bytes(os.urandom(50_000))
        os.chmod(big, 0o755)
        (root / "bin" / ("l" * 120)).symlink_to("../share/" + "t" * 150)
        (root / "bin" / "short-link").symlink_to("big")
        os.mkfifo(root / "fifo")
        roots.append(root)
    return [(os.fsencode(r), os.fsencode(r).lstrip(b"/")) for r in roots]


def _one_process(roots) -> bytes:
    sink = MemorySink()
    for path, name in roots:
        write_tree(sink, path, name, STAMP)
    return bytes(sink.data)


def _into_file(tmp_path, roots, workers: int) -> bytes:
    out = tmp_path / f"out-{workers}.tar"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        sink = FdSink(fd)
        sink.write(b"before")  # buffered: must come out first
        parallel.write_trees(sink, roots, STAMP, workers=workers)
        sink.write(b"after")
        sink.flush()
        assert sink.written == os.fstat(fd).st_size
    finally:
        os.close(fd)
    return out.read_bytes()


def _into_pipe(roots, workers: int, wrap=lambda sink: sink) -> bytes:
    # The reader is another process (a thread here would keep the writer
    # from forking), and it writes into a file (a pipe back would fill up).
    r, w = os.pipe()
    with tempfile.TemporaryFile() as got:
        reader = subprocess.Popen(["cat"], stdin=r, stdout=got)
        os.close(r)
        try:
            sink = FdSink(w)
            outer = wrap(sink)
            parallel.write_trees(outer, roots, STAMP, workers=workers)
            outer.flush()
            sink.flush()
        finally:
            os.close(w)
            reader.wait()
        got.seek(0)
        return got.read()


@pytest.fixture
def forked(monkeypatch):
    """The pids of the workers forked during a test. Threads that earlier
    tests of the suite left behind (a fake registry's) are not counted:
    they would keep the writer in one process, and the test from testing."""
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 1)
    pids = []
    fork = os.fork

    def recorded():
        pid = fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recorded)
    return pids


def _all_waited_for(pids):
    # None is left, running or a zombie (the suite's other children, a
    # registry or a daemon, are not ours to count).
    assert pids
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_the_bytes_of_one_process_into_a_file(tmp_path, workers, forked):
    roots = _store(tmp_path)
    assert _into_file(tmp_path, roots, workers) == b"before" + _one_process(roots) + b"after"
    assert len(forked) == (workers if workers > 1 else 0)
    if workers > 1:
        _all_waited_for(forked)


@pytest.mark.parametrize("workers", [2, 3])
def test_the_bytes_of_one_process_into_a_pipe(tmp_path, workers, forked):
    roots = _store(tmp_path)
    assert _into_pipe(roots, workers) == _one_process(roots)
    assert len(forked) == workers
    _all_waited_for(forked)


def test_wrappers_count_what_the_workers_wrote(tmp_path, forked):
    roots = _store(tmp_path)
    expected = _one_process(roots)
    progress = Progress("test", tty=False)
    counters = []

    def wrap(sink):
        counter = _Counting(sink)
        counters.append(counter)
        return ProgressSink(counter, progress)

    assert _into_pipe(roots, 2, wrap) == expected
    assert counters[0].size == progress.done == len(expected)
    _all_waited_for(forked)


def test_a_sink_that_hashes_gets_the_bytes_from_one_process(tmp_path, monkeypatch):
    roots = _store(tmp_path)
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked for a hashing sink"))
    sink = HashSink()
    parallel.write_trees(sink, roots, STAMP, workers=2)
    assert sink.digest == "sha256:" + hashlib.sha256(_one_process(roots)).hexdigest()


def test_no_fork_beside_other_threads(tmp_path, monkeypatch):
    roots = _store(tmp_path)
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked beside a thread"))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _into_file(tmp_path, roots, 2) == b"before" + _one_process(roots) + b"after"
    finally:
        stop.set()
        other.join()


def test_no_processes_to_be_had_means_one_process(tmp_path, monkeypatch):
    roots = _store(tmp_path)

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert _into_file(tmp_path, roots, 2) == b"before" + _one_process(roots) + b"after"


def test_a_small_tree_stays_in_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ENTRIES", 10_000)
    roots = _store(tmp_path, n=1)
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked for a small tree"))
    assert _into_file(tmp_path, roots, 2) == b"before" + _one_process(roots) + b"after"


@pytest.mark.parametrize("where", [0, 2])  # early: the worker ends while chunks are still sent to it
def test_a_workers_error_is_raised_as_one_process_raises_it(tmp_path, monkeypatch, where, forked):
    roots = _store(tmp_path, files=200)
    monkeypatch.chdir(os.fsdecode(roots[where][0]) + "/bin")  # a socket's path is short
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("sock")
    try:
        with pytest.raises(BuildError) as serial:
            _one_process(roots)
        with pytest.raises(BuildError) as workers:
            _into_file(tmp_path, roots, 2)
    finally:
        listener.close()
    assert str(workers.value) == str(serial.value)
    assert "cannot put a socket" in str(workers.value)
    _all_waited_for(forked)


def test_a_chunk_sent_to_a_worker_that_stopped_at_an_error(tmp_path, monkeypatch, forked):
    roots = _store(tmp_path)
    monkeypatch.chdir(os.fsdecode(roots[0][0]))
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("0-sock")  # in the first chunk
    chunks = parallel._chunks

    def slow(*args):
        for k, chunk in enumerate(chunks(*args)):
            if k == 2:  # worker 0's next chunk: by now it has stopped
                time.sleep(0.5)
            yield chunk

    monkeypatch.setattr(parallel, "_chunks", slow)
    try:
        with pytest.raises(BuildError, match="cannot put a socket"):
            _into_file(tmp_path, roots, 2)
    finally:
        listener.close()
    _all_waited_for(forked)


def test_a_whiteout_name_is_refused_by_the_walk(tmp_path, forked):
    roots = _store(tmp_path)
    (tmp_path / os.fsdecode(roots[2][0]) / "share" / ".wh.gone").write_bytes(b"")
    with pytest.raises(BuildError, match=r"\.wh\.gone"):
        _into_file(tmp_path, roots, 2)
    _all_waited_for(forked)


def test_the_listing_sent_is_the_walk_in_chunks_within_their_bounds(tmp_path):
    roots = _store(tmp_path)
    # Roots that are not directories, more of them than a chunk holds.
    for i in range(20):
        (tmp_path / f"{i:032d}-file").write_bytes(b"f")
        roots.append((os.fsencode(tmp_path / f"{i:032d}-file"), b"f%d" % i))
    (tmp_path / "link").symlink_to("nowhere")
    roots.append((os.fsencode(tmp_path / "link"), b"link"))
    most_bytes = 2_000
    chunks = list(parallel._chunks(roots, most_bytes))
    sent = [field for chunk in chunks for field in chunk.split(b"\0")[:-1]]
    walked = [field for path, name in roots for p, n, _ in walk(path, name) for field in (p, n)]
    assert sent == walked
    for chunk in chunks:
        assert chunk.endswith(b"\0")
        assert chunk.count(b"\0") // 2 <= parallel.CHUNK_ENTRIES
        assert len(chunk) <= most_bytes


def test_pipes_to_the_workers_smaller_than_measured_mean_one_process(tmp_path, monkeypatch, forked):
    roots = _store(tmp_path)
    measured = parallel._chunk_bytes
    monkeypatch.setattr(parallel, "_chunk_bytes", lambda fd=None: measured(fd) * (4 if fd is None else 1))
    monkeypatch.setattr(parallel._Pool, "run", lambda *args: pytest.fail("chunks sent into pipes too small"))
    assert _into_file(tmp_path, roots, 2) == b"before" + _one_process(roots) + b"after"
    _all_waited_for(forked)  # the workers forked were stopped and waited for


def test_a_closed_output_is_an_error_not_a_hang(tmp_path, forked):
    roots = _store(tmp_path)
    r, w = os.pipe()
    os.close(r)
    try:
        with pytest.raises(BrokenPipeError):
            parallel.write_trees(FdSink(w), roots, STAMP, workers=2)
    finally:
        os.close(w)
    _all_waited_for(forked)


def test_jobs_follow_nix_build_cores(monkeypatch):
    monkeypatch.setenv("NIX_BUILD_CORES", "1")
    assert parallel.jobs() == 1
    monkeypatch.setenv("NIX_BUILD_CORES", "0")  # all cores
    assert 1 <= parallel.jobs() <= parallel.MAX_WORKERS


_names = st.text(alphabet="ab-_.é", min_size=1, max_size=12).filter(lambda s: s not in (".", "..", "é"))
_trees = st.recursive(
    st.one_of(st.integers(0, 5000), st.just("link")),
    lambda children: st.dictionaries(_names, children, max_size=6),
    max_leaves=40,
)


def _make(path, tree):
    if isinstance(tree, dict):
        path.mkdir()
        for name, child in tree.items():
            _make(path / name, child)
    elif tree == "link":
        path.symlink_to("x" * 130)
    else:
        path.write_bytes(b"z" * tree)


@settings(max_examples=25, deadline=None)
@given(trees=st.lists(_trees, min_size=1, max_size=3), workers=st.integers(2, 3))
def test_any_tree_gives_the_bytes_of_one_process(tmp_path_factory, trees, workers):
    base = tmp_path_factory.mktemp("store")
    roots = []
    for i, tree in enumerate(trees):
        path = base / f"{i}-root"
        _make(path, tree)
        roots.append((os.fsencode(path), os.fsencode(path).lstrip(b"/")))
    # (Threads that earlier tests left behind would keep it in one process.)
    with mock.patch.object(parallel.threading, "active_count", lambda: 1):
        assert _into_pipe(roots, workers) == _one_process(roots)
