"""Whiteouts: applying a stack of layers to a directory, and writing the
layer that turns one directory into another.

Rules follow the OCI image spec, layer.md ("Representing Changes",
"Whiteouts", "Opaque Whiteout"); where the spec leaves a choice we do what
umoci does, since our tests compare against ``umoci unpack``.

Applying (``apply_layers``):

* ``.wh.<name>`` deletes ``<name>``; ``<dir>/.wh..wh..opq`` deletes what
  ``<dir>`` held. Both only reach *lower* layers: "files that are present in
  the same layer as a whiteout file can only be hidden by whiteout files in
  subsequent layers", so paths this layer already wrote survive.
* A directory over a directory keeps the children and takes the new
  metadata; any other entry replaces what was there (a whole tree, if a file
  replaces a directory).
* A hardlink (typeflag 1) links to a path already in the tree; like umoci,
  its own header does not change the shared inode's mode, owner or time.
* Directories missing on the way to an entry are made 0755, owned 0:0,
  mtime 0 (umoci uses the current time; we want the same bytes every time).
* Owners: with ``chown`` (the default when the effective uid is 0, which
  includes fakeroot) they are set with ``lchown``. They are always recorded
  too, and ``apply_layers`` returns them (path -> (uid, gid)), so a caller
  that is not root still knows what the layers said.
* Directory modes and mtimes are set once, after the last layer: writing
  children would change the mtimes, and a 0555 directory from one layer must
  not stop a later layer (or a non-root user) from writing into it.

Changesets (``compute_changeset``/``write_changeset``): explicit
``.wh.<name>`` whiteouts only (layer.md: writers should prefer them). No
opaque marker is ever needed, because the lower side is the whole flattened
tree: a directory that replaces a non-directory has nothing below it to
hide, and a directory deleted and made again is a changed directory whose
lost children each get a whiteout.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import tempfile
from typing import (
    IO,
    BinaryIO,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
    cast,
)

from builder.errors import BuildError, ImageFormatError, UnsafePathError
from builder.sinks.sink import Sink
from builder.tar import paths, tarstream
from builder.tar.reader import open_tar
from builder.tar.tarstream import Stamp

__all__ = [
    "KEEP",
    "OPAQUE",
    "WHITEOUT_PREFIX",
    "Change",
    "Owners",
    "apply_layers",
    "compute_changeset",
    "is_whiteout",
    "opaque_name",
    "whiteout_name",
    "write_changeset",
    "write_flattened",
]

WHITEOUT_PREFIX = paths.WHITEOUT_PREFIX
OPAQUE = b".wh..wh..opq"
# Other ".wh..wh." names are aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs):
# docker skips them, and so do we.
_AUFS_META = b".wh..wh."

# Keep every entry's own owner and mtime.
KEEP = Stamp(uid=None, gid=None, mtime=None)

Owners = Dict[bytes, Tuple[int, int]]
LayerFile = Union[str, bytes, BinaryIO]

_IMPLICIT_DIR = (0o755, 0)  # mode, mtime of a parent no entry described
_CHUNK = 1 << 20


def is_whiteout(base: bytes) -> bool:
    return base.startswith(WHITEOUT_PREFIX)


def whiteout_name(rel: bytes) -> bytes:
    parent, base = paths.split_name(rel)
    return _join(parent, WHITEOUT_PREFIX + base)


def opaque_name(dir_rel: bytes) -> bytes:
    return _join(dir_rel, OPAQUE)


def _join(parent: bytes, base: bytes) -> bytes:
    return parent + b"/" + base if parent else base


def _ancestors(rel: bytes) -> Iterator[bytes]:
    """Proper ancestors of a relative path, the root (``b""``) last."""
    while rel:
        rel = paths.split_name(rel)[0]
        yield rel


# ---------------------------------------------------------------- applying


class _Applier:
    """The tree below ``root`` as layers are applied one after another."""

    def __init__(self, root: bytes, chown: bool):
        self.root = root
        self.chown = chown
        self.owners: Dict[Tuple[int, int], Tuple[int, int]] = {}  # inode -> owner
        self.dirs: Dict[Tuple[int, int], Tuple[int, float]] = {}  # inode -> (mode, mtime)
        self.keep: set = set()  # this layer's paths and their parents

    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = paths.clean_name(m.name.encode("utf-8", "surrogateescape"))
        parent, base = paths.split_name(rel)
        if is_whiteout(base):
            self.whiteout(parent, base)
            return
        where = paths.locate(self.root, rel)
        if not where:
            self.root_entry(m)
            return
        self.make_parents(where)
        path = paths.host_path(self.root, where)
        existing = _lstat(path)
        if not (m.isdir() and existing is not None and stat.S_ISDIR(existing.st_mode)):
            source = self.link_source(m) if m.islnk() else None
            if existing is not None:
                _remove(path, existing)
            self.create(tar, m, path, source)
        if not m.islnk():
            self.set_meta(path, m)
        self.mark(where)

    def mark(self, where: bytes) -> None:
        self.keep.add(where)
        self.keep.update(_ancestors(where))

    def root_entry(self, m: tarfile.TarInfo) -> None:
        # umoci rule: an entry may change the root's metadata, never its type.
        if not m.isdir():
            raise UnsafePathError("entry would replace the root directory")
        self.set_meta(self.root, m)

    def make_parents(self, where: bytes) -> None:
        """mkdir -p for the parents of an already resolved path: nothing on
        the way is a symlink any more, missing parts are plain names."""
        parts = where.split(b"/")[:-1]
        for i in range(len(parts)):
            rel = b"/".join(parts[: i + 1])
            path = paths.host_path(self.root, rel)
            if _lstat(path) is None:
                os.mkdir(path, 0o700)
                st = self.own(path, 0, 0)
                self.dirs[_key(st)] = _IMPLICIT_DIR

    def link_source(self, m: tarfile.TarInfo) -> bytes:
        """The existing path a hardlink entry names (never followed if it is
        a symlink: link(2) links the symlink itself)."""
        raw = m.linkname.encode("utf-8", "surrogateescape")
        try:
            target = paths.clean_name(raw)
            source = paths.host_path(self.root, paths.locate(self.root, target))
        except ImageFormatError as e:
            raise type(e)(f"hardlink to {paths.show(raw)}: {e}") from None
        st = _lstat(source)
        if st is None or stat.S_ISDIR(st.st_mode) or not target:
            raise ImageFormatError(f"hardlink to {paths.show(raw)}: no such file in the tree")
        return source

    def create(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: bytes, source: Optional[bytes]) -> None:
        # Mode, owner and time come after, in set_meta (chown clears setuid).
        if m.isreg():
            # A regular member always has contents (None is for other kinds).
            _write_file(path, cast(IO[bytes], tar.extractfile(m)))
        elif m.isdir():
            os.mkdir(path, 0o700)
        elif m.issym():
            os.symlink(paths.check_link_target(m.linkname.encode("utf-8", "surrogateescape")), path)
        elif m.islnk():
            try:
                # entry() passes link_source() for every hardlink member.
                os.link(cast(bytes, source), path, follow_symlinks=False)
            except FileNotFoundError:
                # The entry named its own path, or something below it.
                raise ImageFormatError("hardlink to a path this entry replaces") from None
        elif m.isfifo():
            os.mkfifo(path, 0o600)
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            except PermissionError:
                raise BuildError(f"{paths.show(path)}: making a device node needs root or fakeroot") from None
        else:
            raise ImageFormatError(f"unsupported tar entry type {m.type!r}")

    def own(self, path: bytes, uid: int, gid: int) -> os.stat_result:
        if self.chown:
            try:
                os.lchown(path, uid, gid)
            except OSError as e:
                raise BuildError(f"{paths.show(path)}: cannot set owner {uid}:{gid} ({e.strerror})") from None
        st = os.lstat(path)
        self.owners[_key(st)] = (uid, gid)
        return st

    def set_meta(self, path: bytes, m: tarfile.TarInfo) -> None:
        st = self.own(path, m.uid, m.gid)
        mode = m.mode & 0o7777
        if stat.S_ISDIR(st.st_mode):
            self.dirs[_key(st)] = (mode, m.mtime)
            return
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, mode)
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)

    def whiteout(self, parent: bytes, base: bytes) -> None:
        if base == OPAQUE:
            self.opaque(parent)
            return
        if base.startswith(_AUFS_META):
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if not name:
            raise ImageFormatError("bare .wh. whiteout")
        if name in (b".", b".."):
            raise UnsafePathError(f"whiteout of {paths.show(name)}")
        try:
            where = paths.locate(self.root, _join(parent, name))
        except paths.NotADirectory:
            return  # nothing below a file to delete (umoci agrees)
        self.hide(where)

    def opaque(self, parent: bytes) -> None:
        try:
            where = paths.locate(self.root, opaque_name(parent))
        except paths.NotADirectory:
            return
        directory = paths.split_name(where)[0]
        path = paths.host_path(self.root, directory)
        st = _lstat(path)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return
        for child in sorted(os.listdir(path)):
            self.hide(_join(directory, child))

    def hide(self, where: bytes) -> None:
        """Delete what lower layers put at ``where``; keep this layer's."""
        path = paths.host_path(self.root, where)
        st = _lstat(path)
        if st is None:
            return
        if where not in self.keep:
            _remove(path, st)
        elif stat.S_ISDIR(st.st_mode):
            for child in sorted(os.listdir(path)):
                self.hide(_join(where, child))

    def finish(self) -> None:
        """Directory modes and mtimes, deepest first, once no more writes come.

        Found by a walk that follows no symlink, not by the names they were
        recorded under: a later layer may have put a symlink on that path.
        Every directory we make records itself, so a reused inode number
        never carries a deleted directory's metadata."""
        found = [(self.root, os.lstat(self.root))]
        found += [(path, st) for _, path, st in _walk(self.root) if stat.S_ISDIR(st.st_mode)]
        for path, st in reversed(found):
            meta = self.dirs.get(_key(st))
            if meta is not None:
                os.chmod(path, meta[0])
                os.utime(path, (meta[1], meta[1]))

    def owner(self, st: os.stat_result) -> Tuple[int, int]:
        return self.owners.get(_key(st), (st.st_uid, st.st_gid))


