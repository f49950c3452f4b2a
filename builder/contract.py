"""The contract between Nix and the builder: each build step's configuration
as one typed record.

Inside a build, Nix (``__structuredAttrs``) writes every attribute of the
derivation to ``.attrs.json``. ``load(CustomiseSpec)`` reads that file into
a frozen dataclass, and that record is all a step sees:

- Version: ``runBuilder`` (nix/builder.nix) puts ``contractVersion`` into every
  builder derivation; a file of another version is refused in one line.
- Names: the field ``from_image`` is the attribute ``fromImage``: snake_case
  to camelCase, the parts in ``_ACRONYMS`` in capitals (``config_json`` is
  ``configJSON``). Messages name attributes as Nix spells them.
- Unknown attributes are refused, except those Nix itself gives every
  derivation (``NIX_ATTRIBUTES``). Each field's type is checked: ``str``,
  ``int``, ``bool``, ``List[...]``, ``Dict[str, Any]``, ``Optional``,
  ``Union`` and ``Literal`` (a closed set of strings).
- Defaults, each in one place. A field without a default is an attribute
  Nix always sends (perhaps null, where the type is Optional): what a user
  may leave out is defaulted in the Nix function's arguments, as nixpkgs
  has it. A field with a default is an attribute Nix sends only when it
  differs from that default (``layerCompression``, ``format``: so existing
  images keep their derivations) or only when the step needs it
  (``fakeroot``, ``proot``, ``python``, ``zstd``, ``nixdbClosure``,
  ``sbomClosure``, ``sslCertFile``); the default here is the only one.

``check_version`` (defined in ``errors.py``, so that reading an image does
not load every record here) does the same for the documents the builder
stores for itself (``image.json``, ``layers.json``, ``multiarch.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import (
    Any,
    ClassVar,
    Dict,
    List,
    Literal,
    Optional,
    Type,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from builder.errors import SpecError, check_version  # noqa: F401 (part of the contract)

__all__ = [
    "CONTRACT_VERSION",
    "NIX_ATTRIBUTES",
    "ArchiveSpec",
    "CommandScriptSpec",
    "CustomiseSpec",
    "ExportSpec",
    "FilesSpec",
    "ImageLayerSpec",
    "LayerCompression",
    "LayerSpec",
    "LayersSpec",
    "MergeSpec",
    "MultiarchSpec",
    "PullImageSpec",
    "PushScriptSpec",
    "SbomFileSpec",
    "ScriptSpec",
    "Spec",
    "attrs_json_path",
    "check_version",
    "load",
    "nix_key",
    "parse",
]

# The version of the attributes below; runBuilder in nix/builder.nix sends the same.
CONTRACT_VERSION = 1

# Attributes Nix puts on (or reads from) any derivation: not a step's business.
# exportReferencesGraph's results are named by the step (closure, nixdbClosure).
NIX_ATTRIBUTES = frozenset(
    {
        "name",
        "system",
        "builder",
        "args",
        "outputs",
        "__structuredAttrs",
        "exportReferencesGraph",
        "outputHash",
        "outputHashAlgo",
        "outputHashMode",
        "impureEnvVars",
        "preferLocalBuild",
        "allowSubstitutes",
        "passAsFile",
        "allowedReferences",
        "allowedRequisites",
        "disallowedReferences",
        "disallowedRequisites",
        "outputChecks",
        "requiredSystemFeatures",
        "unsafeDiscardReferences",
    }
)

LayerCompression = Literal["none", "gzip", "zstd"]
Mtime = Union[str, int]  # an ISO time, "now" or seconds since 1970

_ACRONYMS = {"db": "DB", "json": "JSON", "url": "URL"}


def nix_key(name: str) -> str:
    """The attribute a field stands for: ``include_nix_db`` is ``includeNixDB``."""
    first, *rest = name.split("_")
    return first + "".join(_ACRONYMS.get(part, part.capitalize()) for part in rest)


@dataclass(frozen=True)
class Spec:
    """What every step has: its output path (``outputs.out``)."""

    STEP: ClassVar[str] = ""
    out: str


# --- the build steps, as cli.py's _BUILD_STEPS runs them ----------------------------------


@dataclass(frozen=True)
class CustomiseSpec(Spec):
    """``customise``: the customisation layer of streamLayeredImage."""

    STEP: ClassVar[str] = "customise"
    contents: List[str]
    config_json: str
    extra_commands: str
    fake_root_commands: str
    enable_fakechroot: bool
    mtime: Mtime
    include_nix_db: bool
    nix_uid: int
    nix_gid: int
    bash: str
    tools: List[str]
    nixdb_closure: Optional[List[Dict[str, Any]]] = None  # with includeNixDB
    fakeroot: Optional[str] = None  # when commands run under fakeroot
    python: Optional[str] = None  # likewise
    proot: Optional[str] = None  # with enableFakechroot


@dataclass(frozen=True)
class LayersSpec(Spec):
    """``layers``: the image description of streamLayeredImage and buildImage."""

    STEP: ClassVar[str] = "layers"
    image_name: str
    tag: Optional[str]
    created: str
    config: Dict[str, Any]
    architecture: str
    variant: Optional[str]
    os: str
    from_image: Optional[str]
    from_image_name: Optional[str]
    from_image_tag: Optional[str]
    max_layers: int
    customisation_layer: str
    include_store_paths: bool
    closure: List[Dict[str, Any]]
    exclude_paths: List[str]
    layers: List[str]  # buildLayer results
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: Mtime
    sbom_contents: List[Dict[str, Any]]  # {path, licenses, homepage} per contents element
    layer_compression: LayerCompression = "none"
    sbom_closure: Optional[List[Dict[str, Any]]] = None  # buildImage's: its one layer's closure
    zstd: Optional[str] = None  # pkgs.zstd's program: zstd layers, read or written
    # nixpkgs' custom layering: a list of steps, or a JSON file holding one
    layering_pipeline: Union[List[Any], str, None] = None


@dataclass(frozen=True)
class LayerSpec(Spec):
    """``layer``: buildLayer's explicit layers."""

    STEP: ClassVar[str] = "layer"
    closure: List[Dict[str, Any]]
    copy_to_root: List[str]
    ignore: List[str]
    parent_layers: List[str]
    max_layers: int
    perms: List[Dict[str, Any]]
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: Mtime
    layer_compression: LayerCompression = "none"
    metadata: Optional[Dict[str, Any]] = None  # the history entry's created_by, comment, author
    reproducible: bool = True  # false: the layer's tar is kept in the output
    zstd: Optional[str] = None  # pkgs.zstd's program: zstd layers, read or written


