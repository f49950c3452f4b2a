"""Small images made in memory for the sink, source and registry tests."""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from builder.model.image import Image, Layer, canonical_json, sha256_digest
from builder.tar import tarstream

BUSYBOX = "/bin/busybox"


def layer_bytes(files: Dict[str, bytes], mode: int = 0o644) -> bytes:
    """A tar of regular files (parent directories added), sorted by name."""
    out = bytearray()
    dirs = set()
    for name in sorted(files):
        parts = name.split("/")[:-1]
        for i in range(len(parts)):
            d = "/".join(parts[: i + 1]) + "/"
            if d not in dirs:
                dirs.add(d)
                out += tarstream.header(d.encode(), tarstream.DIR, 0o755, 0, 0, 1)
        data = files[name]
        out += tarstream.header(name.encode(), tarstream.REG, mode, 0, 0, 1, len(data))
        out += data + tarstream.padding(len(data))
    return bytes(out + tarstream.END_OF_ARCHIVE)


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


def busybox_image(message: str = "hello") -> Image:
    """A runnable image: static busybox as /bin/sh, plus a file to print."""
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    base = memory_layer(
        _executable_layer({"bin/busybox": busybox}, {"bin/sh": "busybox", "bin/cat": "busybox", "bin/echo": "busybox"})
    )
    top = memory_layer(layer_bytes({"etc/message": message.encode() + b"\n"}))
    return make_image([base, top], architecture=_host_arch(), cmd=["/bin/cat", "/etc/message"])


def _executable_layer(files: Dict[str, bytes], links: Dict[str, str]) -> bytes:
    out = bytearray(tarstream.header(b"bin/", tarstream.DIR, 0o755, 0, 0, 1))
    for name, data in sorted(files.items()):
        out += tarstream.header(name.encode(), tarstream.REG, 0o755, 0, 0, 1, len(data))
        out += data + tarstream.padding(len(data))
    for name, target in sorted(links.items()):
        out += tarstream.header(name.encode(), tarstream.SYM, 0o777, 0, 0, 1, linkname=target.encode())
    return bytes(out + tarstream.END_OF_ARCHIVE)


def _host_arch() -> str:
    from builder.model.platform import host_platform

    return host_platform()["architecture"]


def have_busybox() -> bool:
    return os.path.exists(BUSYBOX)
