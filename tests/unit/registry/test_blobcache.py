"""The blob-info cache: a hint that saves compressing what the registry has,
never trusted blindly (scripted registry as in test_registry.py; the real
registry: e2e/test_registry_live.py)."""

from __future__ import annotations

import json
import multiprocessing
import os

from imagekit import make_image, memory_layer
from tarbuild import layer_bytes
from test_registry import FakeResponse, Script, _body_bytes

from builder.model.image import Image, Layer
from builder.registry.blobcache import BlobCache, cache_path, format_of
from builder.registry.push import push
from builder.sinks import compress
from builder.sinks.sink import HashSink
from builder.steps.publish import _not_remembered

GZ = compress.gzip_format()


def _digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def _gzip_of(layer: Layer):
    probe = HashSink()
    with compress.compressor("gzip", probe) as sink:
        layer.write_tar(sink)
    return probe.digest, probe.size


def _fresh(data: bytes, calls):
    """A new Layer object over the same bytes: nothing known, as after a new load."""
    return memory_layer(data, calls)


def test_where_the_cache_lives(tmp_path):
    assert cache_path({"XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "nix-docker-tools" / "blob-info.json")
    assert cache_path({"HOME": "/home/u"}) == "/home/u/.cache/nix-docker-tools/blob-info.json"
    assert cache_path({"HOME": "/homeless-shelter"}) is None  # a Nix build
    assert cache_path({}) is None
    assert cache_path({"XDG_CACHE_HOME": "/nix/store/abc-x"}) is None  # never the store
    assert cache_path({"XDG_CACHE_HOME": "relative", "HOME": "/h"}) == "/h/.cache/nix-docker-tools/blob-info.json"
    assert format_of("gzip") == GZ and format_of("none") is None


def test_entries_survive_a_new_process_view(tmp_path):
    path = str(tmp_path / "c.json")
    a = BlobCache(path)
    a.remember(_digest(1), GZ, _digest(2), 10, ["reg/app"])
    a.save()
    b = BlobCache(path)
    assert b.lookup(_digest(1), GZ) == (_digest(2), 10, ["reg/app"])
    assert b.lookup(_digest(1), "gzip-level9") is None  # another format is another key
    b.remember(_digest(1), GZ, _digest(2), 10, ["reg/other"])
    b.save()
    assert BlobCache(path).lookup(_digest(1), GZ)[2] == ["reg/other", "reg/app"]


def test_a_corrupt_file_is_ignored_and_replaced(tmp_path):
    path = tmp_path / "c.json"
    for junk in (b"\x00\xffnot json", b"[1, 2]", b'{"version": 1, "entries": []}', b'{"version": 99, "entries": {}}'):
        path.write_bytes(junk)
        cache = BlobCache(str(path))
        assert cache.entries == {}
        cache.remember(_digest(1), GZ, _digest(2), 10)
        cache.save()
        assert BlobCache(str(path)).lookup(_digest(1), GZ) == (_digest(2), 10, [])


def test_a_damaged_entry_is_ignored(tmp_path):
    path = tmp_path / "c.json"
    cache = BlobCache(str(path))
    cache.remember(_digest(1), GZ, _digest(2), 10)
    cache.remember(_digest(3), GZ, _digest(4), 10)
    cache.save()
    doc = json.loads(path.read_text())
    doc["entries"][f"{_digest(1)} {GZ}"]["digest"] = _digest(5)  # a flipped digest
    doc["entries"][f"{_digest(3)} {GZ}"]["size"] = "10"  # a wrong type
    path.write_text(json.dumps(doc))
    cache = BlobCache(str(path))
    assert cache.lookup(_digest(1), GZ) is None and cache.lookup(_digest(3), GZ) is None


def test_an_unwritable_place_is_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = BlobCache(str(blocker / "sub" / "c.json"))
    cache.remember(_digest(1), GZ, _digest(2), 10)
    cache.save()  # no exception: it is only a cache


def _writer(path: str, worker: int, n: int) -> None:
    for i in range(n):
        cache = BlobCache(path)
        cache.remember(_digest(worker * 1000 + i), GZ, _digest(worker * 1000 + i + 500), i, [f"reg/w{worker}"])
        cache.save()


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "c.json")
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_writer, args=(path, w, 25)) for w in range(1, 7)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
        assert p.exitcode == 0
    cache = BlobCache(path)
    assert len(cache.entries) == 6 * 25
    for w in range(1, 7):
        for i in range(25):
            assert cache.lookup(_digest(w * 1000 + i), GZ) == (_digest(w * 1000 + i + 500), i, [f"reg/w{w}"])
    assert [n for n in os.listdir(tmp_path) if n not in ("c.json", "c.json.lock")] == []  # no temporaries left


