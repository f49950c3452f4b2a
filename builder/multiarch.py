"""Images for several platforms under one tag (``buildMultiArchImage``), and
the loader every stream, archive and push command goes through.

The build (``python3 builder multiarch``) writes one description per input
image under ``images/<i>`` and a ``multiarch.json`` naming them. Inputs are
images of this project (stream executables, descriptions), whose layers are
reused as described, or any image ``sources.load_image`` reads (a docker
archive such as a pulled image, an OCI archive or layout), checked once here.
Compressed-layer digests the user asks for are recorded at this point, so a
push of the index hashes nothing.

``load_target`` turns any of these (a description, a multi-platform
description, a stream executable of either) into what the sinks take: one
Image, or a list of Images written as an image index.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Union

from .description import entry_of, find_description, read_description, write_description
from .errors import SpecError
from .image import Image, canonical_json
from .known import encodings_of, fill_known
from .sources import load_image
from .spec import Attrs, check_image_name, check_tag

__all__ = ["MULTI_FILE", "build_multiarch", "load_target", "Loaded", "note_unknown_digests"]

MULTI_FILE = "multiarch.json"
VERSION = 1


@dataclass
class Loaded:
    """What a stream or push writes: one image or a per-platform group."""

    target: Union[Image, List[Image]]
    repo_tag: str
    layer_compression: str      # whose digests the build recorded

    @property
    def multi(self) -> bool:
        return not isinstance(self.target, Image)

    @property
    def images(self) -> List[Image]:
        return list(self.target) if self.multi else [self.target]


def _multi_dir(path: str) -> Optional[str]:
    if os.path.isdir(path) and os.path.exists(os.path.join(path, MULTI_FILE)):
        return path
    return None


def load_target(path: str) -> Loaded:
    """The image(s) behind ``path``: a description directory, a multi-platform
    description, or a stream executable naming one."""
    described = _multi_dir(path) or find_description(path)
    if described is None:
        raise SpecError(f"{path}: not an image of this project (a stream executable or "
                        "an image description)")
    multi = _multi_dir(described)
    if multi is None:
        desc = read_description(described)
        return Loaded(desc.image, desc.repo_tag, desc.layer_compression)
    try:
        with open(os.path.join(multi, MULTI_FILE), "rb") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise SpecError(f"{multi}: not a multi-platform description ({e})") from None
    if doc.get("version") != VERSION:
        raise SpecError(f"{multi}: multi-platform description version {doc.get('version')!r}, "
                        f"this builder reads {VERSION}")
    images = [read_description(os.path.join(multi, rel)).image for rel in doc["images"]]
    return Loaded(images, doc["repoTag"], doc.get("layerCompression", "none"))


def note_unknown_digests(loaded: Loaded, encoding: str) -> None:
    """One line on stderr when the build did not record this encoding's
    digests: each such layer is compressed once more to learn its digest."""
    if encoding == "none":
        return
    missing = sum(1 for image in loaded.images for layer in image.layers if encoding not in layer.known)
    if missing:
        print(f"note: {missing} layer(s) have no {encoding} digest from the build "
              f"(set layerCompression = \"{encoding}\"): compressing them twice",
              file=sys.stderr, flush=True)


def _platform_key(image: Image) -> str:
    p = image.platform
    return "/".join(x for x in (p["os"], p["architecture"], p.get("variant", "")) if x)


def _input_image(path: str, workdir: str) -> Image:
    described = _multi_dir(path) or find_description(path)
    if described is not None and _multi_dir(described):
        raise SpecError(f"images: {path} is itself a multi-platform image")
    os.makedirs(workdir, exist_ok=True)
    return load_image(path, workdir=workdir)


def build_multiarch(attrs: Attrs) -> None:
    """``buildMultiArchImage``'s description: one per input image, each with
    the compressed digests asked for."""
    out = attrs.out
    os.makedirs(out, exist_ok=True)
    name = check_image_name(attrs.str("imageName", required=True))
    tag = check_tag(attrs.str("tag") or os.path.basename(out).split("-", 1)[0])
    encodings = encodings_of(attrs.str("layerCompression"))
    paths = attrs.list("images")
    if not paths:
        raise SpecError("images: give at least one image")
    images, seen = [], {}
    for i, path in enumerate(paths):
        if not isinstance(path, str) or not os.path.exists(path):
            raise SpecError(f"images: element {i} ({path!r}) is not an image in the store")
        image = _input_image(path, os.path.join(out, "images", str(i)))
        key = _platform_key(image)
        if key in seen:
            raise SpecError(f"images: elements {seen[key]} and {i} are both for {key}; "
                            "an index holds one image per platform")
        seen[key] = i
        images.append(image)
    for image in images:
        fill_known(image.layers, encodings)
    rels = []
    for i, image in enumerate(images):
        rel = f"images/{i}"
        write_description(os.path.join(out, rel), config_bytes=image.config_bytes,
                          entries=[entry_of(layer) for layer in image.layers],
                          repo_tag=f"{name}:{tag}",
                          extra={"layerCompression": encodings[0]} if encodings else None)
        rels.append(rel)
    doc = {"version": VERSION, "repoTag": f"{name}:{tag}", "images": rels,
           "platforms": sorted(seen)}
    if encodings:
        doc["layerCompression"] = encodings[0]
    with open(os.path.join(out, MULTI_FILE), "wb") as f:
        f.write(canonical_json(doc))
