"""builder.steps.nixdb: a Nix database that is reproducible and that real Nix
accepts (real Nix reading it: e2e/test_nixdb_real_nix.py)."""

from __future__ import annotations

import base64
import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from nixgraph import B64, HEX, NIX32, A, B, C, S, sample_graph

import builder
from builder.errors import BuildError
from builder.steps.nixdb import gcroots, nar_hash_to_base16, write_nix_db

ROOT = Path(builder.__file__).resolve().parent.parent


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
