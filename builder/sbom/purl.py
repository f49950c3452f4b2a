"""Package URLs: ``pkg:nix/NAME@VERSION`` for store paths and
``pkg:oci/NAME@DIGEST?...`` for the image (purl-spec's oci type)."""

from __future__ import annotations

import urllib.parse
from typing import Dict, Optional

from builder.model.reference import registry_host

__all__ = ["nix_purl", "oci_purl"]


def _quote(text: str, safe: str = "") -> str:
    # purl-spec: percent-encode everything but unreserved characters.
    return urllib.parse.quote(text, safe=safe)


def _qualifiers(values: Dict[str, str]) -> str:
    parts = [f"{k}={_quote(v, safe='/')}" for k, v in sorted(values.items()) if v]
    return "?" + "&".join(parts) if parts else ""


def nix_purl(name: str, version: str, qualifiers: Optional[Dict[str, str]] = None) -> str:
    """``pkg:nix/hello@2.12``: a store path's name and version as Nix splits them."""
    purl = f"pkg:nix/{_quote(name)}"
    if version:
        purl += f"@{_quote(version)}"
    return purl + _qualifiers(qualifiers or {})


def oci_purl(name: str, tag: str, digest: str, arch: str = "", repository: Optional[str] = None) -> str:
    """``pkg:oci/app@sha256%3A...?arch=amd64&repository_url=host/team/app&tag=1.0``.
    ``repository``: where the image is (a pushed one); else the image's name
    when it names a registry host."""
    last = name.rsplit("/", 1)[-1].lower()
    qualifiers = {"arch": arch, "tag": tag}
    where = repository or (name if registry_host(name) else "")
    if where:
        qualifiers["repository_url"] = where
    return f"pkg:oci/{_quote(last)}@{_quote(digest)}" + _qualifiers(qualifiers)
