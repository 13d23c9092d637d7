"""Min/max decimation for drawing (qudi.gui.instream.decimate) keeps spikes and the envelope."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qudi.gui.instream.decimate import peak_decimate, visible_slice


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 300), st.integers(0, 4999))
def test_envelope_and_spikes_survive(count, bins, spike):
    x = np.arange(count, dtype=float)
    y = np.sin(x / 50)
    y[spike % count] = 10.0  # a photon burst of one sample
    x_out, y_out = peak_decimate(x, y, bins)
    assert len(x_out) <= max(count, 2 * bins + count // bins)
    assert y_out.max() == 10.0 and y_out.min() == y.min()
    assert np.all(np.diff(x_out) >= 0) and x_out[-1] == x[-1]


def test_short_traces_are_drawn_as_they_are():
    x, y = np.arange(10.0), np.arange(10.0)
    assert peak_decimate(x, y, 100)[0] is x


def test_visible_slice_keeps_one_point_beyond_each_edge():
    x = np.arange(100.0)
    assert visible_slice(x, 10.5, 20.5) == slice(10, 22)
    assert visible_slice(x, -5, 500) == slice(0, 100)
