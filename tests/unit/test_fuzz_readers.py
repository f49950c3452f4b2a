"""Property: every reader of outside input, given anything, either succeeds
or raises one BuildError; never another exception, never a hang (each
example runs under a 20 s alarm), never unbounded memory (peak RSS of the
hostile cases measured in a fresh subprocess).

Readers: layer tars (plain and gzip, applied and flattened), docker
archives, OCI layouts (directory and archive), descriptions, registry
answers (the pull client against a scripted registry).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from contextlib import contextmanager

import pytest
from hostile import Answer, docker_archive_members, entry, layer, oci_layout_dir, outer_tar, pax, record, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.errors import BuildError
from builder.formats.description import read_description
from builder.formats.docker_archive import read_docker_archive_all
from builder.formats.load import load_image
from builder.formats.oci_layout import read_oci
from builder.model.image import canonical_json, sha256_digest
from builder.registry.pull import pull
from builder.sinks.sink import HashSink, MemorySink
from builder.tar import tarstream, whiteout

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@contextmanager
def bounded(seconds: int = 20):
    def stop(*_):
        raise AssertionError(f"reader did not finish within {seconds} s (a hang)")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def only_build_errors(fn, *args, **kw):
    """Run a reader: success, or one BuildError whose message is one line."""
    with bounded():
        try:
            return fn(*args, **kw)
        except BuildError as e:
            assert "\n" not in str(e) or str(e).count("\n") < 3, str(e)[:300]
            return None


# --- strategies ---------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)

names = st.sampled_from([b"a", b"dir/", b"dir/f", b"../x", b"/abs", b".wh.a", b"dir/.wh..wh..opq", b"l" * 120, b""])
kinds = st.sampled_from([tarstream.REG, tarstream.DIR, tarstream.SYM, tarstream.LNK, tarstream.FIFO, b"7", b"g"])
pax_values = st.sampled_from(["1e400", "nan", "-5", str(2**66), "abc", "", "1.5", "0", "99999999999999"])
pax_keys = st.sampled_from(["mtime", "uid", "gid", "size", "path", "linkpath", "uname", "SCHILY.xattr.user.x"])


@st.composite
def tar_entries(draw):
    name = draw(names)
    kind = draw(kinds)
    data = draw(st.binary(max_size=64)) if kind == tarstream.REG else b""
    head = entry(
        name,
        data,
        kind=kind,
        mode=draw(st.integers(0, 0o7777)),
        uid=draw(st.integers(0, 2**21)),
        mtime=draw(st.integers(0, 2**33 - 1)),
        linkname=draw(names) if kind in (tarstream.SYM, tarstream.LNK) else b"",
    )
    if draw(st.booleans()):
        head = pax(draw(st.one_of(st.builds(record, pax_keys, pax_values), st.binary(max_size=30)))) + head
    return head


@st.composite
def mutated(draw, base: bytes):
    """``base`` with bytes flipped, a piece cut out or the end cut off."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if data and draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] if draw(st.booleans()) else data[:cut] + data[cut + draw(st.integers(0, 600)) :]
    return bytes(data)


layer_bytes_st = (
    st.lists(tar_entries(), max_size=6).map(lambda es: layer(*es)).flatmap(lambda b: st.one_of(st.just(b), mutated(b)))
)


# --- layer tars ------------------------------------------------------------------------


@FUZZ
@given(data=layer_bytes_st, compressed=st.booleans())
def test_layer_tar_reader(data, compressed):
    if compressed:
        data = gzip.compress(data, mtime=0)
    with tempfile.TemporaryDirectory() as tmp:
        only_build_errors(whiteout.apply_layers, os.path.join(tmp, "root"), [io.BytesIO(data)], chown=False)
        path = os.path.join(tmp, "l.tar")
        write(path, data)
        only_build_errors(whiteout.write_flattened, MemorySink(), [path], workdir=tmp)


# --- docker archives --------------------------------------------------------------------


@st.composite
def docker_archives(draw):
    members = docker_archive_members([draw(layer_bytes_st)])
    which = draw(st.sampled_from(["manifest.json", "config.json", "0/layer.tar", None]))
    if which is not None:
        members[which] = draw(
            st.one_of(
                json_values.map(lambda v: json.dumps(v).encode()),
                st.binary(max_size=200),
                st.sampled_from([("symlink", "manifest.json"), ("symlink", "config.json"), ("symlink", "../x")]),
            )
        )
    data = outer_tar(members)
    if draw(st.booleans()):
        data = draw(mutated(data))
    if draw(st.booleans()):
        data = gzip.compress(data, mtime=0)
    return data


