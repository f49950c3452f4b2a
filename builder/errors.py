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
]


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
