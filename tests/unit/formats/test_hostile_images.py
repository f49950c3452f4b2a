"""Hostile base images and descriptions: symlink loops, documents that lie
about their size or nest without end, descriptions naming host files.
Each input is built here; each must end in one BuildError, quickly."""

from __future__ import annotations

import json
import os
import signal

import pytest
from hostile import (
    deep_json,
    docker_archive_members,
    entry,
    layer,
    oci_layout_dir,
    outer_tar,
    sparse_member_archive,
    write,
)

from builder.cli import main
from builder.errors import ImageFormatError, SpecError
from builder.formats.description import read_description
from builder.formats.docker_archive import read_docker_archive
from builder.formats.load import load_image
from builder.formats.oci_layout import read_oci
from builder.model.image import canonical_json, sha256_digest


@pytest.fixture(autouse=True)
def no_hang():
    """A reader that spins fails the test instead of hanging it."""

    def stop(*_):
        raise TimeoutError("reader did not finish within 20 s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _archive(tmp_path, members, name="image.tar") -> str:
    return write(tmp_path / name, outer_tar(members))


def test_manifest_json_symlink_to_itself(tmp_path):
    members = docker_archive_members()
    members["manifest.json"] = ("symlink", "manifest.json")
    with pytest.raises(ImageFormatError, match="manifest.json is a symlink loop"):
        read_docker_archive(_archive(tmp_path, members))


def test_config_in_a_symlink_loop(tmp_path):
    members = docker_archive_members()
    members["config.json"] = ("symlink", "a/../other.json")
    members["other.json"] = ("symlink", "config.json")
    with pytest.raises(ImageFormatError, match="config.json is a symlink loop"):
        read_docker_archive(_archive(tmp_path, members))


def test_a_long_symlink_chain_stops(tmp_path):
    members = docker_archive_members()
    config = members.pop("config.json")
    members["config.json"] = ("symlink", "c0")
    for i in range(40):
        members[f"c{i}"] = ("symlink", f"c{i + 1}")
    members["c40"] = config
    with pytest.raises(ImageFormatError, match="symlink loop"):
        read_docker_archive(_archive(tmp_path, members))


def test_a_gigabyte_manifest_json_is_refused_unread(tmp_path):
    path = sparse_member_archive(tmp_path / "big.tar", "manifest.json", 1 << 30, {"x": b""})
    with pytest.raises(ImageFormatError, match=r"manifest manifest.json: 1024.0 MiB, more than the 32.0 MiB"):
        read_docker_archive(path)


def test_a_512_mib_config_is_refused_unread(tmp_path):
    members = docker_archive_members()
    del members["config.json"]
    path = sparse_member_archive(tmp_path / "big.tar", "config.json", 512 << 20, members)
    with pytest.raises(ImageFormatError, match=r"config config.json: 512.0 MiB, more than the 32.0 MiB"):
        read_docker_archive(path)


@pytest.mark.parametrize("which", ["manifest.json", "config.json"])
def test_json_nested_100000_deep_in_a_docker_archive(which, tmp_path):
    members = docker_archive_members()
    members[which] = deep_json(100_000)
    with pytest.raises(ImageFormatError, match="JSON nested more than 200 deep"):
        read_docker_archive(_archive(tmp_path, members))


def test_json_nested_deep_but_within_python_limits(tmp_path):
    # 900 levels parse, but would break whoever walks them recursively later.
    members = docker_archive_members()
    members["config.json"] = b'{"a":' * 900 + b"1" + b"}" * 900
    with pytest.raises(ImageFormatError, match="nested more than 200 deep"):
        read_docker_archive(_archive(tmp_path, members))


def _oci_config(layers) -> bytes:
    return canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(lb) for lb in layers]},
        }
    )


def test_oci_index_nested_deep(tmp_path):
    layers = [layer(entry(b"a", b"1"))]
    directory = oci_layout_dir(tmp_path / "oci", _oci_config(layers), layers)
    write(os.path.join(directory, "index.json"), deep_json(100_000))
    with pytest.raises(ImageFormatError, match="index.json: JSON nested more than 200 deep"):
        read_oci(directory)


def test_oci_config_of_512_mib_is_refused_before_reading(tmp_path):
    layers = [layer(entry(b"a", b"1"))]
    directory = oci_layout_dir(tmp_path / "oci", _oci_config(layers), layers)
    index = json.loads(open(os.path.join(directory, "index.json")).read())
    manifest_path = os.path.join(directory, "blobs", "sha256", index["manifests"][0]["digest"][7:])
    manifest = json.loads(open(manifest_path).read())
    big = os.path.join(directory, "blobs", "sha256", "f" * 64)
    with open(big, "wb") as f:
        f.truncate(512 << 20)
    manifest["config"] = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": "sha256:" + "f" * 64,
        "size": 512 << 20,
    }
    data = canonical_json(manifest)
    write(os.path.join(directory, "blobs", "sha256", sha256_digest(data)[7:]), data)
    index["manifests"][0].update(digest=sha256_digest(data), size=len(data))
    write(os.path.join(directory, "index.json"), json.dumps(index).encode())
    with pytest.raises(ImageFormatError, match=r"config: 512.0 MiB, more than the 32.0 MiB"):
        read_oci(directory)


