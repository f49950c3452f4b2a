"""SPDX 2.3 (JSON) from an inventory.

One package per store path (name and version as ``builtins.parseDrvName``
splits them, the NAR hash as its SHA256 checksum, a ``pkg:nix`` purl, the
licence and homepage from ``meta`` where Nix gave them), plus one package
for the image itself, which the document describes. Relationships: the
image CONTAINS every store path and DEPENDS_ON its roots (contents, config,
commands); each store path DEPENDS_ON the paths it refers to.
"""

from __future__ import annotations

import re
from typing import Dict, List

from builder.sbom.inventory import Inventory, Package
from builder.sbom.purl import nix_purl, oci_purl

__all__ = ["IMAGE_ID", "TOOL", "spdx_document", "spdx_id"]

TOOL = "dockertools-builder"
IMAGE_ID = "SPDXRef-Image"
_NOT_ID = re.compile(r"[^A-Za-z0-9.-]+")


def spdx_id(package: Package) -> str:
    """Unique per store path (its hash part) and readable (its name)."""
    return f"SPDXRef-Nix-{package.hash_part}-{_NOT_ID.sub('-', package.name + '-' + package.version).strip('-')}"


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def _store_package(p: Package) -> dict:
    doc: Dict[str, object] = {
        "SPDXID": spdx_id(p),
        "name": p.name,
        "packageFileName": p.path,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": " AND ".join(p.licenses) if p.licenses else "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": nix_purl(p.name, p.version),
            }
        ],
    }
    if p.version:
        doc["versionInfo"] = p.version
    if p.nar_hash:
        doc["checksums"] = [{"algorithm": "SHA256", "checksumValue": _hex(p.nar_hash)}]
        doc["comment"] = f"Nix store path {p.path}; checksum: SHA-256 of its NAR serialisation (narHash)"
    else:
        doc["comment"] = f"Nix store path {p.path}, held by a layer given whole (no closure graph entry)"
    if p.homepage:
        doc["homepage"] = p.homepage
    return doc


def _image_package(inv: Inventory) -> dict:
    s = inv.subject
    return {
        "SPDXID": IMAGE_ID,
        "name": s.name,
        "versionInfo": s.tag,
        "primaryPackagePurpose": "CONTAINER",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "checksums": [{"algorithm": "SHA256", "checksumValue": _hex(s.manifest.digest)}],
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": oci_purl(s.name, s.tag, s.manifest.digest, s.platform.get("architecture", "")),
            }
        ],
        "comment": (
            f"Container image {s.name}:{s.tag}; image ID (config digest) {s.image_id}; "
            f"manifest {s.manifest.digest} ({s.manifest.media_type}); the checksum is the manifest digest"
        ),
    }


def spdx_document(inv: Inventory) -> dict:
    """The document without its namespace (set from the content's hash by the caller)."""
    packages = sorted(inv.packages.values(), key=lambda p: p.path)
    ids = {p.path: spdx_id(p) for p in packages}
    relationships: List[dict] = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": IMAGE_ID}
    ]

    def rel(a: str, kind: str, b: str) -> None:
        relationships.append({"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b})

    for root in sorted({r.path for r in inv.roots if r.path in ids}):
        rel(IMAGE_ID, "DEPENDS_ON", ids[root])
    for p in packages:
        rel(IMAGE_ID, "CONTAINS", ids[p.path])
        for r in p.references:
            if r in ids:
                rel(ids[p.path], "DEPENDS_ON", ids[r])
    relationships[1:] = sorted(
        relationships[1:], key=lambda r: (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
    )
    s = inv.subject
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{s.name}:{s.tag}",
        "documentNamespace": "",
        "creationInfo": {
            "created": s.created,
            "creators": [f"Tool: {TOOL}"],
            "comment": "From the image's Nix closure: every store path with its NAR hash and references.",
        },
        "documentDescribes": [IMAGE_ID],
        "packages": [_image_package(inv)] + [_store_package(p) for p in packages],
        "relationships": relationships,
    }
