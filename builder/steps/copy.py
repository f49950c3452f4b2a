"""``copyTo``, ``copyToDockerDaemon`` and ``copyToPodman`` (nix2container's
names): an image of this project copied to a destination spelt as skopeo
spells it, and the executables that do it.

Destinations:
  docker://HOST[:PORT]/NAME:TAG      a registry (as copyToRegistry)
  docker-daemon:[NAME:TAG]           the Docker daemon at $DOCKER_HOST (Engine API, POST /images/load)
  containers-storage:[NAME:TAG]      podman's storage (podman load)
  docker-archive:FILE[:NAME:TAG]     a docker archive file
  oci-archive:FILE[:TAG]             an OCI archive file
  oci:DIR[:TAG]                      an OCI layout directory (other tags there kept)
An empty NAME:TAG is the image's own. For oci and oci-archive, TAG may also
be NAME:TAG.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Mapping, Optional

from builder.contract import CopyScriptSpec
from builder.errors import BuildError, SpecError
from builder.formats.docker_archive import write_docker_archive
from builder.formats.load import Loaded, load_target, note_unknown_digests
from builder.formats.oci_layout import write_oci_archive, write_oci_layout
from builder.model.reference import check_image_name, check_tag, split_reference
from builder.sinks.output import open_output
from builder.sinks.sink import Sink
from builder.steps.known import encodings_of
from builder.steps.scripts import script_text, write_bin

__all__ = ["TRANSPORTS", "Destination", "copy_to", "parse_destination", "write_copy_script"]

TRANSPORTS = ("docker", "docker-daemon", "containers-storage", "docker-archive", "oci-archive", "oci")
_SPELLINGS = (
    "docker://HOST/NAME:TAG, docker-daemon:NAME:TAG, containers-storage:NAME:TAG, "
    "docker-archive:FILE[:NAME:TAG], oci-archive:FILE[:TAG], oci:DIR[:TAG]"
)


@dataclass(frozen=True)
class Destination:
    transport: str
    path: str  # the file or directory; the reference for docker://
    ref: str  # NAME:TAG, TAG, or "" (the image's own)


def parse_destination(text: str) -> Destination:
    """A skopeo-style destination. Paths end at the first ``:``, as in skopeo."""
    transport, colon, rest = text.partition(":")
    if not colon or transport not in TRANSPORTS:
        raise SpecError(f"destination {text!r}: expected one of {_SPELLINGS}")
    if transport == "docker":
        if not rest.startswith("//") or not rest[2:]:
            raise SpecError(f"destination {text!r}: a registry is docker://HOST[:PORT]/NAME:TAG")
        return Destination(transport, "", rest[2:])
    if transport in ("docker-daemon", "containers-storage"):
        return Destination(transport, "", rest)
    path, _, ref = rest.partition(":")
    if not path:
        raise SpecError(f"destination {text!r}: the {'directory' if transport == 'oci' else 'file'} is missing")
    return Destination(transport, path, ref)


def _name_tag(ref: str, own: str, what: str) -> str:
    """NAME:TAG to tag the copy with: ``ref`` checked, or the image's own."""
    if not ref:
        return own
    name, tag, digest = split_reference(ref)
    if digest:
        raise SpecError(f"{what} {ref!r}: a digest cannot name a copy; give NAME:TAG")
    check_image_name(name)
    return f"{name}:{check_tag(tag or 'latest')}"


def _oci_ref(ref: str, own: str, what: str) -> str:
    """For oci and oci-archive a bare TAG (skopeo's ref.name) keeps our name."""
    if ref and ":" not in ref and "/" not in ref:
        return f"{own.rsplit(':', 1)[0]}:{check_tag(ref)}"
    return _name_tag(ref, own, what)


def _one_image(loaded: Loaded, dest: str) -> None:
    if loaded.multi:
        raise BuildError(
            f"{loaded.repo_tag} is a multi-platform image; {dest} holds one image per tag: "
            "copy it to oci:DIR, oci-archive:FILE or docker://"
        )


def copy_to(
    source: str,
    destination: str,
    *,
    insecure: bool = False,
    fmt: Optional[str] = None,
    layer_compression: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    out=None,
) -> None:
    """Copy the image(s) behind ``source`` to ``destination``. What the
    destination answered (a pushed digest, ``Loaded image: ...``) goes to
    stdout; progress to stderr."""
    out = out or sys.stdout
    dest = parse_destination(destination)
    if dest.transport == "docker":
        from builder.steps.publish import push_target

        print(
            push_target(source, dest.ref, insecure=insecure, fmt=fmt, layer_compression=layer_compression),
            file=out,
            flush=True,
        )
        return
    if insecure:
        raise BuildError("--insecure goes with a docker:// destination")
    if fmt is not None:
        raise BuildError("--format goes with a docker:// destination (the transport names the format)")
    loaded = load_target(source)
    encoding = layer_compression or loaded.layer_compression
    encodings_of(encoding, "--compress")
    note_unknown_digests(loaded, encoding)
    if dest.transport in ("docker-daemon", "containers-storage"):
        from builder.registry.daemon import load_into_docker, load_into_podman

        tag = _name_tag(dest.ref, loaded.repo_tag, dest.transport)

        def write(sink: Sink) -> None:
            # docker 25+ and podman take an OCI archive, and pick the host's
            # platform from a multi-platform one; one image goes as a docker
            # archive, which every docker version loads.
            if loaded.multi:
                write_oci_archive(sink, [(loaded.target, [tag])], encoding)
            else:
                write_docker_archive(sink, [(loaded.images[0], [tag])], encoding)

        load = load_into_docker if dest.transport == "docker-daemon" else load_into_podman
        for line in load(write, environ):
            print(line, file=out, flush=True)
        return
    if dest.transport == "docker-archive":
        _one_image(loaded, destination)
        tag = _name_tag(dest.ref, loaded.repo_tag, "docker-archive")
        with open_output(dest.path) as sink:
            write_docker_archive(sink, [(loaded.images[0], [tag])], encoding)
        return
    tag = _oci_ref(dest.ref, loaded.repo_tag, dest.transport)
    if dest.transport == "oci-archive":
        if os.path.isdir(dest.path):
            raise BuildError(f"{destination}: {dest.path} is a directory; an OCI layout directory is oci:DIR")
        with open_output(dest.path) as sink:
            write_oci_archive(sink, [(loaded.target, [tag])], encoding)
    else:
        write_oci_layout(dest.path, [(loaded.target, [tag])], encoding)


# The executables: what each runs, as nix2container names them.
_SCRIPTS = {
    "copy-to": ("", "copy-to DEST [--insecure] [--format oci|docker] [--compress none|gzip|zstd]"),
    "copy-to-docker-daemon": ("docker-daemon", "copy-to-docker-daemon [NAME:TAG]  (DOCKER_HOST honoured)"),
    "copy-to-podman": ("containers-storage", "copy-to-podman [NAME:TAG]  (podman load)"),
}


def write_copy_script(spec: CopyScriptSpec) -> None:
    """``$out/bin/PROGRAM``: copyTo, copyToDockerDaemon or copyToPodman."""
    if spec.program not in _SCRIPTS:
        raise SpecError(f"program: {spec.program!r} is not one of {', '.join(sorted(_SCRIPTS))}")
    transport, usage = _SCRIPTS[spec.program]
    bound = f"'copy', {spec.description!r}" + (f", '--transport', {transport!r}" if transport else "")
    text = script_text(spec.python, spec.src, [f"Copies the image: {usage}"], bound, spec.program)
    write_bin(spec.out, spec.program, text)
