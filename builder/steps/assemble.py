"""Build time: turn a closure, a base image and a customisation layer into
an image description (``python3 builder layers``, inside the conf build).

This is the only place store layers are hashed: each layer's tar is
generated once into a hashing sink, layers in parallel threads (hashlib and
file reads release the GIL).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

from builder.contract import Attrs
from builder.errors import SpecError
from builder.formats.description import entry_of, layer_from_entry, store_layer, write_description
from builder.formats.load import load_image
from builder.model import config as image_config_mod
from builder.model.image import Image, Layer, canonical_json
from builder.model.reference import check_image_name, check_tag
from builder.steps import closure
from builder.steps.known import encodings_of, fill_known, measure_tar
from builder.steps.sbom import record_contents
from builder.tar.layerfile import FileRange, layer_from_range, range_stats
from builder.tar.rootfs import parse_perms
from builder.tar.tarstream import Stamp

__all__ = ["assemble", "build_layer", "hash_store_layers", "measure", "tag_from_out"]


def tag_from_out(out: str) -> str:
    """nixpkgs' rule for ``tag = null``: the hash part of the output path."""
    return os.path.basename(out).split("-", 1)[0]


def measure(
    paths: List[str], stamp: Stamp, roots: List[str] = (), perms: List[dict] = (), encodings: Sequence[str] = ()
) -> Layer:
    """A store layer with its digest and size, from one pass over its files;
    with ``encodings``, the digests of its compressed forms from the same pass."""
    probe = store_layer(paths, stamp, "", 0, roots, perms)
    diff_id, size, compressed = measure_tar(probe.write_tar, encodings)
    layer = store_layer(paths, stamp, diff_id, size, roots, perms)
    layer.known.update(compressed)
    return layer


def hash_store_layers(
    groups: List[List[str]],
    stamp: Stamp,
    workers: Optional[int] = None,
    encodings: Sequence[str] = (),
    sizes: Optional[Dict[str, int]] = None,
) -> List[Layer]:
    """Every group measured, in parallel threads. With ``sizes`` (narSize
    per path) the biggest layers start first, so no thread is left with a
    big one at the end; results keep the order of ``groups``."""
    order = list(range(len(groups)))
    if sizes:
        order.sort(key=lambda i: -sum(sizes.get(p, 0) for p in groups[i]))
    results: List[Optional[Layer]] = [None] * len(groups)

    def one(i: int) -> None:
        results[i] = measure(groups[i], stamp, encodings=encodings)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(one, order))
    return results


LAYERS_FILE = "layers.json"


