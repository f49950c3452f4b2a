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
        with compressor("zstd", out, zstd_program=program) as s:
            s.write(data)
        outputs.append(bytes(out.data))
    assert outputs[0] == outputs[1]
    back = subprocess.run([program, "-dc"], input=outputs[0], capture_output=True, check=True).stdout
    assert back == data
