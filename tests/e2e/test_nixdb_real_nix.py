"""builder.steps.nixdb against real Nix: the installed Nix's schema, and
nix-store/nix reading, verifying and writing the database we made."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from nixgraph import sample_graph
from nixhelpers import REPO

from builder.steps.nixdb import gcroots, write_nix_db


@pytest.mark.skipif(not os.path.exists("/nix/var/nix/db/db.sqlite"), reason="no system Nix db")
def test_schema_matches_the_installed_nix(tmp_path):
    write_nix_db(tmp_path, sample_graph())

    def shape(path):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            objs = conn.execute("SELECT type, name, tbl_name FROM sqlite_master ORDER BY type, name").fetchall()
            tables = {
                name: conn.execute(f"PRAGMA table_info({name})").fetchall() for t, name, _ in objs if t == "table"
            }
            fks = {name: conn.execute(f"PRAGMA foreign_key_list({name})").fetchall() for name in tables}
            idx = {name: conn.execute(f"PRAGMA index_info({name})").fetchall() for t, name, _ in objs if t == "index"}
            return objs, tables, fks, idx
        finally:
            conn.close()

    assert shape(tmp_path / "nix/var/nix/db/db.sqlite") == shape("/nix/var/nix/db/db.sqlite")
    assert (tmp_path / "nix/var/nix/db/schema").read_text() == Path("/nix/var/nix/db/schema").read_text().strip()


# --- real Nix --------------------------------------------------------------

CLOSURE_NIX = r"""
let
  pkgs = import HOSTPKGS { };
  sys = pkgs.system;
  text = builtins.toFile "nixdb-test-text" "text, content-addressed\n";
  leaf = pkgs.runCommand "nixdb-test-leaf" { } "echo leaf > $out";
  top = pkgs.runCommand "nixdb-test-top" { }
    "mkdir $out; echo ${leaf} > $out/leaf; echo ${text} > $out/text; echo $out > $out/self; ln -s ${leaf} $out/link";
