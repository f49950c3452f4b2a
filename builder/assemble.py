"""Build time: turn a closure, a base image and a customisation layer into
an image description (``python3 builder layers``, inside the conf build).

This is the only place store layers are hashed: each layer's tar is
generated once into a hashing sink, layers in parallel threads (hashlib and
file reads release the GIL).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional

from . import closure, config as image_config_mod
from .description import (entry_of, find_description, read_description, store_layer,
                          write_description)
from .docker_archive import read_docker_archive
from .errors import SpecError
from .image import Image, Layer, canonical_json
from .layerfile import FileRange, layer_from_range, range_stats
from .sinks import HashSink
from .spec import Attrs, check_image_name, check_tag
from .tarstream import Stamp, write_store_layer

__all__ = ["assemble", "hash_store_layers", "tag_from_out"]


def tag_from_out(out: str) -> str:
    """nixpkgs' rule for ``tag = null``: the hash part of the output path."""
    return os.path.basename(out).split("-", 1)[0]


def hash_store_layers(groups: List[List[str]], stamp: Stamp,
                      workers: Optional[int] = None) -> List[Layer]:
    def one(paths: List[str]) -> Layer:
        sink = HashSink()
        write_store_layer(sink, paths, stamp)
        return store_layer(paths, stamp, sink.digest, sink.size)
    # Biggest layers first would balance better, but order of results must
    # follow groups; map keeps it.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(one, groups))


def _base_image(attrs: Attrs, out: str) -> Optional[Image]:
    from_image = attrs.str("fromImage")
    if not from_image:
        return None
    if not os.path.exists(from_image):
        raise SpecError(f"fromImage: {from_image} does not exist")
    described = find_description(from_image)
    if described:
        # One of ours: reuse its layers as described, nothing is copied.
        return read_description(described).image
    return read_docker_archive(from_image, workdir=out, name=attrs.str("fromImageName"),
                               tag=attrs.str("fromImageTag"))


def _paths_in(layers: List[Layer]) -> List[str]:
    """Store paths whole layers of a base already hold: not repeated above."""
    return [p for layer in layers if layer.source and layer.source["kind"] == "store"
            for p in layer.source["paths"]]


def _store_graph(attrs: Attrs) -> closure.Graph:
    if not attrs.bool("includeStorePaths", True):
        return closure.Graph([])
    graph = closure.Graph(attrs.list("closure"))
    return graph.without(attrs.list("excludePaths"))


def assemble(attrs: Attrs) -> None:
    out = attrs.out
    os.makedirs(out, exist_ok=True)
    name = check_image_name(attrs.str("imageName", required=True))
    tag = check_tag(attrs.str("tag") or tag_from_out(out))
    max_layers = attrs.int("maxLayers", 100)
    if max_layers < 2:
        raise SpecError(f"maxLayers = {max_layers}: must be at least 2 "
                        "(one for the customisation layer, one for store paths)")
    created = image_config_mod.resolve_created(attrs.str("created", "1970-01-01T00:00:01Z"))
    stamp = Stamp(uid=attrs.int("uid", 0), gid=attrs.int("gid", 0), uname=attrs.str("uname", "root"),
                  gname=attrs.str("gname", "root"),
                  mtime=image_config_mod.epoch_of(attrs.data.get("mtime", 1)))

    base = _base_image(attrs, out)
    base_layers = base.layers if base else []
    budget = max_layers - len(base_layers) - 1
    graph = _store_graph(attrs).without(_paths_in(base_layers))
    if graph.refs and budget < 1:
        raise SpecError(f"maxLayers = {max_layers}: the base image has {len(base_layers)} layers and "
                        "the customisation layer needs one, so no layer is left for store paths")
    groups = closure.plan_layers(graph, budget)
    new_layers = hash_store_layers(groups, stamp)
    history = [{"created": created, "comment": "store paths: " + " ".join(g)} for g in groups]

    custom = attrs.str("customisationLayer")
    if custom:
        tar = os.path.join(custom, "layer.tar")
        rng = FileRange(tar, 0, os.path.getsize(tar))
        stats = range_stats(rng, tar)
        new_layers.append(layer_from_range(rng, stats["diffId"], verify=False, what=tar, stats=stats))
        history.append({"created": created, "comment": "customisation layer"})

    layers = base_layers + new_layers
    config = image_config_mod.image_config(
        base=base.config if base else None, run_config=attrs.dict("config"),
        diff_ids=[layer.diff_id for layer in layers], history=history, created=created,
        architecture=attrs.str("architecture", required=True), os=attrs.str("os", "linux"),
        variant=attrs.str("variant"))
    write_description(out, config_bytes=canonical_json(config),
                      entries=[entry_of(layer) for layer in layers], repo_tag=f"{name}:{tag}")
