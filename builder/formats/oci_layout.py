"""OCI image layout (image-spec v1.1 ``image-layout.md``): sinks and a source.

Sinks:
- ``write_oci_archive``: one tar that every loader accepts, the shape Docker
  25+ ``docker save`` writes: ``oci-layout`` and ``index.json`` for OCI
  readers (containerd-backed docker, podman, skopeo), plus a docker-style
  ``manifest.json`` naming the same ``blobs/sha256`` files for older docker.
- ``write_oci_layout``: an OCI layout directory, usable as a blob cache:
  blobs already present are kept, new ones appear atomically, index.json
  is replaced last so a reader never sees a tag whose blobs are missing.

Both accept single images and multi-platform groups: a group becomes an
image index with one manifest per platform. Manifests are serialised once
(``render``); the registry client pushes the very same bytes.

Source: ``read_oci`` follows index.json (and nested indexes) to the
manifest for one platform and verifies every blob it uses.
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from builder.errors import BuildError, DigestMismatch, ImageFormatError, short_list
from builder.formats.members import members_by_name, write_dir, write_member
from builder.model import image as model
from builder.model.image import Blob, Image, canonical_json
from builder.model.jsondoc import (
    CONFIG_LIMIT,
    INDEX_LIMIT,
    MANIFEST_LIMIT,
    check_size,
    parse_json,
    read_json_file,
    read_limited,
)
from builder.model.manifest import INDEX_TYPES, MANIFEST_TYPES, Rendered, Tagged, descriptor, render
from builder.model.platform import host_platform, platform_matches, platform_text, select_descriptor
from builder.model.reference import qualified_name, split_repo_tag
from builder.sinks.output import OUTPUT_ERRORS
from builder.sinks.sink import FdSink, Sink, TeeSink
from builder.tar import tarstream
from builder.tar.layerfile import FileRange, layer_from_range, plain_archive, range_stats
from builder.tar.reader import open_tar

__all__ = [
    "IMAGE_NAME",
    "REF_NAME",
    "init_layout",
    "read_oci",
    "store_blob",
    "update_index",
    "write_oci_archive",
    "write_oci_layout",
]

REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}

# Indexes inside indexes are allowed by the spec; a bound stops a cycle.
_MAX_INDEX_DEPTH = 4


# --- references in index.json ----------------------------------------------


def _annotations(ref: str) -> dict:
    name, tag = split_repo_tag(ref)
    return {REF_NAME: tag, IMAGE_NAME: f"{qualified_name(name)}:{tag}"}


def _index_entries(rendered: Sequence[Tuple[Rendered, Sequence[str]]]) -> List[dict]:
    entries = []
    for r, refs in rendered:
        if not refs:
            entries.append(descriptor(r.top))
        entries.extend(descriptor(r.top, annotations=_annotations(ref)) for ref in refs)
    return entries


def _index_json(entries: List[dict]) -> bytes:
    return canonical_json({"schemaVersion": 2, "mediaType": model.OCI_INDEX, "manifests": entries})


def _docker_manifest(rendered: Sequence[Tuple[Rendered, Sequence[str]]]) -> bytes:
    """manifest.json for loaders that predate OCI. Only one platform of a
    group can carry the tags (a tag names one image there): the first."""
    entries = []
    for r, refs in rendered:
        for i, m in enumerate(r.manifests):
            entries.append(
                {
                    "Config": _blob_path(m.config.digest),
                    "RepoTags": list(refs) if i == 0 else [],
                    "Layers": [_blob_path(b.digest) for b in m.layers],
                }
            )
    return canonical_json(entries)


def _blob_path(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"blobs/{algorithm}/{hexpart}"


# --- the archive sink --------------------------------------------------------


def write_oci_archive(sink: Sink, images: Sequence[Tagged], encoding: str = "none") -> None:
    """The archive for ``images``: each a target and its "name:tag" references.

    Metadata comes first, so every digest is known before a layer byte is
    written. Only sizes are checked while streaming: digests were fixed when
    the layers were made, and hashing again would double the work.
    """
    rendered = [(render(target, encoding), refs) for target, refs in images]
    write_member(sink, "oci-layout", Blob.from_bytes("", canonical_json(LAYOUT_VERSION)))
    write_member(sink, "index.json", Blob.from_bytes("", _index_json(_index_entries(rendered))))
    write_member(sink, "manifest.json", Blob.from_bytes("", _docker_manifest(rendered)))
    write_dir(sink, "blobs/")
    write_dir(sink, "blobs/sha256/")
    written = set()
    for r, _ in rendered:
        for blob in r.blobs():
            if blob.digest not in written:
                written.add(blob.digest)
                write_member(sink, _blob_path(blob.digest), blob)
    sink.write(tarstream.END_OF_ARCHIVE)
    sink.flush()


# --- the directory sink ------------------------------------------------------


def _write_temp(path: str, write: Callable[[Sink], None]) -> Tuple[TeeSink, str]:
    """Write into a temporary file beside ``path``, hashing on the way. The
    caller renames it into place once checked, so an interrupted write never
    leaves a partial file under the final name."""
    directory = os.path.dirname(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    except OSError as e:  # a directory we may not write in: the user's to fix
        raise BuildError(f"cannot write into {directory}: {e.strerror}") from None
    try:
        tee = TeeSink(FdSink(fd))
        write(tee)
        tee.flush()
        os.fchmod(fd, 0o644)
        os.close(fd)
        fd = -1
        return tee, tmp
    except BaseException as e:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        # A full disk, a file size limit: the output's state, not a bug (an
        # error reading a source names its file and goes on as it is).
        if isinstance(e, OSError) and e.filename is None and e.errno in OUTPUT_ERRORS:
            raise BuildError(f"cannot write into {directory}: {e.strerror}") from None
        raise


def store_blob(directory: str, blob: Blob) -> bool:
    """Put ``blob`` under the layout's blobs/; False when it was already there."""
    path = os.path.join(directory, _blob_path(blob.digest))
    try:
        if os.stat(path).st_size == blob.size:
            return False
    except FileNotFoundError:
        pass
    tee, tmp = _write_temp(path, blob.write_to)
    # Unlike the archive, a wrong blob here would be trusted by every later
    # write that skips it, so its digest is checked before it gets its name.
    if tee.digest != blob.digest or tee.size != blob.size:
        os.unlink(tmp)
        raise DigestMismatch(path, f"{blob.digest} ({blob.size} bytes)", f"{tee.digest} ({tee.size} bytes)")
    os.replace(tmp, path)
    return True


