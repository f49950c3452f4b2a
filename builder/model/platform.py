"""Platforms: the one model of ``os/architecture/variant``.

A platform is a dict as image configs and index entries carry it
(``{"os": ..., "architecture": ..., "variant": ...}``), with Go's names
for architectures, as docker and registries spell them.
"""

from __future__ import annotations

import platform as _host
from typing import Dict, Optional, Sequence, Tuple

from builder.errors import BuildError, ImageFormatError, SpecError, short_list, short_text

__all__ = [
    "host_platform",
    "parse_platform",
    "platform_from_parts",
    "platform_matches",
    "platform_text",
    "select_descriptor",
]

Platform = Dict[str, str]

# uname machine -> (GOARCH, variant). The same table as nix/platform's
# goArch (arm64 is v8, as Nix writes it into configs).
_MACHINES: Dict[str, Tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "powerpc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "loongarch64": ("loong64", ""),
}


def host_platform(machine: Optional[str] = None) -> Platform:
    machine = machine or _host.machine()
    arch, variant = _MACHINES.get(machine, (machine, ""))
    p = {"architecture": arch, "os": "linux"}
    if variant:
        p["variant"] = variant
    return p


def parse_platform(text: str) -> Platform:
    """``linux/arm64/v8`` (as docker --platform writes it) -> a platform dict."""
    parts = text.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise BuildError(f"platform {text!r}: expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64")
    return platform_from_parts(*parts)


def platform_from_parts(os_: str, arch: str, variant: Optional[str] = None) -> Platform:
    """A platform from its parts as a user gave them (pullImage's os, arch, variant)."""
    for what, value in (("os", os_), ("arch", arch), ("variant", variant or "x")):
        if not value or "/" in value:
            raise SpecError(f"{what}: {value!r} is not a platform component")
    p = {"os": os_, "architecture": arch}
    if variant:
        p["variant"] = variant
    return p


def platform_matches(have: Optional[dict], want: dict) -> bool:
    """Empty or missing fields on either side match anything (image-spec index.md)."""
    have = have or {}
    return all(not want.get(k) or not have.get(k) or want[k] == have[k] for k in ("architecture", "os", "variant"))


def platform_text(p: Optional[dict]) -> str:
    """``os/arch[/variant]``, ``*`` for what is left open."""
    p = p if isinstance(p, dict) else {}
    parts = (p.get("os") or "*", p.get("architecture") or "*", p.get("variant"))
    return short_text("/".join(str(x) for x in parts if x), 80)


def _listing(entries: Sequence[dict], limit: int = 12) -> str:
    return short_list([platform_text(e.get("platform") if isinstance(e, dict) else None) for e in entries], limit)


def select_descriptor(entries: Sequence[dict], want: dict, what: str, prefer: Optional[dict] = None) -> dict:
    """The first entry for platform ``want`` (the spec's rule for several
    matches). ``prefer`` breaks ties when ``want`` leaves the architecture open."""
    matches = [e for e in entries if platform_matches(e.get("platform"), want)]
    if prefer and len(matches) > 1:
        preferred = [e for e in matches if platform_matches(e.get("platform"), prefer)]
        matches = preferred or matches
        if not preferred:
            raise ImageFormatError(
                f"{what}: no image for {platform_text(prefer)}; it has {_listing(entries)} (choose an architecture)"
            )
    if not matches:
        raise ImageFormatError(
            f"{what}: no image for platform {platform_text(want)}; it has {_listing(entries) or 'nothing'}"
        )
    return matches[0]
