"""Pushing: blobs first (each skipped when the registry has it, or mounted
from another repository), manifests next, the tag last.

The registry is asked about every blob whose digest is known before any is
sent, several HEAD requests at once (``RegistryClient.in_parallel``, one
connection per thread); uploads then go one after another, in layer order,
and progress lines come in that order, whatever order the answers came in.

A compressed layer's digest that the build did not record comes from the
blob-info cache (``blobcache.py``) when the registry confirms it (HEAD with
the same size, or a mount from a repository that held it): a layer the
registry has is then never compressed. Otherwise the layer is compressed
once, into a temporary file while its digest is computed (by a thread of
its own, ahead of its turn: the first while the registry is asked about
the others, each next one while the one before goes up); the registry is
asked about that digest, and the file is what goes up when it is missing.
The cache remembers the digest for next time.
"""

from __future__ import annotations

import os
import tempfile
import threading
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from builder.errors import BuildError
from builder.model import manifest
from builder.model.image import LAYER_MEDIA_TYPES, Blob, Image, Layer
from builder.model.reference import Reference, parse_reference
from builder.registry.auth import Credentials, Search
from builder.registry.blobcache import BlobCache, format_of
from builder.registry.client import DEFAULT_CHUNK, RegistryClient
from builder.report import Progress, ProgressSink, human_size, progress_line, short_digest
from builder.sinks import compress
from builder.sinks.sink import FdSink, Sink, TeeSink

__all__ = ["PushResult", "push"]


# PushResult and _Item are written out, not dataclasses: the stream and push never load
# dataclasses (inspect, ast: ~15 ms of each start); tests/unit/test_imports.py pins it.
class PushResult:
    def __init__(self, reference: str, digest: str) -> None:
        self.reference = reference
        self.digest = digest  # what the tag now points at (manifest or index)
        self.uploaded: List[str] = []
        self.skipped: List[str] = []
        self.mounted: List[str] = []
        self.manifests: List[str] = []
        self.bytes_uploaded = 0
        self.cached: List[str] = []  # digests the blob-info cache gave (and the registry confirmed)
        self.stale: List[str] = []  # cache entries the registry did not confirm


# HEAD requests in flight at once (skopeo sends its own in parallel too).
HEAD_WORKERS = 8


def _counted(blob: Blob, progress: Progress) -> Blob:
    def write_to(sink) -> None:
        blob.write_to(ProgressSink(sink, progress))

    return Blob(blob.media_type, blob.digest, blob.size, write_to)


class _Item:
    """One blob to send: its progress label, and the Blob when its digest
    is known, else the layers (one diff_id) it is the compressed form of."""

    __slots__ = ("label", "blob", "layers")

    def __init__(self, label: str, blob: Optional[Blob], layers: List[Layer]) -> None:
        self.label, self.blob, self.layers = label, blob, layers


class _Stopped(Exception):
    """A compression ahead was no longer wanted (the push failed)."""


class _Stoppable(Sink):
    """Passes bytes on, counting them, until ``stop`` is set; then raises _Stopped."""

    def __init__(self, inner: Sink, stop: threading.Event):
        self.inner, self.stop = inner, stop
        self.count = 0

    def _check(self) -> None:
        if self.stop.is_set():
            raise _Stopped()

    def write(self, data) -> None:
        self._check()
        self.inner.write(data)
        self.count += len(data)

    def copy_file(self, fd: int, size: int) -> None:
        self._check()
        self.inner.copy_file(fd, size)
        self.count += size

    def write_framed(self, head: bytes, fd: int, size: int, tail: bytes) -> None:
        self._check()
        self.inner.write_framed(head, fd, size, tail)
        self.count += len(head) + size + len(tail)