@FUZZ
@given(data=docker_archives())
def test_docker_archive_reader(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = write(os.path.join(tmp, "image.tar"), data)
        images = only_build_errors(read_docker_archive_all, path, tmp)
        for image, _ in images or []:
            for lay in image.layers:
                only_build_errors(lay.write_tar, HashSink())
        only_build_errors(load_image, path, workdir=tmp)


# --- OCI layouts and archives ------------------------------------------------------------


@st.composite
def oci_inputs(draw):
    lb = draw(layer_bytes_st)
    config = canonical_json(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256_digest(lb)]}}
    )
    replace = draw(st.sampled_from(["index.json", "oci-layout", "config", "manifest", None]))
    value = draw(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=100)))
    return lb, config, replace, value, draw(st.booleans())


@FUZZ
@given(inp=oci_inputs())
def test_oci_reader(inp):
    lb, config, replace, value, as_archive = inp
    with tempfile.TemporaryDirectory() as tmp:
        directory = oci_layout_dir(os.path.join(tmp, "oci"), config, [lb])
        blobs = os.path.join(directory, "blobs", "sha256")
        if replace in ("index.json", "oci-layout"):
            write(os.path.join(directory, replace), value)
        elif replace == "config":
            write(os.path.join(blobs, sha256_digest(config)[7:]), value)
        elif replace == "manifest":
            index = json.load(open(os.path.join(directory, "index.json")))
            write(os.path.join(blobs, index["manifests"][0]["digest"][7:]), value)
        target = directory
        if as_archive:
            members = {}
            for root, _, files in os.walk(directory):
                for f in files:
                    full = os.path.join(root, f)
                    members[os.path.relpath(full, directory)] = open(full, "rb").read()
            target = write(os.path.join(tmp, "oci.tar"), outer_tar(members))
        image = only_build_errors(read_oci, target, workdir=tmp)
        for lay in image.layers if image else []:
            only_build_errors(lay.write_tar, HashSink())


# --- descriptions --------------------------------------------------------------------------


@FUZZ
@given(doc=json_values, layer_entry=json_values, raw=st.binary(max_size=100), which=st.integers(0, 2))
def test_description_reader(doc, layer_entry, raw, which, monkeypatch):
    with tempfile.TemporaryDirectory() as tmp:
        monkeypatch.setenv("NIX_STORE_DIR", tmp)
        directory = os.path.join(tmp, "abc-conf")
        os.mkdir(directory)
        write(os.path.join(directory, "config.json"), b"{}")
        if which == 0:
            body = json.dumps(doc).encode()
        elif which == 1:
            body = json.dumps({"version": 1, "repoTag": "a:b", "layers": [layer_entry]}).encode()
        else:
            body = raw
        write(os.path.join(directory, "image.json"), body)
        desc = only_build_errors(read_description, directory)
        for lay in desc.image.layers if desc else []:
            only_build_errors(lay.write_tar, HashSink())


# --- registry answers ------------------------------------------------------------------------


class FuzzRegistry:
    """Answers every request from fuzzed material; never raises itself."""

    def __init__(self, draw):
        self.draw = draw

    def __call__(self, method, url, headers, body=None):
        d = self.draw
        if url.endswith("/v2/"):
            return Answer(d(st.sampled_from([200, 200, 401, 500, 404])), {"WWW-Authenticate": "Bearer"})
        status = d(st.sampled_from([200, 200, 200, 307, 404, 500, 429]))
        headers = {}
        if status == 307:
            headers["Location"] = d(st.sampled_from(["/v2/x", "", "http://[::1", "https://elsewhere.test/b"]))
        if "/manifests/" in url:
            manifest = d(
                st.one_of(
                    json_values,
                    st.fixed_dictionaries(
                        {
                            "schemaVersion": st.just(2),
                            "mediaType": st.sampled_from(
                                [
                                    "application/vnd.oci.image.manifest.v1+json",
                                    "application/vnd.oci.image.index.v1+json",
                                    [],
                                ]
                            ),
                            "manifests": json_values,
                            "config": json_values,
                            "layers": json_values,
                        }
                    ),
                )
            )
            return Answer(status, headers, json.dumps(manifest).encode())
        return Answer(status, headers, d(st.binary(max_size=200)))


