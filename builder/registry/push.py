"""Pushing: blobs first (each skipped when the registry has it, or mounted
from another repository), manifests next, the tag last."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from builder.errors import BuildError
from builder.model import manifest
from builder.model.image import Blob, Image
from builder.model.reference import Reference, parse_reference
from builder.registry.auth import Credentials, Search
from builder.registry.client import DEFAULT_CHUNK, RegistryClient
from builder.report import human_size, progress_line, short_digest

__all__ = ["PushResult", "push"]


@dataclass
class PushResult:
    reference: str
    digest: str  # what the tag now points at (manifest or index)
    uploaded: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    mounted: List[str] = field(default_factory=list)
    manifests: List[str] = field(default_factory=list)
    bytes_uploaded: int = 0


def _send_blob(
    client: RegistryClient, blob: Blob, label: str, result: PushResult, mount_from: Optional[str], chunk_size: int
) -> None:
    if client.blob_exists(blob.digest):
        result.skipped.append(blob.digest)
        client.progress(f"{label} {short_digest(blob.digest)} skipped (already present)")
        return
    location = client.start_upload(blob.digest, mount_from)
    if location is None:
        result.mounted.append(blob.digest)
        client.progress(f"{label} {short_digest(blob.digest)} mounted from {mount_from}")
        return
    try:
        if blob.size > chunk_size:
            client.upload_chunks(location, blob, chunk_size)
        else:
            client.upload_whole(location, blob)
    except Exception:
        # Not on Ctrl-C: a DELETE could keep the user waiting; the registry
        # purges abandoned uploads by itself.
        client.cancel_upload(location)
        raise
    result.uploaded.append(blob.digest)
    result.bytes_uploaded += blob.size
    client.progress(f"{label} {short_digest(blob.digest)} {human_size(blob.size)} uploaded")


def push(
    image_or_images: Union[Image, Sequence[Image]],
    ref: Union[str, Reference],
    *,
    insecure: bool = False,
    auth: Union[Credentials, Tuple[str, str], Search, None] = None,
    progress: Optional[Callable[[str], None]] = progress_line,
    encoding: str = "gzip",
    flavour: str = "oci",
    mount_from: Optional[str] = None,
    chunk_size: int = DEFAULT_CHUNK,
    **session,
) -> PushResult:
    """Push one image, or a list of per-platform images as an index, to ``ref``.

    ``mount_from`` names a repository on the same registry that may hold
    some blobs already (a base image's); ``session`` goes to RegistryClient
    (opener, sleep, clock, retries, backoff, environ, home).
    """
    reference = parse_reference(ref) if isinstance(ref, str) else ref
    rendered = manifest.render(image_or_images, encoding, flavour)
    if reference.digest and reference.digest != rendered.top.digest:
        raise BuildError(f"{reference}: the image's digest is {rendered.top.digest}")
    extra = [f"repository:{mount_from}:pull"] if mount_from else []
    client = RegistryClient(
        reference, insecure=insecure, auth=auth, progress=progress, actions="pull,push", extra_scopes=extra, **session
    )
    try:
        return _push(client, rendered, reference, mount_from, chunk_size)
    finally:
        client.close()


def _push(
    client: RegistryClient,
    rendered: manifest.Rendered,
    reference: Reference,
    mount_from: Optional[str],
    chunk_size: int,
) -> PushResult:
    client.ping()
    result = PushResult(str(reference), rendered.top.digest)
    layers = _distinct(b for m in rendered.manifests for b in m.layers)
    configs = _distinct(m.config for m in rendered.manifests)
    labelled = [(f"layer {i}/{len(layers)}", b) for i, b in enumerate(layers, 1)]
    labelled += [("config", b) for b in configs]
    for label, blob in labelled:
        client.retrying(
            f"{label} {short_digest(blob.digest)}",
            lambda: _send_blob(client, blob, label, result, mount_from, chunk_size),
        )
    if rendered.top.media_type in manifest.INDEX_TYPES:
        # An index may only name manifests the registry already has.
        for m in rendered.manifests:
            client.retrying("manifest", lambda: client.put_manifest(m.blob, m.blob.digest))
            result.manifests.append(m.blob.digest)
    client.retrying("manifest", lambda: client.put_manifest(rendered.top, reference.target))
    result.manifests.append(rendered.top.digest)
    client.progress(f"pushed {reference} ({rendered.top.digest})")
    return result


def _distinct(blobs) -> List[Blob]:
    seen: Dict[str, Blob] = {}
    for blob in blobs:
        seen.setdefault(blob.digest, blob)
    return list(seen.values())
