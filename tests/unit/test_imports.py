"""What a push loads: every script run pays for its imports, so modules for
other commands and stdlib packages it does not use stay unloaded (speed is
shown by bench/bench.py; here only which modules load)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
    }
    assert not (unused & loaded)
