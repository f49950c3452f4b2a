"""builder.sinks.sink.MemorySink: every byte written, kept in ``data``."""

from __future__ import annotations

import os

from builder.sinks.sink import HashSink, MemorySink


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
