"""Images for several platforms under one tag (``buildMultiArchImage``):
their description.

The build (``python3 builder multiarch``) writes one description per input
image under ``images/<i>`` and a ``multiarch.json`` naming them. Inputs are
images of this project (stream executables, descriptions), whose layers are
reused as described, or any image ``formats.load.load_image`` reads (a docker
archive such as a pulled image, an OCI archive or layout), checked once here.
Compressed-layer digests the user asks for are recorded at this point, so a
push of the index hashes nothing.
"""

from __future__ import annotations

import os
from typing import Dict, List

from builder.contract import MultiarchSpec
from builder.errors import SpecError
from builder.formats.description import entry_of, find_description, write_description
from builder.formats.load import MULTI_FILE, MULTI_VERSION, load_image, multi_dir
from builder.model.image import Image, canonical_json
from builder.model.platform import platform_text
from builder.model.reference import check_image_name, check_tag
from builder.sinks import compress
from builder.steps.assemble import tag_from_out
from builder.steps.known import encodings_of, fill_known

__all__ = ["build_multiarch"]


def _input_image(path: str, workdir: str) -> Image:
    described = multi_dir(path) or find_description(path)
    if described is not None and multi_dir(described):
        raise SpecError(f"images: {path} is itself a multi-platform image")
    os.makedirs(workdir, exist_ok=True)
    return load_image(path, workdir=workdir)


def build_multiarch(spec: MultiarchSpec) -> None:
    """``buildMultiArchImage``'s description: one per input image, each with
    the compressed digests asked for."""
    out = spec.out
    os.makedirs(out, exist_ok=True)
    name = check_image_name(spec.image_name)
    tag = check_tag(spec.tag or tag_from_out(out))
    encodings = encodings_of(spec.layer_compression)
    paths = spec.images
    if not paths:
        raise SpecError("images: give at least one image")
    images: List[Image] = []
    seen: Dict[str, int] = {}
    for i, path in enumerate(paths):
        if not os.path.exists(path):
            raise SpecError(f"images: element {i} ({path!r}) is not an image in the store")
        image = _input_image(path, os.path.join(out, "images", str(i)))
        key = platform_text(image.platform)
        if key in seen:
            raise SpecError(
                f"images: elements {seen[key]} and {i} are both for {key}; an index holds one image per platform"
            )
        seen[key] = i
        images.append(image)
    for image in images:
        fill_known(image.layers, encodings)
    rels = []
    for i, image in enumerate(images):
        rel = f"images/{i}"
        write_description(
            os.path.join(out, rel),
            config_bytes=image.config_bytes,
            entries=[entry_of(layer) for layer in image.layers],
            repo_tag=f"{name}:{tag}",
            extra={"layerCompression": encodings[0]} if encodings else {},
        )
        rels.append(rel)
    doc = {"version": MULTI_VERSION, "repoTag": f"{name}:{tag}", "images": rels, "platforms": sorted(seen)}
    if encodings:
        doc["layerCompression"] = encodings[0]
    if compress.configured_zstd():
        doc["zstd"] = compress.configured_zstd()
    with open(os.path.join(out, MULTI_FILE), "wb") as f:
        f.write(canonical_json(doc))