@dataclass(frozen=True)
class FilesSpec(Spec):
    """``files``: a small tree of files (fakeNss, binSh, ...)."""

    STEP: ClassVar[str] = "files"
    files: List[Dict[str, Any]]


@dataclass(frozen=True)
class MergeSpec(Spec):
    """``merge``: mergeImages."""

    STEP: ClassVar[str] = "merge"
    images: List[str]
    zstd: str


@dataclass(frozen=True)
class ImageLayerSpec(Spec):
    """``image-layer``: buildImage's one new layer."""

    STEP: ClassVar[str] = "image-layer"
    copy_to_root: List[str]
    keep_contents_dirlinks: bool
    closure: List[Dict[str, Any]]
    exclude_paths: List[str]
    from_image: Optional[str]
    from_image_name: Optional[str]
    from_image_tag: Optional[str]
    architecture: str
    run_as_root: str
    extra_commands: str
    include_nix_db: bool
    uid: int
    gid: int
    mtime: Mtime
    bash: str
    tools: List[str]
    fakeroot: Optional[str] = None  # with runAsRoot
    proot: Optional[str] = None  # likewise
    python: Optional[str] = None  # likewise
    zstd: Optional[str] = None  # pkgs.zstd's program: zstd layers, read or written


@dataclass(frozen=True)
class ExportSpec(Spec):
    """``export``: exportImage."""

    STEP: ClassVar[str] = "export"
    from_image: str
    from_image_name: Optional[str]
    from_image_tag: Optional[str]
    zstd: Optional[str] = None  # pkgs.zstd's program: zstd layers, read or written
    fakeroot: Optional[str] = None  # device nodes, owners and mode-0000 files are kept under it
    python: Optional[str] = None  # the fakeroot session's Python