def _key(st: os.stat_result) -> Tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _lstat(path: bytes) -> Optional[os.stat_result]:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _remove(path: bytes, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)  # does not follow symlinks inside
    else:
        os.unlink(path)


def _write_file(path: bytes, src: IO[bytes]) -> None:
    # O_EXCL|O_NOFOLLOW: whatever was at path has been removed; never write
    # through a symlink someone slipped in.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)


def _label(layer: LayerFile) -> str:
    name = layer if isinstance(layer, (str, bytes)) else getattr(layer, "name", None)
    return os.fsdecode(name) if isinstance(name, (str, bytes)) else "layer"


def _apply_one(applier: _Applier, layer: LayerFile) -> None:
    # Sequential reading ("r|*"): plain or compressed, a file or a pipe.
    label = _label(layer)
    member = None
    try:
        if isinstance(layer, (str, bytes)):
            tar = open_tar(name=layer, mode="r|*", encoding="utf-8", errors="surrogateescape")
        else:
            tar = open_tar(fileobj=layer, mode="r|*", encoding="utf-8", errors="surrogateescape")
        with tar:
            for member in tar:
                try:
                    applier.entry(tar, member)
                except OSError as e:
                    # A name too long for the file system, a link count at
                    # its limit...: what the layer asks for cannot be made.
                    if e.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    raise ImageFormatError(f"cannot unpack ({e.strerror})") from None
                member = None  # an error reading the next header is not this entry's
    except tarfile.TarError as e:
        raise ImageFormatError(f"{label}: not a readable tar layer ({e})") from None
    except ImageFormatError as e:
        where = f"{label}: {member.name}" if member is not None else label
        raise type(e)(f"{where}: {e}") from e


