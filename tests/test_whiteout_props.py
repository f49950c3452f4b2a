"""Property tests: random layer stacks, compared with umoci, and changesets
that must rebuild exactly the tree they were computed from."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from picture import drop_clock_mtimes, picture
from tarbuild import d, f, fifo, hard, opq, sym, wh, write_layers
from umocihelpers import UMOCI, umoci_unpack

from builder.errors import ImageFormatError
from builder.sinks.sink import MemorySink
from builder.tar import whiteout

AS_ROOT = os.geteuid() == 0
# Kept small (umoci runs cost time); WHITEOUT_EXAMPLES=1000 for a long hunt.
SETTINGS = settings(
    max_examples=int(os.environ.get("WHITEOUT_EXAMPLES", 40)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

NAMES = [b"a", b"b", b"c"]
# Targets that cannot climb above the root from any depth: the rule where
# we deliberately differ from umoci (we refuse, it clamps) is tested alone.
TARGETS = [b"a", b"b", b"c", b"x", b"/a", b"/b/c", b"/x/y", b"."]
FILE_MODES = [0o644, 0o600, 0o755, 0o4755, 0o2711, 0o444, 0o000]
DIR_MODES = [0o755, 0o700, 0o555, 0o1777, 0o750]
IDS = [0, 1, 1000]


@st.composite
def paths_(draw):
    return b"/".join(draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)))


def _ancestors(rel):
    while b"/" in rel:
        rel = rel.rpartition(b"/")[0]
        yield rel


class Model:
    """A rough, name-only picture of the stack so far: enough to draw
    hardlinks to files that exist and to avoid writing below a file."""

    def __init__(self):
        self.kinds = {}

    def drop(self, rel, keep_self=False):
        for p in [p for p in self.kinds if p.startswith(rel + b"/") or (p == rel and not keep_self)]:
            del self.kinds[p]

    def blocked(self, rel):
        return any(self.kinds.get(a) == "f" for a in _ancestors(rel))

    def files(self):
        return sorted(p for p, k in self.kinds.items() if k == "f")


@st.composite
def entry(draw, model: Model, used: set):
    kind = draw(st.sampled_from(["file"] * 4 + ["dir"] * 3 + ["sym"] * 2 + ["hard", "wh", "wh", "opq", "fifo"]))
    # Half the time a path the stack already has: whiteouts, hardlinks and
    # type changes then meet something.
    known = sorted(model.kinds)
    rel = draw(st.sampled_from(known) if known and draw(st.booleans()) else paths_())
    if rel in used or model.blocked(rel):
        return None
    mtime, uid, gid = draw(st.integers(0, 2000)), draw(st.sampled_from(IDS)), draw(st.sampled_from(IDS))
    if kind == "file":
        model.drop(rel)
        model.kinds[rel] = "f"
        return f(
            rel,
            draw(st.sampled_from([b"", b"1", b"22", b"x" * 700])),
            draw(st.sampled_from(FILE_MODES)),
            uid,
            gid,
            mtime,
        )
    if kind == "dir":
        if model.kinds.get(rel) != "d":
            model.drop(rel)
        model.kinds[rel] = "d"
        return d(rel, draw(st.sampled_from(DIR_MODES)), uid, gid, mtime)
    if kind == "sym":
        model.drop(rel)
        model.kinds[rel] = "l"
        return sym(rel, draw(st.sampled_from(TARGETS)), uid, gid, mtime)
    if kind == "hard":
        files = [p for p in model.files() if p != rel]
        if not files:
            return None
        model.drop(rel)
        model.kinds[rel] = "f"
        return hard(rel, draw(st.sampled_from(files)))
    if kind == "fifo":
        model.drop(rel)
        model.kinds[rel] = "p"
        return fifo(rel, draw(st.sampled_from(FILE_MODES)), mtime)
    if kind == "wh":
        model.drop(rel)
        return wh(rel)
    model.drop(rel, keep_self=True)
    return opq(rel)


@st.composite
def stacks(draw, min_layers=1, max_layers=4, model=None):
    model = model or Model()
    layers = []
    for _ in range(draw(st.integers(min_layers, max_layers))):
        used, entries = set(), []
        for _ in range(draw(st.integers(0, 8))):
            e = draw(entry(model, used))
            if e is not None:
                used.add(e.name)
                entries.append(e)
        layers.append(entries)
    return layers


@st.composite
def lower_and_upper(draw):
    model = Model()
    lower = draw(stacks(1, 3, model))
    return lower, draw(stacks(1, 2, model))


def _apply(root, files):
    """Our tree, or None when we reject the stack (a malformed layer)."""
    try:
        return whiteout.apply_layers(root, files)
    except ImageFormatError:
        return None


def _same(ours_root, ours_owners, theirs_root):
    ours = picture(ours_root, ours_owners if not AS_ROOT else None)
    theirs = picture(theirs_root, clock_dirs=True)
    if not AS_ROOT:
        # --rootless: umoci cannot set owners; compare everything else.
        ours = {k: v[:2] + (0, 0) + v[4:] for k, v in ours.items()}
        theirs = {k: v[:2] + (0, 0) + v[4:] for k, v in theirs.items()}
    ours, theirs = drop_clock_mtimes(ours, theirs)
    assert ours == theirs


@pytest.mark.skipif(UMOCI is None, reason="umoci not installed")
@SETTINGS
@given(stacks())
def test_apply_agrees_with_umoci(layers):
    with tempfile.TemporaryDirectory() as tmp:
        files = write_layers(os.path.join(tmp, "layers"), layers)
        owners = _apply(os.path.join(tmp, "ours"), files)
        theirs = umoci_unpack(os.path.join(tmp, "umoci"), files)
        # Both accept a stack or both refuse it.
        assert (owners is None) == (theirs is None)
        event("refused" if owners is None else "accepted")
        if owners is not None:
            _same(os.path.join(tmp, "ours"), owners, theirs)


def _check_layer_shape(data: bytes):
    """layer.md rules for a layer we wrote."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert len(names) == len(set(names)), "a path twice in one layer"
    seen = set()
    for m in members:
        parent, _, base = m.name.rpartition("/")
        if base.startswith(".wh."):
            assert m.isreg() and m.size == 0 and m.mode == 0o600
            target = (parent + "/" if parent else "") + base[4:]
            assert target not in names, "a path both written and whited out"
            later_siblings = [
                n
                for n in seen
                if n.rpartition("/")[0] == parent and n != parent and not n.rpartition("/")[2].startswith(".wh.")
            ]
            assert not later_siblings, "a whiteout after a sibling entry"
        if m.islnk():
            assert m.linkname in seen, "a hardlink to an entry not earlier in the layer"
        seen.add(m.name)


