"""Software bills of materials from an image's Nix closure: SPDX 2.3 and
CycloneDX 1.5, as reproducible JSON bytes (sorted keys, fixed indentation,
the image's own time, identifiers derived from the content's hash)."""

from __future__ import annotations

import hashlib
import json
import uuid

from builder.errors import SpecError
from builder.sbom.cyclonedx import cyclonedx_document
from builder.sbom.inventory import Inventory
from builder.sbom.spdx import spdx_document

__all__ = ["FORMATS", "MEDIA_TYPES", "check_format", "render_sbom", "sbom_filename"]

FORMATS = ("spdx", "cyclonedx")
MEDIA_TYPES = {"spdx": "application/spdx+json", "cyclonedx": "application/vnd.cyclonedx+json"}
_SUFFIX = {"spdx": ".spdx.json", "cyclonedx": ".cdx.json"}


def _serialise(doc: dict) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def _content_uuid(doc: dict, kind: str) -> str:
    digest = hashlib.sha256(_serialise(doc)).hexdigest()
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:dockertools-builder:{kind}:sha256:{digest}"))


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise SpecError(f"SBOM format {fmt!r}: expected spdx or cyclonedx")
    return fmt


def render_sbom(inv: Inventory, fmt: str = "spdx") -> bytes:
    """The document's bytes: the same inventory always gives the same bytes."""
    if check_format(fmt) == "spdx":
        doc = spdx_document(inv)
        doc["documentNamespace"] = "urn:uuid:" + _content_uuid(doc, "spdx")
    else:
        doc = cyclonedx_document(inv)
        doc["serialNumber"] = "urn:uuid:" + _content_uuid(doc, "cyclonedx")
    return _serialise(doc)


def sbom_filename(name: str, fmt: str) -> str:
    return name.rsplit("/", 1)[-1] + _SUFFIX[check_format(fmt)]
