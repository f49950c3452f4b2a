"""Pulling one platform's manifest, config and layers into an OCI layout,
every blob checked against its digest before it gets its name there."""

from __future__ import annotations

import json
from typing import Callable, Optional, Tuple, Union

from builder.errors import RegistryError
from builder.formats import oci_layout
from builder.model.image import Blob, Image
from builder.model.manifest import INDEX_TYPES, MANIFEST_TYPES, descriptor
from builder.model.platform import host_platform, parse_platform, select_descriptor
from builder.model.reference import DIGEST_RE, Reference, parse_reference
from builder.registry.auth import Credentials, Search
from builder.registry.client import RegistryClient
from builder.report import human_size, progress_line, short_digest
from builder.sinks.sink import Sink

__all__ = ["pull"]


def _remote_blob(client: RegistryClient, desc: dict) -> Blob:
    digest = desc.get("digest") or ""
    if not DIGEST_RE.match(digest) or not isinstance(desc.get("size"), int):
        raise RegistryError(f"malformed descriptor in a manifest: {json.dumps(desc)[:200]}")

    def write_to(sink: Sink) -> None:
        client.fetch_blob(digest, sink)  # its byte count is unused: store_blob checks size and digest

    return Blob(desc.get("mediaType") or "", digest, desc["size"], write_to)


def _fetch_into(client: RegistryClient, directory: str, blob: Blob, label: str) -> None:
    stored = client.retrying(label, lambda: oci_layout.store_blob(directory, blob))
    note = f"{human_size(blob.size)} downloaded" if stored else "already present"
    client.progress(f"{label} {short_digest(blob.digest)} {note}")


def pull(
    ref: Union[str, Reference],
    directory: str,
    *,
    platform: Optional[str] = None,
    insecure: bool = False,
    auth: Union[Credentials, Tuple[str, str], Search, None] = None,
    progress: Optional[Callable[[str], None]] = progress_line,
    machine: Optional[str] = None,
    **session,
) -> Image:
    """Fetch ``ref`` for ``platform`` ("os/arch[/variant]"; the host's when
    None) into the OCI layout ``directory`` (tagged there with the full
    reference) and return it as an Image whose layers are those files.
    Blobs already in ``directory`` are not downloaded again."""
    reference = parse_reference(ref) if isinstance(ref, str) else ref
    want = parse_platform(platform) if platform else {"os": "linux"}
    client = RegistryClient(reference, insecure=insecure, auth=auth, progress=progress, actions="pull", **session)
    try:
        # Without an explicit platform, an index's entry for the host wins.
        prefer = None if platform else host_platform(machine)
        return _pull(client, reference, directory, want, prefer)
    finally:
        client.close()


def _pull(client: RegistryClient, reference: Reference, directory: str, want: dict, prefer: Optional[dict]) -> Image:
    client.ping()
    oci_layout.init_layout(directory)
    data, media_type = client.retrying("manifest", lambda: client.get_manifest(reference.target))
    doc = _manifest_doc(data, reference)
    media_type = doc.get("mediaType") or media_type
    if media_type in INDEX_TYPES or "manifests" in doc:
        chosen = select_descriptor(doc.get("manifests") or [], want, str(reference), prefer)
        data, media_type = client.retrying("manifest", lambda: client.get_manifest(chosen["digest"]))
        doc = _manifest_doc(data, reference)
        media_type = doc.get("mediaType") or chosen.get("mediaType") or media_type
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{reference}: unsupported manifest type {media_type!r}")
    manifest = Blob.from_bytes(media_type, data)
    layers = [_remote_blob(client, d) for d in doc.get("layers") or []]
    _fetch_into(client, directory, _remote_blob(client, doc.get("config") or {}), "config")
    for i, blob in enumerate(layers, 1):
        _fetch_into(client, directory, blob, f"layer {i}/{len(layers)}")
    oci_layout.store_blob(directory, manifest)
    oci_layout.update_index(directory, [descriptor(manifest, annotations={oci_layout.REF_NAME: str(reference)})])
    return oci_layout.read_oci(
        directory,
        ref=str(reference),
        architecture=want.get("architecture"),
        os_=want.get("os", "linux"),
        variant=want.get("variant"),
    )


def _manifest_doc(data: bytes, reference: Reference) -> dict:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise RegistryError(f"{reference}: manifest is not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise RegistryError(f"{reference}: not a schema 2 manifest (schema 1 is not supported)")
    return doc
