"""Pushing with several HEAD requests in flight, and a layer whose compressed
digest is unknown compressed once, into a temporary file: against a fake
registry that answers from any thread, in any order (test_registry.py's
scripts check exact orders, with one request at a time)."""

from __future__ import annotations

import os
import threading
import urllib.parse

import pytest
from httpanswer import Answer
from imagekit import failing_layer, make_image, memory_layer
from tarbuild import layer_bytes
from test_registry import _body_bytes

from builder.errors import BuildError, RegistryError
from builder.model.image import Image, sha256_digest
from builder.model.manifest import image_manifest
from builder.model.reference import parse_reference
from builder.registry.blobcache import BlobCache
from builder.registry.client import HttpOpener, RegistryClient
from builder.registry.push import push
from builder.sinks import compress
from builder.sinks.sink import MemorySink


class Registry:
    """A registry in memory, safe to call from several threads. ``meet``:
    that many HEADs wait for each other before any is answered (proof that
    they were in flight at once; a push asking one at a time would break
    the barrier, not hang)."""

    def __init__(self, have=(), meet: int = 0, refuse_head=None, refuse_put: bool = False):
        self.blobs = {d: b"" for d in have}
        self.manifests: dict = {}
        self.log: list = []
        self.lock = threading.Lock()
        self.uploads = 0
        self.partial: dict = {}
        self.barrier = threading.Barrier(meet, timeout=30) if meet else None
        self.threads: set = set()
        self.refuse_head = refuse_head
        self.refuse_put = refuse_put

    def __call__(self, method, url, headers, body=None):
        parts = urllib.parse.urlsplit(url)
        path, query = parts.path, urllib.parse.parse_qs(parts.query)
        data = _body_bytes(body)
        with self.lock:
            self.log.append((method, path))
        if method == "GET" and path == "/v2/":
            return Answer(200)
        if method == "HEAD" and "/blobs/" in path:
            digest = path.rsplit("/", 1)[1]
            with self.lock:
                self.threads.add(threading.get_ident())
            if self.barrier is not None:
                try:
                    self.barrier.wait()
                except threading.BrokenBarrierError:
                    pass  # fewer HEADs than the barrier's parties: the test says so
            if digest == self.refuse_head:
                return Answer(403, body=b'{"errors":[{"code":"DENIED","message":"no"}]}')
            with self.lock:
                size = len(self.blobs[digest]) if digest in self.blobs else None
            return Answer(404) if size is None else Answer(200, {"Content-Length": str(size)})
        if method == "POST" and path.endswith("/blobs/uploads/"):
            with self.lock:
                self.uploads += 1
                n = self.uploads
            return Answer(202, {"Location": f"/v2/app/blobs/uploads/u{n}"})
        if method == "PATCH" and "/blobs/uploads/" in path:
            with self.lock:
                self.partial[path] = self.partial.get(path, b"") + data
            return Answer(202, {"Location": path})
        if method == "PUT" and "/blobs/uploads/" in path:
            if self.refuse_put:
                return Answer(400, body=b'{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"no"}]}')
            digest = query["digest"][0]
            with self.lock:
                data = self.partial.pop(path, b"") + (data or b"")
                assert sha256_digest(data) == digest
                self.blobs[digest] = data
            return Answer(201)
        if method == "DELETE" and "/blobs/uploads/" in path:
            return Answer(204)
        if method == "PUT" and "/manifests/" in path:
            with self.lock:
                missing = [d for d in _named(data) if d not in self.blobs]
                assert not missing, f"manifest before its blobs: {missing}"
                self.manifests[path.rsplit("/", 1)[1]] = data
            return Answer(201, {"Docker-Content-Digest": sha256_digest(data)})
        raise AssertionError((method, url))


def _named(manifest: bytes):
    import json

    doc = json.loads(manifest)
    return [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]


def _gzip(data: bytes) -> bytes:
    sink = MemorySink()
    with compress.compressor("gzip", sink) as csink:
        csink.write(data)
    return bytes(sink.data)


def _push(image: Image, registry: Registry, tmp_path, lines=None, **kw):
    return push(
        image,
        "reg.test/app:1",
        encoding="gzip",
        opener=registry,
        progress=lines.append if lines is not None else None,
        environ={},
        home="/nonexistent",
        blob_cache=BlobCache(str(tmp_path / "blob-info.json")),
        **kw,
    )


