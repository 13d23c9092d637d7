"""TraceWindow wraps without copying its window: every append writes O(new points)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qudi.util.instream.trace import TraceWindow


def test_no_append_touches_more_than_twice_its_points():
    """The buffer is compared before and after each append (unique values, so every written
    element differs): the old wrap rewrote a whole window at once."""
    size = 1000
    window = TraceWindow(size, 1)
    written = 0
    for count in [7, 300, 999, 1, 1000, 250, 1999, 3, 700] * 8:
        x = np.arange(written, written + count, dtype=float) + 1.0  # never 0, never repeated
        before = window._x.copy()  # the whole buffer: three windows
        window.append(x, x[None, :])
        changed = int(np.count_nonzero(window._x != before))
        assert changed <= 2 * min(count, size), (count, changed)
        written += count
        x_view, y_view = window.view(window.filled)
        newest = np.arange(max(0, written - size), written) + 1.0
        np.testing.assert_array_equal(x_view, newest)
        np.testing.assert_array_equal(y_view[0], x_view)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12), st.lists(st.integers(0, 30), min_size=1, max_size=40))
def test_a_view_stays_unchanged_for_a_whole_window_of_appends(size, appends):
    window = TraceWindow(size, 1)
    written = 0
    kept: list[tuple[int, np.ndarray, np.ndarray]] = []  # (written then, view, its copy)
    for count in appends:
        x = np.arange(written, written + count, dtype=float)
        window.append(x, -x[None, :])
        written += count
        view, _ = window.view()
        kept.append((written, view, view.copy()))
        for then, old_view, copy in kept:
            if written - then <= size:
                np.testing.assert_array_equal(old_view, copy)
