"""Build time: several images in one docker archive (``mergeImages``).

Inputs may be docker archives (any compression, several images each) or
images of this project (stream executables, descriptions). Layers are
copied as they are, so owners, modes and digests stay; a layer shared by
several images is written once.
"""

from __future__ import annotations

import os
import tempfile

from builder.contract import MergeSpec
from builder.formats.docker_archive import write_docker_archive
from builder.formats.load import load_all
from builder.sinks.output import open_output

__all__ = ["merge_images"]


def merge_images(spec: MergeSpec) -> None:
    # zstd-compressed inputs: the standard library cannot read them
    os.environ["PATH"] = os.path.dirname(spec.zstd) + os.pathsep + os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as work:
        images = [tagged for path in spec.images for tagged in load_all(path, work)]
        with open_output(spec.out) as sink:
            write_docker_archive(sink, images)
