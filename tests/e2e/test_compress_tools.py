"""Our multi-threaded gzip and zstd through the real programs: gzip, pigz and
zstd read what we write (the pure-Python checks are in unit/sinks/test_compress.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from gzsample import B, gz, sample

from builder.sinks.compress import compressor
from builder.sinks.sink import MemorySink


@pytest.mark.parametrize("size", [0, B + 1, 5 * B + 7])
@pytest.mark.parametrize("tool", ["gzip", "pigz"])
def test_roundtrip_tools(size, tool, tmp_path):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    data = sample(size, 7)
    path = tmp_path / "x.gz"
    path.write_bytes(gz(data, threads=2))
    got = subprocess.run([tool, "-d", "-c", str(path)], check=True, stdout=subprocess.PIPE).stdout
    assert got == data
    # Also the integrity check, which reads the CRC and the size.
    subprocess.run([tool, "-t", str(path)], check=True)


def test_close_to_pigz_in_size():
    if shutil.which("pigz") is None:
        pytest.skip("pigz not installed")
    data = sample(8 * B, 5)
    ours = len(gz(data))
    theirs = len(subprocess.run(["pigz", "-6", "-c"], input=data, check=True, stdout=subprocess.PIPE).stdout)
    assert ours <= theirs * 1.01


def test_zstd_through_the_program_round_trips_and_repeats():
    program = shutil.which("zstd")
    assert program, "tests/setup.sh installs zstd"
    data = sample(3 * B, 2)
    outputs = []
    for _ in range(2):
        out = MemorySink()
        with compressor("zstd", out, program=program) as s:
            s.write(data)
        outputs.append(bytes(out.data))
    assert outputs[0] == outputs[1]
    back = subprocess.run([program, "-dc"], input=outputs[0], capture_output=True, check=True).stdout
    assert back == data


def _zstd(data: bytes, program: str) -> bytes:
    out = MemorySink()
    with compressor("zstd", out, program=program) as s:
        # Odd write sizes: how the input is cut never shows in the bytes.
        for i in range(0, len(data), 70001):
            s.write(data[i : i + 70001])
    return bytes(out.data)


def test_zstd_bytes_ignore_thread_settings_and_environment(monkeypatch):
    """The layer digests recorded at build time hold on any machine: the
    program runs single-threaded with a fixed level, whatever ZSTD_NBTHREADS
    or ZSTD_CLEVEL say, and its bytes equal the zstd CLI's own for these
    flags."""
    program = shutil.which("zstd")
    assert program, "tests/setup.sh installs zstd"
    data = sample(12 * B, 3) + bytes(3 * B)
    ours = _zstd(data, program)
    monkeypatch.setenv("ZSTD_NBTHREADS", "4")
    monkeypatch.setenv("ZSTD_CLEVEL", "19")
    assert _zstd(data, program) == ours
    cli = subprocess.run(
        [program, "-3", "--single-thread", "-c", "-q", "--no-content-size"],
        input=data,
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    assert cli == ours
    back = subprocess.run([program, "-dc"], input=ours, capture_output=True, check=True).stdout
    assert back == data


def test_zstd_decoder_reads_and_names_broken_data():
    from builder.errors import ImageFormatError
    from builder.sinks import compress

    program = shutil.which("zstd")
    assert program
    data = sample(2 * B, 9)
    packed = _zstd(data, program)
    out = MemorySink()
    compress.use_zstd(program)
    with compress.zstd_decoder(out, "layer 3") as d:
        for i in range(0, len(packed), 999):
            d.write(packed[i : i + 999])
    assert bytes(out.data) == data
    with pytest.raises(ImageFormatError, match="layer 3: broken zstd data"):
        with compress.zstd_decoder(MemorySink(), "layer 3") as d:
            d.write(packed[: len(packed) // 2] + b"garbage" * 100)