@pytest.mark.skipif(UMOCI is None, reason="umoci not installed")
@SETTINGS
@given(lower_and_upper())
def test_changeset_rebuilds_upper(stack):
    lower_layers, upper_layers = stack
    with tempfile.TemporaryDirectory() as tmp:
        files = write_layers(os.path.join(tmp, "layers"), lower_layers + upper_layers)
        lower_files = files[: len(lower_layers)]
        lower, upper = os.path.join(tmp, "lower"), os.path.join(tmp, "upper")
        lower_owners, upper_owners = _apply(lower, lower_files), _apply(upper, files)
        assume(lower_owners is not None and upper_owners is not None)

        sink, again = MemorySink(), MemorySink()
        owners = dict(lower_owners=lower_owners, upper_owners=upper_owners)
        changes = whiteout.write_changeset(sink, lower, upper, **owners)
        whiteout.write_changeset(again, lower, upper, **owners)
        for kind in sorted({c.kind for c in changes}):
            event(f"changeset has {kind}")
        assert sink.data == again.data
        _check_layer_shape(bytes(sink.data))
        changeset = os.path.join(tmp, "changeset.tar")
        with open(changeset, "wb") as out:
            out.write(sink.data)

        rebuilt = os.path.join(tmp, "rebuilt")
        rebuilt_owners = whiteout.apply_layers(rebuilt, lower_files + [changeset])
        assert picture(rebuilt, rebuilt_owners) == picture(upper, upper_owners)
        assert whiteout.compute_changeset(upper, rebuilt, lower_owners=upper_owners, upper_owners=rebuilt_owners) == []

        theirs = umoci_unpack(os.path.join(tmp, "umoci"), lower_files + [changeset])
        assert theirs is not None
        _same(upper, upper_owners, theirs)


EDITS = [
    "rewrite",
    "replace",
    "chmod",
    "chown",
    "unlink",
    "mkdir",
    "newfile",
    "symlink",
    "link",
    "rename",
    "dir_to_file",
    "touch",
]