@dataclass(frozen=True)
class ScriptSpec(Spec):
    """``script``: the stream executable."""

    STEP: ClassVar[str] = "script"
    python: str
    src: str
    description: str


@dataclass(frozen=True)
class ArchiveSpec(Spec):
    """``archive``: an image archive in the store (buildLayeredImage, ...)."""

    STEP: ClassVar[str] = "archive"
    description: str
    compressor: Literal["gz", "zstd", "none"]
    format: Literal["docker", "oci"] = "docker"
    layer_compression: LayerCompression = "none"
    zstd: Optional[str] = None  # with compressor = "zstd"


@dataclass(frozen=True)
class MultiarchSpec(Spec):
    """``multiarch``: streamMultiArchImage's description."""

    STEP: ClassVar[str] = "multiarch"
    image_name: str
    tag: Optional[str]
    images: List[str]
    layer_compression: LayerCompression = "none"
    zstd: Optional[str] = None  # pkgs.zstd's program: zstd layers, read or written


@dataclass(frozen=True)
class PushScriptSpec(Spec):
    """``push-script``: the copyToRegistry executable."""

    STEP: ClassVar[str] = "push-script"
    python: str
    src: str
    description: str


@dataclass(frozen=True)
class CommandScriptSpec(Spec):
    """``command-script``: ``$out/bin/PROGRAM``, a user command on its own
    (prefetch-image)."""

    STEP: ClassVar[str] = "command-script"
    python: str
    src: str
    command: Literal["prefetch", "explain"]
    program: str
    ssl_cert_file: Optional[str] = None  # when pkgs has cacert: TLS without a system bundle


@dataclass(frozen=True)
class CopyScriptSpec(Spec):
    """``copy-script``: the copyTo, copyToDockerDaemon and copyToPodman executables."""

    STEP: ClassVar[str] = "copy-script"
    python: str
    src: str
    description: str
    program: Literal["copy-to", "copy-to-docker-daemon", "copy-to-podman"]


@dataclass(frozen=True)
class PullImageSpec(Spec):
    """``pull-image``: pullImage's fixed-output fetch."""

    STEP: ClassVar[str] = "pull-image"
    source_url: str  # docker://NAME@DIGEST
    dest_name_tag: str  # NAME:TAG the archive carries
    os: str
    arch: str
    variant: Optional[str]
    tls_verify: bool
    # As nixpkgs' pullImage derivation has them, for users to read; the
    # builder goes by sourceURL and destNameTag.
    image_name: str
    image_tag: str
    image_digest: str
    ssl_cert_file: Optional[str] = None  # with tlsVerify, when pkgs has cacert
    zstd: Optional[str] = None  # pkgs.zstd's program: zstd layers, read or written
    # An auth file outside the store, read at build time (never copied into
    # the store); else $REGISTRY_AUTH_FILE, an impure variable.
    auth_file: Optional[str] = None


@dataclass(frozen=True)
class SbomFileSpec(Spec):
    """``sbom-file``: passthru.sbom."""

    STEP: ClassVar[str] = "sbom-file"
    description: str
    sbom_format: Literal["spdx", "cyclonedx"]


# --- reading ----------------------------------------------------------------------------

S = TypeVar("S", bound=Spec)


def attrs_json_path() -> str:
    """Where Nix wrote ``.attrs.json``: ``$NIX_ATTRS_JSON_FILE``, except that
    some Nix versions (2.8 among them) set it to the build directory's path
    outside the sandbox, where a sandboxed build cannot see it
    (NixOS/nix#6736); the file is then in ``$NIX_BUILD_TOP``."""
    given = os.environ.get("NIX_ATTRS_JSON_FILE")
    if given and os.path.exists(given):
        return given
    top = os.environ.get("NIX_BUILD_TOP")
    if top and os.path.exists(os.path.join(top, ".attrs.json")):
        return os.path.join(top, ".attrs.json")
    return given or ".attrs.json"


