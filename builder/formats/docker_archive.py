"""Docker archive (``docker save`` layout): a source and a sink.

Sink: ``manifest.json`` first (every digest is known before a byte of a
layer is written), then each config, then each distinct layer once. Layers
go in as plain tar or compressed, as the caller asks.

Source: a docker archive, plain or gzip/zstd compressed as a whole, whose
layers may themselves be compressed. Layers of a plain archive are read in
place by offset; a compressed archive is unpacked to a directory first.
"""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, cast

from builder.errors import ImageFormatError
from builder.formats.members import members_by_name, write_dir, write_member
from builder.model.image import Blob, Image, Layer, canonical_json
from builder.model.jsondoc import CONFIG_LIMIT, INDEX_LIMIT, check_size, parse_json
from builder.sinks.sink import Sink
from builder.tar import tarstream
from builder.tar.layerfile import FileRange, layer_from_range, plain_archive

if TYPE_CHECKING:
    import tarfile

# The reader's modules (tarfile, tar.reader, model.reference) load only when
# an archive is read: the stream writes one and needs none of them.

__all__ = ["Tagged", "read_docker_archive", "read_docker_archive_all", "write_docker_archive"]

_MAX_SYMLINKS = 16

Tagged = Tuple[Image, List[str]]  # an image and the tags it is saved under


def write_docker_archive(sink: Sink, images: Sequence[Tagged], encoding: str = "none") -> None:
    manifest = []
    members = {}  # name -> blob, in first-use order
    for image, tags in images:
        config_name = image.config_digest.split(":")[1] + ".json"
        members[config_name] = Blob.from_bytes("", image.config_bytes)
        layer_names = []
        for layer in image.layers:
            blob = layer.blob(encoding)
            name = blob.digest.split(":")[1] + ("/layer.tar" if encoding == "none" else "/layer.tar." + encoding)
            members.setdefault(name, blob)
            layer_names.append(name)
        manifest.append({"Config": config_name, "RepoTags": list(tags), "Layers": layer_names})
    write_member(sink, "manifest.json", Blob.from_bytes("", canonical_json(manifest)))
    for name, blob in members.items():
        if "/" in name:
            write_dir(sink, name.split("/")[0])  # the layer's directory, as docker save writes it
        write_member(sink, name, blob)
    sink.write(tarstream.END_OF_ARCHIVE)
    sink.flush()


def _open_archive(path: str, workdir: Optional[str]) -> Tuple[str, tarfile.TarFile]:
    """A plain tar to read from: the archive itself, or it unpacked into workdir."""
    if os.path.isdir(path):
        raise ImageFormatError(f"{path}: a directory, not an image archive")
    if not os.path.isfile(path):
        raise ImageFormatError(f"{path}: no such image archive")
    import tarfile

    from builder.tar.reader import open_tar

    plain = plain_archive(path, workdir)
    try:
        return plain, open_tar(plain)
    except tarfile.TarError as e:
        raise ImageFormatError(f"{path}: not an image archive ({e})") from None


