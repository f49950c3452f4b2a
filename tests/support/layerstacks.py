"""Random layer stacks for property tests (hypothesis strategies): a stack
is a list of layers, each a list of tarbuild entries, drawn so whiteouts,
hardlinks and type changes meet something the stack already has."""

from __future__ import annotations

import io
import os
import tarfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from tarbuild import d, f, fifo, hard, opq, sym, wh

from builder.errors import ImageFormatError
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


def apply_or_none(root, files):
    """Our tree, or None when we reject the stack (a malformed layer)."""
    try:
        return whiteout.apply_layers(root, files)
    except ImageFormatError:
        return None


def check_layer_shape(data: bytes):
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
