#!/usr/bin/env python3
"""Performance figures for the builder, each next to its reference.

    python3 bench/bench.py [--work DIR] [--skip-gzip] [--prepare-only]

Makes (once; later runs reuse it) a synthetic store of real trees copied from
this machine into the Nix store with ``nix-store --add`` (Python libraries,
docs, locales, man pages, headers, shared libraries, a JDK, a few big
files), then measures in one run:

  a) GNU tar of the store paths into a pipe drained by ``cat``
  b) our tar stream of the same paths as one store layer, same kind of pipe,
     and the peak memory of the process making it; like every child of ours
     here, run from a copy of the builder with its bytecode, as Nix installs
     it (``builder/selfcompile.py``)
  c) the hashing floor: one Python pass reading every file, sha256 of it all
  d) our build-time digests (``assemble.hash_store_layers``), one layer per
     store path
  e) our gzip against ``pigz -6 -p <cores>`` on the same archive
  f) layering a synthetic 50,000-path closure graph
  g) pushing with ``--compress gzip`` to a local ``docker-registry``, next to
     ``skopeo copy`` of the same image (an uncompressed OCI layout, which
     skopeo compresses) to the same registry: the first push, a re-push of
     the unchanged image, and a re-push after changing one (app) layer; both
     tools keep their blob-info caches (ours in a private $XDG_CACHE_HOME);
     ours runs as the scripts run it (``python3 -IBS``)
  h) ``nix-build`` of an image's description (-conf) after an app change, the
     same closure as (g) in ``contents`` (hashed again) or in an explicit
     ``buildLayer`` layer (built once, before)

and prints every figure with its ratio to its reference and target. Nothing
is written into the repository; the work directory (default
``/var/tmp/builder-bench``) holds the big-file copies, GC roots for the
store paths, and the archive for (e).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from builder.sinks import compress
from builder.sinks.sink import FdSink  # noqa: E402
from builder.steps import closure
from builder.tar import (
    parallel,
    rootfs,
    tarstream,
)

CORES = os.cpu_count() or 1
MIN_BYTES = 1 << 30
MIN_FILES = 50_000

# Trees copied into the store, when present. Globs, in order.
SOURCE_GLOBS = [
    "/usr/lib/python3*",
    "/usr/share/doc",
    "/usr/share/locale",
    "/usr/share/man",
    "/usr/share/icons",
    "/usr/share/zoneinfo",
    "/usr/share/perl",
    "/usr/share/vim",
    "/usr/share/cmake-*",
    "/usr/share/i18n",
    "/usr/include",
    "/usr/lib/jvm",
    "/usr/lib/*-linux-gnu",
    "/usr/share",  # only if the ones above were not enough
]
# Big single files (compressible binaries first), copied into one tree.
BIG_FILE_DIRS = ["/usr/lib", "/usr/libexec", "/usr/bin", "/opt", "/usr/local"]
BIG_FILE_MIN = 50 << 20
BIG_FILES_TOTAL = 600 << 20


# --- the synthetic store ------------------------------------------------------


def _tree_stats(path: str):
    files = nbytes = 0
    for dirpath, dirnames, filenames in os.walk(path):
        files += len(filenames) + len(dirnames)
        for n in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            if not os.path.islink(os.path.join(dirpath, n)):
                nbytes += st.st_size
    return files, nbytes


def _pick_big_files():
    found = []
    for top in BIG_FILE_DIRS:
        for dirpath, _dirs, filenames in os.walk(top):
            for n in filenames:
                p = os.path.join(dirpath, n)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if os.path.isfile(p) and not os.path.islink(p) and st.st_size >= BIG_FILE_MIN:
                    # Zip-like archives are already compressed: they say nothing
                    # about gzip. Prefer binaries and libraries.
                    packed = n.endswith((".whl", ".zip", ".gz", ".xz", ".zst", ".jar", ".bz2"))
                    found.append((packed, -st.st_size, p))
    found.sort()
    chosen, total = [], 0
    for _packed, neg, p in found:
        if total >= BIG_FILES_TOTAL:
            break
        if total - neg > 2 * BIG_FILES_TOTAL:
            continue
        chosen.append(p)
        total -= neg
    return chosen


def _big_files_tree(work: str) -> str:
    tree = os.path.join(work, "bench-bigfiles")
    done = os.path.join(work, "bench-bigfiles.done")
    if os.path.exists(done):
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    for i, p in enumerate(_pick_big_files()):
        shutil.copyfile(p, os.path.join(tree, "%02d-%s" % (i, os.path.basename(p))))
    open(done, "w").close()
    return tree


def _nix_add(src: str, work: str) -> str:
    out = subprocess.run(["nix-store", "--add", src], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    # A GC root, so a garbage collection between runs does not drop it.
    roots = os.path.join(work, "gcroots")
    os.makedirs(roots, exist_ok=True)
    subprocess.run(
        ["nix-store", "--add-root", os.path.join(roots, os.path.basename(out)), "--realise", out],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def prepare_store(work: str):
    """The store paths of the synthetic store, made once and cached."""
    os.makedirs(work, exist_ok=True)
    cache_file = os.path.join(work, "store-paths.json")
    cache = {}
    if os.path.exists(cache_file):
        with open(cache_file) as f:
            cache = json.load(f)
    sources = []
    for pattern in SOURCE_GLOBS:
        sources.extend(sorted(p for p in glob.glob(pattern) if os.path.isdir(p)))
    picked, files, nbytes = [], 0, 0
    big = _big_files_tree(work)
    for src in [big] + sources:
        if src == "/usr/share" and (files >= MIN_FILES and nbytes >= MIN_BYTES):
            continue
        if any(src.startswith(p + "/") or p.startswith(src + "/") for p in picked):
            continue
        picked.append(src)
        entry = cache.get(src)
        if entry is None or not os.path.exists(entry["path"]):
            t0 = time.monotonic()
            store_path = _nix_add(src, work)
            f, b = _tree_stats(store_path)
            entry = cache[src] = {"path": store_path, "files": f, "bytes": b}
            print(
                f"  added {src} -> {store_path} ({f} entries, {b / 1e6:.0f} MB, {time.monotonic() - t0:.1f} s)",
                flush=True,
            )
            with open(cache_file, "w") as fh:
                json.dump(cache, fh, indent=1)
        files += entry["files"]
        nbytes += entry["bytes"]
    paths = sorted(cache[s]["path"] for s in picked)
    # Store paths of small files (man pages, headers, icons ...): where the
    # per-file cost shows.
    small = sorted(cache[s]["path"] for s in picked if cache[s]["bytes"] < 16_000 * max(1, cache[s]["files"]))
    return paths, files, nbytes, small


# --- measuring ----------------------------------------------------------------


def _drop_caches_warm(paths):
    """Read everything once so every measurement runs from the page cache."""
    subprocess.run(
        ["tar", "-C", "/", "-cf", "-"] + [p.lstrip("/") for p in paths], stdout=subprocess.DEVNULL, check=True
    )


def _run_into_drain(cmd, drain=None, env=None):
    """Run ``cmd`` with its stdout piped into ``drain`` (``cat > /dev/null``
    by default). Returns (seconds, peak RSS of cmd in bytes, drain's output,
    CPU seconds of cmd).

    The peak comes from GNU time when installed: a child started straight
    from this (big) Python process would inherit its high-water mark
    through vfork and exec, which says nothing about the child."""
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    rss_file = os.path.join(_tmpdir(), "rss")
    if timer:
        cmd = [timer, "-f", "%M %U %S", "-o", rss_file] + list(cmd)
    t0 = time.monotonic()
    if drain is None:
        sink = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    else:
        sink = subprocess.Popen(list(drain), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc = subprocess.Popen(cmd, stdout=sink.stdin, env=env, cwd=REPO)
    sink.stdin.close()
    out = sink.stdout.read() if drain is not None else b""
    sink.wait()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or sink.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: exit {proc.returncode}")
    if timer:
        with open(rss_file) as f:
            kb, user, system = f.read().split("\n")[-2].split()
        rss, cpu = int(kb) * 1024, float(user) + float(system)
    else:
        rss, cpu = usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime
    return elapsed, rss, out, cpu


_TMP = []


def _tmpdir():
    if not _TMP:
        import tempfile

        _TMP.append(tempfile.mkdtemp(prefix="builder-bench-"))
    return _TMP[0]


# Our children run Python as the stream scripts do (-I, -B), and without
# this machine's site-packages (-S): a stream script's Nix Python has none,
# while a pyenv or distribution one may spend tens of milliseconds there.
_PYTHON = [sys.executable, "-IBS"]

_STREAM_CHILD = """
import os, sys
sys.path.insert(0, {repo!r})
from builder.sinks.sink import FdSink
from builder.tar.rootfs import write_layer
from builder.tar.tarstream import Stamp
sink = FdSink(1)
write_layer(sink, sys.argv[1:], Stamp(uid=0, gid=0, uname="root", gname="root", mtime=1))
sink.flush()
"""

_GZIP_CHILD = """
import os, sys
sys.path.insert(0, {repo!r})
from builder.sinks.compress import compressor
from builder.sinks.sink import FdSink
out = FdSink(1)
fd = os.open(sys.argv[1], os.O_RDONLY)
with compressor("gzip", out) as s:
    s.copy_file(fd, os.fstat(fd).st_size)
