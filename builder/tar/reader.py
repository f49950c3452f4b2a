"""Reading tar archives someone else made: layers of a base image, outer
image archives. The one way the builder opens a tar for reading.

``tarfile`` alone trusts what a header says: a PAX ``mtime`` of ``1e400``
or ``nan``, a negative ``size``, a uid of 2**66 all come through, and a
damaged header after the first one is taken for the end of the archive, so
every later entry is dropped without a word. Here every member is checked
as it is read, a damaged header is an error, and PAX or GNU long-name
headers are bounded before they are read into memory.
"""

from __future__ import annotations

import math
import re
import tarfile
from typing import IO, Any, Optional, Union

from builder.errors import ImageFormatError

__all__ = ["MAX_ID", "MAX_MTIME", "check_member", "open_tar"]

MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged" to chown(2)
MAX_MTIME = 8**11  # what an ustar header holds; about the year 2242
_MAX_META = 1 << 20  # a PAX header or GNU long name: 1 MiB is plenty
_MAX_DEV = 2**31 - 1
# Not in typeshed's tarfile, but there since Python 3.2.
_EOF_HEADER = tarfile.EOFHeaderError  # type: ignore[attr-defined]
_EMPTY_HEADER = tarfile.EmptyHeaderError  # type: ignore[attr-defined]


def _bad(m: tarfile.TarInfo, what: str) -> ImageFormatError:
    name = m.name if len(m.name) <= 200 else m.name[:200] + "..."
    return ImageFormatError(f"entry {name!r}: {what}")


def check_member(m: tarfile.TarInfo) -> None:
    """Refuse a member whose numbers no file system can hold."""
    if not isinstance(m.size, int) or m.size < 0:
        raise _bad(m, f"negative size {m.size}")
    mtime = m.mtime
    if not isinstance(mtime, (int, float)) or not math.isfinite(mtime) or not -MAX_MTIME <= mtime <= MAX_MTIME:
        raise _bad(m, f"mtime {mtime!r} is out of range")
    for field in ("uid", "gid"):
        value = getattr(m, field)
        if not isinstance(value, int) or not 0 <= value <= MAX_ID:
            raise _bad(m, f"{field} {value} is out of range (0 to {MAX_ID})")
    if not 0 <= m.mode <= 0o7777777:
        raise _bad(m, f"mode {m.mode} is out of range")
    for field in ("devmajor", "devminor"):
        value = getattr(m, field)
        if not isinstance(value, int) or not 0 <= value <= _MAX_DEV:
            raise _bad(m, f"{field} {value} is out of range")


_RECORD_RE = re.compile(rb"([0-9]+) ")
_INT_KEYS = {b"size", b"uid", b"gid", b"GNU.sparse.size", b"GNU.sparse.realsize"}
_TIME_KEYS = {b"mtime", b"atime", b"ctime"}


def _check_pax_records(data: bytes, offset: int) -> None:
    """Every record ``LENGTH KEY=VALUE\n``, its length exact, its number a number."""
    pos = 0
    while pos < len(data):
        if data[pos] == 0 and not data[pos:].strip(b"\0"):
            return  # NUL padding after the last record, as some writers leave
        match = _RECORD_RE.match(data, pos)
        length = int(match.group(1)) if match and len(match.group(1)) <= 8 else 0
        end = pos + length
        if not match or length < 5 or end > len(data) or data[end - 1] != 0x0A:
            raise ImageFormatError(f"a malformed PAX record in the header at offset {offset}")
        key, eq, value = data[match.end() : end - 1].partition(b"=")
        if not key or not eq:
            raise ImageFormatError(f"a malformed PAX record in the header at offset {offset}")
        try:
            if key in _INT_KEYS:
                int(value)
            elif key in _TIME_KEYS:
                float(value)
        except ValueError:
            raise ImageFormatError(
                f"PAX {key.decode()}={value[:40]!r} in the header at offset {offset} is not a number"
            ) from None
        pos = end


