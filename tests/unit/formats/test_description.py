"""Descriptions record the zstd program their zstd digests came from: a
stream adopts it; a build with another program drops those digests (they
would not match its bytes) and keeps the rest."""

import json

import pytest

from builder.formats.description import layer_from_entry, read_description, write_description
from builder.model.image import canonical_json
from builder.sinks import compress

ZSTD_A = "/nix/store/aaaa-zstd-1.5.5/bin/zstd"
ZSTD_B = "/nix/store/bbbb-zstd-1.5.6/bin/zstd"
D = "sha256:" + "1" * 64


@pytest.fixture(autouse=True)
def no_program(monkeypatch):
    monkeypatch.setattr(compress, "_zstd_program", None)


def entry():
    return {
        "diffId": D,
        "size": 10,
        "source": {"kind": "store", "paths": [], "stamp": {"uid": 0, "gid": 0, "uname": "", "gname": "", "mtime": 1}},
        "known": {"gzip": [D.replace("1", "2"), 5], "zstd": [D.replace("1", "3"), 4]},
    }


def described(tmp_path, zstd):
    doc = {"version": 1, "repoTag": "a:b", "layers": [entry()]}
    if zstd:
        doc["zstd"] = zstd
    (tmp_path / "image.json").write_bytes(canonical_json(doc))
    (tmp_path / "config.json").write_bytes(b"{}")
    return str(tmp_path)


def test_stream_adopts_the_recorded_program(tmp_path):
    layer = read_description(described(tmp_path, ZSTD_A)).image.layers[0]
    assert compress.configured_zstd() == ZSTD_A
    assert set(layer.known) == {"gzip", "zstd"}


def test_other_program_drops_only_zstd_digests(tmp_path):
    compress.use_zstd(ZSTD_B)
    layer = read_description(described(tmp_path, ZSTD_A)).image.layers[0]
    assert compress.configured_zstd() == ZSTD_B
    assert set(layer.known) == {"gzip"}


def test_unrecorded_program_drops_zstd_digests(tmp_path):
    layer = read_description(described(tmp_path, None)).image.layers[0]
    assert set(layer.known) == {"gzip"}


def test_written_descriptions_record_the_program(tmp_path):
    compress.use_zstd(ZSTD_A)
    write_description(str(tmp_path / "d"), config_bytes=b"{}", entries=[entry()], repo_tag="a:b")
    assert json.loads((tmp_path / "d" / "image.json").read_bytes())["zstd"] == ZSTD_A
    assert set(layer_from_entry(entry(), zstd_trusted=False).known) == {"gzip"}
