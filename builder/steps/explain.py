"""``explain``: what is in an image and why.

For an image of this project (a stream executable or a description): each
layer with its size, digest and store paths, the largest store paths, and,
for one store path, the chains of references from the image's roots
(``contents``, paths the ``config`` mentions, what commands left) that pull
it in, like ``nix why-depends``. Text for a terminal, or ``--json``.
"""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from typing import Dict, List, Optional, TextIO

from builder.errors import SpecError
from builder.model.platform import platform_text
from builder.report import human_size
from builder.sbom.contents import ORIGINS, store_name
from builder.sbom.inventory import Inventory, load_inventory

__all__ = ["explain", "explanation", "find_path", "why_chains"]


def find_path(inv: Inventory, query: str) -> str:
    """The store path ``query`` names: a store path (or a file in one), its
    base name, its hash part, or its name with or without the version
    (``hello``, ``hello-2.12``). An error lists the candidates when several fit."""
    store_dir = os.path.dirname(next(iter(inv.packages), "/nix/store/x"))
    if query.startswith(store_dir + "/"):
        top = "/".join(query.split("/")[: store_dir.count("/") + 2])
        if top in inv.packages:
            return top
        raise SpecError(f"{top} is not in the image")
    exact = [p for p in inv.packages if os.path.basename(p) == query or inv.packages[p].hash_part == query]
    if not exact:
        exact = [p for p in inv.packages if store_name(p) == query]
    if not exact:
        exact = [p for p in inv.packages if inv.packages[p].name == query]
    if not exact:
        exact = [p for p in inv.packages if store_name(p).startswith(query)]
    if len(exact) == 1:
        return exact[0]
    if not exact:
        raise SpecError(f"no store path in the image matches {query!r}")
    listed = "\n  ".join(sorted(exact))
    raise SpecError(f"{query!r} matches {len(exact)} store paths; give one of:\n  {listed}")


def why_chains(inv: Inventory, target: str) -> List[dict]:
    """For each root that reaches ``target``, one shortest chain of
    references from it to ``target`` (both included): roots in the order
    contents, config, commands, then by path; among equally short next
    steps, the smallest path name. One pass over the graph."""
    parents: Dict[str, List[str]] = {p: [] for p in inv.packages}
    for p, package in inv.packages.items():
        for r in package.references:
            if r in parents:
                parents[r].append(p)
    distance = {target: 0}
    queue = deque([target])
    while queue:
        node = queue.popleft()
        for parent in parents.get(node, ()):
            if parent not in distance:
                distance[parent] = distance[node] + 1
                queue.append(parent)
    chains = []
    order = {origin: i for i, origin in enumerate(ORIGINS)}
    for root in sorted(inv.roots, key=lambda r: (order.get(r.origin, len(order)), r.path)):
        if root.path not in distance:
            continue
        chain = [root.path]
        while chain[-1] != target:
            step = distance[chain[-1]] - 1
            chain.append(min(r for r in inv.packages[chain[-1]].references if distance.get(r) == step))
        chains.append({"root": root.path, "origin": root.origin, "chain": chain})
    return chains


def explanation(inv: Inventory, path: Optional[str] = None, top: int = 10) -> dict:
    """Everything ``explain`` shows, as JSON-ready data."""
    s = inv.subject
    layers = []
    for layer in inv.layers:
        entry = {
            "index": layer.index,
            "diffId": layer.diff_id,
            "size": layer.size,
            "kind": layer.kind,
            "label": layer.label,
            "paths": list(layer.paths),
        }
        if layer.compressed:
            entry["compressed"] = {enc: {"digest": d, "size": n} for enc, (d, n) in layer.compressed.items()}
        layers.append(entry)
    sized = [p for p in inv.packages.values() if p.nar_size is not None]
    sized.sort(key=lambda p: (-(p.nar_size or 0), p.path))
    doc: dict = {
        "image": {
            "name": s.name,
            "tag": s.tag,
            "imageId": s.image_id,
            "manifestDigest": s.manifest.digest,
            "manifestMediaType": s.manifest.media_type,
            "created": s.created,
            "platform": s.platform,
            "size": sum(layer.size for layer in inv.layers),
            "storePaths": len(inv.packages),
            "closureKnown": inv.has_graph,
        },
        "layers": layers,
        "roots": [{"path": r.path, "origin": r.origin} for r in inv.roots],
        "largest": [{"path": p.path, "narSize": p.nar_size, "layer": p.layer} for p in sized[: max(top, 0)]],
    }
    if path is not None:
        target = find_path(inv, path)
        doc["why"] = {"path": target, "layer": inv.packages[target].layer, "chains": why_chains(inv, target)}
    return doc


def _text(doc: dict, out: TextIO) -> None:
    image = doc["image"]
    w = out.write
    w(f"{image['name']}:{image['tag']}  ({platform_text(image['platform'])})\n")
    w(f"  image ID   {image['imageId']}\n")
    w(f"  manifest   {image['manifestDigest']}\n")
    w(f"  {len(doc['layers'])} layers, {human_size(image['size'])} uncompressed, {image['storePaths']} store paths\n")
    if not image["closureKnown"]:
        w("  (this description has no closure graph: rebuild it for references and NAR sizes)\n")
    w("\nLayers, bottom first:\n")
    count = len(doc["layers"])
    for layer in doc["layers"]:
        size = human_size(layer["size"])
        extra = "".join(
            f", {enc} {human_size(c['size'])} {c['digest']}" for enc, c in sorted(layer.get("compressed", {}).items())
        )
        w(f"  {layer['index']:>{len(str(count))}}/{count}  {size:>9}  {layer['diffId']}{extra}\n")
        pad = " " * (len(str(count)) * 2 + 4)
        if layer["paths"]:
            for p in layer["paths"]:
                w(f"{pad}{p}\n")
        else:
            w(f"{pad}{layer['label']}\n")
    if doc["largest"]:
        w("\nLargest store paths (NAR size):\n")
        for entry in doc["largest"]:
            where = f"  (layer {entry['layer']})" if entry["layer"] else ""
            w(f"  {human_size(entry['narSize']):>9}  {entry['path']}{where}\n")
    why = doc.get("why")
    if why is not None:
        where = f" (layer {why['layer']})" if why["layer"] else ""
        w(f"\nWhy {why['path']}{where} is in the image:\n")
        if not why["chains"]:
            w("  no chain of references from contents or config leads to it: it came with a layer given whole\n")
        for item in why["chains"]:
            chain = item["chain"]
            if len(chain) == 1:
                w(f"  {item['origin']}: {chain[0]}\n")
                continue
            w(f"  {item['origin']}: {chain[0]}\n")
            for depth, p in enumerate(chain[1:], 1):
                w(f"  {'  ' * depth}-> {p}\n")


def explain(
    source: str, *, path: Optional[str] = None, as_json: bool = False, top: int = 10, out: Optional[TextIO] = None
) -> None:
    out = out or sys.stdout
    doc = explanation(load_inventory(source), path, top)
    if as_json:
        out.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        _text(doc, out)
    out.flush()
