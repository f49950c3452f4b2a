"""Errors the builder reports as one line, without a traceback.

Anything else that escapes is a bug in the builder and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "DigestMismatch",
    "ImageFormatError",
    "RegistryError",
    "SpecError",
    "UnsafePathError",
    "check_version",
    "short_list",
    "short_text",
]

# An error is one line a person reads: a listing of 5,000 manifests is not.
MAX_LINE = 2000


def short_text(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters (input quoted in a message)."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def short_list(items, limit: int = 12) -> str:
    """The first ``limit`` items, each shortened, and how many more."""
    items = [short_text(str(i), 80) for i in items]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


class BuildError(Exception):
    """A user-caused problem: bad input, a bad base image, a failed command."""

    def __init__(self, message: str = "", *, already_reported: bool = False):
        super().__init__(message)
        # True when a child process already printed the one error line.
        self.already_reported = already_reported


class SpecError(BuildError, ValueError):
    """The JSON configuration from Nix (or the command line) is wrong."""


class ImageFormatError(BuildError):
    """An image archive or layout that cannot be read."""


class UnsafePathError(ImageFormatError):
    """A layer entry that would escape the root it is unpacked into."""


class DigestMismatch(BuildError):
    def __init__(self, what: str, expected: str, got: str):
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {got}")
        self.expected = expected
        self.got = got


class RegistryError(BuildError):
    def __init__(self, message: str, *, method: str = "", url: str = "", status: int = 0, temporary: bool = False):
        where = f"{method} {url}: " if method else ""
        super().__init__(f"{where}{message}")
        self.method = method
        self.url = url
        self.status = status
        self.temporary = temporary


def check_version(doc, expected: int, what: str, path: str) -> None:
    """A stored document (``image.json``, ...) of the version this builder
    reads, or one line saying which it is."""
    got = doc.get("version") if isinstance(doc, dict) else None
    if type(got) is not int or got != expected:
        raise SpecError(f"{path}: {what} version {got!r}, this builder reads {expected} (rebuild it)")
