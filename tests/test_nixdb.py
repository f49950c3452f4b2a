"""builder.nixdb: a Nix database that is reproducible and that real Nix accepts."""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder.errors import BuildError  # noqa: E402
from builder.steps.nixdb import gcroots, nar_hash_to_base16, write_nix_db  # noqa: E402

S = "/nix/store/"
A = S + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"
B = S + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b"
C = S + "cccccccccccccccccccccccccccccccc-c"
HEX = "1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13"
NIX32 = "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw"  # the same digest
B64 = base64.b64encode(bytes.fromhex(HEX)).decode()


def sample_graph():
    return [
        {
            "path": C,
            "narHash": "sha256:" + NIX32,
            "narSize": 120,
            "closureSize": 120,
            "references": [],
            "ca": "text:sha256:1r3v22qkypccqifzbww5lrn6hf1chi23m6zzkyvb8bvg457nxslq",
        },
        {"path": A, "narHash": "sha256-" + B64, "narSize": 576, "closureSize": 1, "references": [A, B]},
        {"path": B, "narHash": "sha256:" + HEX, "narSize": 168, "closureSize": 1, "references": [C]},
    ]


def db_bytes(root):
    return (Path(root) / "nix/var/nix/db/db.sqlite").read_bytes()


# --- reproducibility -------------------------------------------------------


def test_byte_identical_between_runs(tmp_path):
    write_nix_db(tmp_path / "one", sample_graph())
    write_nix_db(tmp_path / "two", sample_graph())
    assert db_bytes(tmp_path / "one") == db_bytes(tmp_path / "two")


def test_byte_identical_regardless_of_input_order_and_repeats(tmp_path):
    write_nix_db(tmp_path / "one", sample_graph())
    shuffled = sample_graph() + sample_graph()[:2]
    random.Random(7).shuffle(shuffled)
    for node in shuffled:
        node["references"] = list(reversed(node["references"]))
    write_nix_db(tmp_path / "two", shuffled)
    assert db_bytes(tmp_path / "one") == db_bytes(tmp_path / "two")


def test_byte_identical_in_a_fresh_process_and_under_another_umask(tmp_path):
    write_nix_db(tmp_path / "one", sample_graph())
    script = textwrap.dedent(f"""
        import json, os, sys
        sys.path.insert(0, {str(ROOT)!r})
        os.umask(0o077)
        from builder.steps.nixdb import write_nix_db
        write_nix_db(sys.argv[1], json.loads(sys.argv[2]))
    """)
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "two"), json.dumps(sample_graph())], check=True)
    assert db_bytes(tmp_path / "one") == db_bytes(tmp_path / "two")
    for rel in ("nix/var/nix/db/db.sqlite", "nix/var/nix/db/schema"):
        assert (tmp_path / "two" / rel).stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "two/nix/var/nix/db").stat().st_mode & 0o777 == 0o755


def test_rewrite_over_existing_tree_gives_same_bytes(tmp_path):
    write_nix_db(tmp_path / "one", sample_graph())
    write_nix_db(tmp_path / "two", [sample_graph()[0]])
    write_nix_db(tmp_path / "two", sample_graph())
    assert db_bytes(tmp_path / "one") == db_bytes(tmp_path / "two")


def test_layout_and_no_journal_files(tmp_path):
    write_nix_db(tmp_path, sample_graph())
    state = tmp_path / "nix/var/nix"
    assert sorted(p.name for p in state.iterdir()) == ["db", "gcroots", "profiles", "temproots", "userpool"]
    assert sorted(p.name for p in (state / "db").iterdir()) == ["db.sqlite", "schema"]
    assert (state / "db/schema").read_bytes() == b"10"
    head = db_bytes(tmp_path)[:100]
    assert head[:16] == b"SQLite format 3\0"
    assert int.from_bytes(head[16:18], "big") == 4096  # page size
    assert head[18:20] == b"\x01\x01"  # rollback journal, not WAL


# --- contents --------------------------------------------------------------