@FUZZ
@given(data=st.data())
def test_registry_answers(data):
    with tempfile.TemporaryDirectory() as tmp:
        only_build_errors(
            pull,
            "reg.test/app@sha256:" + "a" * 64,
            tmp,
            platform="linux/amd64",
            opener=FuzzRegistry(data.draw),
            sleep=lambda s: None,
            environ={},
            home="/nonexistent",
            retries=1,
            progress=None,
        )


# --- memory: hostile cases in a fresh process, peak RSS measured ------------------------------

_RSS_SCRIPT = textwrap.dedent(
    """
    import json, os, resource, sys, tempfile, zlib
    sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "tests", "support")]
    from hostile import docker_archive_members, entry, layer, outer_tar, sparse_member_archive, write
    from builder.errors import BuildError
    from builder.formats.description import read_description
    from builder.formats.docker_archive import read_docker_archive, read_docker_archive_all, write_docker_archive
    from builder.sinks.sink import HashSink
    from builder.tar import tarstream
    case, tmp = sys.argv[2], sys.argv[3]

    def bomb_layer(size):
        # a tar whose one file is `size` zero bytes, gzip-compressed piece by piece
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        out = [c.compress(tarstream.header(b"zeros", tarstream.REG, 0o644, 0, 0, 1, size))]
        zero = bytes(1 << 20)
        for _ in range(size >> 20):
            out.append(c.compress(zero))
        out.append(c.compress(tarstream.END_OF_ARCHIVE) + c.flush())
        return b"".join(out)

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = "ok"
    try:
        if case.startswith("gzip-bomb"):
            gz = bomb_layer(256 << 20 if case == "gzip-bomb" else 96 << 20)
            import hashlib, zlib as z
            # the diff_id of the bomb: hashed here in pieces, never held
            d = z.decompressobj(31); h = hashlib.sha256(); rest = gz
            while rest:
                h.update(d.decompress(rest, 1 << 20)); rest = d.unconsumed_tail
            config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h.hexdigest()]}}
            members = docker_archive_members([gz], config=config)
            path = write(os.path.join(tmp, "bomb.tar"), outer_tar(members))
            del gz, members
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            image = read_docker_archive(path, tmp)
            if case == "gzip-bomb":
                write_docker_archive(HashSink(), [(image, ["x:1"])])  # what merge and the stream do
            else:  # what exportImage does
                from builder.sinks.sink import FdSink
                from builder.tar import whiteout
                layer_path = os.path.join(tmp, "layer.tar")
                with open(layer_path, "wb") as f:
                    sink = FdSink(f.fileno())
                    image.layers[0].write_tar(sink)
                    sink.flush()
                whiteout.write_flattened(HashSink(), [layer_path], workdir=tmp)
        elif case == "big-manifest":
            path = sparse_member_archive(os.path.join(tmp, "m.tar"), "manifest.json", 1 << 30, {"x": b""})
            read_docker_archive(path)
        elif case == "big-config":
            members = docker_archive_members()
            del members["config.json"]
            path = sparse_member_archive(os.path.join(tmp, "c.tar"), "config.json", 512 << 20, members)
            read_docker_archive(path)
        elif case == "dev-zero":
            d = os.path.join(tmp, "desc")
            os.mkdir(d)
            write(os.path.join(d, "config.json"), b"{}")
            os.symlink("/dev/zero", os.path.join(d, "image.json"))
            read_description(d)
    except BuildError as e:
        outcome = "error: " + str(e)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"outcome": outcome, "base_kib": base, "peak_kib": peak}))
    """
)


@pytest.mark.parametrize(
    "case, expect",
    [
        ("gzip-bomb", "ok"),
        ("gzip-bomb-export", "ok"),
        ("big-manifest", "error: "),
        ("big-config", "error: "),
        ("dev-zero", "error: "),
    ],
)
def test_peak_memory_of_hostile_inputs(case, expect, tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, REPO, case, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout)
    assert result["outcome"].startswith(expect), result
    grown_mib = (result["peak_kib"] - result["base_kib"]) / 1024
    # 1 GiB of layer or document would show as 1000 MiB here.
    assert grown_mib < 64, result
