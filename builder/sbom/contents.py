"""What an image holds, as Nix knows it: the closure graph of its store
paths and the roots that pulled them in.

The conf build writes it next to the description (``contents.json``, read
only by the SBOM and ``explain``, never by the stream), from what Nix hands
the build: ``exportReferencesGraph`` (path, narHash, narSize, references per
store path), the ``contents`` with their ``meta`` licence and homepage, and
the config, whose store paths the customisation layer refers to.

Roots are where a chain of references starts: a ``contents`` element, a
path the ``config`` mentions, or a path the customisation layer's commands
left a reference to (``commands``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from builder.errors import SpecError, check_version
from builder.model.image import canonical_json

__all__ = [
    "CONTENTS_FILE",
    "ORIGINS",
    "VERSION",
    "Contents",
    "PathInfo",
    "Root",
    "contents_from_graph",
    "read_contents",
    "split_store_name",
    "store_name",
    "write_contents",
]

CONTENTS_FILE = "contents.json"
VERSION = 1
ORIGINS = ("contents", "config", "commands")

# A store path's base name: 32 characters of Nix base-32, a dash, the name.
_STORE_BASE = re.compile(r"^[0-9a-df-np-sv-z]{32}-(.+)$")


def store_name(path: str) -> str:
    """The name part of a store path (``/nix/store/<hash>-hello-2.12`` -> ``hello-2.12``)."""
    base = os.path.basename(path.rstrip("/"))
    match = _STORE_BASE.match(base)
    return match.group(1) if match else base


def split_store_name(name: str) -> Tuple[str, str]:
    """``builtins.parseDrvName``: the version starts after the first ``-``
    that is followed by a character other than a letter (``hello-2.12`` ->
    ``hello``, ``2.12``; ``python3.11-foo-1.0`` -> ``python3.11-foo``,
    ``1.0``; ``foo-`` -> ``foo-``, ``""``). Nix tests ``isalpha`` in the C
    locale: only ASCII letters count as letters."""
    for i in range(len(name) - 1):
        if name[i] == "-" and not ("a" <= name[i + 1].lower() <= "z"):
            return name[:i], name[i + 1 :]
    return name, ""


@dataclass(frozen=True)
class PathInfo:
    """One store path of the closure, as ``exportReferencesGraph`` gives it."""

    path: str
    nar_hash: str  # "sha256:<hex>"
    nar_size: int
    references: Tuple[str, ...]  # without the path itself, sorted

    @property
    def name(self) -> str:
        return store_name(self.path)


@dataclass(frozen=True)
class Root:
    """A store path the image holds because of its arguments."""

    path: str
    origin: str  # one of ORIGINS
    licenses: Tuple[str, ...] = ()  # SPDX identifiers from meta.license
    homepage: Optional[str] = None  # from meta.homepage


@dataclass
class Contents:
    paths: Dict[str, PathInfo] = field(default_factory=dict)
    roots: List[Root] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "version": VERSION,
            "paths": [
                {"path": p.path, "narHash": p.nar_hash, "narSize": p.nar_size, "references": list(p.references)}
                for p in sorted(self.paths.values(), key=lambda p: p.path)
            ],
            "roots": [
                {
                    "path": r.path,
                    "origin": r.origin,
                    "licenses": list(r.licenses),
                    **({"homepage": r.homepage} if r.homepage else {}),
                }
                for r in sorted(self.roots, key=lambda r: (r.path, r.origin))
            ],
        }

    @classmethod
    def from_json(cls, doc: dict) -> Contents:
        paths = {}
        for node in doc["paths"]:
            info = PathInfo(node["path"], node["narHash"], int(node["narSize"]), tuple(node["references"]))
            paths[info.path] = info
        roots = [Root(r["path"], r["origin"], tuple(r.get("licenses", ())), r.get("homepage")) for r in doc["roots"]]
        return cls(paths, roots)

    def root_of(self, path: str) -> List[Root]:
        return [r for r in self.roots if r.path == path]


# --- from what Nix hands the build ----------------------------------------------------

_SPDX_ID = re.compile(r"^[A-Za-z0-9.+-]+$")
_URL = re.compile(r"^https?://[^\s]+$")


def _licenses(value) -> Tuple[str, ...]:
    """meta.license's SPDX identifiers, as the Nix side passed them (a list
    of spdxId strings); anything that is not an identifier is dropped."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(sorted({v for v in value if isinstance(v, str) and _SPDX_ID.match(v)}))


def _homepage(value) -> Optional[str]:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and _URL.match(value) else None


def contents_from_graph(
    nodes: Iterable[dict],
    *,
    contents: Iterable[dict],
    helpers: Iterable[str],
    config: object,
    nar_hash: Callable[[str], str],
) -> Contents:
    """The record from Nix's closure graph ``nodes``. ``contents``: one
    ``{path, licenses, homepage}`` per contents element; ``helpers``: build
    outputs in the graph that are not in the image (the customisation layer,
    buildImage's config file), whose references become roots, from
    ``config`` when the config mentions them, else from commands.
    ``nar_hash`` turns Nix's narHash spelling into ``sha256:<hex>``."""
    helpers = set(helpers)
    by_path = {n["path"]: n for n in nodes}
    result = Contents()
    for path, node in sorted(by_path.items()):
        if path in helpers:
            continue
        refs = sorted({r for r in node.get("references", ()) if r != path and r not in helpers})
        for r in refs:
            if r not in by_path:
                raise SpecError(f"closure graph: {path} refers to {r}, which is not in the graph")
        result.paths[path] = PathInfo(path, nar_hash(node["narHash"]), int(node.get("narSize", 0)), tuple(refs))
    seen = set()
    for element in contents:
        path = element.get("path")
        if path in result.paths and path not in seen:
            seen.add(path)
            result.roots.append(
                Root(path, "contents", _licenses(element.get("licenses")), _homepage(element.get("homepage")))
            )
    config_text = json.dumps(config, sort_keys=True)
    for helper in sorted(helpers & by_path.keys()):
        for r in sorted(set(by_path[helper].get("references", ()))):
            if r in result.paths and r not in seen:
                seen.add(r)
                result.roots.append(Root(r, "config" if r in config_text else "commands"))
    return result


def write_contents(out_dir: str, contents: Contents) -> None:
    with open(os.path.join(out_dir, CONTENTS_FILE), "wb") as f:
        f.write(canonical_json(contents.to_json()))


def read_contents(description_dir: str) -> Optional[Contents]:
    """The record next to a description; None for descriptions built before
    there was one (or for images whose closure Nix did not give)."""
    path = os.path.join(description_dir, CONTENTS_FILE)
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise SpecError(f"{path}: unreadable ({e})") from None
    check_version(doc, VERSION, "contents record", path)
    try:
        return Contents.from_json(doc)
    except (KeyError, TypeError, ValueError) as e:
        raise SpecError(f"{path}: damaged ({type(e).__name__}: {e})") from None
