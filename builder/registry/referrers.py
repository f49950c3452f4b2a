"""Attaching an artifact (an SBOM) to an image in a registry, as OCI 1.1
does it: an artifact manifest whose ``subject`` is the image's manifest.

The manifest is an OCI image manifest with ``artifactType``, the empty
config (``application/vnd.oci.empty.v1+json``, ``{}``) and the artifact as
its one layer. A registry with the referrers API (``GET
/v2/<name>/referrers/<digest>`` answers) indexes it by itself; for one
without (404, as distribution 2.8), the referrers tag scheme: the index
tagged ``sha256-<hex of the subject>`` lists it, next to any artifact
already attached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Optional

from builder.errors import RegistryError
from builder.model.image import OCI_INDEX, OCI_MANIFEST, Blob, canonical_json
from builder.registry.client import RegistryClient, _drain

__all__ = ["EMPTY_CONFIG", "Attached", "artifact_manifest", "attach", "referrers_tag"]

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = Blob.from_bytes(EMPTY_MEDIA_TYPE, b"{}")


@dataclass(frozen=True)
class Attached:
    digest: str  # the artifact manifest's
    scheme: str  # "referrers API" or "tag sha256-..."


def _descriptor(blob: Blob, **extra) -> dict:
    return {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size, **extra}


def artifact_manifest(
    subject: Blob, artifact: Blob, artifact_type: str, annotations: Optional[Dict[str, str]] = None, title: str = ""
) -> Blob:
    layer_annotations = {"org.opencontainers.image.title": title} if title else {}
    body: dict = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": _descriptor(EMPTY_CONFIG),
        "layers": [_descriptor(artifact, **({"annotations": layer_annotations} if layer_annotations else {}))],
        "subject": _descriptor(subject),
    }
    if annotations:
        body["annotations"] = dict(annotations)
    return Blob.from_bytes(OCI_MANIFEST, canonical_json(body))


def referrers_tag(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}-{hex_}"


def _send(client: RegistryClient, blob: Blob) -> None:
    if client.blob_exists(blob.digest):
        return
    location = client.start_upload(blob.digest)
    if location is not None:
        client.upload_whole(location, blob)


def _has_referrers_api(client: RegistryClient, subject: Blob) -> bool:
    resp = client.request(
        "GET", client.url(f"referrers/{subject.digest}"), {"Accept": OCI_INDEX}, ok=(200, 400, 404, 405)
    )
    _drain(resp, limit=8 << 20)
    return resp.status == 200


def _tag_index(client: RegistryClient, tag: str, entry: dict) -> Blob:
    """The referrers index at ``tag`` with ``entry`` in it (made when missing)."""
    manifests: List[dict] = []
    try:
        data, _ = client.get_manifest(tag)
        try:
            existing = json.loads(data)
        except (ValueError, RecursionError):
            existing = None  # not an index: replaced by one
        if isinstance(existing, dict) and isinstance(existing.get("manifests"), list):
            manifests = [m for m in existing["manifests"] if isinstance(m, dict)]
    except RegistryError as e:
        if e.status != 404:
            raise
    manifests = [m for m in manifests if m.get("digest") != entry["digest"]] + [entry]
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return Blob.from_bytes(OCI_INDEX, canonical_json(body))


def attach(
    client: RegistryClient,
    subject: Blob,
    artifact: Blob,
    artifact_type: str,
    *,
    annotations: Optional[Dict[str, str]] = None,
    title: str = "",
) -> Attached:
    """Push ``artifact`` and a manifest attaching it to ``subject`` (a
    manifest already in the repository)."""
    client.ping()
    manifest = artifact_manifest(subject, artifact, artifact_type, annotations, title)
    for blob in (EMPTY_CONFIG, artifact):
        client.retrying(f"blob {blob.digest[:19]}", lambda: _send(client, blob))
    api = client.retrying("referrers", lambda: _has_referrers_api(client, subject))
    client.retrying("artifact manifest", lambda: client.put_manifest(manifest, manifest.digest))
    if api:
        return Attached(manifest.digest, "referrers API")
    tag = referrers_tag(subject.digest)
    entry = _descriptor(manifest, artifactType=artifact_type)
    if annotations:
        entry["annotations"] = dict(annotations)
    index = client.retrying("referrers index", lambda: _tag_index(client, tag, entry))
    client.retrying("referrers index", lambda: client.put_manifest(index, tag))
    return Attached(manifest.digest, f"tag {tag}")