def _replace_file(path: str, data: bytes) -> None:
    _, tmp = _write_temp(path, lambda sink: sink.write(data))
    os.replace(tmp, path)


def _existing_entries(directory: str) -> List[dict]:
    path = os.path.join(directory, "index.json")
    if not os.path.exists(path):
        return []
    try:
        entries = list(read_json_file(path, INDEX_LIMIT, path).get("manifests") or [])
    except (AttributeError, TypeError) as e:
        raise ImageFormatError(f"{path}: not an OCI index ({e})") from None
    _check_descriptors(entries, path)
    return entries


def init_layout(directory: str) -> None:
    """Make ``directory`` an OCI layout (or check that it is one)."""
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise BuildError(f"{directory}: not a directory; an OCI layout is one")
    layout_path = os.path.join(directory, "oci-layout")
    if os.path.isdir(directory) and not os.path.lexists(layout_path) and os.listdir(directory):
        # Blobs and an index scattered among someone's files help no one.
        raise BuildError(
            f"{directory}: a directory with other files and no oci-layout file: "
            "give a new or empty directory, or an OCI layout"
        )
    try:
        os.makedirs(os.path.join(directory, "blobs", "sha256"), exist_ok=True)
    except OSError as e:
        raise BuildError(f"cannot make an OCI layout at {directory}: {e.strerror}") from None
    if os.path.exists(layout_path):
        _check_layout_version(directory, read_limited(layout_path, 1 << 16, layout_path))
    else:
        _replace_file(layout_path, canonical_json(LAYOUT_VERSION))


def update_index(directory: str, entries: List[dict]) -> None:
    """Add ``entries`` to index.json; an existing entry with the same ref.name
    is replaced, as ``skopeo copy ... oci:DIR:tag`` does, others are kept.
    Call it after the blobs are stored: a reader never sees a dangling tag."""
    refs = {(e.get("annotations") or {}).get(REF_NAME) for e in entries} - {None}
    kept = [e for e in _existing_entries(directory) if (e.get("annotations") or {}).get(REF_NAME) not in refs]
    _replace_file(os.path.join(directory, "index.json"), _index_json(kept + entries))


def write_oci_layout(directory: str, images: Sequence[Tagged], encoding: str = "gzip") -> List[str]:
    """Add ``images`` to the OCI layout at ``directory`` (created if needed).
    Returns the digests of the blobs actually written."""
    init_layout(directory)
    rendered = [(render(target, encoding), refs) for target, refs in images]
    written = []
    for r, _ in rendered:
        for blob in r.blobs():
            if store_blob(directory, blob):
                written.append(blob.digest)
    update_index(directory, _index_entries(rendered))
    return written


# --- the source --------------------------------------------------------------


