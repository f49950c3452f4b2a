"""Property tests: changesets and flattened layers that must rebuild exactly
the tree they were computed from (random stacks compared with umoci:
e2e/test_whiteout_props_umoci.py; the strategies: support/layerstacks.py)."""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import assume, event, given
from hypothesis import strategies as st
from layerstacks import AS_ROOT, FILE_MODES, IDS, SETTINGS, TARGETS, apply_or_none, check_layer_shape, stacks
from picture import picture
from tarbuild import write_layers

from builder.sinks.sink import MemorySink
from builder.tar import whiteout

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
        assume(apply_or_none(lower, files) is not None)
        # The copy runAsRoot edits: the same stack applied again gives the same
        # tree, hardlinks, modes and times (no cp -a: the unit suite needs no tools).
        apply_or_none(upper, files)
        for op, pick, arg in edits:
            _edit(upper, op, pick, arg)
        sink = MemorySink()
        changes = whiteout.write_changeset(sink, lower, upper, hardlinks=hardlinks)
        for kind in sorted({c.kind for c in changes}):
            event(f"changeset has {kind}")
        check_layer_shape(bytes(sink.data))
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
        owners = apply_or_none(os.path.join(tmp, "stack"), files)
        assume(owners is not None)
        sink, again = MemorySink(), MemorySink()
        whiteout.write_flattened(sink, files, workdir=tmp)
        whiteout.write_flattened(again, files, workdir=tmp)
        assert sink.data == again.data
        check_layer_shape(bytes(sink.data))
        flat = os.path.join(tmp, "flat.tar")
        with open(flat, "wb") as out:
            out.write(sink.data)
        flat_owners = whiteout.apply_layers(os.path.join(tmp, "flat"), [flat])
        assert picture(os.path.join(tmp, "flat"), flat_owners) == picture(os.path.join(tmp, "stack"), owners)
        shutil.rmtree(os.path.join(tmp, "flat"))