class _Spool:
    """A layer compressed into a temporary file (in $TMPDIR, unlinked at
    once: gone when closed, even if the process dies) by a thread of its own,
    hashed on the way, so that it is compressed once and sent from the file."""

    def __init__(self, layer: Layer, encoding: str):
        self.file = tempfile.TemporaryFile(prefix="builder-push-")
        self.stop = threading.Event()
        self.error: Optional[BaseException] = None
        self.digest, self.size, self.total = "", 0, layer.size
        self.fed = _Stoppable(Sink(), self.stop)  # replaced in the thread; counts the tar's bytes
        self.thread = threading.Thread(target=self._run, args=(layer, encoding), name="compress", daemon=True)
        self.thread.start()

    def _run(self, layer: Layer, encoding: str) -> None:
        try:
            tee = TeeSink(FdSink(self.file.fileno()))
            with compress.compressor(encoding, tee) as csink:
                self.fed = _Stoppable(csink, self.stop)
                layer.write_tar(self.fed)
            tee.flush()
            self.digest, self.size = tee.digest, tee.size
        except BaseException as e:
            self.error = e

    def result(self, label: Optional[str] = None) -> Tuple[str, int]:
        """The compressed digest and size, once the file is whole. With
        ``label``, the bytes compressed show while this waits (only the
        thread that waits draws: never two progress bars at once)."""
        if label is not None and self.thread.is_alive():
            progress = Progress(f"{label} compressing", self.total)
            try:
                while self.thread.is_alive():
                    self.thread.join(0.2)
                    progress.add(self.fed.count - progress.done)
            finally:
                progress.close("")
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.digest, self.size

    def write_to(self, sink: Sink) -> None:
        fd = self.file.fileno()
        os.lseek(fd, 0, os.SEEK_SET)
        sink.copy_file(fd, self.size)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.file.close()


