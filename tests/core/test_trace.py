"""TraceWindow: the newest N points at O(new), with views that outlive the next frame."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qudi.util.instream.trace import TraceWindow


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 20), st.lists(st.integers(0, 50), max_size=30))
def test_view_is_always_the_newest_points(size, appends):
    window = TraceWindow(size, 2)
    everything = np.empty(0)
    for count in appends:
        first = len(everything)
        x = np.arange(first, first + count, dtype=float)
        window.append(x, np.vstack([x, -x]))
        everything = np.concatenate([everything, x])
        x_view, y_view = window.view(window.filled)
        np.testing.assert_array_equal(x_view, everything[-size:] if len(everything) else [])
        np.testing.assert_array_equal(y_view[1], -x_view)
        assert window.filled == min(len(everything), size)


def test_a_view_stays_unchanged_while_less_than_a_window_is_appended():
    window = TraceWindow(100, 1)
    for first in range(0, 1000, 10):
        x = np.arange(first, first + 10, dtype=float)
        window.append(x, x[None, :])
    kept, _ = window.view()
    snapshot = kept.copy()
    for first in range(1000, 1080, 10):  # 80 more points: less than the window
        x = np.arange(first, first + 10, dtype=float)
        window.append(x, x[None, :])
    np.testing.assert_array_equal(kept, snapshot)
    with pytest.raises(ValueError):
        kept[0] = 1.0  # views are read-only


def test_copy_is_independent():
    window = TraceWindow(4, 1)
    window.append(np.arange(3.0), np.arange(3.0)[None, :])
    x, y = window.copy()
    window.append(np.arange(3.0, 10.0), np.arange(3.0, 10.0)[None, :])
    np.testing.assert_array_equal(x, [0, 1, 2])
