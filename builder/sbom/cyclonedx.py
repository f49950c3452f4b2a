"""CycloneDX 1.5 (JSON) from an inventory: the image is the BOM's
``metadata.component`` (type container), each store path a component
(type library) with its NAR hash, ``pkg:nix`` purl, licence and homepage;
``dependencies`` are the reference graph, the image depending on its roots."""

from __future__ import annotations

from typing import Dict, List

from builder.sbom.inventory import Inventory, Package
from builder.sbom.purl import nix_purl, oci_purl
from builder.sbom.spdx import TOOL

__all__ = ["cyclonedx_document"]


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def _component(p: Package) -> dict:
    doc: Dict[str, object] = {
        "type": "library",
        "bom-ref": p.path,
        "name": p.name,
        "purl": nix_purl(p.name, p.version),
    }
    if p.version:
        doc["version"] = p.version
    if p.nar_hash:
        doc["hashes"] = [{"alg": "SHA-256", "content": _hex(p.nar_hash)}]
    if p.licenses:
        doc["licenses"] = [{"expression": " AND ".join(p.licenses)}]
    if p.homepage:
        doc["externalReferences"] = [{"type": "website", "url": p.homepage}]
    props = [{"name": "nix:store_path", "value": p.path}]
    if p.nar_hash:
        props.append({"name": "nix:nar_hash", "value": p.nar_hash})
    if p.nar_size is not None:
        props.append({"name": "nix:nar_size", "value": str(p.nar_size)})
    doc["properties"] = props
    return doc


def cyclonedx_document(inv: Inventory) -> dict:
    """The BOM without its serial number (set from the content's hash by the caller)."""
    s = inv.subject
    image_ref = oci_purl(s.name, s.tag, s.manifest.digest, s.platform.get("architecture", ""))
    packages = sorted(inv.packages.values(), key=lambda p: p.path)
    roots = sorted({r.path for r in inv.roots if r.path in inv.packages})
    dependencies: List[dict] = [{"ref": image_ref, "dependsOn": roots}]
    dependencies += [{"ref": p.path, "dependsOn": [r for r in p.references if r in inv.packages]} for p in packages]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "",
        "version": 1,
        "metadata": {
            "timestamp": s.created,
            "tools": {"components": [{"type": "application", "name": TOOL}]},
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": s.name,
                "version": s.tag,
                "purl": image_ref,
                "hashes": [{"alg": "SHA-256", "content": _hex(s.manifest.digest)}],
                "properties": [
                    {"name": "oci:image:id", "value": s.image_id},
                    {"name": "oci:image:manifest:digest", "value": s.manifest.digest},
                    {"name": "oci:image:manifest:mediaType", "value": s.manifest.media_type},
                ],
            },
        },
        "components": [_component(p) for p in packages],
        "dependencies": dependencies,
    }
