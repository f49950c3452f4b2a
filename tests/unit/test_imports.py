"""What a push and a stream load: every script run pays for its imports, so
modules for other commands and stdlib packages it does not use stay unloaded
(speed is shown by bench/bench.py; here only which modules load)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

from builder.formats.description import entry_of, write_description
from builder.model.image import canonical_json
from builder.steps.assemble import measure
from builder.steps.scripts import script_text
from builder.tar.tarstream import Stamp

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROGRAM = """
import json, sys
sys.path.insert(0, sys.argv[1])
import builder.cli, builder.steps.publish
from builder.sinks.compress import compressor
from builder.sinks.sink import MemorySink
with compressor("gzip", MemorySink(), threads=2) as sink:  # a new layer, compressed on two threads
    sink.write(bytes(3 << 20))
print(json.dumps(sorted(sys.modules)))
"""


def test_a_push_loads_no_module_it_does_not_use():
    r = subprocess.run([sys.executable, "-IBS", "-c", PROGRAM, REPO], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout))
    unused = {
        "builder.contract",  # build steps' records
        "builder.formats.docker_archive",  # reading archives, not descriptions
        "builder.formats.oci_layout",
        "builder.tar.reader",
        "tarfile",
        "concurrent.futures",  # and logging, which it loads
        "logging",
        "subprocess",  # zstd, credential helpers
        "dataclasses",  # with inspect, ast, dis, tokenize: ~15 ms; the records used are written out
        "inspect",
    }
    assert not (unused & loaded), sorted(unused & loaded)


# Run by the stream executable's own template; at exit, the modules it loaded.
RECORD_MODULES = """import atexit
atexit.register(lambda: open(os.environ["MODULES_FILE"], "w").write("\\n".join(sorted(sys.modules))))
"""


def test_a_stream_loads_no_module_it_does_not_use(tmp_path, monkeypatch):
    store = tmp_path / "store"
    path = store / ("a" * 32 + "-hello")
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
    monkeypatch.setenv("NIX_STORE_DIR", str(store))
    layer = measure([str(path)], Stamp(0, 0, "root", "root", 1))
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}
    description = str(tmp_path / "conf")
    write_description(description, config_bytes=canonical_json(config), entries=[entry_of(layer)], repo_tag="tiny:1")
    script = tmp_path / "stream"
    bound = f"'stream', {description!r}"
    script.write_text(script_text(sys.executable, REPO, [], bound, "stream-tiny", RECORD_MODULES))
    script.chmod(0o555)
    env = dict(os.environ, MODULES_FILE=str(tmp_path / "modules"))
    r = subprocess.run([str(script), "-q"], capture_output=True, env=env)
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as archive:
        names = archive.getnames()
    assert names[0] == "manifest.json" and f"{layer.diff_id.split(':')[1]}/layer.tar" in names
    loaded = set((tmp_path / "modules").read_text().split())
    assert "builder.steps.stream" in loaded
    unused = {
        "builder.contract",  # build steps' records: dataclasses, over 20 ms
        "builder.formats.oci_layout",
        "builder.model.reference",  # reading archives, not writing one
        "builder.tar.reader",
        "tarfile",
        "gzip",  # an archive compressed as a whole, read
        "tempfile",  # and random: the blob-info cache, saved only after a compressed stream
        "random",
        "builder.registry.client",  # --push
        "http.client",
        "ssl",
        "concurrent.futures",
        "logging",
        "subprocess",  # zstd
        "dataclasses",  # with inspect, ast, dis, tokenize: ~15 ms; the records used are written out
        "inspect",
    }
    assert not (unused & loaded), sorted(unused & loaded)