def _apply(root_dir, layer_files: Sequence[LayerFile], chown: Optional[bool]) -> _Applier:
    root = os.fsencode(os.path.abspath(root_dir))
    os.makedirs(root, exist_ok=True)
    applier = _Applier(root, os.geteuid() == 0 if chown is None else chown)
    for layer in layer_files:
        applier.keep = set()
        _apply_one(applier, layer)
    applier.finish()
    return applier


def apply_layers(root_dir, layer_files: Sequence[LayerFile], *, chown: Optional[bool] = None) -> Owners:
    """Apply layers (paths or readable binary streams, plain or compressed
    tar), lowest first, to ``root_dir`` (made if missing; meant to start
    empty). Returns every path's owner as the layers gave it.

    ``chown``: set owners on disk; by default when the effective uid is 0.
    Raises ``UnsafePathError`` (naming layer and entry) for anything that
    would reach outside ``root_dir``, ``ImageFormatError`` for a malformed
    layer.
    """
    applier = _apply(root_dir, layer_files, chown)
    return {rel: applier.owner(st) for rel, _, st in _walk(applier.root)}


# ---------------------------------------------------------------- reading trees


def _walk(root: bytes) -> Iterator[Tuple[bytes, bytes, os.stat_result]]:
    """(relative name, host path, lstat) below root, pre-order, children
    sorted by bytes; symlinks are not followed."""
    stack = [(b"", root)]
    while stack:
        rel, path = stack.pop()
        st = os.lstat(path)
        if rel:
            yield rel, path, st
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(path) as it:
                children = sorted((e.name, e.path) for e in it)
            stack.extend((_join(rel, name), child) for name, child in reversed(children))