def _edit(root: str, op: str, pick: int, arg: int) -> None:
    """One change a customisation script could make, at a path picked from
    what is there now."""
    existing = sorted(os.path.relpath(os.path.join(dp, n), root) for dp, dns, fns in os.walk(root) for n in dns + fns)
    dirs = ["."] + [
        p for p in existing if os.path.isdir(os.path.join(root, p)) and not os.path.islink(os.path.join(root, p))
    ]
    files = [p for p in existing if os.path.isfile(os.path.join(root, p)) and not os.path.islink(os.path.join(root, p))]
    path = os.path.join(root, existing[pick % len(existing)]) if existing else None
    fresh = os.path.join(root, dirs[pick % len(dirs)], "n%d" % arg)
    if op in ("mkdir", "newfile", "symlink", "link") and os.path.lexists(fresh):
        return
    if op == "mkdir":
        os.mkdir(fresh, 0o755)
    elif op == "newfile":
        with open(fresh, "wb") as out:
            out.write(b"new" * arg)
    elif op == "symlink":
        os.symlink(TARGETS[arg % len(TARGETS)], fresh)
    elif op == "link" and files:
        os.link(os.path.join(root, files[arg % len(files)]), fresh)
    elif path is None:
        return
    elif op == "rewrite" and os.path.isfile(path) and not os.path.islink(path):
        with open(path, "r+b") as out:  # in place: every hardlinked name sees it
            out.truncate(0)
            out.write(b"edited%d" % arg)
    elif op == "replace" and not os.path.isdir(path):
        os.unlink(path)
        with open(path, "wb") as out:
            out.write(b"replaced")
    elif op == "chmod" and not os.path.islink(path):
        os.chmod(path, FILE_MODES[arg % len(FILE_MODES)] | (0o700 if os.path.isdir(path) else 0))
    elif op == "chown" and AS_ROOT:
        os.lchown(path, IDS[arg % len(IDS)], IDS[pick % len(IDS)])
    elif op == "unlink":
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    elif op == "rename" and not os.path.lexists(fresh) and not fresh.startswith(path + "/"):
        os.rename(path, fresh)
    elif op == "dir_to_file" and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
        with open(path, "wb") as out:
            out.write(b"was a dir")
    elif op == "touch":
        os.utime(path, (arg, arg), follow_symlinks=False)


@SETTINGS
@given(
    stacks(1, 3),
    st.lists(st.tuples(st.sampled_from(EDITS), st.integers(0, 50), st.integers(0, 5)), max_size=8),
    st.booleans(),
)
def test_changeset_of_script_edits(layers, edits, hardlinks):
    """The runAsRoot case: a copy of the lower tree edited in place."""
    with tempfile.TemporaryDirectory() as tmp:
        files = write_layers(os.path.join(tmp, "layers"), layers)
        lower, upper = os.path.join(tmp, "lower"), os.path.join(tmp, "upper")
        assume(_apply(lower, files) is not None)
        subprocess.run(["cp", "-a", lower, upper], check=True)  # keeps hardlinks, owners, times
        for op, pick, arg in edits:
            _edit(upper, op, pick, arg)
        sink = MemorySink()
        changes = whiteout.write_changeset(sink, lower, upper, hardlinks=hardlinks)
        for kind in sorted({c.kind for c in changes}):
            event(f"changeset has {kind}")
        _check_layer_shape(bytes(sink.data))
        changeset = os.path.join(tmp, "changeset.tar")
        with open(changeset, "wb") as out:
            out.write(sink.data)
        rebuilt = os.path.join(tmp, "rebuilt")
        whiteout.apply_layers(rebuilt, files + [changeset])
        assert picture(rebuilt, hardlinks=hardlinks) == picture(upper, hardlinks=hardlinks)


@SETTINGS
@given(stacks())
def test_flattened_stack_is_the_stack(layers):
    with tempfile.TemporaryDirectory() as tmp:
        files = write_layers(os.path.join(tmp, "layers"), layers)
        owners = _apply(os.path.join(tmp, "stack"), files)
        assume(owners is not None)
        sink, again = MemorySink(), MemorySink()
        whiteout.write_flattened(sink, files, workdir=tmp)
        whiteout.write_flattened(again, files, workdir=tmp)
        assert sink.data == again.data
        _check_layer_shape(bytes(sink.data))
        flat = os.path.join(tmp, "flat.tar")
        with open(flat, "wb") as out:
            out.write(sink.data)
        flat_owners = whiteout.apply_layers(os.path.join(tmp, "flat"), [flat])
        assert picture(os.path.join(tmp, "flat"), flat_owners) == picture(os.path.join(tmp, "stack"), owners)
        shutil.rmtree(os.path.join(tmp, "flat"))
