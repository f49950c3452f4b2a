"""Property tests against umoci: random layer stacks unpack to the same tree,
and a changeset over its lower layers rebuilds the upper tree for umoci too."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import assume, event, given
from layerstacks import AS_ROOT, SETTINGS, apply_or_none, check_layer_shape, lower_and_upper, stacks
from picture import drop_clock_mtimes, picture
from tarbuild import write_layers
from umocihelpers import UMOCI, umoci_unpack

from builder.sinks.sink import MemorySink
from builder.tar import whiteout


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
        owners = apply_or_none(os.path.join(tmp, "ours"), files)
        theirs = umoci_unpack(os.path.join(tmp, "umoci"), files)
        # Both accept a stack or both refuse it.
        assert (owners is None) == (theirs is None)
        event("refused" if owners is None else "accepted")
        if owners is not None:
            _same(os.path.join(tmp, "ours"), owners, theirs)


@pytest.mark.skipif(UMOCI is None, reason="umoci not installed")
@SETTINGS
@given(lower_and_upper())
def test_changeset_rebuilds_upper(stack):
    lower_layers, upper_layers = stack
    with tempfile.TemporaryDirectory() as tmp:
        files = write_layers(os.path.join(tmp, "layers"), lower_layers + upper_layers)
        lower_files = files[: len(lower_layers)]
        lower, upper = os.path.join(tmp, "lower"), os.path.join(tmp, "upper")
        lower_owners, upper_owners = apply_or_none(lower, lower_files), apply_or_none(upper, files)
        assume(lower_owners is not None and upper_owners is not None)

        sink, again = MemorySink(), MemorySink()
        owners = dict(lower_owners=lower_owners, upper_owners=upper_owners)
        changes = whiteout.write_changeset(sink, lower, upper, **owners)
        whiteout.write_changeset(again, lower, upper, **owners)
        for kind in sorted({c.kind for c in changes}):
            event(f"changeset has {kind}")
        assert sink.data == again.data
        check_layer_shape(bytes(sink.data))
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
