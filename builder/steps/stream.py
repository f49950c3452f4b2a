"""Stream time: write a described image to an archive, one pass, no hashing.

The description's digests were computed at build time; here every layer's
bytes are written once. A size check guards each member (see
docker_archive._member); tests hash the whole output against the digests.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, List, Optional

from builder.errors import BuildError
from builder.formats.docker_archive import write_docker_archive
from builder.formats.load import load_target, note_unknown_digests
from builder.model.image import Image, Layer
from builder.registry.blobcache import BlobCache, format_of
from builder.report import Progress, ProgressSink, human_size
from builder.sinks.output import open_output
from builder.sinks.sink import Sink
from builder.steps.known import encodings_of
from builder.steps.scripts import script_text, write_executable

if TYPE_CHECKING:
    # The build steps' records (dataclasses, over 20 ms): a stream needs none.
    from builder.contract import ArchiveSpec, ScriptSpec

__all__ = ["FORMATS", "stream"]

FORMATS = ("docker", "oci", "oci-dir")


def _is_directory(output: Optional[str]) -> bool:
    if not output or output == "-":
        return False
    return output.endswith("/") or os.path.isdir(output)


def stream(
    description: str,
    *,
    output: Optional[str] = None,
    fmt: Optional[str] = None,
    layer_compression: Optional[str] = None,
    archive_compression: str = "none",
    zstd_program: Optional[str] = None,
) -> None:
    """Write the image(s) behind ``description`` (a description, a
    multi-platform description or a stream executable).

    ``fmt``: "docker" (the default for one image), "oci" (one archive with
    index.json and manifest.json; the default for several platforms) or
    "oci-dir" (an OCI layout directory at ``output``, also chosen when
    ``output`` is a directory or ends in /). ``layer_compression`` None
    means the one whose digests the build recorded (layerCompression).
    ``zstd_program`` compresses the whole archive where Python cannot.
    """
    loaded = load_target(description)
    encoding = layer_compression or loaded.layer_compression
    encodings_of(encoding, "--compress")
    to_directory = _is_directory(output)
    if fmt is None:
        fmt = "oci-dir" if to_directory else "oci" if loaded.multi else "docker"
    elif fmt == "oci" and to_directory:
        fmt = "oci-dir"
    if fmt not in FORMATS:
        raise BuildError(f"unknown format {fmt!r}: expected docker, oci or oci-dir")
    if fmt == "docker" and loaded.multi:
        raise BuildError(
            f"{loaded.repo_tag} is a multi-platform image; a docker archive holds one "
            "image per tag: use --format oci (or oci-dir)"
        )
    if fmt == "docker" and to_directory:
        raise BuildError(
            f"--output {output}: a directory; a docker archive is a file "
            "(--format oci-dir writes an OCI layout directory)"
        )
    note_unknown_digests(loaded, encoding)
    progress = watch_layers(loaded.images, encoding, f"writing {loaded.repo_tag}")
    images = [(loaded.target, [loaded.repo_tag])]
    if fmt == "oci-dir":
        if not output or output == "-":
            raise BuildError("--format oci-dir writes a directory: give --output DIR")
        if archive_compression != "none":
            raise BuildError("an OCI layout directory is not compressed as a whole")
        from builder.formats.oci_layout import write_oci_layout

        write_oci_layout(output, images, encoding)
    elif fmt == "docker":
        with open_output(output, archive_compression, zstd_program) as sink:
            write_docker_archive(sink, [(loaded.images[0], [loaded.repo_tag])], encoding)
    else:
        from builder.formats.oci_layout import write_oci_archive

        with open_output(output, archive_compression, zstd_program) as sink:
            write_oci_archive(sink, images, encoding)
    progress.close()
    _remember_digests(loaded.images, encoding)


def _remember_digests(images, encoding: str) -> None:
    """The compressed digests this stream learned, for a later push (the
    blob-info cache; none inside a Nix build, which has no home)."""
    fmt = format_of(encoding)
    if fmt is None:
        return
    cache = BlobCache.default()
    for image in images:
        for layer in image.layers:
            if encoding in layer.known:
                cache.remember(layer.diff_id, fmt, *layer.known[encoding])
    cache.save()


def watch_layers(images: List[Image], encoding: str, what: str) -> Progress:
    """Progress over the layers' tar bytes as they are made (the measure
    of work whatever the compression): a line per layer, bytes done of the
    total, once the whole takes more than a second (report.Progress).
    Layers whose ``encoding`` digest the build did not record are made
    twice, and counted so."""
    layers = list({id(layer): layer for image in images for layer in image.layers}.values())
    twice = [
        layer
        for layer in layers
        if encoding != "none"
        and encoding not in layer.known
        and not (layer.native is not None and layer.native[0] == encoding)
    ]
    progress = Progress(what, sum(layer.size for layer in layers) + sum(layer.size for layer in twice))
    twice_ids = {id(layer) for layer in twice}
    for i, layer in enumerate(layers, 1):
        _watch(layer, f"layer {i}/{len(layers)}: {human_size(layer.size)}", progress, id(layer) in twice_ids)
    return progress


def _watch(layer: Layer, line: str, progress: Progress, twice: bool) -> None:
    write_tar = layer.write_tar
    passes = [0]

    def counted(sink: Sink) -> None:
        passes[0] += 1
        first_of_two = twice and passes[0] == 1
        progress.item(line + (", compressing it to learn its digest" if first_of_two else ""))
        write_tar(ProgressSink(sink, progress))

    layer.write_tar = counted
    if layer.native is not None:
        encoding, copy = layer.native

        def copied(sink: Sink) -> None:
            # Stored bytes copied as they are: counted as the layer's size.
            progress.item(line)
            copy(sink)
            progress.add(layer.size)

        layer.native = (encoding, copied)


def _program(out: str) -> str:
    """The executable's name in its --help: the store path's name, ``stream-NAME``."""
    return os.path.basename(out).split("-", 1)[-1]


def write_stream_script(spec: ScriptSpec) -> None:
    """The stream executable: a Python script bound to one description."""
    comments = [
        "Writes the image to stdout: $(nix-build ...) | podman load",
        "Options: --format docker|oci|oci-dir, --compress none|gzip|zstd, --output PATH,",
        "  --push [docker://]HOST[:PORT]/NAME:TAG [--insecure]; --help shows examples",
    ]
    text = script_text(spec.python, spec.src, comments, f"'stream', {spec.description!r}", _program(spec.out))
    write_executable(spec.out, text)


def write_archive(spec: ArchiveSpec) -> None:
    """buildLayeredImage and friends: the stream, compressed as a whole, into the store."""
    stream(
        spec.description,
        output=spec.out,
        archive_compression={"gz": "gzip", "zstd": "zstd", "none": "none"}[spec.compressor],
        fmt=spec.format,
        layer_compression=spec.layer_compression,
        zstd_program=spec.zstd,
    )