in {
  inherit top;
  graph = builtins.derivation {
    name = "nixdb-test-graph"; system = sys; builder = "${pkgs.python3}/bin/python3";
    __structuredAttrs = true;
    exportReferencesGraph.closure = [ top ];
    args = [ "-c" "import json, shutil; shutil.copy('.attrs.json', json.load(open('.attrs.json'))['outputs']['out'])" ];
  };
}
"""

needs_nix = pytest.mark.skipif(shutil.which("nix-build") is None, reason="Nix is not installed (run tests/setup.sh)")


def nix(*args, check=True):
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("nix-build") is None:
        pytest.skip("Nix is not installed (run tests/setup.sh)")
    d = tmp_path_factory.mktemp("nixexpr")
    (d / "closure.nix").write_text(CLOSURE_NIX.replace("HOSTPKGS", os.path.join(REPO, "tests", "hostpkgs.nix")))
    out = {}
    for attr in ("top", "graph"):
        out[attr] = nix("nix-build", "--no-out-link", str(d / "closure.nix"), "-A", attr).stdout.strip()
    attrs = json.loads(Path(out["graph"]).read_text())
    return out["top"], attrs["closure"]


def make_root(tmp_path, graph, name="root"):
    root = tmp_path / name
    (root / "nix/store").mkdir(parents=True)
    for node in graph:
        subprocess.run(["cp", "-a", node["path"], str(root / "nix/store")], check=True)
    write_nix_db(root, graph)
    gcroots(root, [n["path"] for n in graph])
    return root


def chmod_writable(root):
    subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)


@needs_nix
def test_graph_format_from_nix(built):
    top, graph = built
    assert {n["path"] for n in graph} >= {top}
    assert len(graph) == 3
    for node in graph:
        assert set(node) >= {"path", "narHash", "narSize", "references", "closureSize"}
        assert node["narHash"].startswith("sha256:") and len(node["narHash"]) == 7 + 52
    text = [n for n in graph if n["path"].endswith("-nixdb-test-text")]
    assert text and text[0]["ca"].startswith("text:sha256:")
    assert top in next(n for n in graph if n["path"] == top)["references"]


@needs_nix
def test_real_nix_accepts_the_db(built, tmp_path):
    top, graph = built
    root = make_root(tmp_path, graph)
    try:
        for store in (str(root), f"local?root={root}"):
            v = nix("nix-store", "--store", store, "--verify", "--check-contents")
            assert "modified" not in v.stderr and "error" not in v.stderr, v.stderr
            closure = nix("nix-store", "--store", store, "-qR", top).stdout.split()
            assert sorted(closure) == sorted(n["path"] for n in graph)
        # Same path info as the host's own database says.
        for node in graph:
            assert (
                nix("nix-store", "--store", str(root), "-q", "--hash", node["path"]).stdout.strip() == node["narHash"]
            )
            assert nix("nix-store", "--store", str(root), "-q", "--size", node["path"]).stdout.strip() == str(
                node["narSize"]
            )
            assert sorted(
                nix("nix-store", "--store", str(root), "-q", "--references", node["path"]).stdout.split()
            ) == sorted(node["references"])
        info = json.loads(
            nix(
                "nix",
                "--extra-experimental-features",
                "nix-command",
                "path-info",
                "--json",
                "--store",
                str(root),
                "-r",
                top,
            ).stdout
        )
        host = json.loads(
            nix("nix", "--extra-experimental-features", "nix-command", "path-info", "--json", "-r", top).stdout
        )
        keys = ("path", "narHash", "narSize", "references", "ca")
        assert sorted([{k: i.get(k) for k in keys} for i in info], key=lambda i: i["path"]) == sorted(
            [{k: i.get(k) for k in keys} for i in host], key=lambda i: i["path"]
        )
        # The gcroots keep everything alive.
        roots = nix("nix-store", "--store", str(root), "--gc", "--print-roots").stdout
        for node in graph:
            assert f"gcroots/docker/{os.path.basename(node['path'])} -> {node['path']}" in roots
        assert nix("nix-store", "--store", str(root), "--gc", "--print-dead").stdout.strip() == ""
    finally:
        chmod_writable(root)


@needs_nix
def test_real_nix_notices_tampering(built, tmp_path):
    # Shows --check-contents really compares against the hashes we wrote.
    top, graph = built
    root = make_root(tmp_path, graph)
    try:
        leaf = next(n["path"] for n in graph if n["path"].endswith("-nixdb-test-leaf"))
        target = root / leaf.lstrip("/")
        os.chmod(target, 0o644)
        target.write_text("tampered\n")
        bad = nix("nix-store", "--store", str(root), "--verify", "--check-contents", check=False)
        assert bad.returncode != 0 and "was modified" in bad.stderr
        assert f"'{leaf}' was modified" in bad.stderr
        assert f"'{top}' was modified" not in bad.stderr
    finally:
        chmod_writable(root)


@needs_nix
def test_real_nix_sees_only_registered_paths(built, tmp_path):
    # A store path on disk but missing from the graph is not valid for Nix.
    top, graph = built
    partial = [n for n in graph if not n["references"]]
    root = make_root(tmp_path, partial)
    subprocess.run(["cp", "-a", top, str(root / "nix/store")], check=True)
    try:
        assert nix("nix-store", "--store", str(root), "-q", "--hash", top, check=False).returncode != 0
        for node in partial:
            nix("nix-store", "--store", str(root), "--verify-path", node["path"])
    finally:
        chmod_writable(root)


@needs_nix
def test_real_nix_can_write_to_the_db(built, tmp_path):
    # Nix keeps using the database: new paths get fresh ids, GC deletes.
    top, graph = built
    root = make_root(tmp_path, graph)
    try:
        extra = tmp_path / "extra.txt"
        extra.write_text("added later\n")
        added = nix("nix-store", "--store", str(root), "--add", str(extra)).stdout.strip()
        os.unlink(root / "nix/var/nix/gcroots/docker" / os.path.basename(top))
        nix("nix-store", "--store", str(root), "--delete", top)
        assert not (root / top.lstrip("/")).exists()
        nix("nix-store", "--store", str(root), "--verify", "--check-contents")
        conn = sqlite3.connect(str(root / "nix/var/nix/db/db.sqlite"))
        try:
            ids = dict(conn.execute("SELECT path, id FROM ValidPaths").fetchall())
        finally:
            conn.close()
        assert top not in ids and ids[added] == len(graph) + 1
    finally:
        chmod_writable(root)
