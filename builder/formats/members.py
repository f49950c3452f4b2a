"""Members of an outer image archive (docker archive, OCI archive).

Each member is a blob whose size is known before its bytes are written, so
the header goes first and a counting guard checks the bytes that follow:
digests were fixed when the layers were described, and hashing again at
stream time would double the work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List

from builder.errors import DigestMismatch
from builder.model.image import Blob
from builder.sinks.sink import Sink, output_fd_counted
from builder.tar.tarstream import DIR, REG, header, padding

if TYPE_CHECKING:
    import tarfile  # readers only: writing an archive needs no tarfile

__all__ = ["MTIME", "members_by_name", "write_dir", "write_member"]

MTIME = 1  # every member's mtime: archives must not carry the build's clock


class _Counting(Sink):
    """Passes bytes on and counts them."""

    def __init__(self, inner: Sink):
        self.inner = inner
        self.size = 0

    def write(self, data) -> None:
        self.size += len(data)
        self.inner.write(data)

    def copy_file(self, fd: int, size: int) -> None:
        self.size += size
        self.inner.copy_file(fd, size)

    def write_parts(self, parts: List[bytes]) -> None:
        self.size += sum(map(len, parts))
        self.inner.write_parts(parts)

    def output_fd(self):
        return output_fd_counted(self.inner, self._add)

    def _add(self, n: int) -> None:
        self.size += n


def write_member(sink: Sink, name: str, blob: Blob) -> None:
    sink.write(header(name.encode(), REG, 0o644, 0, 0, MTIME, blob.size))
    counter = _Counting(sink)
    blob.write_to(counter)
    if counter.size != blob.size:
        raise DigestMismatch(f"{name}: size", str(blob.size), str(counter.size))
    sink.write(padding(blob.size))


def write_dir(sink: Sink, name: str) -> None:
    sink.write(header(name.rstrip("/").encode() + b"/", DIR, 0o755, 0, 0, MTIME))


def members_by_name(members: List[tarfile.TarInfo]) -> Dict[str, tarfile.TarInfo]:
    """An outer archive's members by name, ``./`` dropped: ``docker save`` and
    some OCI writers name members ``./manifest.json``."""
    return {m.name[2:] if m.name.startswith("./") else m.name: m for m in members}