class _Spools:
    """The layers whose compressed digest is unknown, compressed one at a
    time ahead of their turn: the first while the registry is asked about
    the others, each next one while the one before goes up. At most two
    such files exist at once."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        self.started: Dict[str, _Spool] = {}  # by diff_id

    def start(self, layer: Layer) -> None:
        if layer.diff_id not in self.started:
            self.started[layer.diff_id] = _Spool(layer, self.encoding)

    def take(self, layer: Layer) -> _Spool:
        self.start(layer)
        return self.started.pop(layer.diff_id)

    def close(self) -> None:
        for spool in self.started.values():
            spool.close()
        self.started.clear()


def _send_new_blob(
    client: RegistryClient,
    blob: Blob,
    label: str,
    result: PushResult,
    mount_from: Optional[str],
    chunk_size: int,
    show_bytes: bool = False,
) -> None:
    """Upload a blob the registry does not have (or mount it from ``mount_from``)."""
    location = client.start_upload(blob.digest, mount_from)
    if location is None:
        result.mounted.append(blob.digest)
        client.progress(f"{label} {short_digest(blob.digest)} mounted from {mount_from}")
        return
    # A big layer shows bytes sent / size while it goes up (after a second).
    progress = Progress(f"{label} uploading", blob.size) if show_bytes else None
    sent = _counted(blob, progress) if progress else blob
    try:
        if blob.size > chunk_size:
            client.upload_chunks(location, sent, chunk_size)
        else:
            client.upload_whole(location, sent)
    except Exception:
        # Not on Ctrl-C: a DELETE could keep the user waiting; the registry
        # purges abandoned uploads by itself.
        client.cancel_upload(location)
        raise
    finally:
        if progress:
            progress.close("")
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
    blob_cache: Optional[BlobCache] = None,
    workers: int = HEAD_WORKERS,
    **session,
) -> PushResult:
    """Push one image, or a list of per-platform images as an index, to ``ref``.

    ``mount_from`` names a repository on the same registry that may hold
    some blobs already (a base image's); ``session`` goes to RegistryClient
    (opener, sleep, clock, retries, backoff, environ, home). ``blob_cache``:
    the blob-info cache (default: the user's, from ``environ``). ``workers``:
    requests asking about blobs (HEAD, cache confirmations) in flight at once.
    """
    reference = parse_reference(ref) if isinstance(ref, str) else ref
    images = [image_or_images] if isinstance(image_or_images, Image) else list(image_or_images)
    cache = blob_cache if blob_cache is not None else BlobCache.default(session.get("environ"))
    fmt = format_of(encoding)
    place = f"{reference.api_host}/{reference.repository}"
    hints = _hints(images, encoding, fmt, cache)
    rendered = None
    if not hints:
        # Check the reference before the first request. A digest to match
        # needs every layer's digest first; otherwise the manifest waits for
        # the digests the upload learns.
        if reference.digest or not _unknown_layers(images, encoding):
            rendered = _render(image_or_images, encoding, flavour, reference)
        else:
            manifest.check_target(image_or_images, flavour)
    extra = [f"repository:{mount_from}:pull"] if mount_from else []
    extra += [f"repository:{repo}:pull" for repo in _mount_sources(hints, reference) if repo != mount_from]
    client = RegistryClient(
        reference, insecure=insecure, auth=auth, progress=progress, actions="pull,push", extra_scopes=extra, **session
    )
    result = PushResult(str(reference), "")
    spools = _Spools(encoding)
    try:
        # A layer to compress (no digest, nothing remembered) starts now,
        # while the registry is asked about the others.
        hinted = {layer.diff_id for layer, *_ in hints}
        for image in images:
            first = next((x for x in image.layers if _unknown(x, encoding) and x.diff_id not in hinted), None)
            if first is not None and not reference.digest:
                spools.start(first)
                break
        client.ping()
        # One round of requests at once: the cache's digests confirmed, and
        # every blob whose digest is known (configs, layers the build or a
        # native form gave) asked about.
        asked = _known_blobs(images, encoding, flavour)
        present = _ask(client, images, hints, asked, encoding, fmt, cache, reference, result, workers)
        if rendered is None and reference.digest:
            rendered = _render(image_or_images, encoding, flavour, reference)
        _push_blobs(
            client,
            images,
            encoding,
            flavour,
            mount_from,
            chunk_size,
            result,
            present,
            {blob.digest for _what, blob in asked},
            progress is not None,
            workers,
            spools,
        )
        if rendered is None:
            rendered = _render(image_or_images, encoding, flavour, reference)  # every digest is known now
        result.digest = rendered.top.digest
        return _push_manifests(client, rendered, reference, result)
    finally:
        spools.close()
        client.close()
        if fmt is not None:
            _remember(images, encoding, fmt, cache, place, result)


def _render(target, encoding: str, flavour: str, reference: Reference) -> manifest.Rendered:
    rendered = manifest.render(target, encoding, flavour)
    if reference.digest and reference.digest != rendered.top.digest:
        raise BuildError(f"{reference}: the image's digest is {rendered.top.digest}")
    return rendered


# A cache hint: the layer, and the compressed digest, size and places the cache gave.
_Hint = Tuple[Layer, str, int, List[str]]


def _hints(images: Sequence[Image], encoding: str, fmt: Optional[str], cache: BlobCache) -> List[_Hint]:
    """The layers whose compressed digest is unknown but remembered."""
    if fmt is None:
        return []
    hints: List[_Hint] = []
    seen = set()
    for image in images:
        for layer in image.layers:
            if encoding in layer.known or layer.diff_id in seen:
                continue
            if layer.native is not None and layer.native[0] == encoding:
                continue  # stored compressed already: its digest costs no compression
            seen.add(layer.diff_id)
            found = cache.lookup(layer.diff_id, fmt)
            if found is not None:
                hints.append((layer, *found))
    return hints


def _mount_sources(hints: Sequence[_Hint], reference: Reference, most: int = 4) -> List[str]:
    """Repositories on this registry the cache says hold some of the blobs."""
    host, repos = reference.api_host + "/", []
    for _layer, _digest, _size, places in hints:
        for place in places:
            repo = place[len(host) :] if place.startswith(host) else None
            if repo and repo != reference.repository and repo not in repos:
                repos.append(repo)
    return repos[:most]


def _known_blobs(images: Sequence[Image], encoding: str, flavour: str) -> List[Tuple[str, Blob]]:
    """Each blob whose digest is known without the cache, once: (what, blob)."""
    found: Dict[str, Tuple[str, Blob]] = {}
    for image in images:
        for layer in image.layers:
            if not _unknown(layer, encoding):
                blob = layer.blob(encoding)
                found.setdefault(blob.digest, (f"layer {short_digest(layer.diff_id)}", blob))
    for image in images:
        blob = manifest.config_blob(image, flavour)
        found.setdefault(blob.digest, ("config", blob))
    return list(found.values())


def _ask(
    client: RegistryClient,
    images: Sequence[Image],
    hints: Sequence[_Hint],
    known: Sequence[Tuple[str, Blob]],
    encoding: str,
    fmt: Optional[str],
    cache: BlobCache,
    reference: Reference,
    result: PushResult,
    workers: int = HEAD_WORKERS,
) -> Dict[str, str]:
    """Ask the registry, all at once (up to ``workers`` requests in flight),
    about each blob ``known`` (HEAD) and each digest the cache remembered
    (HEAD here, else one mount from the repository the cache names). A
    confirmed digest becomes the layer's; an unconfirmed one is forgotten and
    the layer is compressed as if the cache had said nothing. Returns
    digest -> "present" or "mounted"."""
    present: Dict[str, str] = {}
    sources = _mount_sources(hints, reference)
    steps: List[Tuple[str, Callable[[], object]]] = [
        (f"layer {short_digest(layer.diff_id)}", partial(_confirm, client, digest, size, places, sources, reference))
        for layer, digest, size, places in hints
    ]
    steps += [(f"{what} {short_digest(blob.digest)}", partial(client.blob_exists, blob.digest)) for what, blob in known]
    answers = client.in_parallel(steps, workers)
    for (_what, blob), has in zip(known, answers[len(hints) :]):
        if has:
            present[blob.digest] = "present"
    if not hints or fmt is None:
        return present
    confirmed: Dict[str, Tuple[str, int]] = {}
    for (layer, digest, size, _places), how in zip(hints, answers):
        if how is None:
            cache.forget(layer.diff_id, fmt)
            result.stale.append(digest)
            continue
        confirmed[layer.diff_id] = (digest, size)
        present[digest] = how
        result.cached.append(digest)
    # Every layer with that diff_id (an index's images share layers) has that digest.
    for image in images:
        for layer in image.layers:
            if layer.diff_id in confirmed and encoding not in layer.known:
                layer.known[encoding] = confirmed[layer.diff_id]
    note = f"{len(result.cached)} compressed digest(s) from the blob-info cache, confirmed by the registry"
    if result.stale:
        note += f"; {len(result.stale)} not confirmed (compressed again)"
    client.progress(note)
    return present


def _confirm(
    client: RegistryClient, digest: str, size: int, places: Sequence[str], sources: Sequence[str], reference: Reference
) -> Optional[str]:
    found = client.blob_size(digest)
    if found is not None:
        return "present" if found == size else None
    host = reference.api_host + "/"
    for place in places:
        repo = place[len(host) :] if place.startswith(host) else None
        if repo and repo in sources:
            location = client.start_upload(digest, repo)
            if location is None:
                # Mounted: the registry has it now; its size is checked like a HEAD's.
                return "mounted" if client.blob_size(digest) == size else None
            client.cancel_upload(location)
            return None
    return None


def _remember(
    images: Sequence[Image], encoding: str, fmt: str, cache: BlobCache, place: str, result: PushResult
) -> None:
    """Every compressed digest this push knows goes into the cache; the
    blobs the registry now holds also with this repository as a place."""
    held = set(result.uploaded) | set(result.skipped) | set(result.mounted)
    for image in images:
        for layer in image.layers:
            if encoding in layer.known:
                digest, size = layer.known[encoding]
                cache.remember(layer.diff_id, fmt, digest, size, [place] if digest in held else [])
    cache.save()


def _unknown(layer: Layer, encoding: str) -> bool:
    """Its compressed digest costs a compression to learn."""
    if encoding == "none" or encoding in layer.known:
        return False
    return layer.native is None or layer.native[0] != encoding


def _unknown_layers(images: Sequence[Image], encoding: str) -> bool:
    return any(_unknown(layer, encoding) for image in images for layer in image.layers)


def _items(images: Sequence[Image], encoding: str, flavour: str) -> List[_Item]:
    """The blobs to send, each once, in order: layers (by digest, or by
    diff_id when the digest is still unknown), then configs."""
    layers: Dict[str, _Item] = {}
    for image in images:
        for layer in image.layers:
            if _unknown(layer, encoding):
                key, blob = "diff_id " + layer.diff_id, None
            else:
                blob = layer.blob(encoding)
                key = blob.digest
            item = layers.get(key)
            if item is None:
                layers[key] = item = _Item("", blob, [])
            item.layers.append(layer)
    items = list(layers.values())
    for i, item in enumerate(items, 1):
        item.label = f"layer {i}/{len(items)}"
    configs: Dict[str, _Item] = {}
    for image in images:
        blob = manifest.config_blob(image, flavour)
        configs.setdefault(blob.digest, _Item("config", blob, []))
    return items + list(configs.values())


def _push_blobs(
    client: RegistryClient,
    images: Sequence[Image],
    encoding: str,
    flavour: str,
    mount_from: Optional[str],
    chunk_size: int,
    result: PushResult,
    present: Dict[str, str],
    asked_already: Set[str],
    show_bytes: bool,
    workers: int,
    spools: _Spools,
) -> None:
    items = _items(images, encoding, flavour)
    # A blob whose digest is known and that was not asked about yet (_ask
    # asked about all of them: a safeguard), at once.
    asked: List[Tuple[str, Blob]] = [
        (it.label, it.blob)
        for it in items
        if it.blob is not None and it.blob.digest not in present and it.blob.digest not in asked_already
    ]
    answers = client.in_parallel(
        [(f"{label} {short_digest(b.digest)}", partial(client.blob_exists, b.digest)) for label, b in asked],
        workers,
    )
    for (_label, blob), has in zip(asked, answers):
        if has:
            present[blob.digest] = "present"
    # Then each blob in turn: progress in layer order, uploads one at a time.
    done: Set[str] = set()
    later = [item for item in items if item.blob is None]  # to compress, in order
    for item in items:
        if item.blob is None:
            spool = spools.take(item.layers[0])
            later.pop(0)  # this item: they come in this order
            if later:  # the next one compresses while this one goes up
                spools.start(later[0].layers[0])
            try:
                _send_compressed(client, item, spool, encoding, result, mount_from, chunk_size, done, show_bytes)
            finally:
                spool.close()
            continue
        done.add(item.blob.digest)
        _send_known(client, item.blob, item.label, result, mount_from, chunk_size, present, show_bytes)


def _send_known(
    client: RegistryClient,
    blob: Blob,
    label: str,
    result: PushResult,
    mount_from: Optional[str],
    chunk_size: int,
    present: Dict[str, str],
    show_bytes: bool,
) -> None:
    how = present.get(blob.digest)
    if how == "mounted":
        result.mounted.append(blob.digest)
        client.progress(f"{label} {short_digest(blob.digest)} mounted (blob-info cache)")
    elif how == "present":
        result.skipped.append(blob.digest)
        client.progress(f"{label} {short_digest(blob.digest)} skipped (already present)")
    else:
        client.retrying(
            f"{label} {short_digest(blob.digest)}",
            lambda: _send_new_blob(client, blob, label, result, mount_from, chunk_size, show_bytes),
        )


def _send_compressed(
    client: RegistryClient,
    item: _Item,
    spool: _Spool,
    encoding: str,
    result: PushResult,
    mount_from: Optional[str],
    chunk_size: int,
    done: Set[str],
    show_bytes: bool,
) -> None:
    """A layer whose compressed digest was unknown, compressed once into
    ``spool``: asked about with the digest learned, and sent from the file."""
    digest, size = spool.result(item.label if show_bytes else None)
    for same in item.layers:
        same.known[encoding] = (digest, size)
    blob = Blob(LAYER_MEDIA_TYPES[encoding], digest, size, spool.write_to)
    if digest in done:  # the same bytes as a layer already sent
        result.skipped.append(digest)
        client.progress(f"{item.label} {short_digest(digest)} skipped (already present)")
        return
    done.add(digest)

    def send() -> None:
        if client.blob_exists(digest):
            result.skipped.append(digest)
            client.progress(f"{item.label} {short_digest(digest)} skipped (already present)")
        else:
            _send_new_blob(client, blob, item.label, result, mount_from, chunk_size, show_bytes)

    client.retrying(f"{item.label} {short_digest(digest)}", send)


def _push_manifests(
    client: RegistryClient, rendered: manifest.Rendered, reference: Reference, result: PushResult
) -> PushResult:
    if rendered.top.media_type in manifest.INDEX_TYPES:
        # An index may only name manifests the registry already has.
        for m in rendered.manifests:
            client.retrying("manifest", lambda: client.put_manifest(m.blob, m.blob.digest))
            result.manifests.append(m.blob.digest)
    client.retrying("manifest", lambda: client.put_manifest(rendered.top, reference.target))
    result.manifests.append(rendered.top.digest)
    client.progress(f"pushed {reference} ({rendered.top.digest})")
    return result
