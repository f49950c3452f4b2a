"""Manifests and indexes: the exact bytes a tag points at.

A target (one image, or several pushed as an index with one manifest per
platform) is rendered once (``render``); every sink, the OCI archive and
layout and the registry, writes or pushes those very bytes.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple, Union

from builder.errors import BuildError
from builder.model import image as model
from builder.model.image import Blob, Image, canonical_json
from builder.model.platform import platform_text

__all__ = [
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "Manifest",
    "Rendered",
    "Tagged",
    "Target",
    "check_target",
    "config_blob",
    "descriptor",
    "image_index",
    "image_manifest",
    "render",
]

# A target is one image, or several (one per platform) pushed as an index.
Target = Union[Image, Sequence[Image]]
Tagged = Tuple[Target, Sequence[str]]  # a target and its "name:tag" references

MANIFEST_TYPES = (model.OCI_MANIFEST, model.DOCKER_MANIFEST)
INDEX_TYPES = (model.OCI_INDEX, model.DOCKER_LIST)

_FLAVOURS = {
    "oci": {
        "manifest": model.OCI_MANIFEST,
        "index": model.OCI_INDEX,
        "config": model.OCI_CONFIG,
        "layers": model.LAYER_MEDIA_TYPES,
    },
    "docker": {
        "manifest": model.DOCKER_MANIFEST,
        "index": model.DOCKER_LIST,
        "config": model.DOCKER_CONFIG,
        "layers": model.DOCKER_LAYER,
    },
}


# Manifest and Rendered are written out, not dataclasses: the stream and push
# never load dataclasses (inspect, ast: ~15 ms of each start);
# tests/unit/test_imports.py pins it.
class Manifest:
    """One image's manifest, serialised once, with the blobs it refers to."""

    __slots__ = ("image", "blob", "config", "layers")

    def __init__(self, image: Image, blob: Blob, config: Blob, layers: List[Blob]) -> None:
        self.image, self.blob, self.config, self.layers = image, blob, config, layers


class Rendered:
    """A target ready to write: the blob a tag points at and all manifests below it."""

    __slots__ = ("top", "manifests")

    def __init__(self, top: Blob, manifests: List[Manifest]) -> None:
        self.top, self.manifests = top, manifests

    def blobs(self) -> List[Blob]:
        """Every blob the target needs, each digest once, index last."""
        seen: Dict[str, Blob] = {}
        for m in self.manifests:
            for blob in [m.config, *m.layers, m.blob]:
                seen.setdefault(blob.digest, blob)
        seen.setdefault(self.top.digest, self.top)
        return list(seen.values())


def descriptor(blob: Blob, **extra) -> dict:
    return {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size, **extra}


def config_blob(image: Image, flavour: str = "oci") -> Blob:
    return Blob.from_bytes(_flavour(flavour)["config"], image.config_bytes)


def check_target(target: Target, flavour: str = "oci") -> None:
    """What ``render`` would refuse, found before any layer digest is known."""
    _flavour(flavour)
    if not isinstance(target, Image):
        if not target:
            raise BuildError("a multi-platform image needs at least one image")
        _check_platforms(target)


def _check_platforms(images: Sequence[Image]) -> None:
    """Two images for one platform is an error: a reader would silently take the first."""
    seen: Dict[str, str] = {}
    for image in images:
        key = platform_text(image.platform)
        if key in seen:
            raise BuildError(f"two images for platform {key} in one index ({seen[key]} and {image.config_digest})")
        seen[key] = image.config_digest


def image_manifest(image: Image, encoding: str = "gzip", flavour: str = "oci") -> Manifest:
    types = _flavour(flavour)
    config = config_blob(image, flavour)
    layers = []
    for layer in image.layers:
        blob = layer.blob(encoding)
        layers.append(Blob(types["layers"][encoding], blob.digest, blob.size, blob.write_to))
    body = {
        "schemaVersion": 2,
        "mediaType": types["manifest"],
        "config": descriptor(config),
        "layers": [descriptor(b) for b in layers],
    }
    return Manifest(image, Blob.from_bytes(types["manifest"], canonical_json(body)), config, layers)


def image_index(manifests: Sequence[Manifest], flavour: str = "oci") -> Blob:
    """An index with one entry per platform; two images for one platform is an error
    because a reader would silently take the first."""
    _check_platforms([m.image for m in manifests])
    body = {
        "schemaVersion": 2,
        "mediaType": _flavour(flavour)["index"],
        "manifests": [descriptor(m.blob, platform=m.image.platform) for m in manifests],
    }
    return Blob.from_bytes(_flavour(flavour)["index"], canonical_json(body))


def render(target: Target, encoding: str = "gzip", flavour: str = "oci") -> Rendered:
    """A single Image gets a manifest; a list of Images (even of one) an index."""
    if isinstance(target, Image):
        m = image_manifest(target, encoding, flavour)
        return Rendered(m.blob, [m])
    manifests = [image_manifest(i, encoding, flavour) for i in target]
    if not manifests:
        raise BuildError("a multi-platform image needs at least one image")
    return Rendered(image_index(manifests, flavour), manifests)


def _flavour(flavour: str) -> dict:
    try:
        return _FLAVOURS[flavour]
    except KeyError:
        raise BuildError(f"unknown manifest format {flavour!r}: expected oci or docker") from None