class _ArchiveReader:
    """An open docker archive: its manifest, and images loaded by entry."""

    def __init__(self, path: str, workdir: Optional[str], verify: bool):
        import tarfile

        self.path, self.verify = path, verify
        self.plain, self.tar = _open_archive(path, workdir)
        try:
            members = self.tar.getmembers()
        except tarfile.TarError as e:
            raise ImageFormatError(f"{path}: not a complete image archive ({e})") from None
        self.members = members_by_name(members)
        if "manifest.json" not in self.members:
            raise ImageFormatError(f"{path}: not a docker image archive (no manifest.json)")
        self.manifest = self._json("manifest.json", INDEX_LIMIT, "manifest")
        if not isinstance(self.manifest, list) or not self.manifest:
            raise ImageFormatError(f"{path}: manifest.json lists no image")
        for i, entry in enumerate(self.manifest):
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("Config"), str)
                and isinstance(entry.get("Layers"), list)
                and all(isinstance(n, str) for n in entry["Layers"])
                and isinstance(entry.get("RepoTags") or [], list)
            ):
                raise ImageFormatError(
                    f"{path}: manifest.json entry {i} is not "
                    '{"Config": FILE, "Layers": [FILE, ...], "RepoTags": [...]}'
                )
        # (member name, diff_id) -> Layer: a tar listed twice is read once
        self._layers: Dict[Tuple[str, str], Layer] = {}

    def _file(self, name: str) -> tarfile.TarInfo:
        m = self.members.get(name)
        seen = {name}
        while m is not None and m.issym():
            name = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
            if name in seen or len(seen) > _MAX_SYMLINKS:
                raise ImageFormatError(f"{self.path}: {sorted(seen)[0]} is a symlink loop")
            seen.add(name)
            m = self.members.get(name)
        if m is None or not m.isfile():
            raise ImageFormatError(f"{self.path}: {name} is missing from the archive")
        return m

    def _read(self, name: str, limit: int, what: str) -> bytes:
        m = self._file(name)
        check_size(m.size, limit, f"{self.path}: {what} {name}")
        # _file() only gives regular members, and those always have contents.
        return cast(IO[bytes], self.tar.extractfile(m)).read()

    def _json(self, name: str, limit: int, what: str):
        return parse_json(self._read(name, limit, what), f"{self.path}: {what} {name}")

    def load(self, entry: dict) -> Image:
        config_bytes = self._read(entry["Config"], CONFIG_LIMIT, "config")
        config = parse_json(config_bytes, f"{self.path}: config {entry['Config']}")
        rootfs = config.get("rootfs") or {} if isinstance(config, dict) else None
        diff_ids = rootfs.get("diff_ids") or [] if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
            raise ImageFormatError(f"{self.path}: {entry['Config']} is not an image config (no rootfs.diff_ids list)")
        if len(diff_ids) != len(entry["Layers"]):
            raise ImageFormatError(
                f"{self.path}: {len(entry['Layers'])} layers but {len(diff_ids)} diff_ids in the config"
            )
        return Image(config_bytes, [self._layer(n, d) for n, d in zip(entry["Layers"], diff_ids)])

    def _layer(self, name: str, diff_id: str) -> Layer:
        key = (name, diff_id)
        if key not in self._layers:
            m = self._file(name)
            rng = FileRange(self.plain, m.offset_data, m.size)
            self._layers[key] = layer_from_range(rng, diff_id, verify=self.verify, what=f"{self.path}: layer {name}")
        return self._layers[key]

    def close(self) -> None:
        self.tar.close()


def read_docker_archive(
    path: str,
    workdir: Optional[str] = None,
    *,
    name: Optional[str] = None,
    tag: Optional[str] = None,
    verify: bool = True,
) -> Image:
    """The image in a docker archive; ``name``/``tag`` pick one of several."""
    reader = _ArchiveReader(path, workdir, verify)
    try:
        return reader.load(_pick(path, reader.manifest, name, tag))
    finally:
        reader.close()


def read_docker_archive_all(path: str, workdir: Optional[str] = None, verify: bool = True) -> List[Tagged]:
    """Every image of a docker archive, with the tags it lists."""
    reader = _ArchiveReader(path, workdir, verify)
    try:
        return [(reader.load(e), list(e.get("RepoTags") or [])) for e in reader.manifest]
    finally:
        reader.close()


def _pick(path: str, manifest, name: Optional[str], tag: Optional[str]) -> dict:
    from builder.model.reference import split_repo_tag

    if name is None and tag is None:
        if len(manifest) > 1:
            raise ImageFormatError(f"{path}: holds {len(manifest)} images; say which with fromImageName/fromImageTag")
        return manifest[0]
    for entry in manifest:
        for ref in entry.get("RepoTags") or []:
            rname, rtag = split_repo_tag(ref)
            if (name is None or rname == name) and (tag is None or rtag == tag):
                return entry
    want = f"{name or '*'}:{tag or '*'}"
    raise ImageFormatError(f"{path}: no image tagged {want}")
