"""``pullImage``: an image fetched from a registry by digest into a docker
archive, as a fixed-output derivation; and ``prefetch``, which prints the
``imageDigest`` and ``hash`` that derivation needs (like nix-prefetch-docker).

Both go through ``write_pulled``: the same download (every blob, manifest
and diff_id checked), the same archive bytes, once into ``$out`` and once
into a hash. The archive holds the config as the registry stored it and
every layer uncompressed, so its bytes depend only on the image's content
and the final name and tag: not on the registry's compression, the zlib
version, or the tool that pushed it. podman and docker load it, and as
``fromImage`` its layers are read in place.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import ssl
import sys
import tempfile
from typing import Any, Dict, Optional

from builder.contract import PullImageSpec
from builder.errors import BuildError, SpecError
from builder.formats.docker_archive import write_docker_archive
from builder.model.image import Image, sha256_digest
from builder.model.platform import host_platform, platform_from_parts, platform_text
from builder.model.reference import (
    DIGEST_RE,
    check_image_name,
    check_tag,
    parse_reference,
    split_reference,
    split_repo_tag,
)
from builder.registry.auth import Search, search_credentials
from builder.registry.client import HttpOpener, RegistryClient
from builder.registry.pull import pull
from builder.sinks.output import open_output
from builder.sinks.sink import HashSink, Sink

__all__ = ["prefetch", "pull_image", "write_pulled"]


def _opener(tls_verify: bool, ca_file: Optional[str]) -> Optional[HttpOpener]:
    if not tls_verify or not ca_file:
        return None
    try:
        return HttpOpener(context=ssl.create_default_context(cafile=ca_file))
    except (OSError, ssl.SSLError) as e:
        raise BuildError(f"cannot read CA certificates from {ca_file}: {e}") from None


def write_pulled(
    sink: Sink,
    *,
    image_name: str,
    image_digest: str,
    final_ref: str,
    os_: str = "linux",
    arch: Optional[str] = None,
    variant: Optional[str] = None,
    tls_verify: bool = True,
    ca_file: Optional[str] = None,
    workdir: Optional[str] = None,
    auth: Optional[Search] = None,
    credentials_hint: str = "",
) -> Image:
    """Fetch ``image_name@image_digest`` for one platform (an index resolves
    to it) and write it to ``sink`` as a docker archive tagged ``final_ref``."""
    name, tag, digest = split_reference(image_name)
    if tag or digest:
        raise SpecError(
            f"imageName: {image_name!r} must be a name without tag or digest (the digest goes in imageDigest)"
        )
    if not DIGEST_RE.match(image_digest or ""):
        raise SpecError(f"imageDigest: {image_digest!r} is not a sha256 digest (sha256:<64 hex>)")
    final_name, final_tag = split_repo_tag(final_ref)
    check_image_name(final_name)
    check_tag(final_tag)
    platform = platform_text(platform_from_parts(os_, arch or host_platform()["architecture"], variant))
    opener = _opener(tls_verify, ca_file)
    try:
        with tempfile.TemporaryDirectory(dir=workdir) as layout:
            image = pull(
                f"{name}@{image_digest}",
                layout,
                platform=platform,
                insecure=not tls_verify,
                opener=opener,
                auth=auth,
                credentials_hint=credentials_hint,
            )
            write_docker_archive(sink, [(image, [final_ref])], "none")
    finally:
        if opener is not None:
            opener.close()
    return image


_IN_BUILD_HINT = (
    "a Nix build sees no HOME, XDG_RUNTIME_DIR or credential helpers: give pullImage "
    'authFile = "/path/auth.json" (a file outside the store the build users can read), '
    "or set REGISTRY_AUTH_FILE where nix-build runs (README: Private images)"
)


def _build_credentials(spec: PullImageSpec, host: str, repository: str) -> Search:
    """Inside the build only a named auth file counts: pullImage's authFile,
    else $REGISTRY_AUTH_FILE (an impure variable of this fixed-output
    derivation). Credential helpers are not run: they need the user's
    session (keychains, cloud logins), which a build does not have."""
    path = spec.auth_file or os.environ.get("REGISTRY_AUTH_FILE") or ""
    if not path:
        return Search(None, ["no authFile and no REGISTRY_AUTH_FILE"])
    what = "authFile" if spec.auth_file else "REGISTRY_AUTH_FILE"
    if not os.path.isabs(path):
        raise BuildError(f"{what} {path!r}: give an absolute path")
    if not os.path.exists(path):
        raise BuildError(
            f"{what} {path} does not exist inside the build: Nix's sandbox shows a build only the store "
            f"and extra-sandbox-paths (nix.conf: extra-sandbox-paths = {path}) (README: Private images)"
        )
    if not os.access(path, os.R_OK):
        user = pwd.getpwuid(os.getuid()).pw_name if _has_user(os.getuid()) else str(os.getuid())
        raise BuildError(
            f"{what} {path} is not readable by this build's user ({user}): builds run as the build users "
            "(group nixbld): e.g. chgrp nixbld FILE && chmod 640 FILE (README: Private images)"
        )
    search = search_credentials(host, repository, environ={"REGISTRY_AUTH_FILE": path}, helpers=False)
    search.tried = [f"{what} {note.removeprefix('$REGISTRY_AUTH_FILE ')}" for note in search.tried]
    return search


def _has_user(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def pull_image(spec: PullImageSpec) -> None:
    """The fixed-output build: Nix checks the archive against the hash."""
    name, _, digest = spec.source_url.removeprefix("docker://").partition("@")
    reference = parse_reference(name)
    auth = _build_credentials(spec, reference.registry, reference.repository)
    with open_output(spec.out) as sink:
        write_pulled(
            sink,
            image_name=name,
            image_digest=digest,
            final_ref=spec.dest_name_tag,
            os_=spec.os,
            arch=spec.arch,
            variant=spec.variant,
            tls_verify=spec.tls_verify,
            ca_file=spec.ssl_cert_file,
            auth=auth,
            credentials_hint=(
                f"add an entry for {reference.registry} to that file "
                f"(podman login --authfile FILE {reference.registry})"
                if spec.auth_file or os.environ.get("REGISTRY_AUTH_FILE")
                else _IN_BUILD_HINT
            ),
        )


def _resolve_digest(name: str, tag: str, insecure: bool) -> str:
    """The digest a tag points at now: of the index, when it is one."""
    reference = parse_reference(f"{name}:{tag}")
    client = RegistryClient(reference, insecure=insecure, actions="pull")
    try:
        client.ping()
        data, _ = client.retrying("manifest", lambda: client.get_manifest(tag))
    finally:
        client.close()
    return sha256_digest(data)


def _nix_string(text: str) -> str:
    return json.dumps(text).replace("${", "\\${")


def prefetch(
    ref: str,
    *,
    os_: str = "linux",
    arch: Optional[str] = None,
    variant: Optional[str] = None,
    insecure: bool = False,
    final_image_name: Optional[str] = None,
    final_image_tag: Optional[str] = None,
    as_json: bool = False,
    out=None,
) -> dict:
    """Print the pullImage arguments for ``ref`` with the hash of the archive
    pullImage will write for them."""
    out = out or sys.stdout
    name, tag, digest = split_reference(ref)
    platform_text(platform_from_parts(os_, arch or host_platform()["architecture"], variant))  # before any network
    digest = digest or _resolve_digest(name, tag or "latest", insecure)
    final_name = final_image_name or name
    final_tag = final_image_tag or tag or "latest"
    hashed = HashSink()
    write_pulled(
        hashed,
        image_name=name,
        image_digest=digest,
        final_ref=f"{final_name}:{final_tag}",
        os_=os_,
        arch=arch,
        variant=variant,
        tls_verify=not insecure,
    )
    sri = "sha256-" + base64.b64encode(bytes.fromhex(hashed.digest.split(":", 1)[1])).decode()
    args: Dict[str, Any] = {
        "imageName": name,
        "imageDigest": digest,
        "hash": sri,
        "finalImageName": final_name,
        "finalImageTag": final_tag,
    }
    if os_ != "linux":
        args["os"] = os_
    if arch:
        args["arch"] = arch
    if variant:
        args["variant"] = variant
    if insecure:
        args["tlsVerify"] = False
    if as_json:
        out.write(json.dumps(args, indent=2) + "\n")
    else:
        lines = [f"  {k} = {'false' if v is False else _nix_string(v)};" for k, v in args.items()]
        out.write("{\n" + "\n".join(lines) + "\n}\n")
    return args
