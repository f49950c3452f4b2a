"""A Nix store database for the store paths an image carries.

With ``includeNixDB`` an image holds not just ``/nix/store/...`` but also the
``/nix/var/nix/db/db.sqlite`` that makes those paths *valid*, so ``nix-store``,
``nix-env`` and the garbage collector inside the container know about them.

Nix's own ``nix-store --load-db`` would need Nix at build time and writes
wall-clock registration times and WAL files. Here the database is written
directly with the standard library's ``sqlite3``: rows go in sorted by path,
the page size is fixed, the journal is a rollback journal that is gone after
commit, and the file is ``VACUUM``-ed at the end, so the same graph gives the
same bytes (for the same SQLite library).

The input is the graph that ``exportReferencesGraph`` hands a builder under
``__structuredAttrs``: a list of ``{"path", "narHash", "narSize",
"references", ...}``. Nix 2.8 writes ``narHash`` as ``sha256:<nix32>``; the
database keeps it as ``sha256:<hex>``, the form Nix itself stores.
"""

from __future__ import annotations

import base64
import binascii
import os
import sqlite3
from typing import Dict, Iterable, List, Optional, Tuple

from builder.errors import BuildError

__all__ = [
    "NIX_SCHEMA_VERSION",
    "STATE_DIRS",
    "gcroots",
    "nar_hash_to_base16",
    "write_nix_db",
]

# Nix 2.x (2.0 up to at least 2.18) uses schema version 10; /nix/var/nix/db/schema
# holds it as the bare digits, no newline.
NIX_SCHEMA_VERSION = 10

# Directories under nix/var/nix. Nix makes most of them itself when it can
# write there; shipping them empty spares it that and works on read-only roots
# for queries.
STATE_DIRS = ("db", "gcroots", "profiles", "temproots", "userpool")

PAGE_SIZE = 4096

_NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
_NIX32_VALUE = {c: i for i, c in enumerate(_NIX32)}
_DIGEST_SIZE = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}

# Column layout and constraints of Nix's schema 10 (written out here in our own
# words; Nix adds its own indexes and triggers only when it creates the file,
# so they are part of what we must provide).
_SCHEMA = (
    """CREATE TABLE ValidPaths (
  id integer primary key autoincrement not null,
  path text unique not null,
  hash text not null,
  registrationTime integer not null,
  deriver text,
  narSize integer,
  ultimate integer,
  sigs text,
  ca text
)""",
    """CREATE TABLE Refs (
  referrer integer not null,
  reference integer not null,
  primary key (referrer, reference),
  foreign key (referrer) references ValidPaths(id) on delete cascade,
  foreign key (reference) references ValidPaths(id) on delete restrict
)""",
    "CREATE INDEX IndexReferrer on Refs(referrer)",
    "CREATE INDEX IndexReference on Refs(reference)",
    """CREATE TRIGGER DeleteSelfRefs before delete on ValidPaths
begin
  delete from Refs where referrer = old.id and reference = old.id;
end""",
    """CREATE TABLE DerivationOutputs (
  drv integer not null,
  id text not null,
  path text not null,
  primary key (drv, id),
  foreign key (drv) references ValidPaths(id) on delete cascade
)""",
    "CREATE INDEX IndexDerivationOutputs on DerivationOutputs(path)",
)


def _nix32_decode(text: str, size: int) -> bytes:
    # Nix's base-32 string is the digest read as one little-endian integer,
    # written most significant digit first.
    if len(text) != (size * 8 + 4) // 5:
        raise ValueError("wrong length")
    value = 0
    for ch in text:
        digit = _NIX32_VALUE.get(ch)
        if digit is None:
            raise ValueError(f"bad character {ch!r}")
        value = value * 32 + digit
    if value >> (size * 8):
        raise ValueError("excess bits")
    return value.to_bytes(size, "little")


