"""The builder as Nix installs it: a copy with hash-based bytecode that is
never checked against its source (nix/builder.nix: src)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from builder.selfcompile import copy_compiled

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_module_gets_unchecked_bytecode_and_the_copy_runs(tmp_path):
    copy_compiled(REPO, str(tmp_path))
    root = tmp_path / "builder"
    sources = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".py")]
    assert len(sources) > 30
    for source in sources:
        with open(importlib.util.cache_from_source(source), "rb") as f:
            header = f.read(8)
        assert header[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, source not checked
    r = subprocess.run(
        [sys.executable, "-IB", str(root), "push", "--help"], capture_output=True, text=True, cwd=str(tmp_path)
    )
    assert r.returncode == 0 and r.stdout.startswith("usage: builder push"), r.stderr
    assert not any(name.endswith(".pyc") for name in os.listdir(root))  # nothing outside __pycache__
