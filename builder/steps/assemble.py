"""Build time: turn a closure, a base image and a customisation layer into
an image description (``python3 builder layers``, inside the conf build).

This is the only place store layers are hashed: each layer's tar is
generated once into a hashing sink, layers in parallel threads (hashlib and
file reads release the GIL).
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple, Union, cast

from builder.contract import LayerSpec, LayersSpec, check_version
from builder.errors import SpecError
from builder.formats.description import entry_of, layer_from_entry, store_layer, write_description, zstd_trusted
from builder.formats.load import load_image
from builder.model import config as image_config_mod
from builder.model.image import Image, Layer, canonical_json
from builder.model.reference import check_image_name, check_tag
from builder.report import Progress, ProgressSink, human_size
from builder.sinks import compress
from builder.sinks.sink import FdSink, Sink
from builder.steps import closure, pipeline
from builder.steps.known import Fan, encodings_of, fill_known, measure_tar
from builder.steps.sbom import record_contents
from builder.tar.layerfile import FileRange, layer_from_range, range_stats
from builder.tar.rootfs import parse_perms
from builder.tar.tarstream import Stamp

__all__ = ["assemble", "build_layer", "hash_store_layers", "measure", "tag_from_out"]


def tag_from_out(out: str) -> str:
    """nixpkgs' rule for ``tag = null``: the hash part of the output path."""
    return os.path.basename(out).split("-", 1)[0]


def measure(
    paths: List[str],
    stamp: Stamp,
    roots: Sequence[str] = (),
    perms: Sequence[dict] = (),
    encodings: Sequence[str] = (),
    progress: Optional[Progress] = None,
) -> Layer:
    """A store layer with its digest and size, from one pass over its files;
    with ``encodings``, the digests of its compressed forms from the same pass."""
    probe = store_layer(paths, stamp, "", 0, list(roots), list(perms))
    write_tar = probe.write_tar
    if progress is not None:
        shown = progress

        def write_tar(sink: Sink) -> None:
            probe.write_tar(ProgressSink(sink, shown))

    diff_id, size, compressed = measure_tar(write_tar, encodings)
    layer = store_layer(paths, stamp, diff_id, size, list(roots), list(perms))
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
    # NAR sizes are close to the tar sizes: the total of the progress shown
    # when this takes more than a second.
    total = sum(sizes.get(p, 0) for g in groups for p in g) if sizes else None
    what = "measuring layers" + (f" ({', '.join(encodings)})" if encodings else "")
    progress = Progress(what, total or None)

    def one(i: int) -> None:
        layer = results[i] = measure(groups[i], stamp, encodings=encodings, progress=progress)
        progress.item(f"layer {i + 1}/{len(groups)} measured: {human_size(layer.size)}")

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(one, order))
    progress.close()
    return [layer for layer in results if layer is not None]


LAYERS_FILE = "layers.json"
LAYERS_VERSION = 1