def rows(root):
    conn = sqlite3.connect(f"file:{root}/nix/var/nix/db/db.sqlite?mode=ro", uri=True)
    try:
        paths = conn.execute(
            "SELECT id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca FROM ValidPaths ORDER BY id"
        ).fetchall()
        refs = conn.execute("SELECT referrer, reference FROM Refs ORDER BY 1, 2").fetchall()
    finally:
        conn.close()
    return paths, refs


def test_rows(tmp_path):
    write_nix_db(tmp_path, sample_graph(), registration_time=1)
    paths, refs = rows(tmp_path)
    h = "sha256:" + HEX
    assert paths == [
        (1, A, h, 1, None, 576, 0, None, None),
        (2, B, h, 1, None, 168, 0, None, None),
        (3, C, h, 1, None, 120, 0, None, "text:sha256:1r3v22qkypccqifzbww5lrn6hf1chi23m6zzkyvb8bvg457nxslq"),
    ]
    assert refs == [(1, 1), (1, 2), (2, 3)]  # self-reference kept, as Nix keeps it


def test_default_registration_time_is_zero(tmp_path):
    write_nix_db(tmp_path, sample_graph())
    assert {r[3] for r in rows(tmp_path)[0]} == {0}


def test_empty_graph(tmp_path):
    write_nix_db(tmp_path, [])
    assert rows(tmp_path) == ([], [])


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


# --- hashes ----------------------------------------------------------------


@pytest.mark.parametrize("given", ["sha256:" + NIX32, "sha256:" + HEX, "sha256:" + B64, "sha256-" + B64])
def test_hash_forms(given):
    assert nar_hash_to_base16(given) == "sha256:" + HEX


def test_hash_other_algorithms():
    digest = bytes(range(20))
    assert nar_hash_to_base16("sha1-" + base64.b64encode(digest).decode()) == "sha1:" + digest.hex()


@pytest.mark.parametrize(
    "bad",
    [
        HEX,
        "sha256:" + HEX[:-1],
        "sha256:" + NIX32.replace("0", "e", 1),
        "sha256:" + "z" * 52,  # 260 bits: too many for 256
        "blake9:" + HEX,
        "sha256-" + B64[:-4],
        5,
    ],
)
def test_bad_hashes(bad):
    with pytest.raises(BuildError):
        nar_hash_to_base16(bad)


# --- bad graphs ------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda g: g[1]["references"].append(S + "dddddddddddddddddddddddddddddddd-d"), "not in the graph"),
        (lambda g: g.append(dict(g[0], narSize=121)), "twice"),
        (lambda g: g[0].pop("narHash"), "narHash"),
        (lambda g: g[0].update(narSize=-1), "narSize"),
        (lambda g: g[0].update(narSize="120"), "narSize"),
        (lambda g: g[0].update(path="/usr/bin"), "top-level path"),
        (lambda g: g[0].update(path=C + "/sub"), "top-level path"),
    ],
)
def test_bad_graphs(tmp_path, mutate, message):
    graph = sample_graph()
    mutate(graph)
    with pytest.raises(BuildError, match=message):
        write_nix_db(tmp_path, graph)
    assert not (tmp_path / "nix/var/nix/db/db.sqlite").exists()


def test_bad_registration_time(tmp_path):
    with pytest.raises(BuildError):
        write_nix_db(tmp_path, sample_graph(), registration_time=-1)


# --- gcroots ---------------------------------------------------------------


def test_gcroots(tmp_path):
    links = gcroots(tmp_path, [B, A, B])
    d = tmp_path / "nix/var/nix/gcroots/docker"
    assert links == [str(d / os.path.basename(A)), str(d / os.path.basename(B))]
    assert sorted(os.listdir(d)) == [os.path.basename(A), os.path.basename(B)]
    assert os.readlink(d / os.path.basename(A)) == A
    assert gcroots(tmp_path, [A]) == links[:1]  # again: no error, nothing changes
    os.unlink(d / os.path.basename(A))
    os.symlink(B, d / os.path.basename(A))
    with pytest.raises(BuildError):
        gcroots(tmp_path, [A])
    with pytest.raises(BuildError):
        gcroots(tmp_path, ["/etc/passwd"])


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
    (d / "closure.nix").write_text(CLOSURE_NIX.replace("HOSTPKGS", str(ROOT / "tests" / "hostpkgs.nix")))
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
