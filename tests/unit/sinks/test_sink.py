"""builder.sinks.sink.MemorySink: every byte written, kept in ``data``."""

from __future__ import annotations

import hashlib
import os
import threading
import time

from builder.sinks.sink import FdSink, HashSink, MemorySink


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


def test_a_non_blocking_output_pipe_is_waited_for(tmp_path):
    # Someone handed us a non-blocking pipe: a full pipe means wait, not fail.
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 << 20))
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
        sink = FdSink(w)
        sink.write(b"head" * 50_000)
        with open(big, "rb") as f:
            sink.copy_file(f.fileno(), 3 << 20)
        sink.flush()
    finally:
        os.close(w)
        reader.join()
        os.close(r)
    assert got[0] == b"head" * 50_000 + big.read_bytes()