def _read_layer_set(path: str) -> List[Tuple[Layer, dict]]:
    """The layers of a buildLayer output, each with its history entry's
    fields from buildLayer's ``metadata`` (created_by, comment, author)."""
    try:
        with open(os.path.join(path, LAYERS_FILE), "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise SpecError(f"layers: {path} is not a buildLayer result (it has no {LAYERS_FILE})") from None
    except (OSError, ValueError) as e:
        raise SpecError(f"layers: {path} is not a buildLayer result ({e})") from None
    check_version(doc, LAYERS_VERSION, "buildLayer result", os.path.join(path, LAYERS_FILE))
    if not isinstance(doc.get("layers"), list):
        raise SpecError(f"layers: {path}/{LAYERS_FILE} lists no layers")
    trusted = zstd_trusted(doc.get("zstd"))
    metadata = doc.get("metadata") or {}
    return [(layer_from_entry(e, trusted), metadata) for e in doc["layers"]]


def _explicit_layers(paths: List[str]) -> List[Layer]:
    return [layer for p in paths for layer, _ in _read_layer_set(p)]


def _explicit_history(paths: List[str], created: str) -> List[dict]:
    """One history entry per explicit layer: buildLayer's metadata over the
    default comment naming its store paths."""
    history = []
    for p in paths:
        for layer, metadata in _read_layer_set(p):
            entry = {"created": created, "comment": "store paths: " + " ".join(_layer_paths(layer))}
            entry.update({k: metadata[k] for k in HISTORY_KEYS if isinstance(metadata.get(k), str)})
            history.append(entry)
    return history


# The history fields buildLayer's metadata may set (nix2container's).
HISTORY_KEYS = ("created_by", "comment", "author")


def _check_metadata(metadata: dict) -> dict:
    unknown = sorted(set(metadata) - set(HISTORY_KEYS))
    if unknown:
        raise SpecError(f"metadata: unknown attribute(s) {', '.join(unknown)} (known: {', '.join(HISTORY_KEYS)})")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise SpecError(f"metadata.{key}: must be a string, got {value!r:.80}")
    return dict(sorted(metadata.items()))


def _layer_paths(layer: Layer) -> List[str]:
    return list((layer.source or {}).get("paths", ()))


def build_layer(spec: LayerSpec) -> None:
    """buildLayer: one derivation holding the description of a few layers
    a user groups by hand (dependencies apart from the app, say)."""
    stamp = _stamp(spec)
    roots = spec.copy_to_root
    graph = closure.Graph(spec.closure)
    referenced = {r for refs in graph.refs.values() for r in refs}
    # copyToRoot paths are relocated to /; they stay in the store only when
    # something else in the closure refers to them.
    relocated = [r for r in roots if r not in referenced]
    skip = set(spec.ignore) | set(relocated) | set(_paths_in(_explicit_layers(spec.parent_layers)))
    graph = graph.without(skip)
    groups = closure.plan_layers(graph, spec.max_layers) if graph.refs else []
    if roots and not groups:
        groups = [[]]
    parse_perms(spec.perms)  # a mistake in perms fails even when no layer is left to apply it to
    metadata = _check_metadata(spec.metadata or {})
    encodings = encodings_of(spec.layer_compression)
    jobs = [(g, roots if i == len(groups) - 1 else []) for i, g in enumerate(groups)]
    os.makedirs(spec.out)
    if spec.reproducible:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            layers = list(pool.map(lambda job: measure(job[0], stamp, job[1], spec.perms, encodings), jobs))
    else:
        layers = [_stored_layer(spec.out, i, g, stamp, r, spec.perms, encodings) for i, (g, r) in enumerate(jobs)]
    with open(os.path.join(spec.out, LAYERS_FILE), "wb") as f:
        doc = {"version": LAYERS_VERSION, "layers": [entry_of(layer) for layer in layers]}
        if metadata:
            doc["metadata"] = metadata
        if compress.configured_zstd():
            doc["zstd"] = compress.configured_zstd()
        f.write(canonical_json(doc))


def _stored_layer(
    out: str, i: int, paths: List[str], stamp: Stamp, roots: Sequence[str], perms: Sequence[dict], encodings
) -> Layer:
    """buildLayer { reproducible = false; }: nix2container's meaning, the
    layer's tar is kept in the layer's store path, and streams copy those
    bytes instead of making them again from the store paths. For contents
    whose bytes differ from one build to the next, the digest and the bytes
    then come from the same build. Costs the layer's size in the store."""
    probe = store_layer(paths, stamp, "", 0, list(roots), list(perms))
    path = os.path.join(out, f"layer-{i}.tar")
    with open(path, "wb") as f:
        file_sink = FdSink(f.fileno())

        def write_both(sink: Sink) -> None:
            probe.write_tar(Fan([sink, file_sink]))

        diff_id, size, compressed = measure_tar(write_both, encodings)
        file_sink.flush()
    rng = FileRange(path, 0, size)
    stats = {"encoding": "none", "diffId": diff_id, "size": size, "storedDigest": diff_id, "storedSize": size}
    layer = layer_from_range(rng, diff_id, verify=False, what=path, stats=stats)
    assert layer.source is not None
    layer.source["paths"] = sorted(paths)
    layer.known.update(compressed)
    return layer


def _stamp(spec: Union[LayerSpec, LayersSpec]) -> Stamp:
    return Stamp(
        uid=spec.uid, gid=spec.gid, uname=spec.uname, gname=spec.gname, mtime=image_config_mod.epoch_of(spec.mtime)
    )


def _base_image(spec: LayersSpec, out: str) -> Optional[Image]:
    if not spec.from_image:
        return None
    # A compressed archive is unpacked into a temporary directory, never
    # into the description: an 18 MiB archive may unpack to gigabytes.
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as work:
        image = load_image(
            spec.from_image,
            workdir=work,
            name=spec.from_image_name,
            tag=spec.from_image_tag,
            architecture=spec.architecture,
            variant=spec.variant,
        )
        prefix = os.path.join(work, "")
        return Image(
            image.config_bytes,
            [
                _keep_compressed(layer, out, i) if (layer.source or {}).get("path", "").startswith(prefix) else layer
                for i, layer in enumerate(image.layers)
            ],
        )


def _keep_compressed(layer: Layer, out: str, index: int) -> Layer:
    """A base layer that only exists in the unpacked copy, kept in the
    description as gzip: its stored bytes when it was compressed already,
    else our compressor's, the very bytes a gzip stream would hold, so the
    image and its gzip digests are what they would have been."""
    source = cast(dict, layer.source)
    path = os.path.join(out, f"base-layer-{index}.tar.gz")
    with open(path, "wb") as f:
        sink = FdSink(f.fileno())
        if source["encoding"] == "gzip":
            FileRange(source["path"], source["offset"], source["size"]).copy_to(sink)
        else:
            with compress.compressor("gzip", sink) as gz:
                layer.write_tar(gz)
        sink.flush()
    stored = range_stats(FileRange(path, 0, os.path.getsize(path)), path)
    if stored["diffId"] != layer.diff_id:
        raise SpecError(f"{path}: the kept base layer is not the layer read ({stored['diffId']} != {layer.diff_id})")
    kept = layer_from_range(
        FileRange(path, 0, stored["storedSize"]), layer.diff_id, verify=False, what=path, stats=stored
    )
    kept.known.update({enc: v for enc, v in layer.known.items() if enc != "gzip"})
    return kept


def _paths_in(layers: List[Layer]) -> List[str]:
    """Store paths whole layers of a base already hold: not repeated above."""
    # Store layers, and buildLayer { reproducible = false; } files naming their paths.
    return [p for layer in layers for p in _layer_paths(layer)]


def _store_graph(spec: LayersSpec) -> closure.Graph:
    if not spec.include_store_paths:
        return closure.Graph([])
    return closure.Graph(spec.closure).without(spec.exclude_paths)


def assemble(spec: LayersSpec) -> None:
    out = spec.out
    os.makedirs(out, exist_ok=True)
    name = check_image_name(spec.image_name)
    tag = check_tag(spec.tag or tag_from_out(out))
    max_layers = spec.max_layers
    if max_layers < 2:
        raise SpecError(
            f"maxLayers = {max_layers}: must be at least 2 (one for the customisation layer, one for store paths)"
        )
    created = image_config_mod.resolve_created(spec.created)
    stamp = _stamp(spec)
    # Compressed digests wanted by the stream: computed here, once.
    encodings = encodings_of(spec.layer_compression)

    base = _base_image(spec, out)
    base_layers = base.layers if base else []
    explicit = _explicit_layers(spec.layers)
    budget = max_layers - len(base_layers) - len(explicit) - 1
    graph = _store_graph(spec).without(_paths_in(base_layers + explicit))
    if spec.layering_pipeline is not None:
        # The user's layering, as nixpkgs runs it: maxLayers does not apply.
        groups = pipeline.run_pipeline(pipeline.load_pipeline(spec.layering_pipeline), graph)
    elif graph.refs and budget < 1:
        raise SpecError(
            f"maxLayers = {max_layers}: the base image has {len(base_layers)} layers, "
            f"layers gives {len(explicit)} and the customisation layer needs one, "
            "so no layer is left for store paths"
        )
    else:
        groups = closure.plan_layers(graph, budget)
    sizes = {p: info.get("narSize", 0) for p, info in graph.info.items()}
    store_layers = hash_store_layers(groups, stamp, encodings=encodings, sizes=sizes)
    new_layers = explicit + store_layers
    history = _explicit_history(spec.layers, created) + [
        {"created": created, "comment": "store paths: " + " ".join(_source(layer)["paths"])} for layer in store_layers
    ]

    tar = os.path.join(spec.customisation_layer, "layer.tar")
    rng = FileRange(tar, 0, os.path.getsize(tar))
    stats = range_stats(rng, tar)
    new_layers.append(layer_from_range(rng, stats["diffId"], verify=False, what=tar, stats=stats))
    history.append({"created": created, "comment": "customisation layer"})

    layers = base_layers + new_layers
    fill_known(layers, encodings)
    config = image_config_mod.image_config(
        base=base.config if base else None,
        run_config=spec.config,
        diff_ids=[layer.diff_id for layer in layers],
        history=history,
        created=created,
        architecture=spec.architecture,
        os=spec.os,
        variant=spec.variant,
    )
    write_description(
        out,
        config_bytes=canonical_json(config),
        entries=[entry_of(layer) for layer in layers],
        repo_tag=f"{name}:{tag}",
        extra={"layerCompression": encodings[0]} if encodings else {},
    )
    # What the SBOM and explain need (the closure graph, the roots and their
    # meta), in a file of its own: the stream never reads it.
    record_contents(spec, out)


def _source(layer: Layer) -> dict:
    if layer.source is None:
        raise SpecError(f"layer {layer.diff_id} has no source")
    return layer.source
