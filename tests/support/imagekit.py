"""Small images made in memory for the sink, source and registry tests."""

from __future__ import annotations

import os
from typing import List, Optional

from tarbuild import d, f, layer_bytes, sym, tar_bytes

from builder.formats.oci_layout import write_oci_archive
from builder.model import manifest
from builder.model.image import Image, Layer, canonical_json, sha256_digest
from builder.sinks.sink import FdSink, MemorySink

BUSYBOX = "/bin/busybox"


def memory_layer(data: bytes, calls: Optional[List[str]] = None) -> Layer:
    """A layer over ``data``; ``calls`` records every time its bytes are written."""
    digest = sha256_digest(data)

    def write(sink):
        if calls is not None:
            calls.append(digest)
        sink.write(data)

    return Layer(digest, len(data), write)


def failing_layer(data: bytes, after: int) -> Layer:
    """A layer whose writer dies after ``after`` bytes, like a killed build."""

    def write(sink):
        sink.write(data[:after])
        raise RuntimeError("layer writer killed")

    return Layer(sha256_digest(data), len(data), write)


def make_image(
    layers: List[Layer],
    *,
    architecture: str = "amd64",
    variant: str = "",
    cmd: Optional[List[str]] = None,
    label: str = "",
) -> Image:
    config = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": cmd or ["/bin/sh"], "Labels": {"test": label}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": "1970-01-01T00:00:01Z"} for _ in layers],
        "created": "1970-01-01T00:00:01Z",
    }
    if variant:
        config["variant"] = variant
    return Image(canonical_json(config), layers)


def simple_image(*contents: str, **kw) -> Image:
    """One layer per string, each a file named after its position."""
    layers = [memory_layer(layer_bytes({f"data/{i}.txt": text.encode()})) for i, text in enumerate(contents)]
    return make_image(layers, **kw)


def multi_arch() -> List[Image]:
    """Two images, amd64 and arm64/v8, to go under one tag."""
    return [simple_image("x86", architecture="amd64"), simple_image("arm", architecture="arm64", variant="v8")]


def busybox_image(message: str = "hello") -> Image:
    """A runnable image: static busybox as /bin/sh, plus a file to print."""
    with open(BUSYBOX, "rb") as src:
        busybox = src.read()
    links = [sym(f"bin/{name}", "busybox", mtime=1) for name in ("cat", "echo", "sh")]
    base = memory_layer(tar_bytes([d("bin", mtime=1), f("bin/busybox", busybox, 0o755, mtime=1), *links]))
    top = memory_layer(layer_bytes({"etc/message": message.encode() + b"\n"}))
    return make_image([base, top], architecture=_host_arch(), cmd=["/bin/cat", "/etc/message"])


def _host_arch() -> str:
    from builder.model.platform import host_platform

    return host_platform()["architecture"]


def have_busybox() -> bool:
    return os.path.exists(BUSYBOX)


def layer_tar(layer: Layer) -> bytes:
    """A layer's uncompressed tar, as its writer makes it."""
    sink = MemorySink()
    layer.write_tar(sink)
    return bytes(sink.data)


def manifest_digest(image: Image, encoding: str = "gzip") -> str:
    return manifest.image_manifest(image, encoding).blob.digest


def write_oci_archive_file(path, images, encoding: str = "gzip") -> str:
    """An OCI archive of ``images`` ([(image or images, tags)]) at ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_oci_archive(FdSink(fd), images, encoding)
    finally:
        os.close(fd)
    return str(path)