def nar_hash_to_base16(value: str) -> str:
    """``sha256:<nix32|hex|base64>`` or SRI ``sha256-<base64>`` -> ``sha256:<hex>``."""
    if not isinstance(value, str):
        raise BuildError(f"narHash must be a string, got {value!r}")
    if ":" in value:
        algo, _, body = value.partition(":")
        sri = False
    elif "-" in value:
        algo, _, body = value.partition("-")
        sri = True
    else:
        raise BuildError(f"narHash {value!r} has no algorithm prefix")
    size = _DIGEST_SIZE.get(algo)
    if size is None:
        raise BuildError(f"narHash {value!r}: unknown hash algorithm {algo!r}")
    try:
        if not sri and len(body) == size * 2:
            digest = bytes.fromhex(body)
        elif not sri and len(body) == (size * 8 + 4) // 5:
            digest = _nix32_decode(body, size)
        else:
            digest = base64.b64decode(body, validate=True)
            if len(digest) != size:
                raise ValueError("wrong length")
    except (ValueError, binascii.Error) as e:
        raise BuildError(f"narHash {value!r} is not a valid {algo} hash: {e}") from None
    return f"{algo}:{digest.hex()}"


def _check_store_path(path, store_dir: str, what: str) -> str:
    if not isinstance(path, str):
        raise BuildError(f"{what}: store path must be a string, got {path!r}")
    prefix = store_dir.rstrip("/") + "/"
    name = path[len(prefix) :] if path.startswith(prefix) else ""
    if not name or "/" in name or name in (".", "..") or "\0" in name or "\n" in name:
        raise BuildError(f"{what}: {path!r} is not a top-level path in {store_dir}")
    return path


def _rows(
    graph_nodes: Iterable[dict], store_dir: str
) -> Tuple[List[Tuple[str, str, int, Optional[str]]], List[Tuple[str, str]]]:
    """Validated (path, hash, narSize, ca) rows and (referrer, reference) pairs, sorted."""
    infos: Dict[str, Tuple[str, int, Optional[str], Tuple[str, ...]]] = {}
    for node in graph_nodes:
        if not isinstance(node, dict):
            raise BuildError(f"closure graph: expected an object, got {node!r}")
        try:
            path = node["path"]
            nar_hash = node["narHash"]
            nar_size = node["narSize"]
        except KeyError as e:
            raise BuildError(f"closure graph: entry {node.get('path', node)!r} lacks {e.args[0]!r}") from None
        _check_store_path(path, store_dir, "closure graph")
        if isinstance(nar_size, bool) or not isinstance(nar_size, int) or nar_size < 0:
            raise BuildError(f"closure graph: {path}: narSize must be a non-negative integer")
        refs = node.get("references", [])
        if not isinstance(refs, list):
            raise BuildError(f"closure graph: {path}: references must be a list")
        for r in refs:
            _check_store_path(r, store_dir, f"closure graph: {path}: reference")
        ca = node.get("ca")
        if ca is not None and not isinstance(ca, str):
            raise BuildError(f"closure graph: {path}: ca must be a string")
        info = (nar_hash_to_base16(nar_hash), nar_size, ca or None, tuple(sorted(set(refs))))
        # Several exportReferencesGraph lists concatenated repeat shared paths.
        if path in infos and infos[path] != info:
            raise BuildError(f"closure graph: {path} is listed twice with different data")
        infos[path] = info
    pairs = []
    for path, (_, _, _, refs) in infos.items():
        for r in refs:
            if r not in infos:
                raise BuildError(f"closure graph: {path} refers to {r}, which is not in the graph")
            pairs.append((path, r))
    rows = [(p, h, s, ca) for p, (h, s, ca, _) in sorted(infos.items())]
    return rows, sorted(pairs)