def test_an_index_of_5000_manifests_none_matching_is_one_short_line(tmp_path, capsys):
    layers = [layer(entry(b"a", b"1"))]
    extra = [
        {"digest": "sha256:" + f"{i:064x}", "size": 1, "platform": {"os": "linux", "architecture": f"arch{i}"}}
        for i in range(5000)
    ]
    directory = oci_layout_dir(tmp_path / "oci", _oci_config(layers), layers, extra)
    index = json.loads(open(os.path.join(directory, "index.json")).read())
    index["manifests"][0]["platform"] = {"os": "linux", "architecture": "amd64"}
    write(os.path.join(directory, "index.json"), json.dumps(index).encode())
    with pytest.raises(ImageFormatError) as e:
        read_oci(directory, architecture="s390x")
    assert "no image for platform linux/s390x" in str(e.value) and "and 4989 more" in str(e.value)
    assert len(str(e.value)) < 500
    # And by reference: 5000 refs listed would be 79,000 characters.
    for i, m in enumerate(index["manifests"]):
        m["annotations"] = {"org.opencontainers.image.ref.name": f"tag-{i}-" + "x" * 10}
    write(os.path.join(directory, "index.json"), json.dumps(index).encode())
    with pytest.raises(ImageFormatError) as e:
        read_oci(directory, ref="nope")
    assert "and 4989 more" in str(e.value) and len(str(e.value)) < 600


def test_cli_cuts_any_error_line(tmp_path, capsys, monkeypatch):
    # Whatever a message quotes, the line stays readable.
    def huge(_args):
        raise ImageFormatError("x" * 79_000)

    monkeypatch.setattr("builder.cli._cmd_explain", huge)
    assert main(["explain", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: xxx") and err.count("\n") == 1 and len(err) < 2100
    assert "(77000 more characters)" in err


# --- descriptions: trusted to name store paths, nothing else ----------------------


def _description(directory, layers_entries, config=b"{}") -> str:
    os.makedirs(directory, exist_ok=True)
    write(os.path.join(directory, "config.json"), config)
    doc = {"version": 1, "repoTag": "x:1", "layers": layers_entries}
    write(os.path.join(directory, "image.json"), json.dumps(doc).encode())
    return os.fspath(directory)


def _file_entry(path, size=100):
    return {
        "diffId": "sha256:" + "0" * 64,
        "size": size,
        "source": {
            "kind": "file",
            "path": path,
            "offset": 0,
            "size": size,
            "encoding": "none",
            "storedDigest": "sha256:" + "0" * 64,
            "storedSize": size,
        },
    }


@pytest.fixture
def store(tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("NIX_STORE_DIR", str(store))
    return store


@pytest.mark.parametrize("path", ["/etc/shadow", "/etc/passwd", "relative/file", "STORE/../../etc/shadow"])
def test_a_description_naming_a_host_file_is_refused(path, store, tmp_path):
    path = path.replace("STORE", str(store))
    directory = _description(tmp_path / "desc", [_file_entry(path)])
    with pytest.raises(SpecError, match="is not a path in the Nix store"):
        read_description(directory)
    with pytest.raises(SpecError, match="not a path in the Nix store"):
        load_image(directory)


def test_a_store_symlink_to_a_host_file_is_refused(store, tmp_path):
    os.symlink("/etc/passwd", store / "abc-evil")
    directory = _description(tmp_path / "desc", [_file_entry(str(store / "abc-evil"))])
    with pytest.raises(SpecError, match="abc-evil leads out of the Nix store"):
        read_description(directory)


def test_store_layer_paths_and_roots_must_be_store_paths(store, tmp_path):
    entry_ = {
        "diffId": "sha256:" + "0" * 64,
        "size": 0,
        "source": {
            "kind": "store",
            "paths": ["/etc"],
            "stamp": {"uid": 0, "gid": 0, "uname": "", "gname": "", "mtime": 1},
        },
    }
    with pytest.raises(SpecError, match="layer path: '/etc' is not a path in the Nix store"):
        read_description(_description(tmp_path / "d1", [entry_]))
    os.symlink("/", store / "abc-root")
    entry_["source"] = {**entry_["source"], "paths": [], "roots": [str(store / "abc-root")]}
    with pytest.raises(SpecError, match="leads out of the Nix store"):
        read_description(_description(tmp_path / "d2", [entry_]))


def test_a_description_file_in_the_store_is_read(store, tmp_path):
    data = layer(entry(b"a", b"1"))
    write(store / "abc-layer.tar", data)
    e = _file_entry(str(store / "abc-layer.tar"), len(data))
    e["diffId"] = e["source"]["storedDigest"] = sha256_digest(data)
    desc = read_description(_description(tmp_path / "desc", [e]))
    assert desc.image.layers[0].diff_id == sha256_digest(data)


@pytest.mark.parametrize("target", ["/dev/zero", "FIFO"])
def test_image_json_that_is_not_a_regular_file(target, tmp_path):
    directory = tmp_path / "desc"
    directory.mkdir()
    write(directory / "config.json", b"{}")
    if target == "FIFO":
        os.mkfifo(directory / "image.json")
    else:
        os.symlink(target, directory / "image.json")
    with pytest.raises(SpecError, match="image.json: not a regular file"):
        read_description(str(directory))


def test_description_json_nested_deep(tmp_path):
    directory = tmp_path / "desc"
    directory.mkdir()
    write(directory / "config.json", b"{}")
    write(directory / "image.json", deep_json(100_000))
    with pytest.raises(SpecError, match="nested more than 200 deep"):
        read_description(str(directory))
