"""Stream time: write a described image to an archive, one pass, no hashing.

The description's digests were computed at build time; here every layer's
bytes are written once. A size check guards each member (see
docker_archive._member); tests hash the whole output against the digests.
"""

from __future__ import annotations

from typing import Optional

from .description import read_description
from .docker_archive import write_docker_archive
from .errors import BuildError
from .output import open_output

__all__ = ["stream"]


def stream(description: str, *, output: Optional[str] = None, fmt: str = "docker",
           layer_compression: str = "none", archive_compression: str = "none") -> None:
    desc = read_description(description)
    images = [(desc.image, [desc.repo_tag])]
    if fmt == "docker":
        with open_output(output, archive_compression) as sink:
            write_docker_archive(sink, images, layer_compression)
    elif fmt == "oci":
        from .oci_layout import write_oci_archive
        with open_output(output, archive_compression) as sink:
            write_oci_archive(sink, images, layer_compression)
    else:
        raise BuildError(f"unknown format {fmt!r}: expected docker or oci")
