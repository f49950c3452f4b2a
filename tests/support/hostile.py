"""Hostile inputs, built byte by byte: tar headers no honest writer makes,
archives whose documents lie about their size, symlink loops.

Everything a test feeds the builder is made here from
``builder.tar.tarstream`` pieces (headers with correct checksums) and
then damaged on purpose, field by field.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional, Sequence, Tuple, Union

from httpanswer import Answer  # noqa: F401 (the fuzz tests take it from here)

from builder.model.image import canonical_json, sha256_digest
from builder.tar import tarstream
from builder.tar.tarstream import BLOCK, END_OF_ARCHIVE, padding

Member = Union[bytes, Tuple[str, str]]  # contents, or ("symlink", target)


def entry(name: bytes, data: bytes = b"", kind: bytes = tarstream.REG, mode: int = 0o644, **kw) -> bytes:
    """One honest entry: header, contents, padding."""
    head = tarstream.header(name, kind, mode, kw.pop("uid", 0), kw.pop("gid", 0), kw.pop("mtime", 1), len(data), **kw)
    return head + data + padding(len(data))


def pax(records: bytes) -> bytes:
    """A PAX extended header carrying ``records`` as given, well formed or not."""
    head = tarstream.header(b"././@PaxHeader", b"x", 0o644, 0, 0, 0, len(records))
    return head + records + padding(len(records))


def record(key: str, value: str) -> bytes:
    """One PAX record with a correct length prefix."""
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def set_field(block: bytes, start: int, raw: bytes) -> bytes:
    """A header block with bytes ``start..`` replaced and its checksum fixed."""
    b = bytearray(block[:BLOCK])
    b[start : start + len(raw)] = raw
    b[148:156] = b" " * 8
    b[148:156] = b"%06o\0 " % sum(b)
    return bytes(b) + block[BLOCK:]


def base256(value: int, width: int) -> bytes:
    """GNU base-256 for a numeric field: how a header says -5 or 2**66."""
    raw = value.to_bytes(width, "big", signed=True)
    return bytes([raw[0] | 0x80]) + raw[1:] if value >= 0 else bytes([0xFF]) + raw[1:]


UID, GID, SIZE, MTIME = 108, 116, 124, 136


def layer(*parts: bytes) -> bytes:
    return b"".join(parts) + END_OF_ARCHIVE


def outer_tar(members: Dict[str, Member]) -> bytes:
    """An outer archive (docker archive, OCI archive): files and symlinks."""
    parts = []
    for name, m in members.items():
        if isinstance(m, tuple):
            parts.append(entry(name.encode(), kind=tarstream.SYM, mode=0o777, linkname=m[1].encode()))
        else:
            parts.append(entry(name.encode(), m))
    return layer(*parts)


def docker_archive_members(
    layers: Sequence[bytes] = (b"",), config: Optional[dict] = None, manifest: Optional[bytes] = None
) -> Dict[str, Member]:
    """The members of a docker archive holding ``layers`` (tar bytes)."""
    layer_tars = [lb if lb else layer(entry(b"hello", b"hi\n")) for lb in layers]
    config = config or {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(t) for t in layer_tars]},
    }
    names = [f"{i}/layer.tar" for i in range(len(layer_tars))]
    doc = [{"Config": "config.json", "RepoTags": ["x:1"], "Layers": names}]
    members: Dict[str, Member] = {"manifest.json": manifest if manifest is not None else json.dumps(doc).encode()}
    members["config.json"] = canonical_json(config)
    members.update(zip(names, layer_tars))
    return members


def write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return os.fspath(path)


def sparse_member_archive(path, name: str, size: int, before: Dict[str, Member]) -> str:
    """An outer archive whose member ``name`` claims ``size`` bytes; the file
    is sparse, so a 1 GiB document costs no disk (and must cost no memory)."""
    head = outer_tar(before)[: -len(END_OF_ARCHIVE)]
    head += tarstream.header(name.encode(), tarstream.REG, 0o644, 0, 0, 1, size)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + size + (-size % BLOCK) + len(END_OF_ARCHIVE))
    return os.fspath(path)


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def oci_layout_dir(directory, config: bytes, layers: Sequence[bytes], index_extra: Sequence[dict] = ()) -> str:
    """An OCI layout directory with one image (and any extra index entries)."""
    os.makedirs(os.path.join(directory, "blobs", "sha256"), exist_ok=True)

    def put(data: bytes) -> dict:
        digest = sha256_digest(data)
        write(os.path.join(directory, "blobs", "sha256", digest[7:]), data)
        return {"digest": digest, "size": len(data)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **put(lb)} for lb in layers],
    }
    top = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(canonical_json(manifest))}
    index = {"schemaVersion": 2, "manifests": [top, *index_extra]}
    write(os.path.join(directory, "index.json"), json.dumps(index).encode())
    write(os.path.join(directory, "oci-layout"), b'{"imageLayoutVersion": "1.0.0"}')
    return os.fspath(directory)