class _Replay:
    """A file object that gives ``buf`` first, then reads on from ``inner``
    (which is already past ``buf``)."""

    def __init__(self, buf: bytes, inner):
        self.buf, self.inner = buf, inner

    def read(self, size: int = -1) -> bytes:
        if self.buf:
            data, self.buf = self.buf[:size], self.buf[size:]
            return data
        return self.inner.read(size)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class _StrictInfo(tarfile.TarInfo):
    @classmethod
    def fromtarfile(cls, tarfile_):
        offset = tarfile_.fileobj.tell()
        try:
            member = super().fromtarfile(tarfile_)
        except (_EOF_HEADER, _EMPTY_HEADER):
            raise  # the end of the archive
        except tarfile.HeaderError as e:
            if offset == 0:
                raise  # not a tar at all: tarfile says so
            raise ImageFormatError(f"damaged tar header at offset {offset} ({e})") from None
        except (ValueError, OverflowError) as e:
            raise ImageFormatError(f"damaged tar header at offset {offset} ({e})") from None
        check_member(member)
        return member

    def _proc_pax(self, tarfile_):
        self._check_meta_size("PAX header")
        # Read the records once, check them strictly (tarfile's own parsing
        # of a bad record differs between Python versions, and some of them
        # silently skip it), then let tarfile read the very same bytes.
        inner = tarfile_.fileobj
        buf = inner.read(self._block(self.size))  # type: ignore[attr-defined]
        _check_pax_records(buf[: self.size], self.offset)
        tarfile_.fileobj = _Replay(buf, inner)
        try:
            return super()._proc_pax(tarfile_)  # type: ignore[misc]
        finally:
            tarfile_.fileobj = inner

    def _proc_gnulong(self, tarfile_):
        self._check_meta_size("GNU long name")
        return super()._proc_gnulong(tarfile_)  # type: ignore[misc]

    def _check_meta_size(self, what: str) -> None:
        if not 0 <= self.size <= _MAX_META:
            raise ImageFormatError(f"a {what} of {self.size} bytes (at most {_MAX_META} are read)")


class _EndGuard:
    """The input of a tar read sequentially ("r|..."). tarfile skips a
    member's data by reading it block by block, and goes on reading past the
    end of the input: a header that claims 100 TB takes hours of empty
    reads. Here reading on after the end is an error."""

    _AFTER_END = 64  # empty reads let through: tarfile's own look for the end

    def __init__(self, inner, owned: bool):
        self.inner, self.owned, self.empty = inner, owned, 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        if not data and size != 0:
            self.empty += 1
            if self.empty > self._AFTER_END:
                raise ImageFormatError("the tar ends inside an entry (a header claims more data than there is)")
        return data

    def close(self) -> None:
        if self.owned:
            self.inner.close()

    def __getattr__(self, name):
        return getattr(self.inner, name)


class _StrictTarFile(tarfile.TarFile):
    guard: Optional[_EndGuard] = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.guard is not None:
                self.guard.close()


def open_tar(
    name: Union[str, bytes, None] = None, fileobj: Optional[IO[bytes]] = None, mode: str = "r:", **kwargs: Any
) -> tarfile.TarFile:
    """``tarfile.open`` with every member checked (see above)."""
    opener: Any = _StrictTarFile.open
    if "|" not in mode or (fileobj is None and name is None):
        return opener(name=name, fileobj=fileobj, mode=mode, tarinfo=_StrictInfo, **kwargs)
    guard = (
        _EndGuard(open(name, "rb"), owned=True) if fileobj is None and name is not None else _EndGuard(fileobj, False)
    )
    try:
        tar = opener(name=name, fileobj=guard, mode=mode, tarinfo=_StrictInfo, **kwargs)
    except BaseException:
        guard.close()
        raise
    tar.guard = guard
    return tar