# -- push with the cache, against a scripted registry --------------------------


def _push(image: Image, script: Script, cache: BlobCache, ref: str = "reg.test/app:1"):
    return push(
        image,
        ref,
        encoding="gzip",
        opener=script,
        progress=None,
        environ={},
        home="/nonexistent",
        blob_cache=cache,
        workers=1,  # the script's order; test_push_concurrency.py sends them at once
    )


def _manifest_put(image: Image):
    from builder.model.manifest import image_manifest

    return image_manifest(image, "gzip").blob


def test_a_confirmed_entry_skips_compression(tmp_path):
    data = layer_bytes({"f": b"data" * 1000})
    calls: list = []
    cache = BlobCache(str(tmp_path / "c.json"))
    layer = _fresh(data, calls)
    gz_digest, gz_size = _gzip_of(layer)
    calls.clear()
    cache.remember(layer.diff_id, GZ, gz_digest, gz_size, ["reg.test/app"])
    image = make_image([layer])
    manifest = _manifest_put(make_image([_fresh(data, None)]))
    script = Script(
        ("GET", "/v2/", FakeResponse(200)),
        ("HEAD", f"/blobs/{gz_digest}", FakeResponse(200, {"Content-Length": str(gz_size)})),
        ("HEAD", f"/blobs/{image.config_digest}", FakeResponse(200)),
        ("PUT", "/manifests/1", FakeResponse(201, {"Docker-Content-Digest": manifest.digest})),
    )
    result = _push(image, script, cache)
    assert script.steps == []
    assert calls == []  # the layer was neither compressed nor read
    assert result.cached == [gz_digest] and result.skipped == [gz_digest, image.config_digest]
    assert script.calls[-1][3] == _body_bytes(manifest)


def test_a_stale_entry_costs_one_request_and_the_push_is_right(tmp_path):
    data = layer_bytes({"f": b"stale" * 1000})
    cache = BlobCache(str(tmp_path / "c.json"))
    layer = _fresh(data, None)
    real_digest, real_size = _gzip_of(layer)
    wrong = _digest(7)
    cache.remember(layer.diff_id, GZ, wrong, real_size)
    cache.save()
    image = make_image([layer])
    manifest = _manifest_put(make_image([_fresh(data, None)]))
    script = Script(
        ("GET", "/v2/", FakeResponse(200)),
        ("HEAD", f"/blobs/{wrong}", FakeResponse(404)),  # the one extra request
        ("HEAD", f"/blobs/{image.config_digest}", FakeResponse(200)),
        ("HEAD", f"/blobs/{real_digest}", FakeResponse(404)),
        ("POST", "/blobs/uploads/", FakeResponse(202, {"Location": "/v2/app/blobs/uploads/u1"})),
        ("PUT", "/blobs/uploads/u1?digest=" + real_digest.replace(":", "%3A"), FakeResponse(201)),
        ("PUT", "/manifests/1", FakeResponse(201, {"Docker-Content-Digest": manifest.digest})),
    )
    result = _push(image, script, cache)
    assert script.steps == []
    assert result.stale == [wrong] and result.uploaded == [real_digest]
    assert script.calls[-1][3] == _body_bytes(manifest)  # names the real digest
    assert BlobCache(str(tmp_path / "c.json")).lookup(layer.diff_id, GZ) == (real_digest, real_size, ["reg.test/app"])


def test_a_blob_of_another_size_is_not_taken(tmp_path):
    data = layer_bytes({"f": b"size" * 1000})
    cache = BlobCache(str(tmp_path / "c.json"))
    layer = _fresh(data, None)
    real_digest, real_size = _gzip_of(layer)
    cache.remember(layer.diff_id, GZ, real_digest, real_size + 1)
    image = make_image([layer])
    script = Script(
        ("GET", "/v2/", FakeResponse(200)),
        ("HEAD", f"/blobs/{real_digest}", FakeResponse(200, {"Content-Length": str(real_size)})),
        ("HEAD", f"/blobs/{image.config_digest}", FakeResponse(200)),
        ("HEAD", f"/blobs/{real_digest}", FakeResponse(200, {"Content-Length": str(real_size)})),
        ("PUT", "/manifests/1", FakeResponse(201)),
    )
    result = _push(image, script, cache)
    assert script.steps == [] and result.stale == [real_digest] and result.cached == []


