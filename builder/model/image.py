"""The image model every source produces and every sink accepts.

An image is its exact config bytes plus an ordered list of layers. A layer
knows its diff_id and uncompressed size up front and can write its tar bytes
into any sink, as often as asked. Compressed forms are derived here, in one
place, so sinks only ask ``layer.blob(encoding)``.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Callable, Dict, List, Optional, Tuple

from builder.sinks import compress
from builder.sinks.sink import HashSink, Sink

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "LAYER_MEDIA_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Blob",
    "Image",
    "Layer",
    "canonical_json",
    "sha256_digest",
]

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER = {
    "none": "application/vnd.docker.image.rootfs.diff.tar",
    "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "zstd": "application/vnd.docker.image.rootfs.diff.tar.zstd",
}
LAYER_MEDIA_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def canonical_json(value) -> bytes:
    """The one serialisation of JSON we hash: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# Blob, Layer and Image are written out, not dataclasses: the stream and push
# never load dataclasses (inspect, ast: ~15 ms of each start);
# tests/unit/test_imports.py pins it.
class Blob:
    """Bytes with a known digest and size, written on demand."""

    __slots__ = ("media_type", "digest", "size", "write_to")

    def __init__(self, media_type: str, digest: str, size: int, write_to: Callable[[Sink], None]) -> None:
        self.media_type, self.digest, self.size, self.write_to = media_type, digest, size, write_to

    @classmethod
    def from_bytes(cls, media_type: str, data: bytes) -> Blob:
        return cls(media_type, sha256_digest(data), len(data), lambda sink: sink.write(data))


class Layer:
    __slots__ = ("diff_id", "size", "write_tar", "known", "native", "source")

    def __init__(
        self,
        diff_id: str,
        size: int,
        write_tar: Callable[[Sink], None],
        known: Optional[Dict[str, Tuple[str, int]]] = None,
        native: Optional[Tuple[str, Callable[[Sink], None]]] = None,
        source: Optional[dict] = None,
    ) -> None:
        self.diff_id, self.size, self.write_tar = diff_id, size, write_tar
        # encoding -> (digest, size) of compressed forms already known
        self.known: Dict[str, Tuple[str, int]] = {} if known is None else known
        # how the bytes are stored at the source, when a sink can copy them as is
        self.native = native
        # how to make the bytes again, as a description entry's "source"
        self.source = source

    def blob(self, encoding: str = "none") -> Blob:
        if encoding == "none":
            return Blob(LAYER_MEDIA_TYPES["none"], self.diff_id, self.size, self.write_tar)
        writer = self._compressed_writer(encoding)
        if encoding not in self.known:
            # Not computed at build time: one extra pass to learn the digest.
            probe = HashSink()
            writer(probe)
            self.known[encoding] = (probe.digest, probe.size)
        digest, size = self.known[encoding]
        return Blob(LAYER_MEDIA_TYPES[encoding], digest, size, writer)

    def _compressed_writer(self, encoding: str) -> Callable[[Sink], None]:
        if self.native is not None and self.native[0] == encoding:
            return self.native[1]

        def write(sink: Sink) -> None:
            with compress.compressor(encoding, sink) as csink:
                self.write_tar(csink)

        return write


class Image:
    # No __slots__: cached_property keeps its values in the instance's __dict__.
    def __init__(self, config_bytes: bytes, layers: List[Layer]) -> None:
        self.config_bytes, self.layers = config_bytes, layers

    @cached_property
    def config(self) -> dict:
        return json.loads(self.config_bytes)

    @cached_property
    def config_digest(self) -> str:
        return sha256_digest(self.config_bytes)

    @property
    def platform(self) -> dict:
        c = self.config
        p = {"architecture": c.get("architecture", ""), "os": c.get("os", "")}
        if c.get("variant"):
            p["variant"] = c["variant"]
        return p
