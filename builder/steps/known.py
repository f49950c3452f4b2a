"""Digests of compressed layers, computed at build time.

A description may record, beside each layer's diff_id, the digest and size
of its gzip (or zstd) form (``Layer.known``). Streaming and pushing then
write compressed layers without a second pass to learn their digests. The
compressed bytes are those of ``compress.compressor``: the same code makes
them at build time and at stream time, so they are the same bytes.

``measure_tar`` takes a layer's tar bytes once and hashes them plain and
compressed in the same pass; ``fill_known`` completes layers that were
measured earlier (a base image's, the customisation layer) with one pass each.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from builder.errors import SpecError
from builder.model.image import Layer
from builder.sinks import compress
from builder.sinks.sink import HashSink, Sink

__all__ = ["LAYER_COMPRESSIONS", "Fan", "encodings_of", "fill_known", "measure_tar"]

LAYER_COMPRESSIONS = ("none", "gzip", "zstd")


def encodings_of(layer_compression: Optional[str], what: str = "layerCompression") -> Tuple[str, ...]:
    """The compressed encodings whose digests a build should record."""
    value = layer_compression or "none"
    if value not in LAYER_COMPRESSIONS:
        raise SpecError(f'{what}: unknown value {value!r}: expected "none", "gzip" or "zstd"')
    if value != "none":
        # Fail before any work when this Python cannot make the bytes.
        with compress.compressor(value, HashSink()):
            pass
    return () if value == "none" else (value,)


class Fan(Sink):
    """Writes every byte to several sinks; file contents are read once."""

    def __init__(self, sinks: Sequence[Sink]):
        self.sinks = list(sinks)

    def write(self, data) -> None:
        for sink in self.sinks:
            sink.write(data)


def measure_tar(
    write_tar: Callable[[Sink], None], encodings: Sequence[str] = ()
) -> Tuple[str, int, Dict[str, Tuple[str, int]]]:
    """(diff_id, size, known) of the tar ``write_tar`` makes, in one pass."""
    plain = HashSink()
    if not encodings:
        write_tar(plain)
        return plain.digest, plain.size, {}
    hashes = {enc: HashSink() for enc in encodings}
    with contextlib.ExitStack() as stack:
        compressed = [stack.enter_context(compress.compressor(enc, hashes[enc])) for enc in encodings]
        write_tar(Fan([plain, *compressed]))
    return plain.digest, plain.size, {enc: (h.digest, h.size) for enc, h in hashes.items()}


def _complete(layer: Layer, encodings: Sequence[str]) -> None:
    missing = [enc for enc in encodings if enc not in layer.known]
    if not missing:
        return
    # A layer stored compressed at its source is not recompressed when
    # asked for that encoding (Layer.blob copies it): its known entry came
    # with it. Anything else is made by our compressor, as at stream time.
    hashes = {enc: HashSink() for enc in missing}
    with contextlib.ExitStack() as stack:
        sinks = [stack.enter_context(compress.compressor(enc, hashes[enc])) for enc in missing]
        layer.write_tar(Fan(sinks) if len(sinks) > 1 else sinks[0])
    for enc, h in hashes.items():
        layer.known[enc] = (h.digest, h.size)


def fill_known(layers: List[Layer], encodings: Sequence[str], workers: Optional[int] = None) -> None:
    """Record the compressed digests each layer lacks, layers in parallel
    threads (zlib and hashlib release the GIL on large buffers)."""
    if not encodings:
        return
    todo = [layer for layer in layers if any(enc not in layer.known for enc in encodings)]
    if not todo:
        return
    from concurrent.futures import ThreadPoolExecutor  # a build step's; a push loads only encodings_of

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(lambda layer: _complete(layer, encodings), todo))