class _Snapshot:
    """Every path of a tree with its lstat, owners and hardlink groups."""

    def __init__(self, root, owners: Optional[Mapping[bytes, Tuple[int, int]]], stamp: Stamp):
        self.root = os.fsencode(os.path.abspath(root))
        self.stamp = stamp
        self.owners = owners or {}
        self.stats: Dict[bytes, os.stat_result] = {}
        inodes: Dict[Tuple[int, int], List[bytes]] = {}
        for rel, _, st in _walk(self.root):
            self.stats[rel] = st
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                inodes.setdefault(_key(st), []).append(rel)
        self.groups = {rel: tuple(group) for group in inodes.values() for rel in group}

    def host(self, rel: bytes) -> bytes:
        return paths.host_path(self.root, rel)

    def is_dir(self, rel: bytes) -> bool:
        return rel == b"" or (rel in self.stats and stat.S_ISDIR(self.stats[rel].st_mode))

    def entry_stamp(self, rel: bytes) -> Stamp:
        """The owner and mtime this path gets in a layer under ``stamp``."""
        st = self.stats[rel]
        uid, gid = self.owners.get(rel, (st.st_uid, st.st_gid))
        s = self.stamp
        return Stamp(
            uid=uid if s.uid is None else s.uid,
            gid=gid if s.gid is None else s.gid,
            uname=s.uname,
            gname=s.gname,
            mtime=int(st.st_mtime) if s.mtime is None else s.mtime,
        )

    def signature(self, rel: bytes) -> tuple:
        """What a layer entry would record for this path, content aside."""
        st = self.stats[rel]
        es = self.entry_stamp(rel)
        fmt = stat.S_IFMT(st.st_mode)
        target = os.readlink(self.host(rel)) if fmt == stat.S_IFLNK else b""
        size = st.st_size if fmt == stat.S_IFREG else 0
        rdev = st.st_rdev if fmt in (stat.S_IFCHR, stat.S_IFBLK) else 0
        return (fmt, stat.S_IMODE(st.st_mode), es.uid, es.gid, es.mtime, size, target, rdev)


def _same_content(a: bytes, b: bytes) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


# ---------------------------------------------------------------- changesets