def _known_image(n: int):
    """``n`` layers whose gzip digests the build recorded."""
    layers = []
    for i in range(n):
        data = layer_bytes({f"f{i}": f"layer {i}".encode() * 100})
        layer = memory_layer(data)
        gz = _gzip(data)
        layer.known["gzip"] = (sha256_digest(gz), len(gz))
        layers.append(layer)
    return make_image(layers)


def test_heads_go_out_at_once_and_the_manifest_comes_last(tmp_path):
    image = _known_image(5)
    digests = [layer.known["gzip"][0] for layer in image.layers]
    registry = Registry(have=digests[::2], meet=6)  # 5 layers and the config, all at once
    lines: list = []
    result = _push(image, registry, tmp_path, lines)
    assert len(registry.threads) == 6 and not registry.barrier.broken
    heads = [i for i, (method, _path) in enumerate(registry.log) if method == "HEAD"]
    posts = [i for i, (method, _path) in enumerate(registry.log) if method == "POST"]
    assert max(heads) < min(posts)  # asked about everything before sending anything
    assert registry.log[-1] == ("PUT", "/v2/app/manifests/1")
    assert result.skipped == digests[::2] and result.uploaded == [*digests[1::2], image.config_digest]
    # Progress in layer order, whatever order the answers came in.
    assert [line.split()[1] for line in lines[:5]] == [f"{i}/5" for i in range(1, 6)]
    assert lines[5].startswith("config ")
    manifest = image_manifest(image, "gzip")
    assert registry.manifests["1"] == _body_bytes(manifest.blob)


def test_the_first_failure_in_layer_order_is_the_one_reported(tmp_path):
    image = _known_image(4)
    denied = image.layers[2].known["gzip"][0]
    registry = Registry(refuse_head=denied)
    with pytest.raises(RegistryError) as e:
        _push(image, registry, tmp_path)
    assert "403 access denied" in str(e.value) and denied in str(e.value)
    assert not registry.manifests and not any(method in ("POST", "PUT") for method, _ in registry.log)


def test_one_connection_per_thread(tmp_path):
    import ssl

    client = RegistryClient(parse_reference("reg.test/app:1"), progress=None, environ={}, home=str(tmp_path))
    client.opener.context = context = ssl.create_default_context()  # as after the first https request
    barrier = threading.Barrier(3, timeout=30)

    def opener():
        barrier.wait()
        return client._thread_opener()

    openers = client.in_parallel([("x", opener)] * 3, workers=3)
    assert len({id(o) for o in openers}) == 3 and all(isinstance(o, HttpOpener) for o in openers)
    assert all(o.context is context for o in openers)  # certificates read once, not per thread
    assert client._thread_opener() is client.opener  # the caller's own
    closed = []
    for o in openers:
        o.close = lambda o=o: closed.append(o)
    client.close()
    assert len(closed) == 3


def test_an_unknown_digest_costs_one_compression_and_the_bytes_are_the_same(tmp_path, monkeypatch):
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool_dir))
    monkeypatch.setattr("tempfile.tempdir", None)
    data = layer_bytes({"big": os.urandom(3 << 20), "small": b"x" * 5000})
    calls: list = []
    layer = memory_layer(data, calls)
    image = make_image([layer])
    registry = Registry()
    result = _push(image, registry, tmp_path, chunk_size=1 << 20)  # sent in chunks, from the file
    assert calls == [layer.diff_id]  # the tar was made once
    expected = memory_layer(data).blob("gzip")  # what a push that compressed twice sent
    sink = MemorySink()
    expected.write_to(sink)
    assert layer.known["gzip"] == (expected.digest, expected.size)
    assert registry.blobs[expected.digest] == bytes(sink.data)
    assert result.uploaded == [expected.digest, image.config_digest]
    assert registry.manifests["1"] == _body_bytes(image_manifest(image, "gzip").blob)
    assert os.listdir(spool_dir) == []


def test_a_compressed_layer_the_registry_has_is_not_sent(tmp_path):
    data = layer_bytes({"f": b"there" * 1000})
    gz = _gzip(data)
    registry = Registry(have=[sha256_digest(gz)])
    result = _push(make_image([memory_layer(data)]), registry, tmp_path)
    assert result.skipped == [sha256_digest(gz)] and registry.uploads == 1  # the config only


