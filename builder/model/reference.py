"""Image names, tags and references: the one parser of ``HOST/NAME:TAG@DIGEST``.

Docker Hub's rules live here too: a name without a registry host (a first
component with no dot or port that is not ``localhost``) is on Docker Hub,
in ``library/`` when it has a single component.
"""

from __future__ import annotations

import re
from typing import Optional, Set, Tuple

from builder.errors import SpecError

__all__ = [
    "DIGEST_RE",
    "DOCKER_HUB",
    "Reference",
    "check_image_name",
    "check_tag",
    "docker_hub_aliases",
    "parse_reference",
    "qualified_name",
    "registry_host",
    "split_reference",
    "split_repo_tag",
]

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
DOCKER_HUB = "docker.io"
_DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = frozenset({DOCKER_HUB, _DOCKER_HUB_API, "index.docker.io"})

# distribution/reference grammar, lower-case repository path with an optional host.
_NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)"
_NAME_RE = re.compile(rf"^{_HOST}?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def check_image_name(name: str) -> str:
    if not _NAME_RE.match(name) or len(name) > 255:
        raise SpecError(
            f"name: {name!r} is not a valid image name (lower-case letters, digits, "
            "separators . _ -, path components with /, an optional registry host first)"
        )
    return name


def check_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise SpecError(f"tag: {tag!r} is not a valid tag (letters, digits, _ . -; at most 128)")
    return tag


_DIGEST_LIKE_RE = re.compile(r"^[A-Za-z0-9_+.-]+:[0-9A-Fa-f]{32,}$")


def _refuse_userinfo(rest: str) -> None:
    """``user:password@host/name``: what comes after "@" is no digest and
    what comes before has no "/". Refused without being repeated: it may
    hold a password."""
    before, at, after = rest.partition("@")
    if at and "/" not in before and not _DIGEST_LIKE_RE.match(after):
        raise SpecError(
            "a reference that starts with USER[:PASSWORD]@ (not repeated here): credentials do not go in a "
            "reference; use REGISTRY_AUTH_FILE, ~/.docker/config.json or REGISTRY_USERNAME/REGISTRY_PASSWORD"
        )


def split_reference(text: str) -> Tuple[str, Optional[str], Optional[str]]:
    """``[docker://]NAME[:TAG][@DIGEST]`` -> (NAME, TAG or None, DIGEST or None), as typed."""
    rest = text[len("docker://") :] if text.startswith("docker://") else text
    _refuse_userinfo(rest)
    rest, _, digest = rest.partition("@")
    name, colon, tag = rest.rpartition(":")
    if not colon or "/" in tag:
        return rest, None, digest or None
    return name, tag, digest or None


def split_repo_tag(ref: str) -> Tuple[str, str]:
    """``host:5000/a/b:tag`` -> (``host:5000/a/b``, ``tag``); no tag means latest."""
    name, tag, _ = split_reference(ref)
    return name, tag or "latest"


def registry_host(name: str) -> Optional[str]:
    """The registry host a name starts with, or None for Docker Hub's names."""
    first, slash, _ = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def _registry_and_repository(name: str) -> Tuple[str, str]:
    host = registry_host(name)
    if host:
        return host, name[len(host) + 1 :]
    return DOCKER_HUB, name if "/" in name else "library/" + name


def qualified_name(name: str) -> str:
    """The fully qualified name containerd stores (and ``docker save``
    writes): a bare ``app`` is ``docker.io/library/app``."""
    return "/".join(_registry_and_repository(name))


def docker_hub_aliases(host: str) -> Set[str]:
    """The names one registry goes by in auth files."""
    return set(_DOCKER_HUB_ALIASES) if host in _DOCKER_HUB_ALIASES else {host}


# Written out, not a dataclass: the stream and push never load dataclasses
# (inspect, ast: ~15 ms of each start); tests/unit/test_imports.py pins it.
class Reference:
    __slots__ = ("registry", "repository", "tag", "digest")

    def __init__(self, registry: str, repository: str, tag: Optional[str] = None, digest: Optional[str] = None) -> None:
        self.registry = registry  # host[:port]; docker.io for Docker Hub
        self.repository, self.tag, self.digest = repository, tag, digest

    def _key(self) -> tuple:
        return (self.registry, self.repository, self.tag, self.digest)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if isinstance(other, Reference) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Reference(registry={!r}, repository={!r}, tag={!r}, digest={!r})".format(*self._key())

    @property
    def api_host(self) -> str:
        return _DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def target(self) -> str:
        """What a manifest URL names: the digest when there is one."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def parse_reference(text: str) -> Reference:
    """``[docker://]HOST[:PORT]/NAME[:TAG|@DIGEST]``, Docker Hub without a host."""
    name, tag, digest = split_reference(text)
    if "@" in text and not DIGEST_RE.match(digest or ""):
        raise SpecError(f"{text}: {digest or ''!r} is not a sha256 digest")
    if tag is not None:
        check_tag(tag)
    registry, repository = _registry_and_repository(name)
    check_image_name(f"{registry}/{repository}")
    return Reference(registry, repository, tag if (tag or digest) else "latest", digest)
