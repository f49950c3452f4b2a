"""Hostile layer tars: every number a header gives is checked, a damaged
header is an error (never a silent end of the archive), and PAX headers are
bounded before they are read. Each input is built here, byte by byte."""

from __future__ import annotations

import io
import os

import pytest
from hostile import GID, MTIME, SIZE, UID, base256, entry, layer, pax, record, set_field

from builder.errors import BuildError, ImageFormatError
from builder.sinks.sink import MemorySink
from builder.tar import tarstream, whiteout
from builder.tar.reader import MAX_ID, open_tar


def _apply(tmp_path, data: bytes):
    return whiteout.apply_layers(str(tmp_path / "root"), [io.BytesIO(data)], chown=False)


def _flatten(tmp_path, data: bytes) -> bytes:
    path = tmp_path / "layer.tar"
    path.write_bytes(data)
    sink = MemorySink()
    whiteout.write_flattened(sink, [str(path)], workdir=str(tmp_path))
    return bytes(sink.data)


@pytest.mark.parametrize(
    "records, message",
    [
        (record("mtime", "1e400"), "mtime inf is out of range"),
        (record("mtime", "nan"), "mtime nan is out of range"),
        (record("mtime", str(2**80)), "mtime 1.2089258196146292e\\+24 is out of range"),
        (record("uid", str(2**66)), f"uid {2**66} is out of range (0 to {MAX_ID})"),
        (record("gid", "-5"), "gid -5 is out of range"),
        (record("size", "-5"), "negative size -5"),
    ],
)
def test_pax_numbers_out_of_range_are_one_error(records, message, tmp_path):
    data = layer(entry(b"first", b"1"), pax(records) + entry(b"bad", b""), entry(b"after", b"2"))
    with pytest.raises(
        ImageFormatError, match="^layer: entry 'bad': " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        _apply(tmp_path, data)
    with pytest.raises(ImageFormatError):
        _flatten(tmp_path, data)


def test_negative_uid_in_a_base256_field(tmp_path):
    bad = set_field(entry(b"neg"), UID, base256(-5, 8))
    with pytest.raises(ImageFormatError, match="entry 'neg': uid -5 is out of range"):
        _apply(tmp_path, layer(bad))
    bad = set_field(entry(b"neg"), GID, base256(-1, 8))
    with pytest.raises(ImageFormatError, match="gid -1 is out of range"):
        _apply(tmp_path, layer(bad))


def test_negative_size_in_a_base256_field(tmp_path):
    bad = set_field(entry(b"neg"), SIZE, base256(-5, 12))
    with pytest.raises(ImageFormatError, match="negative size -5"):
        _apply(tmp_path, layer(entry(b"a", b"x"), bad, entry(b"b", b"y")))


def test_huge_mtime_in_a_base256_field(tmp_path):
    bad = set_field(entry(b"late"), MTIME, base256(2**80, 12))
    with pytest.raises(ImageFormatError, match="entry 'late': mtime .* is out of range"):
        _apply(tmp_path, layer(bad))


@pytest.mark.parametrize("records", [b"0 x=\n", b"5 mtime=1\n", b"3 a\n", b"99999 path=x\n", b"7 x=1\n"])
def test_damaged_pax_record_stops_instead_of_dropping_the_rest(records, tmp_path):
    # tarfile alone takes a damaged header after the first for the end of
    # the archive: "after" and everything later would vanish without a word.
    data = layer(entry(b"first", b"1"), pax(records) + entry(b"bad", b""), entry(b"after", b"2"))
    with pytest.raises(ImageFormatError, match="^layer: a malformed PAX record in the header at offset 1024$"):
        _apply(tmp_path, data)
    with pytest.raises(ImageFormatError, match="malformed PAX record"):
        _flatten(tmp_path, data)


def test_a_pax_number_that_is_not_a_number(tmp_path):
    # tarfile alone reads uid=abc as 0: root.
    data = layer(pax(record("uid", "abc")) + entry(b"f", b""))
    with pytest.raises(ImageFormatError, match="PAX uid=b'abc' in the header at offset 0 is not a number"):
        _apply(tmp_path, data)


def test_bad_checksum_after_the_first_entry_is_an_error(tmp_path):
    bad = bytearray(entry(b"x", b"1"))
    bad[0] = ord("y")  # the checksum no longer matches
    with pytest.raises(ImageFormatError, match="damaged tar header at offset 1024"):
        _apply(tmp_path, layer(entry(b"first", b"1"), bytes(bad)))


def test_a_pax_header_claiming_a_gigabyte_is_not_read(tmp_path):
    head = tarstream.header(b"././@PaxHeader", b"x", 0o644, 0, 0, 0, 1 << 30)
    with pytest.raises(ImageFormatError, match="a PAX header of 1073741824 bytes"):
        _apply(tmp_path, layer(entry(b"first", b"1"), head))


def test_a_gnu_long_name_claiming_a_gigabyte_is_not_read(tmp_path):
    head = tarstream.header(b"././@LongLink", b"L", 0o644, 0, 0, 0, 1 << 30)
    with pytest.raises(ImageFormatError, match="a GNU long name of 1073741824 bytes"):
        _apply(tmp_path, layer(head))


def test_a_name_longer_than_the_file_system_allows(tmp_path):
    long_name = b"d/" + b"n" * 300  # one component over NAME_MAX (255)
    data = layer(entry(b"d/", kind=tarstream.DIR, mode=0o755), entry(long_name, b"x"))
    with pytest.raises(ImageFormatError, match=r"d/nnnn.*: cannot unpack \(File name too long\)"):
        _apply(tmp_path, data)


def test_a_path_longer_than_path_max(tmp_path):
    deep = b"/".join([b"a" * 200] * 25) + b"/f"  # 5 kB: over PATH_MAX
    with pytest.raises(ImageFormatError, match="cannot unpack"):
        _apply(tmp_path, layer(entry(deep, b"x")))


def test_an_honest_layer_still_reads(tmp_path):
    data = layer(
        entry(b"dir/", kind=tarstream.DIR, mode=0o755),
        entry(b"dir/" + b"long" * 40, b"x", mtime=2**33 - 1, uid=70000),
        pax(record("mtime", "1.5")) + entry(b"frac", b"y"),
    )
    owners = _apply(tmp_path, data)
    assert owners[b"dir/" + b"long" * 40] == (70000, 0)
    assert os.path.getmtime(tmp_path / "root" / "frac") == 1.5


def test_outer_archive_member_with_negative_size(tmp_path):
    path = tmp_path / "outer.tar"
    path.write_bytes(layer(entry(b"manifest.json", b"[]"), set_field(entry(b"x"), SIZE, base256(-512, 12))))
    with open_tar(str(path)) as tar, pytest.raises(ImageFormatError, match="negative size -512"):
        tar.getmembers()


def test_errors_are_build_errors():
    assert issubclass(ImageFormatError, BuildError)


@pytest.mark.parametrize("as_path", [False, True])
def test_an_entry_claiming_more_data_than_the_tar_has_ends_read_in_order(tmp_path, as_path):
    """tarfile skips an entry's data (a whiteout's: nothing to unpack) by
    reading it, past the end of the input too: a PAX size of 100 TB was
    hours of empty reads (found by test_fuzz_readers). Read in order
    ("r|*"), it is one error at once (the alarm only turns a hang into a
    failure)."""
    import signal

    data = layer(pax(record("size", str(10**14))), entry(b".wh.a"))
    path = tmp_path / "l.tar"
    path.write_bytes(data)
    source = str(path) if as_path else io.BytesIO(data)

    def hang(*_):
        raise AssertionError("a hang")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(20)
    try:
        with pytest.raises(ImageFormatError, match="ends inside an entry"):
            whiteout.apply_layers(str(tmp_path / "root"), [source], chown=False)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    tar = open_tar(name=str(path), mode="r|*")
    tar.close()
    assert tar.guard.inner.closed  # the file open_tar opened is closed with the tar
