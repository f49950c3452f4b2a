"""Any image a user may hand us as a base, read into the image model.

Accepted: an image of this project (a stream executable or a description
directory: its layers are reused as described, nothing copied), a docker
archive (plain or compressed, one image picked by name/tag when it holds
several), an OCI archive or an OCI layout directory (one manifest picked by
platform or ref).
"""

from __future__ import annotations

import os
import tarfile
from typing import Optional

from .description import find_description, read_description
from .docker_archive import read_docker_archive
from .errors import ImageFormatError
from .image import Image
from .layerfile import detect_encoding, plain_archive
from .oci_layout import read_oci

__all__ = ["load_image"]


def _tar_names(path: str, workdir: Optional[str]) -> Optional[set]:
    """Top-level names of a tar (unpacking a compressed one once), or None."""
    if workdir is None and detect_encoding(path, 0) != "none":
        return None
    plain = plain_archive(path, workdir)
    try:
        with tarfile.open(plain, "r:") as tar:
            return {m.name[2:] if m.name.startswith("./") else m.name for m in tar.getmembers()}
    except tarfile.TarError:
        return None


def load_image(path: str, *, workdir: Optional[str] = None, name: Optional[str] = None,
               tag: Optional[str] = None, architecture: Optional[str] = None,
               variant: Optional[str] = None) -> Image:
    if not os.path.lexists(path):
        raise ImageFormatError(f"{path}: no such image")
    if not os.path.exists(path):
        raise ImageFormatError(f"{path}: a symlink to {os.readlink(path)}, which does not exist")
    described = find_description(path)
    if described:
        return read_description(described).image
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
