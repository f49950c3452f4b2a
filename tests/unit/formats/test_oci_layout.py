"""OCI archive and layout: our bytes, written and read back (what skopeo, umoci
and podman make of them: e2e/test_oci_layout_tools.py)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tarfile

import pytest
from imagekit import layer_tar, make_image, manifest_digest, memory_layer, multi_arch, simple_image
from imagekit import write_oci_archive_file as write_archive
from tarbuild import layer_bytes

from builder.errors import BuildError, DigestMismatch, ImageFormatError
from builder.formats import oci_layout
from builder.formats.oci_layout import IMAGE_NAME, REF_NAME, read_oci, store_blob, write_oci_layout
from builder.model import manifest
from builder.model.image import OCI_INDEX, OCI_MANIFEST, Blob, Layer, sha256_digest


def members(path):
    with tarfile.open(path) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar}


# --- the archive's own shape ------------------------------------------------------


def test_archive_has_layout_index_and_docker_manifest(tmp_path):
    base = memory_layer(layer_bytes({"base.txt": b"shared"}))
    one = make_image([base, memory_layer(layer_bytes({"one": b"1"}))], label="one")
    two = make_image([base, memory_layer(layer_bytes({"two": b"2"}))], label="two")
    path = write_archive(tmp_path / "a.tar", [(one, ["app:1"]), (two, ["reg.example:5000/x/y:2"])])
    files = members(path)

    names = list(files)
    assert names[:5] == ["oci-layout", "index.json", "manifest.json", "blobs", "blobs/sha256"]
    assert json.loads(files["oci-layout"][1]) == {"imageLayoutVersion": "1.0.0"}
    for name, (info, data) in files.items():
        assert (info.uid, info.gid, info.mtime) == (0, 0, 1)
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.split("/")[-1]
    # 2 configs + 2 manifests + 3 distinct layers: the shared one is stored once.
    assert len([n for n in names if n.startswith("blobs/sha256/")]) == 7

    index = json.loads(files["index.json"][1])
    assert index["mediaType"] == OCI_INDEX
    annotations = [e["annotations"] for e in index["manifests"]]
    assert annotations == [
        {REF_NAME: "1", IMAGE_NAME: "docker.io/library/app:1"},
        {REF_NAME: "2", IMAGE_NAME: "reg.example:5000/x/y:2"},
    ]
    assert [e["digest"] for e in index["manifests"]] == [manifest_digest(one), manifest_digest(two)]

    legacy = json.loads(files["manifest.json"][1])
    assert [e["RepoTags"] for e in legacy] == [["app:1"], ["reg.example:5000/x/y:2"]]
    for entry in legacy:
        for name in [entry["Config"], *entry["Layers"]]:
            assert name in files


def test_archive_bytes_are_deterministic(tmp_path):
    image = simple_image("a", "b")
    a = write_archive(tmp_path / "a.tar", [(image, ["t:1"])])
    b = write_archive(tmp_path / "b.tar", [(simple_image("a", "b"), ["t:1"])])
    assert open(a, "rb").read() == open(b, "rb").read()


def test_archive_golden_digest(tmp_path):
    # Pinned: the same on Python 3.11, 3.12 and 3.13. A change here changes
    # every user's image digest, so it must be deliberate. (Plain layers only:
    # gzip bytes also depend on the zlib version.)
    group = [simple_image("a", "b"), simple_image("c", architecture="arm64")]
    path = write_archive(tmp_path / "g.tar", [(group, ["x:1"]), (simple_image("a", "b"), ["y:2"])], encoding="none")
    assert (
        hashlib.sha256(open(path, "rb").read()).hexdigest()
        == "45773a9296dfc45d3c10771320e5c68c7ec1a081a6151e50cd01e0199d3a1b0d"
    )


def test_manifest_digest_covers_the_bytes_written(tmp_path):
    image = simple_image("x")
    m = manifest.image_manifest(image, "gzip")
    files = members(write_archive(tmp_path / "a.tar", [(image, ["t:1"])]))
    stored = files["blobs/sha256/" + m.blob.digest.split(":")[1]][1]
    body = json.loads(stored)
    assert body["mediaType"] == OCI_MANIFEST
    assert body["config"]["digest"] == image.config_digest
    assert [d["digest"] for d in body["layers"]] == [b.digest for b in m.layers]


def test_writer_that_lies_about_size_is_caught(tmp_path):
    data = layer_bytes({"f": b"x"})
    bad = Layer(sha256_digest(data), len(data) + 512, lambda sink: sink.write(data))
    with pytest.raises(DigestMismatch):
        write_archive(tmp_path / "a.tar", [(make_image([bad]), ["t:1"])], encoding="none")


# --- the layout directory ---------------------------------------------------------------


def test_layout_skips_blobs_already_present(tmp_path):
    calls = []
    image = make_image([memory_layer(layer_bytes({"a": b"a"}), calls), memory_layer(layer_bytes({"b": b"b"}), calls)])
    layout = str(tmp_path / "layout")
    written = write_oci_layout(layout, [(image, ["demo:1"])], "none")
    assert len(written) == 4 and len(calls) == 2  # 2 layers, config, manifest

    calls.clear()
    assert write_oci_layout(layout, [(image, ["demo:2"])], "none") == []
    assert calls == []
    assert not [n for n in os.listdir(f"{layout}/blobs/sha256") if n.startswith(".tmp")]

    # A blob of the wrong size (a torn earlier write) is written again.
    victim = f"{layout}/blobs/sha256/{image.layers[0].diff_id.split(':')[1]}"
    with open(victim, "r+b") as f:
        f.truncate(10)
    assert write_oci_layout(layout, [(image, ["demo:1"])], "none") == [image.layers[0].diff_id]


def test_layout_goes_into_a_new_or_empty_directory_or_a_layout_only(tmp_path):
    image = simple_image()
    (tmp_path / "empty").mkdir()
    write_oci_layout(str(tmp_path / "empty"), [(image, ["demo:1"])], "none")
    write_oci_layout(str(tmp_path / "empty"), [(image, ["demo:2"])], "none")  # a layout now
    write_oci_layout(str(tmp_path / "new" / "dir"), [(image, ["demo:1"])], "none")
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    with pytest.raises(BuildError, match="other files and no oci-layout file"):
        write_oci_layout(str(home), [(image, ["demo:1"])], "none")
    assert os.listdir(home) == ["notes.txt"]


def test_layout_index_keeps_other_tags_and_replaces_ours(tmp_path):
    layout = str(tmp_path / "layout")
    first, second = simple_image("1"), simple_image("2")
    write_oci_layout(layout, [(first, ["demo:a"]), (first, ["demo:b"])])
    write_oci_layout(layout, [(second, ["demo:b"])])
    index = json.load(open(f"{layout}/index.json"))
    by_ref = {e["annotations"][REF_NAME]: e["digest"] for e in index["manifests"]}
    assert by_ref == {"a": manifest_digest(first), "b": manifest_digest(second)}
    assert read_oci(layout, ref="b").config_digest == second.config_digest


def test_layout_refuses_a_blob_whose_bytes_do_not_match(tmp_path):
    data = layer_bytes({"f": b"real"})
    liar = memory_layer(data)
    liar.write_tar = lambda sink: sink.write(layer_bytes({"f": b"fake"}))
    layout = str(tmp_path / "layout")
    with pytest.raises(DigestMismatch):
        write_oci_layout(layout, [(make_image([liar]), ["demo:1"])], "none")
    leftovers = os.listdir(f"{layout}/blobs/sha256")
    assert liar.diff_id.split(":")[1] not in leftovers
    assert not [n for n in leftovers if n.startswith(".tmp")]
    assert not os.path.exists(f"{layout}/index.json")


# --- reading back ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["none", "gzip"])
def test_read_back_from_archive_streams_layers_in_place(tmp_path, encoding):
    image = simple_image("one", "two")
    archive = write_archive(tmp_path / "a.tar", [(image, ["demo:1"])], encoding)
    back = read_oci(archive, ref="1")
    assert back.config_bytes == image.config_bytes
    assert [l.diff_id for l in back.layers] == [l.diff_id for l in image.layers]
    for ours, theirs in zip(image.layers, back.layers):
        assert layer_tar(theirs) == layer_tar(ours)
        # The layer is a range of the archive itself, not a copy.
        assert theirs.source["path"] == archive and theirs.source["offset"] > 0
        assert theirs.source["encoding"] == encoding
    # Compressed layers keep their stored bytes: writing gzip again copies them.
    again = write_archive(tmp_path / "b.tar", [(back, ["demo:1"])], encoding)
    assert open(again, "rb").read() == open(archive, "rb").read()


def test_read_back_from_layout_dir(tmp_path):
    image = simple_image("one", "two")
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, [(image, ["demo:1"])])
    back = read_oci(layout)
    assert back.config_digest == image.config_digest
    assert [l.diff_id for l in back.layers] == [l.diff_id for l in image.layers]


def test_read_detects_a_tampered_layer(tmp_path):
    image = simple_image("payload")
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, [(image, ["demo:1"])], "none")
    blob = f"{layout}/blobs/sha256/{image.layers[0].diff_id.split(':')[1]}"
    data = bytearray(open(blob, "rb").read())
    data[data.index(b"payload")] ^= 0x20
    open(blob, "wb").write(bytes(data))
    with pytest.raises(DigestMismatch):
        read_oci(layout)


def test_read_needs_a_ref_among_several_images_and_names_them(tmp_path):
    archive = write_archive(tmp_path / "a.tar", [(simple_image("a"), ["x:one"]), (simple_image("b"), ["x:two"])])
    with pytest.raises(ImageFormatError, match="one, two"):
        read_oci(archive)
    with pytest.raises(ImageFormatError, match="no image with reference 'three'"):
        read_oci(archive, ref="three")
    assert read_oci(archive, ref="docker.io/library/x:two").config_digest == simple_image("b").config_digest


def test_read_rejects_what_is_not_a_layout(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ImageFormatError):
        read_oci(str(tmp_path / "d"))
    (tmp_path / "f").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ImageFormatError):
        read_oci(str(tmp_path / "f"))


# --- several platforms ------------------------------------------------------------------


def test_multi_arch_layout_dir(tmp_path):
    images = multi_arch()
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, [(images, ["multi:1"])])
    assert read_oci(layout, ref="1", architecture="arm64", variant="v8").platform == images[1].platform


def test_single_image_named_for_another_platform_is_refused(tmp_path):
    archive = write_archive(tmp_path / "a.tar", [(simple_image("a", architecture="arm64"), ["x:1"])])
    assert read_oci(archive, machine="x86_64").platform["architecture"] == "arm64"
    with pytest.raises(ImageFormatError, match="linux/arm64, not linux/amd64"):
        read_oci(archive, architecture="amd64")


def test_two_images_for_one_platform_is_an_error():
    with pytest.raises(BuildError, match="two images for platform linux/amd64"):
        manifest.render([simple_image("a"), simple_image("b")])


def _failing_blob(error: OSError) -> Blob:
    def write_to(sink):
        sink.write(b"some bytes first")
        raise error

    return Blob("application/octet-stream", "sha256:" + "0" * 64, 99, write_to)


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.EFBIG, "File too large"),  # ulimit -f
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system"),
    ],
)
def test_a_layout_that_cannot_take_a_blob_is_one_line_and_no_file(tmp_path, error):
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    with pytest.raises(BuildError, match=f"cannot write into {blobs}: {error.strerror}$"):
        store_blob(str(tmp_path), _failing_blob(error))
    assert os.listdir(blobs) == []


def test_a_layout_directory_not_writable_is_one_line(tmp_path, monkeypatch):
    # (Root writes anywhere: the refusal is what mkstemp raises for others.)
    def refused(**kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(kwargs["dir"], ".tmp-x"))

    monkeypatch.setattr(oci_layout.tempfile, "mkstemp", refused)
    with pytest.raises(BuildError, match="cannot write into .*/blobs/sha256: Permission denied$"):
        store_blob(str(tmp_path), _failing_blob(OSError(errno.EIO, "never reached")))


def test_an_error_reading_a_source_is_not_taken_for_the_layouts(tmp_path):
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    unreadable = PermissionError(errno.EACCES, "Permission denied", "/nix/store/x-src/file")
    with pytest.raises(PermissionError):
        store_blob(str(tmp_path), _failing_blob(unreadable))
