"""SBOMs: the record the conf build keeps of the closure (``contents.json``),
the ``passthru.sbom`` build step, and the SBOM a stream writes (``--sbom``)."""

from __future__ import annotations

import os
import sys
from typing import Optional

from builder.contract import LayersSpec, SbomFileSpec
from builder.errors import BuildError
from builder.model.image import Blob
from builder.sbom import MEDIA_TYPES, check_format, render_sbom, sbom_filename
from builder.sbom.contents import contents_from_graph, write_contents
from builder.sbom.inventory import load_inventory
from builder.sinks.output import open_output
from builder.steps.nixdb import nar_hash_to_base16

__all__ = ["attach_sbom", "record_contents", "sbom_bytes", "write_sbom", "write_sbom_file"]


def record_contents(spec: LayersSpec, out: str) -> None:
    """Inside the conf build: the closure graph and the roots, next to the description.

    ``sbomClosure`` is the graph of what an image holds when its store
    paths are not layered from ``closure`` (buildImage's one layer)."""
    if spec.sbom_closure is not None:
        nodes = spec.sbom_closure
    elif spec.include_store_paths:
        nodes = spec.closure
    else:
        nodes = []
    contents = contents_from_graph(
        nodes,
        contents=spec.sbom_contents,
        helpers=spec.exclude_paths,
        config=spec.config,
        nar_hash=nar_hash_to_base16,
    )
    write_contents(out, contents)


def sbom_bytes(source: str, fmt: str = "spdx", encoding: Optional[str] = None) -> bytes:
    """The SBOM of the image behind ``source`` (a stream executable or a description)."""
    return render_sbom(load_inventory(source, encoding=encoding), check_format(fmt))


def write_sbom_file(source: str, output: Optional[str], fmt: str = "spdx", encoding: Optional[str] = None) -> None:
    """``--sbom FILE`` (``-``: stdout): written whole or not at all."""
    data = sbom_bytes(source, fmt, encoding)
    if not output or output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    with open_output(output, "none", None) as sink:
        sink.write(data)


def write_sbom(spec: SbomFileSpec) -> None:
    """``passthru.sbom``: the image's SBOM as a file in the store."""
    data = sbom_bytes(spec.description, spec.sbom_format)
    with open(spec.out, "wb") as f:
        f.write(data)
    os.chmod(spec.out, 0o444)


def attach_sbom(
    source: str,
    ref: str,
    pushed_digest: str,
    *,
    encoding: str,
    flavour: str,
    insecure: bool = False,
    fmt: str = "spdx",
) -> str:
    """After a push: the SBOM (naming the manifest just pushed) as an OCI
    artifact attached to it. Returns the artifact manifest's digest."""
    from builder.model.reference import parse_reference
    from builder.registry.client import RegistryClient
    from builder.registry.referrers import attach
    from builder.report import progress_line

    inv = load_inventory(source, encoding=encoding, flavour=flavour)
    if inv.subject.manifest.digest != pushed_digest:
        raise BuildError(f"SBOM: the pushed manifest is {pushed_digest}, the image's is {inv.subject.manifest.digest}")
    reference = parse_reference(ref)
    data = render_sbom(inv, check_format(fmt))
    artifact = Blob.from_bytes(MEDIA_TYPES[fmt], data)
    client = RegistryClient(reference, insecure=insecure, actions="pull,push")
    try:
        attached = attach(
            client,
            inv.subject.manifest,
            artifact,
            MEDIA_TYPES[fmt],
            annotations={"org.opencontainers.image.created": inv.subject.created},
            title=sbom_filename(inv.subject.name, fmt),
        )
    finally:
        client.close()
    progress_line(f"SBOM ({fmt}) attached to {pushed_digest}: {attached.digest} ({attached.scheme})")
    return attached.digest
