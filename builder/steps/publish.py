"""Pushing an image of this project to a registry, and the ``copyToRegistry``
executable that does it (like nix2container's).

``push_target`` is what ``stream --push REF``, ``builder push`` and the
copy-to-registry script all run: the image's layers as the build described
them, each skipped when the registry already has it (an unchanged layer is
never read), manifests last. Progress goes to stderr; the digest the tag
now points at is the only line on stdout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from builder.errors import BuildError, RegistryError
from builder.formats.load import load_target, note_unknown_digests
from builder.registry.blobcache import BlobCache, format_of
from builder.registry.push import push
from builder.report import human_size, progress_line
from builder.steps.known import encodings_of
from builder.steps.scripts import script_text, write_bin

if TYPE_CHECKING:
    from builder.contract import CommandScriptSpec, PushScriptSpec

__all__ = ["push_target", "write_push_script"]

# --format as a manifest flavour: the archive formats' registry equivalents.
_FLAVOURS = {None: "oci", "oci": "oci", "oci-dir": "oci", "docker": "docker"}


def push_target(
    source: str,
    ref: Optional[str],
    *,
    insecure: bool = False,
    fmt: Optional[str] = None,
    layer_compression: Optional[str] = None,
    attach_sbom: Optional[str] = None,
) -> str:
    """Push the image(s) behind ``source`` to ``ref`` (``[docker://]HOST[:PORT]/NAME:TAG``;
    None: the image's own name and tag). Returns the pushed digest. With
    ``attach_sbom`` ("spdx" or "cyclonedx"), the SBOM follows as an OCI
    artifact whose subject is the pushed manifest."""
    loaded = load_target(source)
    if attach_sbom and loaded.multi:
        raise BuildError("--attach-sbom: a multi-platform image; SBOMs are per platform image")
    encoding = layer_compression or loaded.layer_compression
    encodings_of(encoding, "--compress")
    if fmt not in _FLAVOURS:
        raise BuildError(f"unknown format {fmt!r}: expected docker or oci")
    target = ref or loaded.repo_tag
    cache = BlobCache.default()
    unknown = _not_remembered(loaded.images, encoding, cache)
    if unknown:
        note_unknown_digests(loaded, encoding, pushing=True, missing=unknown)
    try:
        result = push(
            loaded.target, target, insecure=insecure, encoding=encoding, flavour=_FLAVOURS[fmt], blob_cache=cache
        )
    except RegistryError as e:
        if not insecure and "TLS with" in str(e):
            raise RegistryError(f"{e} (a registry without TLS needs --insecure)") from None
        raise
    progress_line(
        f"{len(result.uploaded)} blob(s) uploaded ({human_size(result.bytes_uploaded)}), "
        f"{len(result.skipped)} already present, {len(result.mounted)} mounted, "
        f"{len(result.manifests)} manifest(s)"
    )
    if attach_sbom:
        from builder.steps.sbom import attach_sbom as attach

        attach(
            source, target, result.digest, encoding=encoding, flavour=_FLAVOURS[fmt], insecure=insecure, fmt=attach_sbom
        )
    return result.digest


def _not_remembered(images, encoding: str, cache: BlobCache) -> int:
    """Layers whose compressed digest neither the build recorded nor the
    blob-info cache has (each distinct layer once)."""
    fmt = format_of(encoding)
    layers = {layer.diff_id: layer for image in images for layer in image.layers}.values()
    return sum(
        1
        for layer in layers
        if encoding not in layer.known and (fmt is None or cache.lookup(layer.diff_id, fmt) is None)
    )


def write_push_script(spec: PushScriptSpec) -> None:
    """``copyToRegistry``: ``$out/bin/copy-to-registry [REF] [--insecure] ...``
    pushes the image; without REF, to its own name and tag."""
    comments = [
        "Pushes the image: copy-to-registry [[docker://]HOST[:PORT]/NAME:TAG] [--insecure]",
        "  [--format oci|docker] [--compress none|gzip|zstd]; --help shows examples",
    ]
    text = script_text(spec.python, spec.src, comments, f"'push', {spec.description!r}", "copy-to-registry")
    write_bin(spec.out, "copy-to-registry", text)


def write_command_script(spec: CommandScriptSpec) -> None:
    """``$out/bin/PROGRAM``: one user command (``prefetch``) on its own."""
    cert = f"os.environ.setdefault('SSL_CERT_FILE', {spec.ssl_cert_file!r})\n" if spec.ssl_cert_file else ""
    comments = [f"{spec.program} --help shows its options and examples"]
    text = script_text(spec.python, spec.src, comments, repr(spec.command), spec.program, setup=cert)
    write_bin(spec.out, spec.program, text)