class _Blobs:
    """Blob files of a layout directory or of a plain tar, as file ranges."""

    def __init__(self, path: str, plain: str, members: Optional[Dict[str, tarfile.TarInfo]]):
        self.path = path
        self.plain = plain
        self.members = members

    def range(self, name: str) -> Optional[FileRange]:
        if self.members is None:
            full = os.path.join(self.path, name)
            try:
                st = os.stat(full)
            except OSError:
                return None  # missing, or a symlink loop
            return FileRange(full, 0, st.st_size) if stat.S_ISREG(st.st_mode) else None
        m = self.members.get(name)
        if m is None:
            return None
        if not m.isfile():
            raise ImageFormatError(f"{self.path}: {name} is not a regular file in the archive")
        return FileRange(self.plain, m.offset_data, m.size)

    def read(self, name: str, limit: int, what: str) -> bytes:
        rng = self.range(name)
        if rng is None:
            raise ImageFormatError(f"{self.path}: no {name}")
        check_size(rng.size, limit, f"{self.path}: {what}")
        return b"".join(rng.chunks())

    def blob(self, desc: dict, what: str, limit: int) -> bytes:
        """A JSON blob's bytes, checked against its descriptor."""
        digest = _checked_digest(desc, self.path)
        if isinstance(desc.get("size"), int):
            check_size(desc["size"], limit, f"{self.path}: {what}")
        data = self.read(_blob_path(digest), limit, what)
        got = model.sha256_digest(data)
        if got != digest:
            raise DigestMismatch(f"{self.path}: {what}", digest, got)
        if "size" in desc and desc["size"] != len(data):
            raise DigestMismatch(f"{self.path}: {what} size", str(desc["size"]), str(len(data)))
        return data


def _checked_digest(desc: dict, where: str) -> str:
    digest = desc.get("digest") if isinstance(desc, dict) else None
    if (
        not isinstance(digest, str)
        or not digest.startswith("sha256:")
        or len(digest) != 71
        or not all(c in "0123456789abcdef" for c in digest[7:])
    ):
        raise ImageFormatError(f"{where}: unsupported or malformed digest {digest!r} (only lower-case sha256 is read)")
    return digest


def _open_blobs(path: str, workdir: Optional[str]) -> Tuple[_Blobs, Optional[tarfile.TarFile]]:
    if os.path.isdir(path):
        return _Blobs(path, path, None), None
    if not os.path.exists(path):
        raise ImageFormatError(f"{path}: no such OCI layout or archive")
    plain = plain_archive(path, workdir)
    try:
        tar = open_tar(plain)
    except tarfile.TarError as e:
        raise ImageFormatError(f"{path}: not an OCI archive ({e})") from None
    try:
        members = members_by_name(tar.getmembers())
    except tarfile.TarError as e:
        tar.close()
        raise ImageFormatError(f"{path}: not a complete OCI archive ({e})") from None
    except BaseException:
        tar.close()
        raise
    return _Blobs(path, plain, members), tar


def _check_layout_version(path: str, data: bytes) -> None:
    try:
        version = parse_json(data, f"{path}: oci-layout").get("imageLayoutVersion")
    except (ImageFormatError, AttributeError):
        version = None
    if version != LAYOUT_VERSION["imageLayoutVersion"]:
        raise ImageFormatError(f"{path}: oci-layout says version {version!r}; 1.0.0 is read")


def _json(data: bytes, what: str) -> dict:
    value = parse_json(data, what)
    if not isinstance(value, dict):
        raise ImageFormatError(f"{what}: not a JSON object")
    return value


def _by_ref(entries: List[dict], ref: str, path: str) -> List[dict]:
    found = [
        e
        for e in entries
        if ref in ((e.get("annotations") or {}).get(REF_NAME), (e.get("annotations") or {}).get(IMAGE_NAME))
    ]
    if not found:
        refs = sorted({str((e.get("annotations") or {}).get(REF_NAME) or "(untagged)") for e in entries})
        raise ImageFormatError(f"{path}: no image with reference {ref!r}; it has {short_list(refs) or 'none'}")
    return found


def _check_descriptors(entries, where: str) -> None:
    if not isinstance(entries, list) or not all(
        isinstance(e, dict)
        and isinstance(e.get("digest"), str)
        and isinstance(e.get("platform") or {}, dict)
        and isinstance(e.get("annotations") or {}, dict)
        for e in entries
    ):
        raise ImageFormatError(f'{where}: manifests is not a list of descriptors ({{"digest": "sha256:...", ...}})')


