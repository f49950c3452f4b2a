"""Build time: several images in one docker archive (``mergeImages``).

Inputs may be docker archives (any compression, several images each) or
images of this project (stream executables, descriptions). Layers are
copied as they are, so owners, modes and digests stay; a layer shared by
several images is written once.
"""

from __future__ import annotations

import os
import tempfile
from typing import List

from builder.contract import MergeSpec
from builder.formats.description import find_description, read_description
from builder.formats.docker_archive import Tagged, read_docker_archive_all, write_docker_archive
from builder.sinks.output import open_output

__all__ = ["load_images", "merge_images"]


def load_images(paths: List[str], workdir: str) -> List[Tagged]:
    images: List[Tagged] = []
    for path in paths:
        described = find_description(path)
        if described:
            desc = read_description(described)
            images.append((desc.image, [desc.repo_tag]))
        else:
            images.extend(read_docker_archive_all(path, workdir))
    return images


def merge_images(spec: MergeSpec) -> None:
    # zstd-compressed inputs: the standard library cannot read them
    os.environ["PATH"] = os.path.dirname(spec.zstd) + os.pathsep + os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as work:
        images = load_images(spec.images, work)
        with open_output(spec.out) as sink:
            write_docker_archive(sink, images)
