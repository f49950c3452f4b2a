"""Command line: one subcommand per job; the only place that prints errors
and chooses exit codes.

Build commands (run by Nix, configured by ``.attrs.json``):
  customise, customise-fakeroot, layers, layer, files, merge, script, archive
User commands:
  stream DESCRIPTION [--format docker|oci] [--compress none|gzip|zstd] [--output PATH]
"""

from __future__ import annotations

import argparse
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
            "# Options: --format docker|oci, --compress none|gzip|zstd, --output PATH\n"
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
           fmt=attrs.str("format", "docker"), layer_compression=attrs.str("layerCompression", "none"))


def _cmd_stream(args) -> None:
    from .stream import stream
    stream(args.description, output=args.output, fmt=args.format,
           layer_compression=args.compress)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="builder", description="Build Docker/OCI images from Nix store paths.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, fn, help_text in [
        ("customise", _cmd_customise, "build the customisation layer (inside a Nix build)"),
        ("customise-fakeroot", _cmd_customise_fakeroot, argparse.SUPPRESS),
        ("layers", _cmd_layers, "build an image description (inside a Nix build)"),
        ("layer", _cmd_layer, "build the description of explicit layers (inside a Nix build)"),
        ("files", _cmd_files, "write a small tree of files (inside a Nix build)"),
        ("merge", _cmd_merge, "merge image archives into one (inside a Nix build)"),
        ("script", _cmd_script, "write a stream executable (inside a Nix build)"),
        ("archive", _cmd_archive, "write an image archive into the store (inside a Nix build)"),
    ]:
        kwargs = {} if help_text is argparse.SUPPRESS else {"help": help_text}
        sub.add_parser(name, **kwargs).set_defaults(fn=fn)
    s = sub.add_parser("stream", help="write an image described by DESCRIPTION")
    s.add_argument("description")
    s.add_argument("--format", choices=["docker", "oci"], default="docker")
    s.add_argument("--compress", choices=["none", "gzip", "zstd"], default="none",
                   help="compression of the layers inside the archive")
    s.add_argument("-o", "--output", help="a file to write instead of stdout")
    s.set_defaults(fn=_cmd_stream)
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
    return 0
