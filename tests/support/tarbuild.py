"""Test helpers: layer tars written with builder.tarstream, a minimal OCI
layout around them, ``umoci unpack``, and a comparable picture of a tree."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from typing import Dict, List, NamedTuple, Optional, Sequence

from builder.tar import tarstream

UMOCI = shutil.which("umoci")


class E(NamedTuple):
    """One layer entry as a test writes it."""

    kind: bytes
    name: bytes
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1000
    link: bytes = b""
    dev: tuple = (0, 0)


def _b(name) -> bytes:
    return name.encode() if isinstance(name, str) else name


def f(name, data=b"", mode=0o644, uid=0, gid=0, mtime=1000) -> E:
    return E(tarstream.REG, _b(name), _b(data), mode, uid, gid, mtime)


def d(name, mode=0o755, uid=0, gid=0, mtime=1000) -> E:
    return E(tarstream.DIR, _b(name), b"", mode, uid, gid, mtime)


def sym(name, target, uid=0, gid=0, mtime=1000) -> E:
    return E(tarstream.SYM, _b(name), b"", 0o777, uid, gid, mtime, _b(target))


def hard(name, target, mode=0o644, uid=0, gid=0, mtime=1000) -> E:
    return E(tarstream.LNK, _b(name), b"", mode, uid, gid, mtime, _b(target))


def fifo(name, mode=0o644, mtime=1000) -> E:
    return E(tarstream.FIFO, _b(name), b"", mode, 0, 0, mtime)


def chrdev(name, major, minor, mode=0o666) -> E:
    return E(tarstream.CHR, _b(name), b"", mode, 0, 0, 1000, b"", (major, minor))


def wh(name) -> E:
    parent, _, base = _b(name).rpartition(b"/")
    return f((parent + b"/" if parent else b"") + b".wh." + base, mode=0o600)


def opq(directory) -> E:
    return f(_b(directory).rstrip(b"/") + b"/.wh..wh..opq", mode=0o600)


def tar_bytes(entries: Sequence[E]) -> bytes:
    out = []
    for e in entries:
        name = e.name + b"/" if e.kind == tarstream.DIR and not e.name.endswith(b"/") else e.name
        out.append(
            tarstream.header(
                name,
                e.kind,
                e.mode,
                e.uid,
                e.gid,
                e.mtime,
                size=len(e.data),
                linkname=e.link,
                devmajor=e.dev[0],
                devminor=e.dev[1],
            )
        )
        out.append(e.data + tarstream.padding(len(e.data)))
    out.append(tarstream.END_OF_ARCHIVE)
    return b"".join(out)


def write_layers(directory: str, layers: Sequence[Sequence[E]]) -> List[str]:
    os.makedirs(directory, exist_ok=True)
    files = []
    for i, entries in enumerate(layers):
        path = os.path.join(directory, f"layer{i}.tar")
        with open(path, "wb") as out:
            out.write(tar_bytes(entries))
        files.append(path)
    return files


def _blob(layout: str, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as out:
        out.write(data)
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def oci_layout(layout: str, layer_files: Sequence[str], tag: str = "t") -> str:
    """The smallest OCI layout umoci accepts: oci-layout, index.json, blobs."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    with open(os.path.join(layout, "oci-layout"), "w") as out:
        out.write('{"imageLayoutVersion":"1.0.0"}')
    layers = []
    for path in layer_files:
        with open(path, "rb") as src:
            layers.append(_blob(layout, src.read(), "application/vnd.oci.image.layer.v1.tar"))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
    }
    config_d = _blob(layout, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_d,
        "layers": layers,
    }
    manifest_d = _blob(layout, json.dumps(manifest).encode(), manifest["mediaType"])
    manifest_d["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(layout, "index.json"), "w") as out:
        json.dump({"schemaVersion": 2, "manifests": [manifest_d]}, out)
    return f"{layout}:{tag}"


def umoci_unpack(workdir: str, layer_files: Sequence[str]) -> Optional[str]:
    """umoci's rootfs for these layers, or None when umoci refuses them.
    As root, owners are honoured (no --rootless), so they can be compared."""
    image = oci_layout(os.path.join(workdir, "oci"), layer_files)
    bundle = os.path.join(workdir, "bundle")
    argv = [UMOCI, "unpack"] + ([] if os.geteuid() == 0 else ["--rootless"])
    result = subprocess.run(argv + ["--image", image, bundle], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return os.path.join(bundle, "rootfs")


# umoci stamps directories it creates or changes on its own (missing
# parents, parents of whiteouts) with the current time; generated headers
# use small mtimes, so anything later than this came from the clock.
CLOCK_MTIME = 10**8


def picture(
    root: str, owners: Optional[Dict[bytes, tuple]] = None, *, clock_dirs: bool = False, hardlinks: bool = True
) -> Dict[bytes, tuple]:
    """path -> (type, mode, uid, gid, mtime, content or target, link group).

    ``owners`` replaces lstat's owners (a side table); ``clock_dirs`` drops
    directory mtimes set from the clock (see CLOCK_MTIME)."""
    root_b = os.fsencode(root)
    out = {}
    inodes: Dict[tuple, list] = {}
    for dirpath, dirnames, filenames in os.walk(root_b):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root_b)
            st = os.lstat(path)
            fmt = stat.S_IFMT(st.st_mode)
            mode = 0 if fmt == stat.S_IFLNK else stat.S_IMODE(st.st_mode)
            uid, gid = (owners or {}).get(rel, (st.st_uid, st.st_gid))
            mtime = int(st.st_mtime)
            if clock_dirs and fmt == stat.S_IFDIR and mtime > CLOCK_MTIME:
                mtime = None
            if fmt == stat.S_IFREG:
                with open(path, "rb") as src:
                    body = src.read()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif fmt == stat.S_IFLNK:
                body = os.readlink(path)
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                body = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                body = b""
            out[rel] = [fmt, mode, uid, gid, mtime, body, ()]
    if hardlinks:
        for group in inodes.values():
            for rel in group:
                out[rel][6] = tuple(sorted(group))
    return {rel: tuple(v) for rel, v in out.items()}


def drop_clock_mtimes(a: dict, b: dict) -> tuple:
    """Directory mtimes compared only where both sides have one."""
    a, b = dict(a), dict(b)
    for rel in set(a) & set(b):
        if a[rel][4] is None or b[rel][4] is None:
            a[rel] = a[rel][:4] + (None,) + a[rel][5:]
            b[rel] = b[rel][:4] + (None,) + b[rel][5:]
    return a, b
