"""Reading the JSON handed over by Nix, with errors that name the argument.

Inside a build, Nix (``__structuredAttrs``) writes every attribute of the
derivation to ``.attrs.json``; that file is the builder's configuration.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from builder.errors import SpecError

__all__ = ["Attrs", "attrs_json_path", "load_attrs"]


class Attrs:
    """Typed access to a derivation's attributes."""

    def __init__(self, data: dict, origin: str = ".attrs.json"):
        self.data = data
        self.origin = origin

    def _get(self, key: str, types, default: Any, required: bool):
        if key not in self.data or self.data[key] is None:
            if required:
                raise SpecError(f"{self.origin}: missing {key}")
            return default
        value = self.data[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            raise SpecError(f"{key}: expected {_describe(types)}, got {type(value).__name__} {value!r:.80}")
        return value

    def str(self, key: str, default: Optional[str] = None, required: bool = False):
        return self._get(key, str, default, required)

    def int(self, key: str, default: Optional[int] = None, required: bool = False):
        return self._get(key, int, default, required)

    def bool(self, key: str, default: bool = False):
        return self._get(key, bool, default, False)

    def list(self, key: str, default=None):
        return self._get(key, list, [] if default is None else default, False)

    def dict(self, key: str, default=None):
        return self._get(key, dict, {} if default is None else default, False)

    @property
    def out(self) -> str:
        try:
            return self.data["outputs"]["out"]
        except (KeyError, TypeError):
            raise SpecError(f"{self.origin}: no outputs.out (is __structuredAttrs set?)") from None


def _tuple(types):
    return types if isinstance(types, tuple) else (types,)


def _describe(types) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", list: "a list", dict: "an attribute set"}
    return " or ".join(names.get(t, t.__name__) for t in _tuple(types))


def attrs_json_path() -> str:
    """Where Nix wrote ``.attrs.json``: ``$NIX_ATTRS_JSON_FILE``, except that
    some Nix versions (2.8 among them) set it to the build directory's path
    outside the sandbox, where a sandboxed build cannot see it
    (NixOS/nix#6736); the file is then in ``$NIX_BUILD_TOP``."""
    given = os.environ.get("NIX_ATTRS_JSON_FILE")
    if given and os.path.exists(given):
        return given
    top = os.environ.get("NIX_BUILD_TOP")
    if top and os.path.exists(os.path.join(top, ".attrs.json")):
        return os.path.join(top, ".attrs.json")
    return given or ".attrs.json"


def load_attrs(path: Optional[str] = None) -> Attrs:
    path = path or attrs_json_path()
    try:
        with open(path, "rb") as f:
            return Attrs(json.load(f), path)
    except FileNotFoundError:
        raise SpecError(
            f"{path}: not found (build commands run inside a Nix build with __structuredAttrs = true)"
        ) from None
    except ValueError as e:
        raise SpecError(f"{path}: not JSON ({e})") from None
