"""One image's inventory: the image as a subject (name, tag, image ID,
manifest digest, time) and every store path it holds, with the layer that
holds it and what Nix knows about it. The SBOM documents and ``explain``
are both written from this.

Which digest names the image: the image ID is the config digest, the same
whatever the layers' compression or the archive format. The manifest digest
is the one of the OCI manifest with the layers in the compression the build
recorded (``layerCompression``; uncompressed by default): what ``--push``
sends by default and what the OCI layout and archive hold. A push in
another form (``--compress``, ``--format docker``) names its own digest in
the SBOM it attaches.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from builder.errors import SpecError
from builder.formats.description import Description, find_description, read_description
from builder.formats.load import NOT_OURS, multi_dir
from builder.model import manifest
from builder.model.image import Blob
from builder.model.reference import split_repo_tag
from builder.sbom.contents import Contents, Root, read_contents, split_store_name, store_name

__all__ = ["Inventory", "LayerInfo", "Package", "Subject", "inventory_of", "load_inventory"]


@dataclass(frozen=True)
class Subject:
    name: str
    tag: str
    image_id: str  # the config digest
    manifest: Blob  # the manifest the SBOM names
    created: str  # the image's, as YYYY-MM-DDThh:mm:ssZ
    platform: Dict[str, str]


@dataclass(frozen=True)
class LayerInfo:
    index: int  # 1 = the bottom layer
    diff_id: str
    size: int
    compressed: Dict[str, Tuple[str, int]]  # encoding -> (digest, size), as recorded
    kind: str  # "store" or "file"
    label: str  # what the layer is, for a person
    paths: Tuple[str, ...]  # the store paths it holds (store layers)


@dataclass(frozen=True)
class Package:
    """One store path in the image."""

    path: str
    name: str
    version: str
    nar_hash: Optional[str]  # "sha256:<hex>"; None when Nix gave no graph entry
    nar_size: Optional[int]
    references: Tuple[str, ...]
    layer: Optional[int]  # LayerInfo.index
    licenses: Tuple[str, ...] = ()
    homepage: Optional[str] = None

    @property
    def hash_part(self) -> str:
        return os.path.basename(self.path).split("-", 1)[0]


@dataclass(frozen=True)
class Inventory:
    subject: Subject
    layers: List[LayerInfo]
    packages: Dict[str, Package]  # by store path
    roots: List[Root]
    has_graph: bool  # False: a description without contents.json

    def package(self, path: str) -> Package:
        return self.packages[path]


_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:?\d\d)?$")


def _timestamp(created: str) -> str:
    """SPDX wants exactly YYYY-MM-DDThh:mm:ssZ: the image's time in UTC, to the second."""
    match = _TIME.match(created)
    if not match:
        raise SpecError(f"the image's created time {created!r} is not an RFC 3339 time")
    when = datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    zone = match.group(2)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        when -= sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels(desc: Description) -> List[str]:
    """Each layer's history comment (the history entries that are not empty layers)."""
    history = desc.image.config.get("history") or []
    comments = [h.get("comment", "") for h in history if isinstance(h, dict) and not h.get("empty_layer")]
    if len(comments) != len(desc.entries):
        comments = [""] * len(desc.entries)
    return comments


def _layers(desc: Description) -> List[LayerInfo]:
    result = []
    for i, (entry, comment) in enumerate(zip(desc.entries, _labels(desc)), 1):
        source = entry.get("source", {})
        kind = source.get("kind", "file")
        # buildLayer { reproducible = false; } layers are files that name their paths.
        paths = tuple(source.get("paths", ()))
        if kind == "store" or paths:
            label = f"{len(paths)} store path(s)"
        elif comment == "customisation layer":
            label = "customisation layer"
        elif source.get("path", "").endswith("-layer/layer.tar"):
            label = "image layer (buildImage)"
        else:
            label = "base image layer" + (f": {comment}" if comment else "")
        known = {enc: (v[0], v[1]) for enc, v in sorted(entry.get("known", {}).items())}
        result.append(LayerInfo(i, entry["diffId"], entry["size"], known, kind, label, paths))
    return result


def inventory_of(
    desc: Description, contents: Optional[Contents], *, encoding: Optional[str] = None, flavour: str = "oci"
) -> Inventory:
    """``encoding``/``flavour``: the manifest the subject names (default: the
    OCI manifest with the recorded layer compression)."""
    image = desc.image
    rendered = manifest.image_manifest(image, encoding or desc.layer_compression, flavour)
    name, tag = split_repo_tag(desc.repo_tag)
    subject = Subject(
        name=name,
        tag=tag,
        image_id=image.config_digest,
        manifest=rendered.blob,
        created=_timestamp(str(image.config.get("created") or "1970-01-01T00:00:00Z")),
        platform=image.platform,
    )
    layers = _layers(desc)
    holder: Dict[str, int] = {}
    for layer in layers:
        for p in layer.paths:
            holder.setdefault(p, layer.index)
    # Paths no store layer holds are in a layer made of files: buildImage's.
    fallback = next((layer.index for layer in reversed(layers) if layer.kind != "store"), None)
    contents = contents or Contents()
    meta = {r.path: r for r in contents.roots if r.origin == "contents"}
    packages: Dict[str, Package] = {}
    for path in sorted(set(contents.paths) | set(holder)):
        info = contents.paths.get(path)
        pname, version = split_store_name(store_name(path))
        root = meta.get(path)
        packages[path] = Package(
            path=path,
            name=pname,
            version=version,
            nar_hash=info.nar_hash if info else None,
            nar_size=info.nar_size if info else None,
            references=info.references if info else (),
            layer=holder.get(path, fallback),
            licenses=root.licenses if root else (),
            homepage=root.homepage if root else None,
        )
    has_graph = bool(contents.paths) or bool(contents.roots)
    return Inventory(subject, layers, packages, list(contents.roots), has_graph)


def load_inventory(source: str, *, encoding: Optional[str] = None, flavour: str = "oci") -> Inventory:
    """The inventory of an image of this project: a stream executable or a description."""
    if multi_dir(source):
        raise SpecError(
            f"{source}: a multi-platform image; SBOMs and explain are per platform: "
            "give one of its images (streamLayeredImage results, passthru.conf)"
        )
    described = find_description(source)
    if described is None:
        raise SpecError(f"{source}: {NOT_OURS}")
    if multi_dir(described):
        raise SpecError(f"{source}: a multi-platform image; SBOMs and explain are per platform")
    return inventory_of(read_description(described), read_contents(described), encoding=encoding, flavour=flavour)
