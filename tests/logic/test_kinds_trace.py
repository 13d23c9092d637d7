"""The trace maths of digital lines (oversampled by their highest value) and of event streams
(rates binned the same however the records arrive in chunks)."""

from __future__ import annotations

import numpy as np
import pytest

from qudi.logic.instream.event_trace import EventRateTrace
from qudi.logic.instream.trace import TraceBuilder
from qudi.util.instream.events import EVENT_DTYPE, PoissonEvents, bin_rates


def test_a_digital_line_is_high_in_a_point_if_it_was_high_at_all():
    builder = TraceBuilder(["v", "ttl"], 10.0, 1.0, oversampling=4, digital=["ttl"])
    data = np.zeros((12, 2))
    data[:, 0] = np.arange(12)
    data[5, 1] = 1.0  # one sample high in the second point
    assert builder.add(data) == 3
    _, y = builder.views()[:2]
    np.testing.assert_array_equal(y["ttl"], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(y["v"], [1.5, 5.5, 9.5])  # analog: the mean


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_event_rates_do_not_depend_on_the_chunks(seed):
    events = PoissonEvents([3e3, 1e3], seed=seed).between(0, 3000)
    whole = EventRateTrace(["a", "b"], 50.0, 2.0, oversampling=2)
    whole.add(events.reshape(-1, 1))
    chunked = EventRateTrace(["a", "b"], 50.0, 2.0, oversampling=2)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, len(events), 40))
    for part in np.split(events, cuts):
        chunked.add(part.reshape(-1, 1))
    (x1, y1), (x2, y2) = whole.views()[:2], chunked.views()[:2]
    np.testing.assert_array_equal(x1, x2)
    for channel in ("a", "b"):
        np.testing.assert_array_equal(y1[channel], y2[channel])
    # the points are the rates of 20 ms bins from the first event's 10 ms bin on
    expected = bin_rates(events, 2, x1[0], 0.02, len(x1))
    np.testing.assert_allclose(y1["a"], expected[:, 0], rtol=1e-12)
    assert whole.events == chunked.events == len(events)


def test_a_quiet_gap_is_binned_in_bounded_steps_and_records_must_be_events():
    trace = EventRateTrace(["a"], 1000.0, 0.1)
    events = np.zeros(2, EVENT_DTYPE)
    events["time"] = [0.0005, 200.0005]  # 200 000 empty bins between two events
    assert trace.add(events) == 200_000
    x, y = trace.views()[:2]
    assert x[-1] == pytest.approx(199.999)  # bins are labelled by their start
    assert y["a"][-1] == 0.0 and len(x) == 100
    with pytest.raises(TypeError, match="event dtype"):
        trace.add(np.zeros((3, 1)))