def test_a_blob_held_by_another_repository_is_mounted_not_compressed(tmp_path):
    data = layer_bytes({"f": b"mount" * 1000})
    calls: list = []
    cache = BlobCache(str(tmp_path / "c.json"))
    layer = _fresh(data, calls)
    gz_digest, gz_size = _gzip_of(layer)
    calls.clear()
    cache.remember(layer.diff_id, GZ, gz_digest, gz_size, ["reg.test/base", "other.test/x"])
    image = make_image([layer])
    quoted = gz_digest.replace(":", "%3A")
    script = Script(
        ("GET", "/v2/", FakeResponse(200)),
        ("HEAD", f"/blobs/{gz_digest}", FakeResponse(404)),
        ("POST", f"/blobs/uploads/?mount={quoted}&from=base", FakeResponse(201)),
        ("HEAD", f"/blobs/{gz_digest}", FakeResponse(200, {"Content-Length": str(gz_size)})),
        ("HEAD", f"/blobs/{image.config_digest}", FakeResponse(200)),
        ("PUT", "/manifests/1", FakeResponse(201)),
    )
    result = _push(image, script, cache)
    assert script.steps == [] and calls == []
    assert result.mounted == [gz_digest] and result.cached == [gz_digest]
    assert cache.lookup(layer.diff_id, GZ)[2][0] == "reg.test/app"


def test_a_refused_mount_is_cancelled_and_the_layer_compressed(tmp_path):
    data = layer_bytes({"f": b"refused" * 1000})
    cache = BlobCache(str(tmp_path / "c.json"))
    layer = _fresh(data, None)
    gz_digest, gz_size = _gzip_of(layer)
    cache.remember(layer.diff_id, GZ, gz_digest, gz_size, ["reg.test/base"])
    image = make_image([layer])
    script = Script(
        ("GET", "/v2/", FakeResponse(200)),
        ("HEAD", f"/blobs/{gz_digest}", FakeResponse(404)),
        ("POST", "/blobs/uploads/?mount=", FakeResponse(202, {"Location": "/v2/app/blobs/uploads/m1"})),
        ("DELETE", "/blobs/uploads/m1", FakeResponse(204)),
        ("HEAD", f"/blobs/{image.config_digest}", FakeResponse(200)),
        ("HEAD", f"/blobs/{gz_digest}", FakeResponse(404)),
        ("POST", "/blobs/uploads/", FakeResponse(202, {"Location": "/v2/app/blobs/uploads/u1"})),
        ("PUT", "/blobs/uploads/u1?digest=", FakeResponse(201)),
        ("PUT", "/manifests/1", FakeResponse(201)),
    )
    result = _push(image, script, cache)
    assert script.steps == [] and result.stale == [gz_digest] and result.uploaded == [gz_digest]


def test_a_push_without_a_cache_home_writes_none(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    layer = memory_layer(layer_bytes({"f": b"x"}))
    image = make_image([layer])
    digest, _ = _gzip_of(layer)
    script = Script(
        ("GET", "/v2/", FakeResponse(200)),
        ("HEAD", f"/blobs/{image.config_digest}", FakeResponse(200)),
        ("HEAD", f"/blobs/{digest}", FakeResponse(200)),  # after the layer was compressed
        ("PUT", "/manifests/1", FakeResponse(201)),
    )
    # environ={} (the session's environment) has no home: no cache at all.
    push(image, "reg.test/app:1", encoding="gzip", opener=script, progress=None, environ={}, home="/nonexistent")
    assert os.listdir(tmp_path) == []


def test_the_push_note_counts_only_layers_the_cache_does_not_know(tmp_path):
    a, b, c = (memory_layer(layer_bytes({name: name.encode()})) for name in "abc")
    image = make_image([a, b, c, a])  # a layer twice counts once
    cache = BlobCache(str(tmp_path / "cache.json"))
    assert _not_remembered([image], "gzip", cache) == 3
    cache.remember(b.diff_id, format_of("gzip"), _digest(9), 10)
    assert _not_remembered([image], "gzip", cache) == 2
