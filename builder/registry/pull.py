"""Pulling one platform's manifest, config and layers into an OCI layout,
every blob checked against its digest before it gets its name there."""

from __future__ import annotations

import json
from typing import Callable, Optional, Tuple, Union

from builder.errors import ImageFormatError, RegistryError, short_text
from builder.formats import oci_layout
from builder.model.image import Blob, Image
from builder.model.jsondoc import parse_json
from builder.model.manifest import INDEX_TYPES, MANIFEST_TYPES, descriptor
from builder.model.platform import host_platform, parse_platform, select_descriptor
from builder.model.reference import DIGEST_RE, Reference, parse_reference
from builder.registry.auth import Credentials
from builder.registry.client import RegistryClient
from builder.report import Progress, ProgressSink, human_size, progress_line, short_digest
from builder.sinks.sink import Sink

__all__ = ["pull"]


def _remote_blob(client: RegistryClient, desc: dict, label: Optional[str] = None) -> Blob:
    if not isinstance(desc, dict):
        raise RegistryError(f"malformed descriptor in a manifest: {json.dumps(desc)[:200]}")
    digest = desc.get("digest") or ""
    if not isinstance(digest, str):
        digest = ""
    size = desc.get("size")
    if not DIGEST_RE.match(digest) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"malformed descriptor in a manifest: {json.dumps(desc)[:200]}")

    def write_to(sink: Sink) -> None:
        # Reading stops at the declared size; store_blob then checks the
        # digest. A big layer shows bytes received / size while it comes
        # (after a second).
        if label is None:
            client.fetch_blob(digest, sink, desc["size"])
            return
        progress = Progress(f"{label} downloading", desc["size"])
        try:
            client.fetch_blob(digest, ProgressSink(sink, progress), desc["size"])
        finally:
            progress.close("")

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
    auth: Union[Credentials, Tuple[str, str], None] = None,
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
        return _pull(client, reference, directory, want, prefer, progress is not None)
    finally:
        client.close()


def _pull(
    client: RegistryClient,
    reference: Reference,
    directory: str,
    want: dict,
    prefer: Optional[dict],
    show: bool = False,
) -> Image:
    client.ping()
    oci_layout.init_layout(directory)
    data, media_type = client.retrying("manifest", lambda: client.get_manifest(reference.target))
    doc = _manifest_doc(data, reference)
    media_type = _text(doc.get("mediaType")) or media_type
    if media_type in INDEX_TYPES or "manifests" in doc:
        entries = doc.get("manifests") or []
        if not isinstance(entries, list) or not all(
            isinstance(e, dict)
            and DIGEST_RE.match(_text(e.get("digest")))
            and isinstance(e.get("platform") or {}, dict)
            for e in entries
        ):
            raise RegistryError(f"{reference}: the index's manifests are not a list of descriptors")
        chosen = select_descriptor(entries, want, str(reference), prefer)
        data, media_type = client.retrying("manifest", lambda: client.get_manifest(chosen["digest"]))
        doc = _manifest_doc(data, reference)
        media_type = _text(doc.get("mediaType")) or _text(chosen.get("mediaType")) or media_type
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{reference}: unsupported manifest type {short_text(repr(media_type))}")
    if not isinstance(doc.get("layers") or [], list):
        raise RegistryError(f"{reference}: the manifest's layers are not a list")
    manifest = Blob.from_bytes(media_type, data)
    descs = doc.get("layers") or []
    layers = [_remote_blob(client, d, f"layer {i}/{len(descs)}" if show else None) for i, d in enumerate(descs, 1)]
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


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _manifest_doc(data: bytes, reference: Reference) -> dict:
    try:
        doc = parse_json(data, f"{reference}: manifest")
    except ImageFormatError as e:
        raise RegistryError(str(e)) from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise RegistryError(f"{reference}: not a schema 2 manifest (schema 1 is not supported)")
    return doc
