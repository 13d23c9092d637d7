"""The y range rule of the time series plots (qudi.gui.instream.view_ranges), without Qt."""

from __future__ import annotations

import numpy as np
import pytest

from qudi.gui.instream.view_ranges import PADDING, STICKY_FILL, data_extent, sticky_range


def test_a_first_range_holds_the_data_with_padding():
    low, high = sticky_range(None, (10.0, 20.0))
    assert low == pytest.approx(10.0 - 10 * PADDING)
    assert high == pytest.approx(20.0 + 10 * PADDING)


def test_the_range_stays_while_the_data_fill_it():
    shown = (9.5, 20.5)
    assert sticky_range(shown, (10.0, 20.0)) is None
    assert sticky_range(shown, (11.0, 19.0)) is None  # noise about the same level
    narrow = 11 * STICKY_FILL * 0.99  # just below the fill that keeps the range
    assert sticky_range(shown, (12.0, 12.0 + narrow)) is not None


def test_data_leaving_the_range_move_it():
    new = sticky_range((9.5, 20.5), (10.0, 21.0))
    assert new is not None and new[0] <= 10.0 and new[1] >= 21.0


def test_a_flat_trace_gets_a_range_around_its_value():
    low, high = sticky_range(None, (5.0, 5.0))
    assert low < 5.0 < high
    low, high = sticky_range(None, (0.0, 0.0))
    assert low < 0.0 < high


def test_extents_skip_nan_and_inf():
    assert data_extent(np.array([1.0, 3.0, 2.0])) == (1.0, 3.0)
    assert data_extent(np.array([np.nan, 2.0, np.inf, -1.0])) == (-1.0, 2.0)
    assert data_extent(np.array([np.nan, np.nan])) is None
    assert data_extent(np.array([])) is None
    assert data_extent(np.array([3, 7], dtype=np.int64)) == (3.0, 7.0)