def _top_entries(blobs: _Blobs, ref: Optional[str]) -> List[dict]:
    _check_layout_version(blobs.path, blobs.read("oci-layout", 1 << 16, "oci-layout"))
    entries = _json(blobs.read("index.json", INDEX_LIMIT, "index.json"), f"{blobs.path}: index.json").get("manifests")
    if not isinstance(entries, list) or not entries:
        raise ImageFormatError(f"{blobs.path}: index.json lists no image")
    _check_descriptors(entries, f"{blobs.path}: index.json")
    if ref is not None:
        return _by_ref(entries, ref, blobs.path)
    if len({e.get("digest") for e in entries}) > 1 and not any(e.get("platform") for e in entries):
        refs = sorted({str((e.get("annotations") or {}).get(REF_NAME) or "(untagged)") for e in entries})
        raise ImageFormatError(
            f"{blobs.path}: holds {len(entries)} images ({short_list(refs)}); say which with a reference"
        )
    return entries


def _resolve_manifest(blobs: _Blobs, entries: List[dict], want: dict, prefer: Optional[dict]) -> dict:
    """Descend through indexes to one image manifest for the platform."""
    for _ in range(_MAX_INDEX_DEPTH):
        desc = select_descriptor(entries, want, blobs.path, prefer)
        media_type = desc.get("mediaType")
        data = blobs.blob(desc, f"manifest {desc.get('digest')}", MANIFEST_LIMIT)
        doc = _json(data, f"{blobs.path}: {desc.get('digest')}")
        media_type = doc.get("mediaType") or media_type
        if media_type in INDEX_TYPES or (media_type is None and "manifests" in doc):
            entries = doc.get("manifests") or []
            _check_descriptors(entries, f"{blobs.path}: {desc.get('digest')}")
            continue
        if media_type in MANIFEST_TYPES or (media_type is None and "config" in doc):
            return doc
        raise ImageFormatError(f"{blobs.path}: {desc.get('digest')} has unsupported media type {media_type!r}")
    raise ImageFormatError(f"{blobs.path}: indexes nested more than {_MAX_INDEX_DEPTH} deep")


def _layer(blobs: _Blobs, desc: dict, diff_id: str):
    digest = _checked_digest(desc, blobs.path)
    what = f"{blobs.path}: layer {digest}"
    rng = blobs.range(_blob_path(digest))
    if rng is None:
        where = f" (a foreign layer, only at {desc['urls']})" if desc.get("urls") else ""
        raise ImageFormatError(f"{what}: blob missing{where}")
    stats = range_stats(rng, what)
    if stats["storedDigest"] != digest:
        raise DigestMismatch(what, digest, stats["storedDigest"])
    if stats["diffId"] != diff_id:
        raise DigestMismatch(f"{what}: diff_id", diff_id, stats["diffId"])
    return layer_from_range(rng, diff_id, verify=False, what=what, stats=stats)


def read_oci(
    path: str,
    *,
    architecture: Optional[str] = None,
    os_: str = "linux",
    variant: Optional[str] = None,
    ref: Optional[str] = None,
    workdir: Optional[str] = None,
    machine: Optional[str] = None,
) -> Image:
    """The image in an OCI layout directory or archive at ``path``.

    ``ref`` picks an index.json entry by its ref.name (or full name) annotation.
    Without ``architecture``, the host's is preferred among several platforms
    (``machine`` stands in for the host's uname in tests); a single
    candidate is taken whatever it is. Layers inside a plain archive are
    streamed from it by offset, never copied.
    """
    blobs, tar = _open_blobs(path, workdir)
    try:
        want = {"architecture": architecture or "", "os": os_ or "", "variant": variant or ""}
        prefer = None if architecture else host_platform(machine)
        manifest = _resolve_manifest(blobs, _top_entries(blobs, ref), want, prefer)
        config_bytes = blobs.blob(manifest.get("config") or {}, "config", CONFIG_LIMIT)
        config = _json(config_bytes, f"{path}: config")
        _check_config_platform(path, config, want)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        descs = manifest.get("layers") or []
        if len(descs) != len(diff_ids):
            raise ImageFormatError(f"{path}: {len(descs)} layers but {len(diff_ids)} diff_ids in the config")
        layers = [_layer(blobs, d, diff_id) for d, diff_id in zip(descs, diff_ids)]
    finally:
        if tar is not None:
            tar.close()
    return Image(config_bytes, layers)


def _check_config_platform(path: str, config: dict, want: dict) -> None:
    # An index may lack platform fields; the config is the final word on what
    # the image is, so an explicit request is checked against it too.
    have = {k: config.get(k, "") for k in ("architecture", "os", "variant")}
    if not platform_matches(have, want):
        raise ImageFormatError(f"{path}: the image is for {platform_text(have)}, not {platform_text(want)}")