def _makedirs(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_nix_db(
    root_dir: str, graph_nodes: Iterable[dict], *, registration_time: int = 0, store_dir: str = "/nix/store"
) -> str:
    """Register every path of ``graph_nodes`` in ``root_dir/nix/var/nix/db/db.sqlite``.

    Also writes ``db/schema`` and creates the empty state directories
    (:data:`STATE_DIRS`). Each path gets its narHash (as ``sha256:<hex>``),
    narSize, ``ca`` if the graph has one, its references in ``Refs``
    (self-references included, as Nix keeps them), ``registrationTime`` =
    *registration_time*, no deriver, no signatures, ``ultimate`` 0.
    Ids follow the sorted paths. Returns the database's path.

    Only the ``nix/var/nix`` part is written; the store paths themselves are
    the caller's business.
    """
    if isinstance(registration_time, bool) or not isinstance(registration_time, int) or registration_time < 0:
        raise BuildError("registration_time must be a non-negative integer")
    rows, pairs = _rows(graph_nodes, store_dir)

    state = os.path.join(root_dir, "nix", "var", "nix")
    for sub in ("nix", os.path.join("nix", "var"), os.path.join("nix", "var", "nix")):
        _makedirs(os.path.join(root_dir, sub))
    for sub in STATE_DIRS:
        _makedirs(os.path.join(state, sub))
    db_dir = os.path.join(state, "db")
    db_path = os.path.join(db_dir, "db.sqlite")
    tmp_path = db_path + ".tmp"
    for leftover in (tmp_path, tmp_path + "-journal", tmp_path + "-wal", tmp_path + "-shm"):
        _remove(leftover)

    conn = sqlite3.connect(tmp_path, isolation_level=None)
    try:
        # Settings that shape the file must come before the first table.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO ValidPaths (id, path, hash, registrationTime, deriver, narSize,"
            " ultimate, sigs, ca) VALUES (?, ?, ?, ?, NULL, ?, 0, NULL, ?)",
            [(i, p, h, registration_time, s, ca) for i, (p, h, s, ca) in enumerate(rows, 1)],
        )
        ids = {p: i for i, (p, _, _, _) in enumerate(rows, 1)}
        conn.executemany("INSERT INTO Refs (referrer, reference) VALUES (?, ?)", [(ids[a], ids[b]) for a, b in pairs])
        conn.execute("COMMIT")
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise BuildError(f"nix db: foreign key check failed: {problems[:3]}")
        conn.execute("VACUUM")
    except BaseException:
        conn.close()
        for leftover in (tmp_path, tmp_path + "-journal"):
            _remove(leftover)
        raise
    conn.close()
    for leftover in (tmp_path + "-journal", tmp_path + "-wal", tmp_path + "-shm"):
        if os.path.lexists(leftover):
            raise BuildError(f"nix db: SQLite left {leftover} behind")
    os.chmod(tmp_path, 0o644)
    os.replace(tmp_path, db_path)

    schema_path = os.path.join(db_dir, "schema")
    with open(schema_path, "w", encoding="ascii") as f:
        f.write(str(NIX_SCHEMA_VERSION))
    os.chmod(schema_path, 0o644)
    return db_path


def gcroots(root_dir: str, paths: Iterable[str], *, store_dir: str = "/nix/store") -> List[str]:
    """Make each store path a GC root of the image's Nix.

    One symlink per path, ``nix/var/nix/gcroots/docker/<basename>`` ->
    ``<store_dir>/<basename>``: named after the store path, so stable, and
    pointing at the in-image absolute path. Returns the links, sorted.
    """
    links_dir = os.path.join(root_dir, "nix", "var", "nix", "gcroots", "docker")
    for sub in ("nix", "nix/var", "nix/var/nix", "nix/var/nix/gcroots", "nix/var/nix/gcroots/docker"):
        _makedirs(os.path.join(root_dir, *sub.split("/")))
    made = []
    for path in sorted(set(paths)):
        _check_store_path(path, store_dir, "gcroots")
        link = os.path.join(links_dir, os.path.basename(path))
        if os.path.lexists(link):
            if os.path.islink(link) and os.readlink(link) == path:
                made.append(link)
                continue
            raise BuildError(f"gcroots: {link} already exists and is not a link to {path}")
        os.symlink(path, link)
        made.append(link)
    return made
