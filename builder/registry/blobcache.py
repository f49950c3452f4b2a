"""The blob-info cache: what compressing a layer gave before, and where it went.

A push with ``--compress gzip`` needs each layer's compressed digest before
it can ask the registry whether it has the blob, and learning that digest
means compressing the whole layer. This cache remembers, per uncompressed
digest (diff_id) and compression *format* (``compress.gzip_format()``: level,
block size and zlib version, so a change in any of them is a different key),
the compressed digest and size, and which ``registry/repository`` places are
known to hold that blob. A later push asks the registry about the remembered
digest (HEAD, or a cross-repository mount) and compresses nothing the
registry already has.

An entry is a hint, never trusted blindly:

* the registry must answer HEAD with the remembered size (or mount it), else
  the layer is compressed as if there were no entry: a stale or wrong entry
  costs one request, never a wrong image;
* each entry carries a check value over its key and value, so a damaged
  entry is ignored; a file that is not the expected JSON is ignored whole
  (and replaced at the next write);
* entries are only ever written from digests this builder computed or a
  registry confirmed. Like containers/image's blob-info cache (skopeo,
  podman), a deliberately forged entry with a valid check value, naming a
  blob of the same size that the registry holds, would be believed: the
  cache is the user's own file, as trusted as the rest of their home.

The file is ``$XDG_CACHE_HOME/nix-docker-tools/blob-info.json`` (else
``~/.cache/...``). Without a usable home (a Nix build's ``/homeless-shelter``)
or under ``/nix/store`` there is no cache. Writers hold an ``flock`` on a
lock file beside it, merge their entries into what is on disk and replace
the file atomically (temporary file + rename): concurrent pushes lose
nothing, and a reader never sees half a file. Failing to write is never an
error: it is only a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from builder.sinks import compress

__all__ = ["BlobCache", "cache_path", "format_of"]

VERSION = 1
MAX_ENTRIES = 20_000  # the least recently used go first; ~4 MB of JSON
MAX_PLACES = 16  # registry/repository places remembered per blob
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_DIRNAME = "nix-docker-tools"
_FILENAME = "blob-info.json"


def format_of(encoding: str) -> Optional[str]:
    """The cache key part for a layer compression, or None when the bytes of
    that compression are not ours to predict (only gzip is cached)."""
    return compress.gzip_format() if encoding == "gzip" else None


def cache_path(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Where the cache lives for this environment, or None for no cache."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        home = env.get("HOME") or ""
        if not os.path.isabs(home) or home == "/homeless-shelter":
            return None
        base = os.path.join(home, ".cache")
    path = os.path.join(base, _DIRNAME, _FILENAME)
    if os.path.realpath(path).startswith("/nix/store/") or path.startswith("/nix/store/"):
        return None
    return path


def _check(key: str, digest: str, size: int) -> str:
    return hashlib.sha256(f"{key} {digest} {size}".encode()).hexdigest()[:16]


def _valid(key: str, entry) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("digest"), str)
        and _DIGEST.match(entry["digest"]) is not None
        and type(entry.get("size")) is int
        and entry["size"] >= 0
        and entry.get("check") == _check(key, entry["digest"], entry["size"])
        and isinstance(entry.get("places", []), list)
        and all(isinstance(p, str) for p in entry.get("places", []))
        and isinstance(entry.get("used", 0), (int, float))
    )


def _read(path: str) -> Dict[str, dict]:
    """The valid entries on disk; nothing for a missing or damaged file."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return {k: v for k, v in data["entries"].items() if isinstance(k, str) and _valid(k, v)}


class BlobCache:
    """One process's view of the cache: read once, written back by ``save``."""

    def __init__(self, path: Optional[str], clock=time.time):
        self.path = path
        self.clock = clock
        self.entries: Dict[str, dict] = _read(path) if path else {}
        self.changed: Dict[str, dict] = {}

    @classmethod
    def default(cls, environ: Optional[Mapping[str, str]] = None) -> BlobCache:
        return cls(cache_path(environ))

    @staticmethod
    def key(diff_id: str, fmt: str) -> str:
        return f"{diff_id} {fmt}"

    def lookup(self, diff_id: str, fmt: str) -> Optional[Tuple[str, int, List[str]]]:
        """(compressed digest, size, places known to hold it), or None."""
        entry = self.entries.get(self.key(diff_id, fmt))
        if entry is None:
            return None
        return entry["digest"], entry["size"], list(entry.get("places", []))

    def remember(self, diff_id: str, fmt: str, digest: str, size: int, places: Iterable[str] = ()) -> None:
        """``diff_id`` compressed as ``fmt`` is ``digest`` (``size`` bytes),
        held at ``places`` (``host/repository``) besides those known."""
        if not (_DIGEST.match(diff_id) and _DIGEST.match(digest)):
            return
        key = self.key(diff_id, fmt)
        old = self.entries.get(key)
        known = list(old.get("places", [])) if old and old["digest"] == digest and old["size"] == size else []
        for place in places:
            if place in known:
                known.remove(place)
            known.insert(0, place)  # most recent first
        entry = {
            "digest": digest,
            "size": size,
            "check": _check(key, digest, size),
            "places": known[:MAX_PLACES],
            "used": round(self.clock()),
        }
        self.entries[key] = self.changed[key] = entry

    def forget(self, diff_id: str, fmt: str) -> None:
        """Drop an entry the registry contradicted (it is rewritten when the
        layer's real digest is learned)."""
        self.entries.pop(self.key(diff_id, fmt), None)

    def save(self) -> None:
        """Merge this process's changes into the file; silent on failure."""
        if not self.path or not self.changed:
            return
        import tempfile  # and random, which it loads: only when there is something to save

        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, exist_ok=True)
            lock = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return
        try:
            _lock(lock)
            merged = _read(self.path)
            for key, entry in self.changed.items():
                old = merged.get(key)
                if old is not None and old["digest"] == entry["digest"] and old["size"] == entry["size"]:
                    places = entry["places"] + [p for p in old.get("places", []) if p not in entry["places"]]
                    entry = dict(entry, places=places[:MAX_PLACES])
                merged[key] = entry
            if len(merged) > MAX_ENTRIES:
                newest = sorted(merged.items(), key=lambda kv: kv[1].get("used", 0), reverse=True)
                merged = dict(newest[:MAX_ENTRIES])
            data = json.dumps({"version": VERSION, "entries": merged}, sort_keys=True).encode()
            fd, tmp = tempfile.mkstemp(prefix=_FILENAME + ".", dir=directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
            self.changed.clear()
        except OSError:
            pass
        finally:
            os.close(lock)


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking; the rename still keeps the file whole
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
