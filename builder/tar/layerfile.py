"""Layers whose bytes already exist in a file: a base image's layer, a
customisation layer tar. The bytes are a range of a file, plain or
compressed; a layer made from them streams that range (decompressing when
needed) and never holds it in memory.
"""

from __future__ import annotations

import os
import zlib
from typing import Optional

from builder.errors import BuildError, DigestMismatch, ImageFormatError
from builder.model.image import Layer
from builder.sinks import compress
from builder.sinks.sink import HashSink, Sink

__all__ = ["FileRange", "decompress_file", "detect_encoding", "layer_from_range", "plain_archive", "range_stats"]

_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
_CHUNK = 1 << 20


# Written out, not a dataclass: the stream and push never load dataclasses
# (inspect, ast: ~15 ms of each start); tests/unit/test_imports.py pins it.
class FileRange:
    """``size`` bytes of the file at ``path``, from ``offset``."""

    __slots__ = ("path", "offset", "size")

    def __init__(self, path: str, offset: int, size: int) -> None:
        self.path, self.offset, self.size = path, offset, size

    def copy_to(self, sink: Sink) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.lseek(fd, self.offset, os.SEEK_SET)
            sink.copy_file(fd, self.size)
        finally:
            os.close(fd)

    def chunks(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            remaining = self.size
            while remaining:
                data = f.read(min(_CHUNK, remaining))
                if not data:
                    raise ImageFormatError(f"{self.path}: truncated at offset {self.offset + self.size - remaining}")
                remaining -= len(data)
                yield data


def detect_encoding(path: str, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(4)
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return "none"


def _decompressor(encoding: str):
    if encoding == "gzip":
        return zlib.decompressobj(47)  # gzip header, any window size
    raise BuildError(f"unknown layer compression {encoding!r}")


def plain_archive(path: str, workdir: Optional[str]) -> str:
    """A plain tar of the archive at ``path``: itself, or it decompressed
    once into ``workdir`` (named after it, so several can sit side by side,
    and reused by every reader that asks again)."""
    encoding = detect_encoding(path, 0)
    if encoding == "none":
        return path
    if workdir is None:
        raise ImageFormatError(f"{path}: a compressed archive needs a work directory to unpack into")
    plain = os.path.join(workdir, os.path.basename(path).split(".")[0] + "-unpacked.tar")
    if not os.path.exists(plain):
        decompress_file(path, encoding, plain + ".part")
        os.replace(plain + ".part", plain)
    return plain


def decompress_file(path: str, encoding: str, dest: str) -> None:
    if encoding == "gzip":
        # gzip and shutil: only an archive compressed as a whole needs them.
        import gzip
        import shutil

        try:
            with gzip.open(path, "rb") as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        except (OSError, EOFError, zlib.error) as e:
            raise ImageFormatError(f"{path}: broken gzip data ({e})") from None
        return
    if encoding != "zstd":
        raise ImageFormatError(f"{path}: unknown compression {encoding!r}")
    try:
        program = compress.zstd_program()
    except BuildError as e:
        raise ImageFormatError(f"{path}: zstd-compressed, and {e}") from None
    # The standard library has no zstd: pkgs.zstd's program (compress.use_zstd).
    import subprocess  # zstd only

    env = {k: v for k, v in os.environ.items() if not k.startswith("ZSTD_")}
    with open(path, "rb") as src, open(dest, "wb") as out:
        r = subprocess.run(
            [program, *compress.ZSTD_DECOMPRESS_ARGS], stdin=src, stdout=out, stderr=subprocess.PIPE, env=env
        )
    if r.returncode != 0:
        raise ImageFormatError(f"{path}: broken zstd data ({r.stderr.decode(errors='replace').strip()})")


def _decompress_chunks(chunks, encoding: str, sink: Sink, what: str) -> None:
    if encoding == "zstd":
        with compress.zstd_decoder(sink, what) as decoder:
            for chunk in chunks:
                decoder.write(chunk)
        return
    # gzip members may be concatenated (pigz -i, some registries): restart
    # the decompressor on each member.
    # At most _CHUNK bytes come out per call, however well the input
    # compresses: a 2 MiB gzip of 2 GiB of zeros is streamed, not held.
    d = _decompressor(encoding)
    try:
        for data in chunks:
            while True:
                out = d.decompress(data, _CHUNK)
                if out:
                    sink.write(out)
                if d.eof:
                    data = d.unused_data
                    if encoding == "gzip":
                        d = _decompressor(encoding)
                    if not data or encoding != "gzip":
                        break
                    continue
                data = d.unconsumed_tail
                if not data and len(out) < _CHUNK:
                    break
    except (zlib.error, EOFError, ValueError) as e:
        raise ImageFormatError(f"{what}: broken {encoding} data ({e})") from None


def range_stats(rng: FileRange, what: str = "layer") -> dict:
    """Encoding, uncompressed digest and size, and the stored digest: one pass."""
    encoding = detect_encoding(rng.path, rng.offset)
    stored = HashSink()
    if encoding == "none":
        rng.copy_to(stored)
        plain = stored
    else:
        plain = HashSink()

        def hashed_chunks():
            for chunk in rng.chunks():
                stored.write(chunk)
                yield chunk

        _decompress_chunks(hashed_chunks(), encoding, plain, what)
    return {
        "encoding": encoding,
        "diffId": plain.digest,
        "size": plain.size,
        "storedDigest": stored.digest,
        "storedSize": stored.size,
    }


def layer_from_range(rng: FileRange, diff_id: str, *, verify: bool, what: str, stats: Optional[dict] = None) -> Layer:
    """A Layer streaming ``rng``. With ``verify``, its bytes are hashed once
    now and checked against ``diff_id``; ``stats`` are results of an earlier
    check (from a build-time description)."""
    if stats is None:
        if verify:
            stats = range_stats(rng, what)
            if stats["diffId"] != diff_id:
                raise DigestMismatch(what, diff_id, stats["diffId"])
        else:
            raise BuildError(f"{what}: no size known for an unverified layer")
    encoding = stats["encoding"]
    source = {
        "kind": "file",
        "path": rng.path,
        "offset": rng.offset,
        "size": rng.size,
        "encoding": encoding,
        "storedDigest": stats["storedDigest"],
        "storedSize": stats["storedSize"],
    }
    if encoding == "none":
        return Layer(diff_id, stats["size"], rng.copy_to, source=source)
    return Layer(
        diff_id,
        stats["size"],
        lambda sink: _decompress_chunks(rng.chunks(), encoding, sink, what),
        known={encoding: (stats["storedDigest"], stats["storedSize"])},
        native=(encoding, rng.copy_to),
        source=source,
    )
