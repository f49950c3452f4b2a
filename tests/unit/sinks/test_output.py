"""Where a finished archive goes: links are written through, names of file
descriptors mean those descriptors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from builder.errors import BuildError
from builder.sinks.output import open_output

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _write(path: str, data: bytes) -> None:
    with open_output(path) as sink:
        sink.write(data)


def test_a_link_is_written_through_and_stays_a_link(tmp_path):
    (tmp_path / "builds").mkdir()
    (tmp_path / "builds" / "v1.tar").write_bytes(b"old")
    (tmp_path / "out.tar").symlink_to("builds/v1.tar")
    _write(str(tmp_path / "out.tar"), b"new image")
    assert os.readlink(tmp_path / "out.tar") == "builds/v1.tar"
    assert (tmp_path / "builds" / "v1.tar").read_bytes() == b"new image"
    assert sorted(os.listdir(tmp_path / "builds")) == ["v1.tar"]


def test_a_dangling_link_makes_the_file_it_names(tmp_path):
    (tmp_path / "out.tar").symlink_to("made.tar")
    _write(str(tmp_path / "out.tar"), b"image")
    assert (tmp_path / "made.tar").read_bytes() == b"image"
    assert os.path.islink(tmp_path / "out.tar")


def test_dev_fd_names_the_descriptor(tmp_path):
    r, w = os.pipe()
    try:
        _write(f"/dev/fd/{w}", b"through the pipe")
        os.close(w)
        assert os.read(r, 100) == b"through the pipe"
    finally:
        os.close(r)


def test_dev_stdout_onto_a_file_writes_that_file_and_leaves_dev_stdout_alone(tmp_path):
    program = "import sys; sys.path.insert(0, sys.argv[1]); from builder.sinks.output import open_output\n"
    program += "with open_output('/dev/stdout') as s: s.write(b'the image')"
    out = tmp_path / "image.tar"
    with open(out, "wb") as f:
        subprocess.run([sys.executable, "-c", program, REPO], stdout=f, check=True)
    assert out.read_bytes() == b"the image"
    assert os.path.islink("/dev/stdout")
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


def test_a_closed_descriptor_is_one_error():
    with pytest.raises(BuildError, match="file descriptor 987 is not open"):
        _write("/dev/fd/987", b"x")


def test_an_empty_name_is_one_error():
    with pytest.raises(BuildError, match="--output is empty: give a file name, or - for stdout"):
        _write("", b"x")
