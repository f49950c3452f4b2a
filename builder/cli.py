"""Command line: one subcommand per job; the only place that prints errors
and chooses exit codes.

Build commands, run inside Nix builds and configured by ``.attrs.json``, are
listed in ``_BUILD_STEPS``; the commands users run (stream, push, copy,
prefetch, explain, sbom) are defined in ``_USER_COMMANDS`` and ``_parser``,
and run as the executables Nix writes (the stream executable,
copy-to-registry, copy-to, prefetch-image) through ``main(argv, prog=NAME)``
or ``main(argv)``. ``--help`` shows them, with examples.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import Callable, List, Optional, Tuple

from builder import report
from builder.errors import MAX_LINE, BuildError

__all__ = ["main"]


# Build steps run inside Nix builds: each is a module's function that takes
# its typed record of the derivation's attributes (.attrs.json, read by
# contract.load; the record's class named here). Modules, builder.contract
# among them, load only when used: a push does not pay for them.
_BUILD_STEPS: List[Tuple[str, str, str, Optional[str]]] = [
    ("customise", "steps.customise.customise", "CustomiseSpec", "build the customisation layer"),
    ("customise-fakeroot", "steps.customise.customise_fakeroot", "CustomiseSpec", None),
    ("layers", "steps.assemble.assemble", "LayersSpec", "build an image description"),
    ("layer", "steps.assemble.build_layer", "LayerSpec", "build the description of explicit layers"),
    ("files", "steps.files.write_files", "FilesSpec", "write a small tree of files"),
    ("merge", "steps.merge.merge_images", "MergeSpec", "merge image archives into one"),
    ("image-layer", "steps.buildimage.build_image_layer", "ImageLayerSpec", "build buildImage's layer"),
    ("image-layer-fakeroot", "steps.buildimage.build_image_layer_fakeroot", "ImageLayerSpec", None),
    ("export", "steps.export.export_image", "ExportSpec", "write an image's root filesystem as one tar"),
    ("export-fakeroot", "steps.export.export_image_fakeroot", "ExportSpec", None),
    ("script", "steps.stream.write_stream_script", "ScriptSpec", "write a stream executable"),
    ("archive", "steps.stream.write_archive", "ArchiveSpec", "write an image archive into the store"),
    ("multiarch", "steps.multiarch.build_multiarch", "MultiarchSpec", "describe a multi-platform image"),
    ("push-script", "steps.publish.write_push_script", "PushScriptSpec", "write a copy-to-registry executable"),
    (
        "command-script",
        "steps.publish.write_command_script",
        "CommandScriptSpec",
        "write a command's executable",
    ),
    ("copy-script", "steps.copy.write_copy_script", "CopyScriptSpec", "write a copy-to executable"),
    ("pull-image", "steps.pull_image.pull_image", "PullImageSpec", "fetch an image into a docker archive"),
    ("sbom-file", "steps.sbom.write_sbom", "SbomFileSpec", "write an image's SBOM"),
]


def _build_step(target: str, spec_type: str) -> Callable[[argparse.Namespace], None]:
    module, function = target.rsplit(".", 1)

    def run(args: argparse.Namespace) -> None:
        from builder import contract
        from builder.sinks import compress

        spec = contract.load(getattr(contract, spec_type))
        # pkgs.zstd's program, for every zstd layer this step reads or writes.
        compress.use_zstd(getattr(spec, "zstd", None))
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
        if args.format == "oci-dir":
            raise BuildError("--format oci-dir writes a directory; with --push give docker or oci (the media types)")
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


def _prefetch_ref(args) -> str:
    """nix-prefetch-docker's ways of naming the image, as one reference."""
    from builder.model.reference import split_reference

    given = [x for x in (args.image, args.image_name) if x]
    if len(given) != 1:
        raise BuildError("give the image once: IMAGE_NAME or --image-name NAME")
    name, tag, digest = split_reference(given[0])
    second = args.tag_or_digest
    if second and args.image_name:
        raise BuildError(f"{second!r}: with --image-name, give --image-tag or --image-digest")
    if second and not args.image:
        raise BuildError(f"{second!r}: a tag or digest follows IMAGE_NAME")
    extra_tag = args.image_tag or (second if second and not second.startswith("sha256:") else None)
    extra_digest = args.image_digest or (second if second and second.startswith("sha256:") else None)
    if (tag and extra_tag) or (digest and extra_digest) or (args.image_tag and second):
        raise BuildError("the tag (or digest) is given twice")
    tag, digest = tag or extra_tag, digest or extra_digest
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _cmd_prefetch(args) -> None:
    from builder.steps.pull_image import prefetch

    prefetch(
        _prefetch_ref(args),
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


# Where --push, copy-to-registry and prefetch find credentials (the help texts say it).
CREDENTIALS_HELP = """\
credentials (for the registry's host):
  REGISTRY_USERNAME and REGISTRY_PASSWORD; else $REGISTRY_AUTH_FILE alone;
  else the first of $XDG_RUNTIME_DIR/containers/auth.json (`podman login`),
  ~/.config/containers/auth.json, ~/.docker/config.json (`docker login`;
  $DOCKER_CONFIG moves it) and ~/.dockercfg that has the host. In each file a
  credHelpers or credsStore entry runs docker-credential-NAME first. None
  found: anonymous (public images, registries without auth)."""

_STREAM_EPILOG = (
    """\
Writes the image to stdout (a docker archive unless --format or --output say
otherwise), or pushes it with --push. stdout carries only the image; progress
goes to stderr (--quiet: none).

examples:
  {prog} | podman load                         # or: docker load
  {prog} --format oci --output app.tar         # an OCI archive, written whole or not at all
  {prog} --output layout/                      # an OCI layout: skopeo inspect oci:layout:TAG
  {prog} --compress zstd --format oci > app.tar
  {prog} --push registry.example.com/team/app:1.0
  {prog} --push localhost:5000/app:dev --insecure
  {prog} --explain --path openssl              # layers, and why a store path is there
  {prog} --sbom app.spdx.json

"""
    + CREDENTIALS_HELP
)

_PUSH_EPILOG = (
    """\
Pushes the image; without REF to its own name and tag. A layer the registry
has is not uploaded (nor read) again. The pushed manifest's digest is the only
line on stdout; progress goes to stderr (--quiet: none).

examples:
  {prog}                                       # to the image's own name:tag
  {prog} registry.example.com/team/app:1.0
  {prog} docker://localhost:5000/app:dev --insecure
  {prog} ghcr.io/me/app:1.0 --compress zstd --attach-sbom

"""
    + CREDENTIALS_HELP
)

_PREFETCH_EPILOG = """\
Prints the arguments of dockerTools.pullImage for an image, its hash
included, like nix-prefetch-docker (same options). Progress goes to stderr
(--quiet: none), the result to stdout.

examples:
  {prog} nixos/nix 2.3                          # IMAGE_NAME IMAGE_TAG
  {prog} nixos/nix:2.3 --arch arm64 --json
  {prog} --image-name nixos/nix --image-digest sha256:...
  {prog} registry.example.com:5000/team/app latest --final-image-name app --insecure

""" + CREDENTIALS_HELP.replace(
    "None found", "(Only for the prefetch: pullImage itself fetches anonymously inside Nix.) None found"
)

_COPY_EPILOG = (
    """\
Copies the image to DEST; copy-to-docker-daemon and copy-to-podman take
only an optional NAME:TAG (default: the image's own). Progress goes to
stderr (--quiet: none).

examples:
  {prog} docker://registry.example.com/team/app:1.0
  {prog} docker://localhost:5000/app:dev --insecure
  {prog} docker-daemon:app:1.0                  # the Engine API at $DOCKER_HOST
  {prog} containers-storage:app:1.0             # podman load
  {prog} oci-archive:app.tar:1.0                # skopeo inspect oci-archive:app.tar:1.0
  {prog} oci:layout:1.0                         # an OCI layout directory, blobs kept
  {prog} docker-archive:app.tar                 # docker load -i app.tar

"""
    + CREDENTIALS_HELP
)

_EXPLAIN_EPILOG = """\
What an image of this project holds: each layer, bottom first, with its size,
digest and store paths; the largest store paths; and with --path, one chain
of references from each root to that store path, like `nix why-depends`.

examples:
  {prog} ./result                               # a stream executable or its description (conf)
  {prog} ./result --path busybox --top 3
  {prog} ./result --json | jq '.layers[].paths'
"""


def _epilog(command: str, prog: str) -> Optional[str]:
    text = {
        "stream": _STREAM_EPILOG,
        "push": _PUSH_EPILOG,
        "copy": _COPY_EPILOG,
        "prefetch": _PREFETCH_EPILOG,
        "explain": _EXPLAIN_EPILOG,
    }
    return text[command].format(prog=prog) if command in text else None


def _quiet_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr (errors still)")


def _stream_args(s: argparse.ArgumentParser, bound: bool) -> None:
    if not bound:
        s.add_argument("description", help="a stream executable or image description")
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
    _quiet_option(s)
    s.set_defaults(fn=_cmd_stream)


def _push_args(s: argparse.ArgumentParser, bound: bool) -> None:
    if not bound:
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
    _quiet_option(s)
    s.set_defaults(fn=_cmd_push)


def _copy_args(s: argparse.ArgumentParser, bound: bool) -> None:
    if not bound:
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
    _quiet_option(s)
    s.set_defaults(fn=_cmd_copy)


def _explain_args(s: argparse.ArgumentParser, bound: bool) -> None:
    s.add_argument("source", metavar="IMAGE", help="a stream executable or image description")
    _explain_options(s)
    s.set_defaults(fn=_cmd_explain)


def _prefetch_args(s: argparse.ArgumentParser, bound: bool) -> None:
    s.add_argument("image", nargs="?", metavar="IMAGE_NAME", help="[docker://]NAME, or NAME:TAG / NAME@DIGEST")
    s.add_argument("tag_or_digest", nargs="?", metavar="IMAGE_TAG|IMAGE_DIGEST", help="a tag, or sha256:...")
    s.add_argument("--image-name", help="the image's name (instead of IMAGE_NAME)")
    s.add_argument("--image-tag", help="its tag (default: latest)")
    s.add_argument("--image-digest", help="its digest (default: what the tag points at now)")
    s.add_argument("--os", default="linux", help="the platform taken from a multi-platform image (default linux)")
    s.add_argument("--arch", help="default: this machine's")
    s.add_argument("--variant")
    s.add_argument("--final-image-name", help="the name the archive carries (default: the image's)")
    s.add_argument("--final-image-tag", help="the tag the archive carries (default: the tag, else latest)")
    s.add_argument("--insecure", action="store_true", help="plain http, no TLS (tlsVerify = false)")
    s.add_argument("--json", action="store_true", help="JSON instead of a Nix attribute set")
    _quiet_option(s)
    s.set_defaults(fn=_cmd_prefetch)


# The commands users run, as subcommands and as the executables Nix writes
# (the stream executable, copy-to-registry, prefetch-image).
_USER_COMMANDS: List[Tuple[str, Callable[[argparse.ArgumentParser, bool], None], str]] = [
    ("stream", _stream_args, "write an image described by DESCRIPTION"),
    ("push", _push_args, "push an image of this project to a registry"),
    ("copy", _copy_args, "copy an image of this project to a destination, as skopeo spells it"),
    ("explain", _explain_args, "what is in an image: layers, store paths, and why a path is there"),
    ("prefetch", _prefetch_args, "print pullImage arguments (imageDigest, hash) for an image"),
]


def _parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only`` (the command given), that
    command's parser alone: the same parse, without making the other 23
    (argparse takes milliseconds for each, on every push)."""
    p = _Parser(prog="builder", description="Build Docker/OCI images from Nix store paths.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, target, spec_type, help_text in _BUILD_STEPS:
        if only not in (None, name):
            continue
        step = sub.add_parser(name, help=help_text + " (inside a Nix build)") if help_text else sub.add_parser(name)
        step.set_defaults(fn=_build_step(target, spec_type))
    for name, add, help_text in _USER_COMMANDS:
        if only not in (None, name):
            continue
        s = sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=_epilog(name, f"python3 -m builder {name}"),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add(s, False)
    if only in (None, "sbom"):
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
    return p


def _command_names() -> List[str]:
    return [step[0] for step in _BUILD_STEPS] + [command[0] for command in _USER_COMMANDS] + ["sbom"]


def _one_line(message: str) -> str:
    """An error as one readable line, whatever the input quoted in it."""
    if len(message) > MAX_LINE:
        message = message[:MAX_LINE] + f"... ({len(message) - MAX_LINE} more characters)"
    return message


def _command_parser(command: str, prog: str) -> argparse.ArgumentParser:
    """The parser of one user command run as its own executable ``prog``
    (the stream executable, copy-to-registry, prefetch-image): its usage
    and examples name ``prog``, and the image it is bound to is no argument."""
    add, help_text = {name: (add, h) for name, add, h in _USER_COMMANDS}[command]
    description = _BOUND_DESCRIPTIONS.get(command, help_text[0].upper() + help_text[1:] + ".")
    p = _Parser(
        prog=prog,
        description=description,
        epilog=_epilog(command, prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add(p, command in _BOUND)
    return p


# Executables bound to one image: their first argument (from the script, not
# the user) is the image, under this name.
_BOUND = {"stream": "description", "push": "source", "copy": "source"}
_BOUND_DESCRIPTIONS = {
    "copy": "Copy this image to a destination, spelled as skopeo spells it.",
    "stream": "Write this image: to stdout, a file, an OCI layout directory, or a registry.",
    "push": "Push this image to a registry.",
}


class _Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt: the ``finally``
    blocks that remove half-written outputs and temporary files run."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def _parsed(argv: Optional[List[str]], prog: Optional[str]) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    if prog is None:
        only = argv[0] if argv and argv[0] in _command_names() else None
        return _parser(only).parse_args(argv)
    command, rest = argv[0], argv[1:]
    bound = rest.pop(0) if command in _BOUND else None
    args = _command_parser(command, prog).parse_args(rest)
    if bound is not None:
        setattr(args, _BOUND[command], bound)
    return args


def main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """``prog``: run as that executable (``argv[0]`` names the command;
    for the stream and copy-to-registry, ``argv[1]`` is its image)."""
    try:
        args = _parsed(argv, prog)
    except KeyboardInterrupt:  # Ctrl-C before any work: as quiet as after
        return 130
    if getattr(args, "quiet", False):
        report.set_quiet()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args.fn(args)
    except BuildError as e:
        if not e.already_reported:
            print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (e.g. podman load failed): say so, quietly.
        sys.stderr.write("error: output pipe closed before the image was written\n")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    except _Terminated:
        return 128 + signal.SIGTERM
    except OSError as e:
        # A full disk is the machine's state, not a bug: one line, no traceback.
        from builder.sinks.output import OUTPUT_ERRORS

        if e.errno not in OUTPUT_ERRORS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror} (while writing the output)", file=sys.stderr)
        return 1
    return 0