class Change(NamedTuple):
    """One entry of a changeset layer, in layer order.

    ``kind``: ``"add"`` (new path), ``"modify"`` (type, metadata, content,
    target or hardlink group differ), ``"delete"`` (written as
    ``.wh.<name>``), ``"opaque"`` (``path`` is the ``.wh..wh..opq`` marker
    of a replaced directory), ``"context"`` (unchanged, written anyway: a
    parent directory of a change, or another name of a changed hardlinked file).
    """

    path: bytes
    kind: str

    @property
    def entry_name(self) -> bytes:
        return whiteout_name(self.path) if self.kind == "delete" else self.path


def _differs(lower: _Snapshot, upper: _Snapshot, rel: bytes, hardlinks: bool) -> bool:
    if lower.signature(rel) != upper.signature(rel):
        return True
    if hardlinks and lower.groups.get(rel, (rel,)) != upper.groups.get(rel, (rel,)):
        return True
    st = upper.stats[rel]
    return stat.S_ISREG(st.st_mode) and not _same_content(lower.host(rel), upper.host(rel))


def _layer_order(change: Change) -> tuple:
    # Pre-order with children sorted by bytes, and in each directory the
    # whiteouts first (layer.md: never let a whiteout follow what it could
    # be taken to delete).
    parts = change.path.split(b"/")
    last = 0 if change.kind in ("delete", "opaque") else 1
    return tuple((1, p) for p in parts[:-1]) + ((last, parts[-1]),)


def compute_changeset(
    lower_dir,
    upper_dir,
    stamp: Stamp = KEEP,
    hardlinks: bool = True,
    *,
    lower_owners: Optional[Mapping[bytes, Tuple[int, int]]] = None,
    upper_owners: Optional[Mapping[bytes, Tuple[int, int]]] = None,
    replaced: Iterable[bytes] = (),
) -> List[Change]:
    """The entries of the layer that turns ``lower_dir`` into ``upper_dir``.

    A path counts as changed when the entry written for it would differ:
    with a fixed owner or mtime in ``stamp`` those are not compared. Owners
    come from ``os.lstat`` (fakeroot's, when run under it) unless the path
    is in ``*_owners`` (as returned by ``apply_layers``). Regular files of
    equal size are compared byte for byte: an mtime proves nothing.

    ``replaced``: directories that were deleted and made again (the caller
    saw their identity change). Each gets an opaque marker that hides all
    the lower layers had there, and everything now inside it is written.
    """
    return _changes(
        _Snapshot(lower_dir, lower_owners, stamp), _Snapshot(upper_dir, upper_owners, stamp), hardlinks, replaced
    )


def _under(rel: bytes, dirs) -> bool:
    return any(parent in dirs for parent in _ancestors(rel) if parent)


def _changes(lower: _Snapshot, upper: _Snapshot, hardlinks: bool, replaced: Iterable[bytes] = ()) -> List[Change]:
    opaque = {d for d in replaced if upper.is_dir(d) and lower.is_dir(d)}
    kinds: Dict[bytes, str] = {}
    for rel in upper.stats:
        if rel not in lower.stats or (opaque and _under(rel, opaque)):
            kinds[rel] = "add"
        elif _differs(lower, upper, rel, hardlinks):
            kinds[rel] = "modify"
    if hardlinks:
        # A typeflag 1 entry needs its target earlier in the same layer: a
        # group with a changed name is written whole. (Names of one inode
        # change together, so this only guards against surprises.)
        for rel in list(kinds):
            for other in upper.groups.get(rel, ()):
                kinds.setdefault(other, "context")
    # Only the topmost deleted path is whited out; a path below a directory
    # that became a non-directory goes with it, with no whiteout at all
    # (that would add and white out one path in one layer).
    deleted = [
        rel
        for rel in lower.stats
        if rel not in upper.stats and upper.is_dir(paths.split_name(rel)[0]) and not (opaque and _under(rel, opaque))
    ]
    for d in opaque:
        kinds.setdefault(d, "context")
    for rel in list(kinds) + deleted:
        for parent in _ancestors(rel):
            if parent:
                kinds.setdefault(parent, "context")
    _refuse_whiteout_names(kinds)
    changes = [Change(rel, kind) for rel, kind in kinds.items()]
    changes += [Change(rel, "delete") for rel in deleted]
    changes += [Change(opaque_name(d), "opaque") for d in opaque]
    return sorted(changes, key=_layer_order)


