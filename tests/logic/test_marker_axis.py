"""MarkerAxis: a marker's host time on the trace's x axis, by a shared ring's time table (the
logic's first sample located exactly from its reader's unread count) or, without one, by when
the samples arrived (never late: at most the fastest delivery early)."""

from __future__ import annotations

import os
import time

import numpy as np

from qudi.logic.instream.marker_view import MarkerAxis
from qudi.util.instream import StreamInfo, StreamRing
from qudi.util.instream.timebase import RunStart

RATE = 1000.0


class ReaderAsStreamer:
    """What the axis asks of the logic's streamer (a DataInStreamBuffer names its shared ring
    and says how much it holds unread), answered by a reader of that ring."""

    def __init__(self, ring: StreamRing, reader):
        self.stream_name = ring.name
        self._reader = reader

    @property
    def available_samples(self) -> int:
        return self._reader.available


def _write(ring: StreamRing, start_host: float, first: int, count: int) -> None:
    """Samples ``first ..`` taken exactly at ``start_host + index / RATE``, with their row."""
    ring.write(np.arange(first, first + count, dtype=np.float64)[:, None])
    index = first + count
    ring.time_table.append(index, start_host + (index - 1) / RATE, (index - 1) / RATE)


def test_by_the_time_table_a_marker_lands_on_the_x_of_its_sample():
    info = StreamInfo(("apd",), ("c/s",), RATE, "CONSTANT")
    name = f"marker_axis_{os.getpid()}"
    with StreamRing(1 << 14, (1,), info=info, shared=True, name=name) as ring:
        start = time.monotonic() - 10.0
        ring.time_table.write_run(RunStart(ring.run_epoch, 0, start, time.time() - 10.0))
        _write(ring, start, 0, 700)  # the logic joins at sample 700
        reader = ring.reader("logic")
        axis = MarkerAxis("CONSTANT", RATE, ReaderAsStreamer(ring, reader))
        try:
            assert axis.uses_time_base
            builder = object()
            out = np.empty((4096, 1))
            for block in range(3):
                _write(ring, start, 700 + 500 * block, 500)
                count = reader.read_available_into(out[:300])  # reads lag behind the writes
                axis.note_block(count, None, time.monotonic(), builder)
            x_first = 2.5  # the x the logic's first sample has
            # sample 1000 is the logic's 300th: x = x_first + 300 / RATE
            x = axis.x_of(np.array([start + 1000 / RATE, start + 1000.4 / RATE]), x_first)
            np.testing.assert_allclose(x, [x_first + 0.3, x_first + 0.3004], atol=1e-9)
            axis.note_block(0, None, time.monotonic(), object())  # a new trace: counts anew
            # from the next sample the reader gives (1600): sample 1000 came 0.6 s before it
            np.testing.assert_allclose(axis.x_of(np.array([start + 1.0]), 0.0), [-0.6])
        finally:
            axis.close()
            reader.close()


def test_without_a_time_table_a_marker_is_placed_by_the_arrivals_never_late():
    axis = MarkerAxis("CONSTANT", RATE)
    assert not axis.uses_time_base
    builder = object()
    taken_at = 100.0  # sample 0's host time; sample n arrives 20 ms or more after it is taken
    for n, latency in ((200, 0.05), (400, 0.02), (600, 0.03)):
        axis.note_block(200, None, taken_at + (n - 1) / RATE + latency, builder)
    x = float(axis.x_of(np.array([taken_at + 0.5]), 0.0)[0])  # truly x = 0.5
    assert 0.5 - 0.02 - 1e-9 <= x <= 0.5  # early by the fastest delivery seen, never late


def test_timestamp_streams_map_to_the_stamps_and_random_streams_not_at_all():
    axis = MarkerAxis("TIMESTAMP", 0.0)
    axis.note_block(3, np.array([1.0, 1.1, 1.2]), 51.25, object())  # stamp 1.2 arrived at 51.25
    np.testing.assert_allclose(axis.x_of(np.array([51.0]), 0.0), [0.95])
    assert np.isnan(MarkerAxis("RANDOM", 10.0).x_of(np.array([1.0]), 0.0)).all()


def test_an_event_stream_maps_to_the_event_times_by_its_run_start():
    info = StreamInfo(("events",), ("",), 1000.0, "RANDOM")
    name = f"marker_axis_events_{os.getpid()}"
    with StreamRing(1 << 10, (1,), info=info, shared=True, name=name) as ring:
        start = time.monotonic() - 10.0
        axis = MarkerAxis("RANDOM", 1000.0, ReaderAsStreamer(ring, None), events=True)
        try:
            assert axis.uses_time_base
            assert np.isnan(axis.x_of(np.array([start + 1.0]), 0.0)).all()  # no run yet
            ring.time_table.write_run(RunStart(ring.run_epoch, 0, start, time.time() - 10.0))
            np.testing.assert_allclose(axis.x_of(np.array([start + 1.0]), 0.0), [1.0])
        finally:
            axis.close()
    # not an event stream: a RANDOM ring's x is the sample's index, no time
    plain = MarkerAxis("RANDOM", 1000.0, events=False)
    plain.note_block(3, np.array([1.0, 1.1, 1.2]), 51.25, object())
    assert np.isnan(plain.x_of(np.array([51.0]), 0.0)).all()


def test_without_a_ring_event_markers_are_placed_by_the_arrivals_never_late():
    axis = MarkerAxis("RANDOM", 1000.0, events=True)
    assert not axis.uses_time_base
    builder = object()
    started = 100.0  # the run's start: event time t was taken at host time started + t
    for newest, latency in ((0.2, 0.05), (0.4, 0.02), (0.6, 0.03)):
        axis.note_block(50, np.array([newest - 0.1, newest]), started + newest + latency, builder)
    x = float(axis.x_of(np.array([started + 0.5]), 0.0)[0])  # truly x = 0.5
    assert 0.5 - 0.02 - 1e-9 <= x <= 0.5  # early by the fastest delivery seen, never late
