"""MinMaxPyramid and PointFollower: exact envelopes of a sliding window, at O(new) per frame."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qudi.gui.instream.pyramid import MinMaxPyramid, PointFollower
from qudi.util.instream.trace import TraceWindow


def check_envelope(x, y, start, stop, drawn_x, drawn_y, columns):
    """The drawn points tile y[start:stop] into runs, each drawn as (first x, min), (last x,
    max), or as the point itself; every run's min and max are exact."""
    assert len(drawn_x) == len(drawn_y)
    if stop - start <= 2 * columns:
        np.testing.assert_array_equal(drawn_x, x[start:stop])
        np.testing.assert_array_equal(drawn_y, y[start:stop])
        return
    assert len(drawn_x) <= 4 * columns + 8
    index = np.searchsorted(x, drawn_x)
    np.testing.assert_array_equal(x[index], drawn_x)  # drawn x values are the points' own
    assert tiles(index, drawn_y, y, start, stop), "runs tile the range, min and max exact"


def tiles(index, drawn_y, y, start, stop) -> bool:
    """Whether the drawn points split into consecutive runs covering [start, stop), each a
    point as it is or a (first, min), (last, max) pair; tried both ways where ambiguous."""
    reachable = {0: start}  # drawn points consumed -> next index to cover
    for i in range(len(index) + 1):
        if i not in reachable:
            continue
        position = reachable[i]
        if i == len(index):
            return position == stop
        if index[i] != position:
            continue
        if drawn_y[i] == y[index[i]]:
            reachable.setdefault(i + 1, position + 1)
        if i + 1 < len(index) and index[i + 1] > index[i]:
            run = y[index[i] : index[i + 1] + 1]
            if (drawn_y[i], drawn_y[i + 1]) == (run.min(), run.max()):
                reachable.setdefault(i + 2, index[i + 1] + 1)
    return False


def test_a_spike_of_one_sample_is_drawn_at_every_zoom():
    rng = np.random.default_rng(1)
    window = TraceWindow(200_000, 1)
    pyramid, follower = MinMaxPyramid(), PointFollower()
    written = 0
    for frame in range(40):
        count = 25_000
        x = np.arange(written, written + count, dtype=float)
        y = rng.normal(size=count)
        if frame == 35:
            y[1234] = 50.0  # one sample
        window.append(x, y[None, :])
        written += count
        xv, yv = window.view(window.filled)
        pyramid.update(yv[0], follower.follow(xv))
    spike = 35 * 25_000 + 1234 - (written - len(xv))  # its index in the window
    assert yv[0][spike] == 50.0
    for start, stop in [(0, len(xv)), (spike - 60_000, spike + 30_000), (spike - 700, spike + 3)]:
        drawn_x, drawn_y = pyramid.decimate(xv, start, stop, 300)
        assert drawn_y.max() == 50.0
        assert len(drawn_x) <= 4 * 300 + 8
        check_envelope(xv, yv[0], start, stop, drawn_x, drawn_y, 300)


@settings(max_examples=80, deadline=None)
@given(
    size=st.integers(50, 3000),
    appends=st.lists(st.integers(0, 900), min_size=1, max_size=25),
    columns=st.integers(1, 40),
    cut=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    factor=st.integers(2, 5),
)
def test_every_drawn_run_has_the_exact_min_and_max(size, appends, columns, cut, factor):
    rng = np.random.default_rng(size)
    window = TraceWindow(size, 1)
    pyramid, follower = MinMaxPyramid(factor), PointFollower()
    written = 0
    for count in appends:
        x = np.arange(written, written + count, dtype=float)
        window.append(x, rng.integers(-1000, 1000, count).astype(float)[None, :])
        written += count
        xv, yv = window.view(window.filled)
        if not len(xv):
            continue
        pyramid.update(yv[0], follower.follow(xv))
        start, stop = sorted(round(c * len(xv)) for c in cut)
        drawn_x, drawn_y = pyramid.decimate(xv, start, stop, columns)
        check_envelope(xv, yv[0], start, stop, drawn_x, drawn_y, columns)


def test_the_follower_counts_new_points_and_starts_anew_on_another_buffer():
    window = TraceWindow(10, 1)
    follower = PointFollower()
    window.append(np.arange(4.0), np.zeros((1, 4)))
    assert follower.follow(window.view(window.filled)[0]) is None  # the first frame
    window.append(np.arange(4.0, 7.0), np.zeros((1, 3)))
    assert follower.follow(window.view(window.filled)[0]) == 3
    assert follower.follow(window.view(window.filled)[0]) == 0
    window.append(np.arange(7.0, 30.0), np.zeros((1, 23)))  # more than a window: gone
    assert follower.follow(window.view(window.filled)[0]) is None
    other = TraceWindow(10, 1)  # a new trace (new settings): same x values, other buffer
    other.append(np.arange(30.0), np.zeros((1, 30)))
    assert follower.follow(other.view(other.filled)[0]) is None
    assert follower.follow(np.arange(5.0)) is None  # a plain array: nothing to follow


def test_updates_touch_only_the_bins_of_new_points():
    """A frame of 100 new points in a window of 10^6 changes at most the bins they fall in."""
    window = TraceWindow(1_000_000, 1)
    x = np.arange(2_000_000, dtype=float)
    window.append(x, x[None, :])
    pyramid, follower = MinMaxPyramid(), PointFollower()
    xv, yv = window.view()
    pyramid.update(yv[0], follower.follow(xv))
    before = [(mins.copy(), maxs.copy()) for _, mins, maxs in pyramid._levels]
    window.append(np.arange(2e6, 2e6 + 100), np.arange(2e6, 2e6 + 100)[None, :])
    xv, yv = window.view()
    pyramid.update(yv[0], follower.follow(xv))
    for (size, mins, maxs), (old_mins, old_maxs) in zip(pyramid._levels, before, strict=True):
        changed = np.count_nonzero((mins != old_mins) | (maxs != old_maxs))
        assert changed <= 100 // size + 2, (size, changed)


def test_bad_factor_is_refused():
    with pytest.raises(ValueError, match="factor must be an integer >= 2, got 1"):
        MinMaxPyramid(1)


def test_the_follower_keeps_no_replaced_trace_alive():
    import gc
    import weakref

    window = TraceWindow(1000, 1)
    window.append(np.arange(10.0), np.zeros((1, 10)))
    follower = PointFollower()
    follower.follow(window.view(window.filled)[0])
    buffer = weakref.ref(window.view()[0].base)
    del window
    gc.collect()
    assert buffer() is None  # the logic's old trace is freed, not held by the GUI
    fresh = TraceWindow(1000, 1)
    fresh.append(np.arange(10.0), np.zeros((1, 10)))
    assert follower.follow(fresh.view(fresh.filled)[0]) is None  # and the next one starts anew