out.flush()
"""


def hashing_floor(paths):
    """One pass, one thread: read every regular file, sha256 all the bytes."""
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    total = 0
    for top in paths:
        for dirpath, _dirnames, filenames in os.walk(top):
            for n in filenames:
                p = os.path.join(dirpath, n)
                if os.path.islink(p):
                    continue
                fd = os.open(p, os.O_RDONLY)
                try:
                    while True:
                        k = os.readv(fd, [buf])
                        if not k:
                            break
                        h.update(view[:k])
                        total += k
                finally:
                    os.close(fd)
    return total


# --- the synthetic closure graph ----------------------------------------------

_B32 = "0123456789abcdfghijklmnpqrsvwxyz"


def synthetic_graph(n: int = 50_000, seed: int = 1):
    """A closure shaped like a big NixOS system: a few leaves everyone uses
    (glibc, gcc-lib, zlib ...), libraries in layers referring mostly to the
    layers just below, long chains (wrappers of wrappers, ``-dev`` of
    ``-dev``), and wide roots (a system-path / buildEnv referring to
    thousands of paths)."""
    rng = random.Random(seed)

    def name(i, label):
        h = "".join(rng.choice(_B32) for _ in range(32))
        return f"/nix/store/{h}-{label}-{i}"

    popular = [
        name(i, lbl)
        for i, lbl in enumerate(
            [
                "glibc-2.39",
                "gcc-13.2.0-lib",
                "zlib-1.3",
                "openssl-3.0",
                "bash-5.2",
                "ncurses-6.4",
                "libffi-3.4",
                "xz-5.4",
                "bzip2-1.0",
                "coreutils-9.4",
            ]
        )
    ]
    refs = {p: [] for p in popular}
    for i, p in enumerate(popular[1:], 1):
        refs[p] = [popular[0]] + rng.sample(popular[:i], min(i, 2))
    nodes = list(popular)
    n_chain_total = n // 10
    n_roots = 20
    n_body = n - len(popular) - n_chain_total - n_roots
    # The body: 100 layers, each referring mostly to the last few layers.
    layers = [list(popular)]
    per_layer = n_body // 100
    made = 0
    for layer_i in range(100):
        layer = []
        count = per_layer if layer_i < 99 else n_body - made
        for _ in range(count):
            p = name(len(nodes), "lib")
            r = set()
            if rng.random() < 0.95:
                r.add(popular[0])
            for q in popular[1:]:
                if rng.random() < 0.15:
                    r.add(q)
            k = min(int(rng.expovariate(1 / 4)) + 1, 60)
            for _ in range(k):
                back = min(int(rng.expovariate(1 / 3)) + 1, len(layers))
                src = layers[-back]
                r.add(src[rng.randrange(len(src))])
            refs[p] = sorted(r)
            layer.append(p)
            nodes.append(p)
        made += count
        layers.append(layer)
    body = nodes[len(popular) :]
    # Long chains: 10 chains of n/100 paths, each referring to the previous
    # one and to a couple of body paths.
    chains = []
    for c in range(10):
        prev = rng.choice(body)
        for _j in range(n_chain_total // 10):
            p = name(len(nodes), f"wrap{c}")
            refs[p] = sorted({prev, rng.choice(body), popular[0]})
            nodes.append(p)
            prev = p
        chains.append(prev)
    # Wide roots.
    everything = list(nodes)
    for r_i in range(n_roots):
        p = name(len(nodes), "system-path" if r_i == 0 else "env")
        width = 5000 if r_i == 0 else rng.randint(50, 2000)
        refs[p] = sorted(set(rng.sample(everything, width)) | {chains[r_i % len(chains)]})
        nodes.append(p)
    graph = []
    for p in nodes:
        graph.append(
            {
                "path": p,
                "references": refs[p] + [p],
                "narHash": "sha256:" + "0" * 52,
                "narSize": 1000 + (hash(p) & 0xFFFF),
                "closureSize": 0,
            }
        )
    rng.shuffle(graph)
    return graph


def bench_layering(n: int = 50_000, repeats: int = 3):
    graph_nodes = synthetic_graph(n)
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        g = closure.Graph(graph_nodes)
        groups = closure.plan_layers(g, 99)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    assert sum(len(x) for x in groups) == n
    edges = sum(len(x["references"]) for x in graph_nodes)
    return best, edges


# --- pushing -------------------------------------------------------------------


def _start_registry(work: str):
    """``docker-registry serve`` on a free loopback port, storage in ``work``."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = os.path.join(work, "registry.yml")
    with open(config, "w") as f:
        f.write(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {work}/storage\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
    log = open(os.path.join(work, "registry.log"), "wb")
    proc = subprocess.Popen(["docker-registry", "serve", config], stdout=log, stderr=subprocess.STDOUT)
    host = f"127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1).close()
            return proc, host
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def _app_layer(work: str, n: int):
    """A small, new "app" layer: a tar file, and its description entry."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        data = os.urandom(1 << 20)
        info = tarfile.TarInfo(f"app/bin-{n}")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    path = os.path.join(work, f"app{n}.tar")
    with open(path, "wb") as f:
        f.write(data)
    # A description names only store paths (formats/description.py).
    path = subprocess.run(["nix-store", "--add", path], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    source = {"kind": "file", "path": path, "offset": 0, "size": len(data), "encoding": "none"}
    source.update(storedDigest=digest, storedSize=len(data))
    return {"diffId": digest, "size": len(data), "source": source}


def _installed(work: str) -> str:
    """The builder as Nix installs it (nix/builder.nix: src), with its
    bytecode, copied once per run: what our children run, as the scripts
    and build steps run theirs."""
    from builder.selfcompile import copy_compiled

    installed = os.path.join(work, "src")
    if not os.path.isdir(os.path.join(installed, "builder")):
        copy_compiled(REPO, installed)
    return installed


def bench_push(args, paths, stamp):
    """(g): returns the figures."""
    from builder.formats.description import entry_of, read_description, write_description
    from builder.formats.oci_layout import write_oci_layout
    from builder.model.image import canonical_json
    from builder.steps.assemble import hash_store_layers

    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            print(f"(g) skipped: {tool} is not installed")
            return []
    work = os.path.join(args.work, "push")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    registry, host = _start_registry(work)
    results = []
    try:
        base = [entry_of(layer) for layer in hash_store_layers([[p] for p in paths], stamp)]

        def description(n: int) -> str:
            entries = base + [_app_layer(work, n)]
            config = {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/app/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [e["diffId"] for e in entries]},
            }
            out = os.path.join(work, f"desc{n}")
            write_description(out, config_bytes=canonical_json(config), entries=entries, repo_tag=f"bench:r{n}")
            # skopeo's source: the same image, uncompressed, in one OCI layout
            # (blobs shared between rounds).
            write_oci_layout(os.path.join(work, "oci"), [(read_description(out).image, [f"bench:r{n}"])], "none")
            return out

        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, "xdg-cache"))
        installed = _installed(args.work)

        def ours(n: int, repo: str = "ours"):
            # As the stream and copy-to-registry scripts run it: isolated, no bytecode written, no site.
            cmd = [sys.executable, "-IBS", os.path.join(installed, "builder"), "push", os.path.join(work, f"desc{n}")]
            cmd += [f"{host}/{repo}:r{n}", "--insecure", "--compress", "gzip"]
            return _run_into_drain(cmd, env=env)

        def skopeo(n: int, repo: str = "skopeo"):
            cmd = ["skopeo", "copy", "-q", "--dest-tls-verify=false"]
            cmd += [f"oci:{os.path.join(work, 'oci')}:r{n}", f"docker://{host}/{repo}:r{n}"]
            return _run_into_drain(cmd)

        description(0)
        _drop_caches_warm(paths)
        cold_ours, cold_skopeo = ours(0), skopeo(0)
        print(
            f"(g) first push, gzip        ours {cold_ours[0]:6.2f} s  skopeo {cold_skopeo[0]:6.2f} s  "
            f"(peak ours {cold_ours[1] / 1e6:.0f} MB, skopeo {cold_skopeo[1] / 1e6:.0f} MB)"
        )
        results.append(("first push / skopeo", cold_ours[0] / cold_skopeo[0], None))
        same_ours, same_skopeo = [], []
        for _ in range(args.push_repeat):
            same_ours.append(ours(0))
            same_skopeo.append(skopeo(0))
        so, ss = min(same_ours), min(same_skopeo)
        print(
            f"    re-push, unchanged      ours {so[0]:6.2f} s  skopeo {ss[0]:6.2f} s  (peak ours {so[1] / 1e6:.0f} MB)"
        )
        results.append(("re-push unchanged / skopeo", so[0] / ss[0], None))
        change_ours, change_skopeo = [], []
        for n in range(1, args.push_repeat + 1):
            description(n)
            change_ours.append(ours(n))
            change_skopeo.append(skopeo(n))
        co, cs = min(change_ours), min(change_skopeo)
        print(
            f"    re-push, 1 layer new    ours {co[0]:6.2f} s  skopeo {cs[0]:6.2f} s  "
            f"(peak ours {co[1] / 1e6:.0f} MB, skopeo {cs[1] / 1e6:.0f} MB)"
        )
        results.append(("re-push 1 layer / skopeo", co[0] / cs[0], 1.5))
        results.append(("push peak memory (MB)", max(r[1] for r in [cold_ours, so, co]) / 1e6, 100))
    finally:
        registry.terminate()
        registry.wait()
        shutil.rmtree(work, ignore_errors=True)
    return results


# An app on a big closure: the closure as contents, or kept in an explicit
# layer (buildLayer), built once. Only the description (-conf) is built: it
# is what hashes the layers.
_REBUILD_EXPR = """
{ repo, paths, version, explicit }:
let
  pkgs = import (repo + "/tests/hostpkgs.nix") { };
  dockerTools = import (repo + "/default.nix") { inherit pkgs; };
  closure = map builtins.storePath paths;
  app = pkgs.writeTextDir "share/app/VERSION" version;
  runtime = dockerTools.buildLayer { deps = closure; };
in
(dockerTools.streamLayeredImage (
  { name = "app"; config.Cmd = [ "/bin/app" ]; }
  // (if explicit then { contents = [ app ]; layers = [ runtime ]; } else { contents = closure ++ [ app ]; })
)).conf
"""


def bench_rebuild(args, paths):
    """(h): returns the figures."""
    if shutil.which("nix-build") is None:
        print("(h) skipped: nix-build is not installed")
        return []
    expr = os.path.join(_tmpdir(), "rebuild.nix")
    with open(expr, "w") as f:
        f.write(_REBUILD_EXPR)
    nbytes = sum(_tree_stats(p)[1] for p in paths)
    salt = f"{time.time_ns()}"

    def build(explicit: bool, n: int) -> float:
        cmd = ["nix-build", expr, "--no-out-link", "--quiet", "--arg", "repo", REPO]
        cmd += ["--arg", "paths", "[ " + " ".join(f'"{p}"' for p in paths) + " ]"]
        cmd += ["--argstr", "version", f"{salt}-{explicit}-{n}", "--arg", "explicit", "true" if explicit else "false"]
        t0 = time.monotonic()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.monotonic() - t0

    build(True, 0)  # the explicit layer itself, once: not an app change
    runs = [(build(False, n), build(True, n)) for n in range(1, 1 + args.repeat)]
    whole, layered = min(r[0] for r in runs), min(r[1] for r in runs)
    print(
        f"(h) build after an app change ({nbytes / 1e9:.2f} GB closure): "
        f"closure in contents {whole:.2f} s, in an explicit layer {layered:.2f} s"
    )
    return [("rebuild: explicit / contents", layered / whole, None), ("rebuild, explicit layer (s)", layered, None)]


# --- main -----------------------------------------------------------------------


def _fmt_rate(nbytes, seconds):
    return f"{nbytes / seconds / 1e6:7.0f} MB/s"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/var/tmp/builder-bench")
    ap.add_argument("--skip-gzip", action="store_true", help="leave out (e), the slowest part")
    ap.add_argument("--prepare-only", action="store_true")
    ap.add_argument("--skip-push", action="store_true", help="leave out (g)")
    ap.add_argument("--only-push", action="store_true", help="only (g)")
    ap.add_argument("--skip-rebuild", action="store_true", help="leave out (h)")
    ap.add_argument("--only-rebuild", action="store_true", help="only (h)")
    ap.add_argument(
        "--push-bytes", type=float, default=1.5e9, help="(g) pushes the smallest store paths up to this many bytes"
    )
    ap.add_argument("--push-repeat", type=int, default=3, help="re-pushes in (g); the best counts")
    ap.add_argument("--repeat", type=int, default=2, help="runs of (a)-(d); the best counts")
    ap.add_argument("--gzip-repeat", type=int, default=2, help="runs of (e); the best counts")
    args = ap.parse_args()

    load = os.getloadavg()[0]
    print(
        f"synthetic store in {args.work} ({CORES} cores, load {load:.2f}; "
        f"streams into a pipe use {parallel.jobs()} processes)",
        flush=True,
    )
    if load > 0.5:
        print("  warning: the machine is busy; figures will be noisy")
    paths, files, nbytes, small = prepare_store(args.work)
    print(f"  {len(paths)} store paths, {files} entries, {nbytes / 1e9:.2f} GB of file contents")
    if files < MIN_FILES or nbytes < MIN_BYTES:
        print("  warning: fewer files or bytes than the benchmark is meant for")
    if args.prepare_only:
        return
    shutil.rmtree(os.path.join(args.work, "src"), ignore_errors=True)  # this checkout's builder, not an older one
    installed = _installed(args.work)
    _drop_caches_warm(paths)
    rel = [p.lstrip("/") for p in paths]
    results = []
    stamp = tarstream.Stamp(uid=0, gid=0, uname="root", gname="root", mtime=1)
    if args.only_push:
        _print_results(bench_push(args, _push_paths(args, paths), stamp))
        return
    if args.only_rebuild:
        _print_results(bench_rebuild(args, _push_paths(args, paths, "(h) a closure of")))
        return

    def best_of(fn):
        runs = [fn() for _ in range(args.repeat)]
        return min(runs, key=lambda r: r[0])

    def best_of_pair(fn_ref, fn_ours):
        """Taking turns, so a busy spell on the machine hits both alike."""
        ref_runs, our_runs = [], []
        for _ in range(args.repeat):
            ref_runs.append(fn_ref())
            our_runs.append(fn_ours())
        return min(ref_runs, key=lambda r: r[0]), min(our_runs, key=lambda r: r[0])

    # (a) and (b)
    (tar_s, tar_rss, _, _), (stream_s, stream_rss, _, _) = best_of_pair(
        lambda: _run_into_drain(["tar", "-C", "/", "-cf", "-"] + rel),
        lambda: _run_into_drain(_PYTHON + ["-c", _STREAM_CHILD.format(repo=installed)] + paths),
    )
    print(f"(a) GNU tar | cat           {tar_s:7.2f} s  {_fmt_rate(nbytes, tar_s)}  peak {tar_rss / 1e6:.0f} MB")
    print(
        f"(b) our stream | cat        {stream_s:7.2f} s  {_fmt_rate(nbytes, stream_s)}  peak {stream_rss / 1e6:.0f} MB"
    )
    results.append(("stream / tar", stream_s / tar_s, 1.1))
    if small:
        rel_small = [p.lstrip("/") for p in small]
        files_small = sum(_tree_stats(p)[0] for p in small)
        tar2, stream2 = best_of_pair(
            lambda: _run_into_drain(["tar", "-C", "/", "-cf", "-"] + rel_small),
            lambda: _run_into_drain(_PYTHON + ["-c", _STREAM_CHILD.format(repo=installed)] + small),
        )
        tar2_s, stream2_s = tar2[0], stream2[0]
        print(
            f"    small files only: tar {tar2_s:.2f} s, ours {stream2_s:.2f} s "
            f"({len(small)} store paths, {files_small} entries)"
        )
        results.append(("  small files: stream / tar", stream2_s / tar2_s, 1.25))
    results.append(("stream peak memory (MB)", stream_rss / 1e6, 100))

    # (c) and (d)
    def floor():
        t0 = time.monotonic()
        total = hashing_floor(paths)
        return time.monotonic() - t0, total

    groups = [[p] for p in paths]
    from builder.steps.assemble import hash_store_layers

    def digests():
        t0 = time.monotonic()
        layers = hash_store_layers(groups, stamp)
        return time.monotonic() - t0, sum(layer.size for layer in layers)

    how = "assemble.hash_store_layers"
    (floor_s, floor_bytes), (dig_s, tar_bytes) = best_of_pair(floor, digests)
    print(f"(c) hashing floor (1 pass)  {floor_s:7.2f} s  {_fmt_rate(floor_bytes, floor_s)}")
    print(
        f"(d) layer digests           {dig_s:7.2f} s  {_fmt_rate(floor_bytes, dig_s)}  "
        f"({len(groups)} layers, {how}, {CORES} threads)"
    )
    results.append(("digests / hash floor", dig_s / floor_s, 1.2))

    # (e)
    if not args.skip_gzip:
        archive = os.path.join(args.work, "archive.tar")
        fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            s = FdSink(fd)
            rootfs.write_layer(s, paths, stamp)
            s.flush()
        finally:
            os.close(fd)
        size = os.path.getsize(archive)
        with open(archive, "rb") as f:  # into the page cache
            while f.read(1 << 24):
                pass
        # Taking turns, so a busy spell on the machine hits both alike.
        pigz_runs, ours_runs = [], []
        for _ in range(args.gzip_repeat):
            pigz_runs.append(_run_into_drain(["pigz", "-6", "-p", str(CORES), "-c", archive], drain=("wc", "-c")))
            ours_runs.append(
                _run_into_drain(_PYTHON + ["-c", _GZIP_CHILD.format(repo=installed), archive], drain=("wc", "-c"))
            )
        pigz_s, pigz_rss, pigz_out, _ = min(pigz_runs, key=lambda r: r[0])
        ours_s, ours_rss, ours_out, _ = min(ours_runs, key=lambda r: r[0])
        pigz_cpu = min(r[3] for r in pigz_runs)
        ours_cpu = min(r[3] for r in ours_runs)
        pigz_size, ours_size = int(pigz_out), int(ours_out)
        print(
            f"(e) pigz -6 -p {CORES:<3}         {pigz_s:7.2f} s  {_fmt_rate(size, pigz_s)}  "
            f"-> {pigz_size / 1e6:.0f} MB  peak {pigz_rss / 1e6:.0f} MB  cpu {pigz_cpu:.1f} s"
        )
        print(
            f"    our gzip ({CORES} threads)   {ours_s:7.2f} s  {_fmt_rate(size, ours_s)}  "
            f"-> {ours_size / 1e6:.0f} MB  peak {ours_rss / 1e6:.0f} MB  cpu {ours_cpu:.1f} s  "
            f"(level {compress.GZIP_LEVEL})"
        )
        results.append(("gzip / pigz", ours_s / pigz_s, 1.3))
        results.append(("gzip cpu / pigz cpu", ours_cpu / pigz_cpu, None))
        results.append(("gzip size / pigz size", ours_size / pigz_size, None))
        os.unlink(archive)

    # (f)
    lay_s, edges = bench_layering()
    print(f"(f) layering 50,000 paths   {lay_s:7.2f} s  ({edges} references, 99 layers)")
    results.append(("layering (s)", lay_s, 2.0))

    # (g)
    if not args.skip_push:
        results.extend(bench_push(args, _push_paths(args, paths), stamp))
    # (h)
    if not args.skip_rebuild:
        results.extend(bench_rebuild(args, _push_paths(args, paths, "(h) a closure of")))
    _print_results(results)


def _push_paths(args, paths, label="(g) pushing"):
    """The smallest store paths, up to --push-bytes (the first push compresses all)."""
    with open(os.path.join(args.work, "store-paths.json")) as f:
        sizes = {e["path"]: e["bytes"] for e in json.load(f).values()}
    chosen, total = [], 0
    for p in sorted(paths, key=lambda p: sizes.get(p, 0)):
        if total + sizes.get(p, 0) > args.push_bytes:
            break
        chosen.append(p)
        total += sizes.get(p, 0)
    files = sum(_tree_stats(p)[0] for p in chosen)
    print(f"{label} {len(chosen)} store paths, {files} entries, {total / 1e9:.2f} GB")
    return sorted(chosen)


def _print_results(results):
    shutil.rmtree(_tmpdir(), ignore_errors=True)
    print()
    print(f"{'figure':<30} {'value':>8} {'target':>8}")
    for label, value, target in results:
        ok = "" if target is None else ("ok" if value <= target else "MISSED")
        tgt = "" if target is None else f"<= {target:g}"
        print(f"{label:<30} {value:8.2f} {tgt:>8}  {ok}")


if __name__ == "__main__":
    main()
