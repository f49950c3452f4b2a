"""builder.sinks.sink.MemorySink: every byte written, kept in ``data``."""

from __future__ import annotations

import hashlib
import os
import threading
import time

from builder.sinks.sink import FdSink, HashSink, MemorySink, writev_all


def test_memory_sink_keeps_writes_file_copies_and_frames_in_order(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"skip" + b"x" * 70_000 + b"rest")
    sink = MemorySink()
    sink.write(b"head")
    sink.write(memoryview(b"-view-"))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 4, os.SEEK_SET)
        sink.copy_file(fd, 70_000)
        sink.write_framed(b"<", fd, 4, b">")
    finally:
        os.close(fd)
    sink.flush()
    assert bytes(sink.data) == b"head-view-" + b"x" * 70_000 + b"<rest>"


def test_memory_sink_sees_what_a_hash_sink_counts():
    chunks = [b"", b"a", b"bc" * 1000, bytes(range(256))]
    kept, hashed = MemorySink(), HashSink()
    for chunk in chunks:
        kept.write(chunk)
        hashed.write(chunk)
    assert len(kept.data) == hashed.size
    check = HashSink()
    check.write(bytes(kept.data))
    assert check.digest == hashed.digest


def test_every_sink_copies_a_big_file_in_pieces_from_where_the_last_ended(tmp_path):
    # A caller may copy one file in pieces (progress does, 8 MiB at a time):
    # each copy_file must leave the file's offset after what it read, even
    # when it sent the bytes by sendfile, which does not move it.
    data = os.urandom(3 << 20)
    src = tmp_path / "big"
    src.write_bytes(data)
    out = tmp_path / "out"
    sinks = []
    for make in (MemorySink, HashSink, "fd"):
        fd = os.open(src, os.O_RDONLY)
        try:
            if make == "fd":
                ofd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                sink = FdSink(ofd)
            else:
                sink = make()
            for piece in (1 << 20, 1 << 20, 1 << 20):
                sink.copy_file(fd, piece)
            sink.flush()
            if make == "fd":
                os.close(ofd)
            sinks.append(sink)
        finally:
            os.close(fd)
    assert bytes(sinks[0].data) == data
    assert sinks[1].digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert out.read_bytes() == data


def _drained(write) -> bytes:
    """What ``write(fd)`` put into a non-blocking pipe that a slow reader
    drains: every write fills it and is cut short, again and again."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    got = []

    def slow_reader():
        parts = []
        while True:
            time.sleep(0.001)
            piece = os.read(r, 1 << 16)
            if not piece:
                got.append(b"".join(parts))
                return
            parts.append(piece)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    try:
        write(w)
    finally:
        os.close(w)
        reader.join()
        os.close(r)
    return got[0]


def test_a_non_blocking_output_pipe_is_waited_for(tmp_path):
    # Someone handed us a non-blocking pipe: a full pipe means wait, not fail.
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 << 20))

    def write(fd):
        sink = FdSink(fd)
        sink.write(b"head" * 50_000)
        with open(big, "rb") as f:
            sink.copy_file(f.fileno(), 3 << 20)
        sink.flush()

    assert _drained(write) == b"head" * 50_000 + big.read_bytes()


def test_writev_all_writes_every_part_through_short_writes_and_more_parts_than_one_call_takes():
    # More parts than IOV_MAX, some bigger than the pipe (64 KiB).
    parts = [bytes([i % 251]) * ((i * 7919) % (70_000 if i % 100 == 0 else 9_000)) for i in range(1_500)]
    written = []
    assert _drained(lambda fd: written.append(writev_all(fd, parts))) == b"".join(parts)
    assert written == [sum(map(len, parts))]


def test_an_fd_sink_writes_parts_after_what_it_buffered_and_counts_them():
    parts = [b"a" * 100, b"", b"b" * 70_000, b"c"]

    def write(fd):
        sink = FdSink(fd)
        sink.write(b"first")
        sink.write_parts(parts)
        sink.write(b"last")
        sink.flush()
        assert sink.written == 5 + 70_101 + 4

    assert _drained(write) == b"first" + b"".join(parts) + b"last"


def test_every_sink_takes_parts_as_their_bytes_in_order():
    parts = [b"x" * 10, b"y" * 100_000, b"z"]
    memory, hashed = MemorySink(), HashSink()
    memory.write_parts(parts)
    hashed.write_parts(parts)
    assert memory.data == b"".join(parts)
    assert hashed.digest == "sha256:" + hashlib.sha256(b"".join(parts)).hexdigest()
