"""Command line: one subcommand per job; the only place that prints errors
and chooses exit codes.

Build commands, run inside Nix builds and configured by ``.attrs.json``, are
listed in ``_BUILD_STEPS``; the commands users run (stream, push, copy,
prefetch, explain, sbom) are defined in ``_parser``. ``--help`` shows them.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from typing import Callable, List, Optional, Tuple, Type

from builder import contract
from builder.errors import BuildError

__all__ = ["main"]


# Build steps run inside Nix builds: each is a module's function that takes
# its typed record of the derivation's attributes (.attrs.json, read by
# contract.load). Modules load only when used.
_BUILD_STEPS: List[Tuple[str, str, Type[contract.Spec], Optional[str]]] = [
    ("customise", "steps.customise.customise", contract.CustomiseSpec, "build the customisation layer"),
    ("customise-fakeroot", "steps.customise.customise_fakeroot", contract.CustomiseSpec, None),
    ("layers", "steps.assemble.assemble", contract.LayersSpec, "build an image description"),
    ("layer", "steps.assemble.build_layer", contract.LayerSpec, "build the description of explicit layers"),
    ("files", "steps.files.write_files", contract.FilesSpec, "write a small tree of files"),
    ("merge", "steps.merge.merge_images", contract.MergeSpec, "merge image archives into one"),
    ("image-layer", "steps.buildimage.build_image_layer", contract.ImageLayerSpec, "build buildImage's layer"),
    ("image-layer-fakeroot", "steps.buildimage.build_image_layer_fakeroot", contract.ImageLayerSpec, None),
    ("export", "steps.export.export_image", contract.ExportSpec, "write an image's root filesystem as one tar"),
    ("script", "steps.stream.write_stream_script", contract.ScriptSpec, "write a stream executable"),
    ("archive", "steps.stream.write_archive", contract.ArchiveSpec, "write an image archive into the store"),
    ("multiarch", "steps.multiarch.build_multiarch", contract.MultiarchSpec, "describe a multi-platform image"),
    ("push-script", "steps.publish.write_push_script", contract.PushScriptSpec, "write a copy-to-registry executable"),
    ("copy-script", "steps.copy.write_copy_script", contract.CopyScriptSpec, "write a copy-to executable"),
    ("pull-image", "steps.pull_image.pull_image", contract.PullImageSpec, "fetch an image into a docker archive"),
    ("sbom-file", "steps.sbom.write_sbom", contract.SbomFileSpec, "write an image's SBOM"),
]


def _build_step(target: str, spec_type: Type[contract.Spec]) -> Callable[[argparse.Namespace], None]:
    module, function = target.rsplit(".", 1)

    def run(args: argparse.Namespace) -> None:
        spec = contract.load(spec_type)
        getattr(importlib.import_module(f".{module}", __package__), function)(spec)

    return run


def _cmd_stream(args) -> None:
    if args.explain or args.sbom:
        if args.push or args.output or args.format:
            raise BuildError(
                "--explain and --sbom print about the image instead of writing it: no --push, --output or --format"
            )
        if args.explain and args.sbom:
            raise BuildError("--explain and --sbom: give one")
        args.source = args.description
        return _cmd_explain(args) if args.explain else _cmd_sbom(args)
    if args.why or args.json:
        raise BuildError("--path and --json go with --explain")
    if args.attach_sbom and not args.push:
        raise BuildError("--attach-sbom goes with --push")
    if args.push:
        if args.output:
            raise BuildError("--push and --output: give one")
        args.source, args.ref = args.description, args.push
        return _cmd_push(args)
    if args.insecure:
        raise BuildError("--insecure goes with --push")
    from builder.steps.stream import stream

    stream(args.description, output=args.output, fmt=args.format, layer_compression=args.compress)


def _cmd_push(args) -> None:
    from builder.steps.publish import push_target

    digest = push_target(
        args.source,
        args.ref,
        insecure=args.insecure,
        fmt=args.format,
        layer_compression=args.compress,
        attach_sbom=args.sbom_format if args.attach_sbom else None,
    )
    print(digest, flush=True)


def _cmd_copy(args) -> None:
    from builder.steps.copy import copy_to

    dest = args.dest
    if args.transport:
        # copy-to-docker-daemon [NAME:TAG], copy-to-podman [NAME:TAG]
        ref = dest or ""
        dest = ref if ref.startswith(args.transport + ":") else f"{args.transport}:{ref}"
    elif not dest:
        raise BuildError(
            "give a destination: docker://HOST/NAME:TAG, docker-daemon:NAME:TAG, containers-storage:NAME:TAG, "
            "docker-archive:FILE[:NAME:TAG], oci-archive:FILE[:TAG] or oci:DIR[:TAG]"
        )
    copy_to(args.source, dest, insecure=args.insecure, fmt=args.format, layer_compression=args.compress)


def _cmd_explain(args) -> None:
    from builder.steps.explain import explain

    explain(args.source, path=args.why, as_json=args.json, top=args.top)


def _cmd_sbom(args) -> None:
    from builder.steps.sbom import write_sbom_file

    write_sbom_file(args.source, args.sbom, args.sbom_format, args.compress)


def _sbom_options(s: argparse.ArgumentParser, with_file: bool) -> None:
    if with_file:
        s.add_argument("--sbom", metavar="FILE", help="write the image's SBOM to FILE (- for stdout) instead")
    s.add_argument(
        "--sbom-format", choices=["spdx", "cyclonedx"], default="spdx", help="SPDX 2.3 (default) or CycloneDX 1.5"
    )
    s.add_argument(
        "--attach-sbom", action="store_true", help="with --push: attach the SBOM to the pushed image (OCI referrers)"
    )


def _explain_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--path", dest="why", metavar="STOREPATH", help="why this store path (or name) is in the image")
    s.add_argument("--json", action="store_true", help="JSON instead of text")
    s.add_argument("--top", type=int, default=10, metavar="N", help="how many of the largest paths (default 10)")


def _cmd_prefetch(args) -> None:
    from builder.steps.pull_image import prefetch

    prefetch(
        args.ref,
        os_=args.os,
        arch=args.arch,
        variant=args.variant,
        insecure=args.insecure,
        final_image_name=args.final_image_name,
        final_image_tag=args.final_image_tag,
        as_json=args.json,
    )


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one ``error:`` line, like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (--help lists the options)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="builder", description="Build Docker/OCI images from Nix store paths.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, target, spec_type, help_text in _BUILD_STEPS:
        step = sub.add_parser(name, help=help_text + " (inside a Nix build)") if help_text else sub.add_parser(name)
        step.set_defaults(fn=_build_step(target, spec_type))
    s = sub.add_parser("stream", help="write an image described by DESCRIPTION")
    s.add_argument("description")
    s.add_argument(
        "--format",
        choices=["docker", "oci", "oci-dir"],
        help="docker archive (default), OCI archive, or OCI layout directory (with --push: docker or OCI media types)",
    )
    s.add_argument(
        "--compress",
        choices=["none", "gzip", "zstd"],
        help="compression of the layers (default: the image's layerCompression)",
    )
    s.add_argument("-o", "--output", help="a file (or, for oci-dir, a directory) instead of stdout")
    s.add_argument("--push", metavar="REF", help="push to [docker://]HOST[:PORT]/NAME:TAG instead")
    s.add_argument("--insecure", action="store_true", help="with --push: plain http, no TLS")
    s.add_argument("--explain", action="store_true", help="print the image's layers and store paths instead")
    _explain_options(s)
    _sbom_options(s, with_file=True)
    s.set_defaults(fn=_cmd_stream)
    s = sub.add_parser("push", help="push an image of this project to a registry")
    s.add_argument("source", help="a stream executable or image description")
    s.add_argument("ref", nargs="?", help="[docker://]HOST[:PORT]/NAME:TAG (default: the image's own)")
    s.add_argument("--insecure", action="store_true", help="plain http, no TLS")
    s.add_argument("--format", choices=["docker", "oci"], help="media types (default oci)")
    s.add_argument(
        "--compress",
        choices=["none", "gzip", "zstd"],
        help="compression of the layers (default: the image's layerCompression)",
    )
    _sbom_options(s, with_file=False)
    s.set_defaults(fn=_cmd_push)
    s = sub.add_parser("copy", help="copy an image of this project to a destination, as skopeo spells it")
    s.add_argument("source", help="a stream executable or image description")
    s.add_argument(
        "dest",
        nargs="?",
        metavar="DEST",
        help="docker://HOST/NAME:TAG, docker-daemon:NAME:TAG (Engine API at $DOCKER_HOST), "
        "containers-storage:NAME:TAG (podman load), docker-archive:FILE[:NAME:TAG], "
        "oci-archive:FILE[:TAG], oci:DIR[:TAG]",
    )
    s.add_argument("--insecure", action="store_true", help="docker://: plain http, no TLS")
    s.add_argument("--format", choices=["docker", "oci"], help="docker://: media types (default oci)")
    s.add_argument(
        "--compress",
        choices=["none", "gzip", "zstd"],
        help="compression of the layers (default: the image's layerCompression)",
    )
    s.add_argument("--transport", choices=["docker-daemon", "containers-storage"], help=argparse.SUPPRESS)
    s.set_defaults(fn=_cmd_copy)
    s = sub.add_parser("explain", help="what is in an image: layers, store paths, and why a path is there")
    s.add_argument("source", metavar="IMAGE", help="a stream executable or image description")
    _explain_options(s)
    s.set_defaults(fn=_cmd_explain)
    s = sub.add_parser("sbom", help="write an image's SBOM (SPDX 2.3 or CycloneDX 1.5 JSON)")
    s.add_argument("source", metavar="IMAGE", help="a stream executable or image description")
    s.add_argument("-o", "--output", dest="sbom", metavar="FILE", help="a file (default: stdout)")
    s.add_argument("--format", dest="sbom_format", choices=["spdx", "cyclonedx"], default="spdx")
    s.add_argument(
        "--compress",
        choices=["none", "gzip", "zstd"],
        help="the layer compression of the manifest the SBOM names (default: the image's layerCompression)",
    )
    s.set_defaults(fn=_cmd_sbom)
    s = sub.add_parser("prefetch", help="print pullImage arguments (imageDigest, hash) for REF")
    s.add_argument("ref", help="[docker://]NAME[:TAG|@DIGEST]")
    s.add_argument("--os", default="linux")
    s.add_argument("--arch", help="default: this machine's")
    s.add_argument("--variant")
    s.add_argument("--final-image-name", help="default: the name in REF")
    s.add_argument("--final-image-tag", help="default: the tag in REF, else latest")
    s.add_argument("--insecure", action="store_true", help="plain http, no TLS (tlsVerify = false)")
    s.add_argument("--json", action="store_true", help="JSON instead of a Nix attribute set")
    s.set_defaults(fn=_cmd_prefetch)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.fn(args)
    except BuildError as e:
        if not e.already_reported:
            print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (e.g. podman load failed): say so, quietly.
        sys.stderr.write("error: output pipe closed before the image was written\n")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        # A full disk is the machine's state, not a bug: one line, no traceback.
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror} (while writing the output)", file=sys.stderr)
        return 1
    return 0
