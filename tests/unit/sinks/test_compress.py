"""gzip made on many threads must be one deterministic, ordinary gzip stream."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib

import pytest
from gzsample import B, gz, sample
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import BuildError
from builder.sinks import compress
from builder.sinks.compress import compressor
from builder.sinks.sink import CountSink, HashSink, MemorySink

SIZES = [0, 1, 100, B - 1, B, B + 1, 2 * B, 3 * B + 12345]


@pytest.mark.parametrize("size", SIZES)
def test_roundtrip_python(size):
    data = sample(size, size)
    out = gz(data, threads=3)
    assert gzip.decompress(out) == data
    assert zlib.decompress(out, 31) == data
    # One member, nothing after the trailer.
    d = zlib.decompressobj(31)
    assert d.decompress(out) == data and d.eof and d.unused_data == b""


def test_same_bytes_for_any_thread_count_and_write_pattern():
    data = sample(9 * B + 333, 1)
    reference = gz(data, threads=1)
    for threads in (1, 2, 8):
        for chunk in (None, 1, 511, 4096, B, B + 1, 3 * B):
            if chunk == 1 and threads != 2:
                continue  # slow; one run is enough
            got = gz(data if chunk != 1 else data[: B + 10], threads, chunk)
            want = reference if chunk != 1 else gz(data[: B + 10], 1)
            assert got == want, (threads, chunk)


def test_copy_file_same_as_write(tmp_path):
    data = sample(4 * B + 99, 3)
    path = tmp_path / "in"
    path.write_bytes(b"skip" + data)
    out = MemorySink()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 4, os.SEEK_SET)
        with compressor("gzip", out, threads=4) as s:
            s.write(b"")
            s.copy_file(fd, len(data))
    finally:
        os.close(fd)
    assert bytes(out.data) == gz(data, 1)


def test_copy_file_shrunk(tmp_path):
    path = tmp_path / "in"
    path.write_bytes(b"abc")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="shrank"), compressor("gzip", MemorySink()) as s:
            s.copy_file(fd, 10)
    finally:
        os.close(fd)


def test_header_and_trailer():
    data = sample(2 * B + 5, 4)
    out = gz(data)
    # magic, deflate, no flags, mtime 0, XFL 0 (level 6), OS 255
    assert out[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    crc, size = struct.unpack("<II", out[-8:])
    assert crc == zlib.crc32(data) and size == len(data)
    with gzip.GzipFile(fileobj=__import__("io").BytesIO(out)) as f:
        f.read()
        assert f.mtime == 0
    assert compress.GZIP_LEVEL == 6
    assert compress._gzip_header(9)[8] == 2 and compress._gzip_header(1)[8] == 4


def test_size_trailer_wraps_mod_2_32():
    s = compress._GzipSink(MemorySink(), threads=1)
    s.size = (1 << 32) - 1
    s.write(b"ab")
    s.close()
    assert struct.unpack("<II", bytes(s.inner.data[-8:]))[1] == 1


def test_empty_input():
    out = gz(b"")
    assert gzip.decompress(out) == b""
    assert out == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x03\x00" + b"\0" * 8


# Pins the format for this zlib: block size, dictionary, flushes, header.
GOLDEN = {"1.2.13": "6cb827f0b23162fac7dd596d0b3ebde76cd0a1a54c1c9e0a5220dec51e74356e"}


def test_golden_output():
    if zlib.ZLIB_RUNTIME_VERSION not in GOLDEN:
        pytest.skip(f"no golden digest for zlib {zlib.ZLIB_RUNTIME_VERSION}")
    out = gz(sample(3 * B + 4321, 99), threads=2)
    assert hashlib.sha256(out).hexdigest() == GOLDEN[zlib.ZLIB_RUNTIME_VERSION]
    assert compress.gzip_format() == f"gzip-level6-block{B}-mem8-zlib{zlib.ZLIB_RUNTIME_VERSION}"


def test_bounded_in_flight():
    seen = []

    s = compress._GzipSink(CountSink(), threads=3)
    data = sample(40 * B, 6)
    for i in range(0, len(data), 3 * B + 17):
        s.write(data[i : i + 3 * B + 17])
        seen.append(len(s.inflight))
        assert len(s.pending) <= B
    s.close()
    assert max(seen) <= 2 * 3
    assert s.pool is None


def test_exception_stops_workers_and_writes_no_trailer():
    out = MemorySink()
    sinks = []
    with pytest.raises(RuntimeError, match="boom"), compressor("gzip", out, threads=4) as s:
        sinks.append(s)
        s.write(sample(10 * B, 8))
        raise RuntimeError("boom")
    assert sinks[0].pool is None and not sinks[0].inflight
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(bytes(out.data))


def test_into_hash_sink():
    data = sample(3 * B, 9)
    h = HashSink()
    with compressor("gzip", h) as s:
        s.write(data)
    out = gz(data)
    assert h.digest == "sha256:" + hashlib.sha256(out).hexdigest() and h.size == len(out)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc32_combine(a, b):
    assert compress.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_crc32_combine_block_length():
    a, b = sample(1000, 1), sample(B, 2)
    assert compress.crc32_combine(zlib.crc32(a), zlib.crc32(b), B) == zlib.crc32(a + b)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from([0, 1, 7, 1000, B - 3, B, B + 5]), max_size=8),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=0, max_value=3),
)
def test_any_split_any_threads(sizes, threads, seed):
    data = sample(sum(sizes), seed)
    out = MemorySink()
    with compressor("gzip", out, threads=threads) as s:
        pos = 0
        for n in sizes:
            s.write(data[pos : pos + n])
            pos += n
    assert bytes(out.data) == gz(data, 1)
    assert gzip.decompress(bytes(out.data)) == data


def test_none_is_the_inner_sink():
    inner = MemorySink()
    with compressor("none", inner) as s:
        assert s is inner


def test_unknown_encoding():
    with pytest.raises(BuildError, match="unknown compression"), compressor("brotli", MemorySink()):
        pass


def test_zstd_needs_the_program(monkeypatch, tmp_path):
    # Neither recorded by a build nor on PATH: one clear line.
    monkeypatch.setattr(compress, "_zstd_program", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError, match=r"zstd needs the zstd program \(pkgs.zstd\)"):
        with compressor("zstd", MemorySink()):
            pass


def test_zstd_program_recorded_wins_over_path(monkeypatch, tmp_path):
    monkeypatch.setattr(compress, "_zstd_program", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    compress.use_zstd(None)  # a step without zstd changes nothing
    assert compress.configured_zstd() is None
    compress.use_zstd("/nix/store/x-zstd/bin/zstd")
    assert compress.zstd_program() == "/nix/store/x-zstd/bin/zstd"


def test_zstd_flags_fix_the_bytes():
    # What the bytes depend on besides the input: never thread-count or
    # input-kind dependent, never the environment's level.
    args = compress.ZSTD_COMPRESS_ARGS
    assert f"-{compress.ZSTD_LEVEL}" in args and "--single-thread" in args
    assert "--no-content-size" in args and "--no-progress" in args
    assert not any(a.startswith("-T") for a in args)


def test_default_threads(monkeypatch):
    monkeypatch.delenv("NIX_BUILD_CORES", raising=False)
    n = compress.default_threads()
    assert n >= 1
    monkeypatch.setenv("NIX_BUILD_CORES", "1")
    assert compress.default_threads() == 1
    monkeypatch.setenv("NIX_BUILD_CORES", "0")
    assert compress.default_threads() == n
    monkeypatch.setenv("NIX_BUILD_CORES", "junk")
    assert compress.default_threads() == n
