"""Times a user gives (mtime, created): in range, or one clear error."""

import pytest

from builder.errors import SpecError
from builder.model.config import epoch_of


@pytest.mark.parametrize("value", [2**80, -(2**80), 2**62, 8**11])
def test_out_of_range_mtime_is_refused(value):
    with pytest.raises(SpecError, match=f"mtime: {value} seconds is out of range"):
        epoch_of(value)


@pytest.mark.parametrize("value, seconds", [(0, 0), (1, 1), (8**11 - 1, 8**11 - 1), ("1970-01-01T00:00:01Z", 1)])
def test_times_in_range(value, seconds):
    assert epoch_of(value) == seconds


def test_a_time_past_the_range_is_refused():
    with pytest.raises(SpecError, match="mtime: 253402214400 seconds is out of range"):
        epoch_of("9999-12-31T00:00:00Z")