def load(spec_type: Type[S], path: Optional[str] = None) -> S:
    """The step's record, read from ``path`` (default: ``attrs_json_path()``,
    where Nix puts it)."""
    path = path or attrs_json_path()
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise SpecError(
            f"{path}: not found (build commands run inside a Nix build with __structuredAttrs = true)"
        ) from None
    except ValueError as e:
        raise SpecError(f"{path}: not JSON ({e})") from None
    return parse(spec_type, data, path)


def parse(spec_type: Type[S], data: Any, origin: str = ".attrs.json") -> S:
    """The record of ``data`` (the derivation's attributes): version, keys
    and types checked, defaults filled."""
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: not a JSON object")
    version = data.get("contractVersion")
    if type(version) is not int or version != CONTRACT_VERSION:  # true and 1.0 are not 1
        got = "no contractVersion" if version is None else f"contractVersion {version!r}"
        raise SpecError(
            f"{origin}: {got}, this builder reads {CONTRACT_VERSION} "
            "(the Nix code and the builder come from different versions of dockerTools)"
        )
    step = spec_type.STEP
    hints = get_type_hints(spec_type)
    fields = [f for f in dataclasses.fields(spec_type) if f.name != "out"]
    known = {nix_key(f.name) for f in fields}
    unknown = sorted(k for k in data if k not in known and k not in NIX_ATTRIBUTES and k != "contractVersion")
    if unknown:
        names = ", ".join(f'"{k}"' for k in unknown)
        raise SpecError(f"{origin}: unknown key{'s' if len(unknown) > 1 else ''} {names} for step {step}")
    values: Dict[str, Any] = {"out": _out(data, origin)}
    for f in fields:
        key = nix_key(f.name)
        if key not in data:
            if f.default is dataclasses.MISSING:
                raise SpecError(f'{origin}: missing key "{key}" for step {step}')
            continue
        _check(key, data[key], hints[f.name])
        values[f.name] = data[key]
    return spec_type(**values)


def _out(data: dict, origin: str) -> str:
    outputs = data.get("outputs")
    if not isinstance(outputs, dict) or not isinstance(outputs.get("out"), str):
        raise SpecError(f"{origin}: no outputs.out (is __structuredAttrs set?)")
    return outputs["out"]


_NAMES = {str: "a string", int: "an integer", bool: "a boolean", list: "a list", dict: "an attribute set"}


def _check(what: str, value: Any, hint: Any) -> None:
    """Raise SpecError naming ``what`` unless ``value`` is of type ``hint``."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return
    if origin is Literal:
        if not isinstance(value, str) or value not in args:
            choices = ", ".join(f'"{a}"' for a in args[:-1]) + f' or "{args[-1]}"'
            raise SpecError(f"{what}: unknown value {value!r}: expected {choices}")
        return
    if origin is Union:
        for option in args:
            if _is_kind(value, option):
                _check(what, value, option)
                return
        raise _type_error(what, value, " or ".join(_describe(a) for a in args))
    if not _is_kind(value, hint):
        raise _type_error(what, value, _describe(hint))
    if origin is list and args:
        for i, item in enumerate(value):
            _check(f"{what} element {i}", item, args[0])
    elif origin is dict and args:
        for key, item in value.items():
            _check(f"{what}.{key}", item, args[1])


def _is_kind(value: Any, hint: Any) -> bool:
    """Whether ``value`` is the kind of thing ``hint`` names (not its elements)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if get_origin(hint) is Literal:
        return isinstance(value, str)
    kind = get_origin(hint) or hint
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if get_origin(hint) is Literal:
        return "a string"
    return _NAMES.get(get_origin(hint) or hint, str(hint))


def _type_error(what: str, value: Any, expected: str) -> SpecError:
    got = "null" if value is None else f"{type(value).__name__} {value!r:.80}"
    return SpecError(f"{what}: expected {expected}, got {got}")