def _spools(where) -> list:
    """This process's open files in ``where`` (a temporary file unlinked at
    once still shows there, as "(deleted)")."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(where)):
            found.append(target)
    return found


@pytest.mark.parametrize("how", ["upload refused", "layer writer killed"])
def test_the_temporary_file_is_gone_after_a_failure(tmp_path, monkeypatch, how):
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool_dir))
    monkeypatch.setattr("tempfile.tempdir", None)
    data = layer_bytes({"f": os.urandom(100_000)})
    if how == "upload refused":
        image, registry = make_image([memory_layer(data)]), Registry(refuse_put=True)
    else:
        image, registry = make_image([failing_layer(data, 50_000)]), Registry()
    with pytest.raises((BuildError, RuntimeError)) as e:
        _push(image, registry, tmp_path)
    assert ("400" in str(e.value)) if how == "upload refused" else ("killed" in str(e.value))
    assert os.listdir(spool_dir) == [] and _spools(spool_dir) == []
    assert not registry.manifests


def test_the_caches_digests_and_the_config_are_asked_about_in_one_round(tmp_path):
    """A re-push of an image whose gzip digests only the blob-info cache
    knows: every confirmation and the config's HEAD are in flight at once."""
    from builder.registry.blobcache import format_of

    layers = [memory_layer(layer_bytes({f"f{i}": f"cached {i}".encode() * 100})) for i in range(3)]
    image = make_image(layers)
    cache = BlobCache(str(tmp_path / "blob-info.json"))
    gzipped = []
    for layer in layers:
        sink = MemorySink()
        layer.blob("gzip").write_to(sink)
        gzipped.append(bytes(sink.data))
        cache.remember(layer.diff_id, format_of("gzip"), sha256_digest(gzipped[-1]), len(gzipped[-1]), [])
        layer.known.clear()  # as after a new load: only the cache knows
    registry = Registry(have=[image.config_digest], meet=4)
    for data in gzipped:
        registry.blobs[sha256_digest(data)] = data
    result = push(
        image,
        "reg.test/app:1",
        encoding="gzip",
        opener=registry,
        progress=None,
        environ={},
        home="/nonexistent",
        blob_cache=cache,
    )
    assert not registry.barrier.broken and len(registry.threads) == 4
    assert result.cached == [sha256_digest(d) for d in gzipped] and registry.uploads == 0
    assert [m for m, _ in registry.log] == ["GET"] + ["HEAD"] * 4 + ["PUT"]


def test_layers_to_compress_are_made_once_each_ahead_of_their_turn(tmp_path, monkeypatch):
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool_dir))
    monkeypatch.setattr("tempfile.tempdir", None)
    calls: list = []
    datas = [layer_bytes({f"f{i}": os.urandom(200_000)}) for i in range(4)]
    image = make_image([memory_layer(d, calls) for d in datas])
    registry = Registry()
    lines: list = []
    result = _push(image, registry, tmp_path, lines)
    assert sorted(calls) == sorted(layer.diff_id for layer in image.layers)  # each tar made once
    for data in datas:
        blob = memory_layer(data).blob("gzip")
        sink = MemorySink()
        blob.write_to(sink)
        assert registry.blobs[blob.digest] == bytes(sink.data)
    assert result.uploaded[:4] == [layer.known["gzip"][0] for layer in image.layers]
    assert [line.split()[1] for line in lines[:4]] == ["1/4", "2/4", "3/4", "4/4"]
    assert os.listdir(spool_dir) == [] and _spools(spool_dir) == []


def test_a_failed_push_stops_the_compression_ahead_and_leaves_no_file(tmp_path, monkeypatch):
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool_dir))
    monkeypatch.setattr("tempfile.tempdir", None)
    image = make_image([memory_layer(layer_bytes({f"f{i}": os.urandom(300_000)})) for i in range(3)])
    with pytest.raises(RegistryError, match="400"):
        _push(image, Registry(refuse_put=True), tmp_path)  # the first upload fails; the second is compressing
    assert os.listdir(spool_dir) == [] and _spools(spool_dir) == []
    assert not any(t.name == "compress" and t.is_alive() for t in threading.enumerate())