def _refuse_whiteout_names(written) -> None:
    # Before any byte is written: the one check every writer shares.
    for rel in written:
        paths.refuse_whiteout_name(rel)


def write_changeset(
    sink: Sink,
    lower_dir,
    upper_dir,
    stamp: Stamp = KEEP,
    hardlinks: bool = True,
    *,
    lower_owners: Optional[Mapping[bytes, Tuple[int, int]]] = None,
    upper_owners: Optional[Mapping[bytes, Tuple[int, int]]] = None,
    end: bool = True,
    replaced: Iterable[bytes] = (),
) -> List[Change]:
    """Write the changeset layer; returns its changes. A whole tar (with
    ``end=False`` the end blocks are left to a caller that appends more
    entries, which must not repeat a path); the caller flushes. Whiteouts
    are empty regular files, mode 0600, owned by the stamp's owner (0 when
    it keeps owners), mtime the stamp's (or 0)."""
    upper = _Snapshot(upper_dir, upper_owners, stamp)
    changes = _changes(_Snapshot(lower_dir, lower_owners, stamp), upper, hardlinks, replaced)
    links: Optional[dict] = {} if hardlinks else None
    for change in changes:
        if change.kind in ("delete", "opaque"):
            sink.write(
                tarstream.header(
                    change.entry_name,
                    tarstream.REG,
                    0o600,
                    stamp.uid or 0,
                    stamp.gid or 0,
                    stamp.mtime or 0,
                    uname=stamp.uname,
                    gname=stamp.gname,
                )
            )
        else:
            tarstream.write_entry(
                sink,
                upper.host(change.path),
                change.path,
                upper.stats[change.path],
                upper.entry_stamp(change.path),
                links,
            )
    if end:
        sink.write(tarstream.END_OF_ARCHIVE)
    return changes


# ---------------------------------------------------------------- flattening


def write_flattened(
    sink: Sink,
    layer_files: Sequence[LayerFile],
    stamp: Stamp = KEEP,
    *,
    hardlinks: bool = True,
    workdir: Optional[str] = None,
    end: bool = True,
    dot: bool = False,
) -> Owners:
    """One layer equal to the whole stack (exportImage): the layers are
    applied to a temporary directory, which is then written sorted by bytes,
    pre-order, with the owners the layers gave (or the stamp's). With
    ``dot``, names are written as ``tar -C ROOT -c .`` writes them: a ``./``
    entry for the root (0755, root's, time 1) and ``./`` before every name.
    A whole tar unless ``end=False``; the caller flushes. Returns the owners."""
    with tempfile.TemporaryDirectory(prefix="flatten-", dir=workdir) as tmp:
        root = os.path.join(tmp, "rootfs")
        owners = apply_layers(root, layer_files)
        prefix = b"./" if dot else b""
        if dot:
            sink.write(tarstream.header(b"./", tarstream.DIR, 0o755, 0, 0, 1, uname="root", gname="root"))
        try:
            snapshot = _Snapshot(root, owners, stamp)
            links: Optional[dict] = {} if hardlinks else None
            for rel, st in snapshot.stats.items():
                tarstream.write_entry(sink, snapshot.host(rel), prefix + rel, st, snapshot.entry_stamp(rel), links)
        except PermissionError as e:
            # A mode 0000 file or 0311 directory stops a non-root reader;
            # fakeroot keeps the real modes readable.
            raise BuildError(
                f"flattening: {os.fsdecode(e.filename or b'')}: permission denied (run as root or under fakeroot)"
            ) from None
        if end:
            sink.write(tarstream.END_OF_ARCHIVE)
    return owners
