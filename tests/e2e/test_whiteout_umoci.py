"""umoci unpacks every layer stack of support/applycases.py to the tree
whiteout.apply_layers makes of it."""

from __future__ import annotations

import pytest
from applycases import APPLY_CASES
from picture import drop_clock_mtimes, picture
from tarbuild import write_layers
from umocihelpers import UMOCI, umoci_unpack

from builder.tar import whiteout


@pytest.mark.skipif(UMOCI is None, reason="umoci not installed")
@pytest.mark.parametrize("layers", [c[0] for c in APPLY_CASES.values()], ids=APPLY_CASES.keys())
def test_apply_agrees_with_umoci(tmp_path, layers):
    files = write_layers(str(tmp_path / "layers"), layers)
    whiteout.apply_layers(str(tmp_path / "root"), files)
    theirs = umoci_unpack(str(tmp_path / "umoci"), files)
    assert theirs is not None
    ours, theirs = drop_clock_mtimes(picture(str(tmp_path / "root")), picture(theirs, clock_dirs=True))
    assert ours == theirs