def _read_layer_set(path: str) -> List[Layer]:
    """The layers of a buildLayer output."""
    try:
        with open(os.path.join(path, LAYERS_FILE), "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise SpecError(f"layers: {path} is not a buildLayer result (it has no {LAYERS_FILE})") from None
    except (OSError, ValueError) as e:
        raise SpecError(f"layers: {path} is not a buildLayer result ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
        raise SpecError(f"layers: {path}/{LAYERS_FILE} lists no layers")
    return [layer_from_entry(e) for e in doc["layers"]]


def _explicit_layers(paths: List[str]) -> List[Layer]:
    return [layer for p in paths for layer in _read_layer_set(p)]


def build_layer(attrs: Attrs) -> None:
    """buildLayer: one derivation holding the description of a few layers
    a user groups by hand (dependencies apart from the app, say)."""
    out = attrs.out
    stamp = _stamp(attrs)
    roots = attrs.list("copyToRoot")
    graph = closure.Graph(attrs.list("closure"))
    referenced = {r for refs in graph.refs.values() for r in refs}
    # copyToRoot paths are relocated to /; they stay in the store only when
    # something else in the closure refers to them.
    relocated = [r for r in roots if r not in referenced]
    skip = set(attrs.list("ignore")) | set(relocated) | set(_paths_in(_explicit_layers(attrs.list("parentLayers"))))
    graph = graph.without(skip)
    groups = closure.plan_layers(graph, attrs.int("maxLayers", 1)) if graph.refs else []
    if roots and not groups:
        groups = [[]]
    perms = attrs.list("perms")
    parse_perms(perms)  # a mistake in perms fails even when no layer is left to apply it to
    encodings = encodings_of(attrs.str("layerCompression"))
    jobs = [(g, roots if i == len(groups) - 1 else ()) for i, g in enumerate(groups)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        layers = list(pool.map(lambda job: measure(job[0], stamp, job[1], perms, encodings), jobs))
    os.makedirs(out)
    with open(os.path.join(out, LAYERS_FILE), "wb") as f:
        f.write(canonical_json({"version": 1, "layers": [entry_of(layer) for layer in layers]}))


def _stamp(attrs: Attrs) -> Stamp:
    return Stamp(
        uid=attrs.int("uid", 0),
        gid=attrs.int("gid", 0),
        uname=attrs.str("uname", "root"),
        gname=attrs.str("gname", "root"),
        mtime=image_config_mod.epoch_of(attrs.data.get("mtime", 1)),
    )


def _base_image(attrs: Attrs, out: str) -> Optional[Image]:
    from_image = attrs.str("fromImage")
    if not from_image:
        return None
    return load_image(
        from_image,
        workdir=out,
        name=attrs.str("fromImageName"),
        tag=attrs.str("fromImageTag"),
        architecture=attrs.str("architecture"),
        variant=attrs.str("variant"),
    )


def _paths_in(layers: List[Layer]) -> List[str]:
    """Store paths whole layers of a base already hold: not repeated above."""
    return [p for layer in layers if layer.source and layer.source["kind"] == "store" for p in layer.source["paths"]]


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
        raise SpecError(
            f"maxLayers = {max_layers}: must be at least 2 (one for the customisation layer, one for store paths)"
        )
    created = image_config_mod.resolve_created(attrs.str("created", "1970-01-01T00:00:01Z"))
    stamp = _stamp(attrs)
    # Compressed digests wanted by the stream: computed here, once.
    encodings = encodings_of(attrs.str("layerCompression"))

    base = _base_image(attrs, out)
    base_layers = base.layers if base else []
    explicit = _explicit_layers(attrs.list("layers"))
    budget = max_layers - len(base_layers) - len(explicit) - 1
    graph = _store_graph(attrs).without(_paths_in(base_layers + explicit))
    if graph.refs and budget < 1:
        raise SpecError(
            f"maxLayers = {max_layers}: the base image has {len(base_layers)} layers, "
            f"layers gives {len(explicit)} and the customisation layer needs one, "
            "so no layer is left for store paths"
        )
    groups = closure.plan_layers(graph, budget)
    sizes = {p: info.get("narSize", 0) for p, info in graph.info.items()}
    new_layers = explicit + hash_store_layers(groups, stamp, encodings=encodings, sizes=sizes)
    history = [
        {"created": created, "comment": "store paths: " + " ".join(layer.source["paths"])} for layer in new_layers
    ]

    custom = attrs.str("customisationLayer")
    if custom:
        tar = os.path.join(custom, "layer.tar")
        rng = FileRange(tar, 0, os.path.getsize(tar))
        stats = range_stats(rng, tar)
        new_layers.append(layer_from_range(rng, stats["diffId"], verify=False, what=tar, stats=stats))
        history.append({"created": created, "comment": "customisation layer"})

    layers = base_layers + new_layers
    fill_known(layers, encodings)
    config = image_config_mod.image_config(
        base=base.config if base else None,
        run_config=attrs.dict("config"),
        diff_ids=[layer.diff_id for layer in layers],
        history=history,
        created=created,
        architecture=attrs.str("architecture", required=True),
        os=attrs.str("os", "linux"),
        variant=attrs.str("variant"),
    )
    write_description(
        out,
        config_bytes=canonical_json(config),
        entries=[entry_of(layer) for layer in layers],
        repo_tag=f"{name}:{tag}",
        extra={"layerCompression": encodings[0]} if encodings else None,
    )
    # What the SBOM and explain need (the closure graph, the roots and their
    # meta), in a file of its own: the stream never reads it.
    record_contents(attrs, out)
