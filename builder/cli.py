"""Command line: one subcommand per job; the only place that prints errors
and chooses exit codes.

Build commands (run by Nix, configured by ``.attrs.json``):
  customise, customise-fakeroot, layers, layer, files, merge, image-layer, export, script, archive,
  multiarch, push-script, pull-image
User commands:
  stream DESCRIPTION [--format docker|oci|oci-dir] [--compress none|gzip|zstd] [--output PATH]
                     [--push [docker://]HOST[:PORT]/NAME:TAG [--insecure]]
  push SOURCE [REF] [--insecure] [--format oci|docker] [--compress none|gzip|zstd]
  prefetch REF [--os OS] [--arch ARCH] [--variant V] [--insecure] [--json]
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import List, Optional

from .errors import BuildError

__all__ = ["main"]


def _cmd_customise(args) -> None:
    from . import customise, spec
    customise.customise(spec.load_attrs())


def _cmd_customise_fakeroot(args) -> None:
    from . import customise
    customise.main_fakeroot()


def _cmd_files(args) -> None:
    from . import files, spec
    files.write_files(spec.load_attrs())


def _cmd_layer(args) -> None:
    from . import assemble, spec
    assemble.build_layer(spec.load_attrs())


def _cmd_image_layer(args) -> None:
    from . import buildimage, spec
    buildimage.build_image_layer(spec.load_attrs())


def _cmd_image_layer_fakeroot(args) -> None:
    from . import buildimage
    buildimage.build_image_layer_fakeroot()


def _cmd_export(args) -> None:
    from . import export, spec
    export.export_image(spec.load_attrs())


def _cmd_merge(args) -> None:
    from . import merge, spec
    merge.merge_images(spec.load_attrs())


def _cmd_layers(args) -> None:
    from . import assemble, spec
    assemble.assemble(spec.load_attrs())


def _cmd_script(args) -> None:
    """The stream executable: a Python script bound to one description."""
    from . import spec
    attrs = spec.load_attrs()
    python = attrs.str("python", required=True)
    text = (f"#!{python} -IB\n"
            "# Writes the image to stdout: $(nix-build ...) | podman load\n"
            "# Options: --format docker|oci|oci-dir, --compress none|gzip|zstd, --output PATH,\n"
            "#   --push [docker://]HOST[:PORT]/NAME:TAG [--insecure]\n"
            "import sys\n"
            f"sys.path.insert(0, {attrs.str('src', required=True)!r})\n"
            "from builder.cli import main\n"
            f"sys.exit(main(['stream', {attrs.str('description', required=True)!r}, *sys.argv[1:]]))\n")
    out = attrs.out
    with open(out, "w") as f:
        f.write(text)
    os.chmod(out, 0o555)


def _cmd_archive(args) -> None:
    """buildLayeredImage: the stream, compressed as a whole, into the store."""
    from . import spec
    from .stream import stream
    attrs = spec.load_attrs()
    compressor = attrs.str("compressor", "gz")
    outer = {"gz": "gzip", "zstd": "zstd", "none": "none"}.get(compressor)
    if outer is None:
        raise BuildError(f'compressor: unknown value {compressor!r}: expected "gz", "zstd" or "none"')
    stream(attrs.str("description", required=True), output=attrs.out, archive_compression=outer,
           fmt=attrs.str("format", "docker"), layer_compression=attrs.str("layerCompression", "none"),
           zstd_program=attrs.str("zstd"))


def _cmd_stream(args) -> None:
    if args.push:
        if args.output:
            raise BuildError("--push and --output: give one")
        args.source, args.ref = args.description, args.push
        return _cmd_push(args)
    if args.insecure:
        raise BuildError("--insecure goes with --push")
    from .stream import stream
    stream(args.description, output=args.output, fmt=args.format,
           layer_compression=args.compress)


def _cmd_push(args) -> None:
    from .publish import push_target
    digest = push_target(args.source, args.ref, insecure=args.insecure, fmt=args.format,
                         layer_compression=args.compress)
    print(digest, flush=True)


def _cmd_prefetch(args) -> None:
    from .pull_image import prefetch
    prefetch(args.ref, os_=args.os, arch=args.arch, variant=args.variant, insecure=args.insecure,
             final_image_name=args.final_image_name, final_image_tag=args.final_image_tag,
             as_json=args.json)


def _cmd_multiarch(args) -> None:
    from . import multiarch, spec
    multiarch.build_multiarch(spec.load_attrs())


def _cmd_push_script(args) -> None:
    from . import publish, spec
    publish.write_push_script(spec.load_attrs())


def _cmd_pull_image(args) -> None:
    from . import pull_image, spec
    pull_image.pull_image(spec.load_attrs())


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one ``error:`` line, like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (--help lists the options)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="builder", description="Build Docker/OCI images from Nix store paths.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, fn, help_text in [
        ("customise", _cmd_customise, "build the customisation layer (inside a Nix build)"),
        ("customise-fakeroot", _cmd_customise_fakeroot, argparse.SUPPRESS),
        ("layers", _cmd_layers, "build an image description (inside a Nix build)"),
        ("layer", _cmd_layer, "build the description of explicit layers (inside a Nix build)"),
        ("files", _cmd_files, "write a small tree of files (inside a Nix build)"),
        ("merge", _cmd_merge, "merge image archives into one (inside a Nix build)"),
        ("image-layer", _cmd_image_layer, "build buildImage's layer (inside a Nix build)"),
        ("image-layer-fakeroot", _cmd_image_layer_fakeroot, argparse.SUPPRESS),
        ("export", _cmd_export, "write an image's root filesystem as one tar (inside a Nix build)"),
        ("script", _cmd_script, "write a stream executable (inside a Nix build)"),
        ("archive", _cmd_archive, "write an image archive into the store (inside a Nix build)"),
        ("multiarch", _cmd_multiarch, "describe a multi-platform image (inside a Nix build)"),
        ("push-script", _cmd_push_script, "write a copy-to-registry executable (inside a Nix build)"),
        ("pull-image", _cmd_pull_image, "fetch an image into a docker archive (inside a Nix build)"),
    ]:
        kwargs = {} if help_text is argparse.SUPPRESS else {"help": help_text}
        sub.add_parser(name, **kwargs).set_defaults(fn=fn)
    s = sub.add_parser("stream", help="write an image described by DESCRIPTION")
    s.add_argument("description")
    s.add_argument("--format", choices=["docker", "oci", "oci-dir"],
                   help="docker archive (default), OCI archive, or OCI layout directory "
                        "(with --push: docker or OCI media types)")
    s.add_argument("--compress", choices=["none", "gzip", "zstd"],
                   help="compression of the layers (default: the image's layerCompression)")
    s.add_argument("-o", "--output", help="a file (or, for oci-dir, a directory) instead of stdout")
    s.add_argument("--push", metavar="REF", help="push to [docker://]HOST[:PORT]/NAME:TAG instead")
    s.add_argument("--insecure", action="store_true", help="with --push: plain http, no TLS")
    s.set_defaults(fn=_cmd_stream)
    s = sub.add_parser("push", help="push an image of this project to a registry")
    s.add_argument("source", help="a stream executable or image description")
    s.add_argument("ref", nargs="?", help="[docker://]HOST[:PORT]/NAME:TAG (default: the image's own)")
    s.add_argument("--insecure", action="store_true", help="plain http, no TLS")
    s.add_argument("--format", choices=["docker", "oci"], help="media types (default oci)")
    s.add_argument("--compress", choices=["none", "gzip", "zstd"],
                   help="compression of the layers (default: the image's layerCompression)")
    s.set_defaults(fn=_cmd_push)
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
