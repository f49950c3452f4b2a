"""The one loader of images: any image a user may hand us, read into the
image model.

Accepted: an image of this project (a stream executable or a description
directory: its layers are reused as described, nothing copied), a docker
archive (plain or compressed, one image picked by name/tag when it holds
several), an OCI archive or an OCI layout directory (one manifest picked by
platform or ref).

``load_target`` is what every stream, archive and push command goes
through: an image of this project (one description, a multi-platform
description, or a stream executable naming either) as one Image or a list
of Images written as an image index.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, List, Optional, Union

from builder.errors import ImageFormatError, SpecError, check_version
from builder.formats.description import find_description, read_description, zstd_trusted
from builder.model.image import Image
from builder.model.jsondoc import read_json_file
from builder.report import progress_line
from builder.tar.layerfile import detect_encoding, plain_archive

if TYPE_CHECKING:
    from builder.formats.docker_archive import Tagged

# The readers of archives and layouts (docker_archive, oci_layout, tar.reader)
# load only when one is read: an image of this project needs none of them.

__all__ = [
    "MULTI_FILE",
    "MULTI_VERSION",
    "Loaded",
    "load_all",
    "load_image",
    "load_target",
    "multi_dir",
    "note_unknown_digests",
]

# A multi-platform description: a directory with one description per image.
MULTI_FILE = "multiarch.json"
MULTI_VERSION = 1

NOT_OURS = (
    "not an image of this project (a stream executable or an image description); "
    "for an archive built into the store (buildLayeredImage, buildImage) give its .stream or .conf"
)


def _tar_names(path: str, workdir: Optional[str]) -> Optional[set]:
    """Top-level names of a tar (unpacking a compressed one once), or None."""
    if workdir is None and detect_encoding(path, 0) != "none":
        return None
    import tarfile

    from builder.formats.members import members_by_name
    from builder.tar.reader import open_tar

    plain = plain_archive(path, workdir)
    try:
        with open_tar(plain) as tar:
            return set(members_by_name(tar.getmembers()))
    except tarfile.TarError:
        return None


def load_image(
    path: str,
    *,
    workdir: Optional[str] = None,
    name: Optional[str] = None,
    tag: Optional[str] = None,
    architecture: Optional[str] = None,
    variant: Optional[str] = None,
) -> Image:
    if not os.path.lexists(path):
        raise ImageFormatError(f"{path}: no such image")
    if not os.path.exists(path):
        raise ImageFormatError(f"{path}: a symlink to {os.readlink(path)}, which does not exist")
    described = find_description(path)
    if described:
        return read_description(described).image
    from builder.formats.docker_archive import read_docker_archive
    from builder.formats.oci_layout import read_oci

    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "oci-layout")):
            return read_oci(path, architecture=architecture, variant=variant, ref=tag, workdir=workdir)
        raise ImageFormatError(f"{path}: a directory, but neither an OCI layout nor an image of this project")
    names = _tar_names(path, workdir)
    # An OCI index knows platforms, so it is read whenever the archive has one,
    # unless a name is asked for (only manifest.json's RepoTags carry it).
    if names is not None and "oci-layout" in names and ("manifest.json" not in names or name is None):
        return read_oci(path, architecture=architecture, variant=variant, ref=tag, workdir=workdir)
    return read_docker_archive(path, workdir, name=name, tag=tag)


def load_all(path: str, workdir: str) -> List[Tagged]:
    """Every image ``path`` holds, with its tags: an image of this project, or
    each image of a docker archive (``mergeImages``' inputs)."""
    described = find_description(path)
    if described:
        desc = read_description(described)
        return [(desc.image, [desc.repo_tag])]
    from builder.formats.docker_archive import read_docker_archive_all

    return read_docker_archive_all(path, workdir)


# Written out, not a dataclass: the stream and push never load dataclasses
# (inspect, ast: ~15 ms of each start); tests/unit/test_imports.py pins it.
class Loaded:
    """What a stream or push writes: one image or a per-platform group."""

    __slots__ = ("target", "repo_tag", "layer_compression")

    def __init__(self, target: Union[Image, List[Image]], repo_tag: str, layer_compression: str) -> None:
        self.target, self.repo_tag = target, repo_tag
        self.layer_compression = layer_compression  # whose digests the build recorded

    @property
    def multi(self) -> bool:
        return not isinstance(self.target, Image)

    @property
    def images(self) -> List[Image]:
        return [self.target] if isinstance(self.target, Image) else list(self.target)


def multi_dir(path: str) -> Optional[str]:
    if os.path.isdir(path) and os.path.exists(os.path.join(path, MULTI_FILE)):
        return path
    return None


def load_target(path: str) -> Loaded:
    """The image(s) behind ``path``: a description directory, a multi-platform
    description, or a stream executable naming one."""
    described = multi_dir(path) or find_description(path)
    if described is None:
        raise SpecError(f"{path}: {NOT_OURS}")
    multi = multi_dir(described)
    if multi is None:
        desc = read_description(described)
        return Loaded(desc.image, desc.repo_tag, desc.layer_compression)
    try:
        doc = read_json_file(os.path.join(multi, MULTI_FILE), 1 << 20, f"{multi}: {MULTI_FILE}")
    except ImageFormatError as e:
        raise SpecError(f"not a multi-platform description: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise SpecError(f"{multi}: not a multi-platform description ({MULTI_FILE} lists no images)")
    check_version(doc, MULTI_VERSION, "multi-platform description", multi)
    zstd_trusted(doc.get("zstd"))
    images = [read_description(os.path.join(multi, str(rel))).image for rel in doc["images"]]
    return Loaded(images, doc["repoTag"], doc.get("layerCompression", "none"))


def note_unknown_digests(loaded: Loaded, encoding: str, pushing: bool = False, missing: Optional[int] = None) -> None:
    """One line on stderr when the build did not record this encoding's
    digests: each such layer is compressed once more to learn its digest
    (a push compresses it once, into a temporary file, and sends that;
    ``missing``: how many layers, when a push knew more from its cache)."""
    if encoding == "none":
        return
    if missing is None:
        missing = sum(1 for image in loaded.images for layer in image.layers if encoding not in layer.known)
    if missing:
        how = "each is compressed into a temporary file first" if pushing else "compressing them twice"
        progress_line(
            f"note: {missing} layer(s) have no {encoding} digest from the build "
            f'(set layerCompression = "{encoding}"): {how}'
        )
