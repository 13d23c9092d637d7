"""TriggeredReader: windows around level crossings, edges and handed-in indices; every trigger
accounted for (delivered, held off, overlapping, missed), windows never torn.

The streams are generated and written into real rings (not paced by a clock) so the 10^5
triggers of a 1 MS/s stream take a second of CI; benchmarks/stream_kinds.py measures rates.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from qudi.util.instream import StreamHub, StreamInfo, StreamRing
from qudi.util.instream.triggered import (
    IndexTrigger,
    LevelTrigger,
    TriggeredReader,
    digital_edge,
)
from tests.core.sources import HandFedSource

INFO = StreamInfo(channel_names=("line", "index"), sample_rate=1e6)


def _pulses(seed: int, count: int, min_gap: int = 40, max_gap: int = 160):
    """A 0/1 line with ``count`` pulses at random places and widths, and the sample index as
    a second channel; returns (signal, rising edge positions)."""
    rng = np.random.default_rng(seed)
    gaps = rng.integers(min_gap, max_gap, count)
    edges = np.cumsum(gaps) + 10
    widths = rng.integers(1, 6, count)
    n = int(edges[-1]) + 200
    marks = np.bincount(edges, minlength=n + 1) - np.bincount(edges + widths, minlength=n + 1)
    line = np.cumsum(marks)[:n].astype(np.float64)
    data = np.column_stack((line, np.arange(n, dtype=np.float64)))
    return data, edges


def _check_windows(windows, pre, post):
    """Each window is the samples ``t - pre .. t + post - 1`` (the index channel says so)."""
    want = windows.trigger_index[:, None] - pre + np.arange(pre + post)
    np.testing.assert_array_equal(windows.data[:, :, 1], want)
    assert (windows.data[:, pre, 0] == 1).all() and (windows.data[:, pre - 1, 0] == 0).all()


def test_1e5_triggers_on_a_1_MS_s_stream_miss_no_window():
    data, edges = _pulses(seed=1, count=100_000, min_gap=20, max_gap=60)
    pre, post = 10, 20
    with StreamRing(1 << 16, (2,), np.float64, info=INFO) as ring:
        tr = TriggeredReader(ring.reader("scope"), digital_edge(0), pre=pre, post=post)
        found = []
        for start in range(0, len(data), 50_000):  # the producer's polls
            ring.write(data[start : start + 50_000])
            windows = tr.poll()
            _check_windows(windows, pre, post)
            found.append(windows.trigger_index)
        found = np.concatenate(found)
        np.testing.assert_array_equal(found, edges)
        s = tr.stats
        assert (s.triggers, s.windows, s.missed, s.held_off, s.lost) == (10**5, 10**5, 0, 0, 0)
        assert s.overlapping == int((np.diff(edges) < pre + post).sum()) and tr.pending == 0


@pytest.mark.parametrize("allow_overwrite", [False, True])
def test_a_stalled_reader_counts_exactly_the_windows_it_missed(allow_overwrite):
    data, edges = _pulses(seed=2, count=4000)
    pre, post, capacity = 25, 40, 8192
    with StreamRing(capacity, (2,), np.float64, info=INFO) as ring:
        reader = ring.reader("scope", allow_overwrite=allow_overwrite)
        tr = TriggeredReader(reader, digital_edge(0), pre=pre, post=post, chunk=4096)
        first = []
        for start in range(0, 100_000, 4000):
            ring.write(data[start : start + 4000])
            first.append(tr.poll())
        stall_at = 100_000  # the reader read everything up to here, then stalls
        ring.write(data[100_000:150_000])  # 50 000 samples into a ring of 8192
        rest = [tr.poll()]
        for start in range(150_000, len(data), 4000):
            ring.write(data[start : start + 4000])
            rest.append(tr.poll())
        g0, g1 = stall_at, 150_000 - capacity  # samples g0 .. g1 - 1 were overwritten unread
        got = np.concatenate([w.trigger_index for w in first + rest])
        for w in first + rest:
            _check_windows(w, pre, post)
        pending_at_gap = edges[(edges < g0) & (edges + post > g0)]
        early_after_gap = edges[(edges > g1) & (edges - pre < g1)]
        visible = edges[(edges < g0) | (edges > g1)]
        delivered = np.setdiff1d(visible, np.concatenate((pending_at_gap, early_after_gap)))
        np.testing.assert_array_equal(got, delivered)
        s = tr.stats
        assert s.lost == g1 - g0 == reader.lost
        assert s.missed == len(pending_at_gap) + len(early_after_gap)
        assert s.triggers == len(visible) == s.windows + s.missed + tr.pending


def _reference(x, level, edge, hysteresis):
    """Trigger indices by a plain per-sample state machine (the definition, written out)."""
    hits = []
    for sign, name in ((1, "rising"), (-1, "falling")):
        if edge not in (name, "both"):
            continue
        state = None  # unknown until the first sample
        for i, v in enumerate(sign * x):
            if v >= sign * level if sign > 0 else v >= sign * level:
                new = 1
            elif v < sign * level - hysteresis:
                new = 0
            else:
                new = state
            if state == 0 and new == 1:
                hits.append(i)
            state = new
    return sorted(hits)


@pytest.mark.parametrize("edge", ["rising", "falling", "both"])
@pytest.mark.parametrize("hysteresis", [0.0, 0.2])
def test_level_crossings_with_hysteresis_follow_their_definition_across_chunks(edge, hysteresis):
    t = np.arange(5000)
    x = np.sin(2 * np.pi * t / 1000) + 0.05 * np.where(t % 2, -1.0, 1.0)  # chatter
    data = np.column_stack((x, t.astype(np.float64)))
    with StreamRing(8192, (2,), np.float64, info=INFO) as ring:
        trigger = LevelTrigger(0, 0.0, edge, hysteresis)
        tr = TriggeredReader(ring.reader("a"), trigger, pre=0, post=1, chunk=333)
        ring.write(data)
        got = tr.poll().trigger_index.tolist()
    assert got == _reference(x, 0.0, edge, hysteresis)
    per_cycle = {"both": 2, "rising": 1, "falling": 1}[edge]
    if hysteresis:
        assert len(got) in (5 * per_cycle - 1, 5 * per_cycle)  # once per crossing
    else:
        assert len(got) > 5 * per_cycle  # the chatter crosses again and again


def test_hold_off_and_overlapping_windows_are_counted_and_overlaps_delivered_whole():
    n = 1000
    line = np.zeros(n)
    line[10::10] = 1  # a rising edge every 10 samples
    data = np.column_stack((line, np.arange(n, dtype=np.float64)))
    with StreamRing(4096, (2,), np.float64, info=INFO) as ring:
        held = TriggeredReader(ring.reader("h"), digital_edge(0), pre=2, post=3, holdoff=25)
        wide = TriggeredReader(ring.reader("w"), digital_edge(0), pre=8, post=12)
        ring.write(data)
        h = held.poll()
        assert h.trigger_index[:4].tolist() == [10, 40, 70, 100]
        assert h.trigger_index.tolist() == list(range(10, 1000, 30))  # 33 of 99 edges
        assert held.stats.held_off == 66
        assert held.stats.triggers == 99 and held.pending == 0
        w = wide.poll()
        assert len(w) == 98 and wide.pending == 1  # the last waits for its post samples
        assert w.overlapping.tolist() == [False] + [True] * 97 and wide.stats.overlapping == 97
        np.testing.assert_array_equal(w.data[:, :, 1], w.trigger_index[:, None] - 8 + np.arange(20))


def test_index_triggers_from_elsewhere_and_a_late_one_is_counted_missed():
    data = np.column_stack((np.zeros(5000), np.arange(5000, dtype=np.float64)))
    trigger = IndexTrigger()
    with StreamRing(8192, (2,), np.float64, info=INFO) as ring:
        tr = TriggeredReader(ring.reader("m"), trigger, pre=10, post=10)
        trigger.add([300, 100, 4995])
        ring.write(data[:2000])
        assert tr.poll().trigger_index.tolist() == [100, 300]
        trigger.add([50])  # too late: its samples are no longer kept
        ring.write(data[2000:])
        assert len(tr.poll()) == 0 and tr.stats.missed == 1 and tr.pending == 1


def test_windows_from_a_running_hub_reader_with_read_waiting_for_them():
    source = HandFedSource(channels=("a", "b"), sample_rate=1e5)
    with StreamHub(source, name="triggered_hub", shared=False, max_poll_rate=200) as hub:
        reader = hub.open_reader("scope")
        reader.start()
        # the source's channels carry the sample index: a level of 500.5 is crossed once
        tr = TriggeredReader(reader, LevelTrigger(0, 500.5), pre=5, post=5)
        source.feed(2000)
        windows = tr.read(timeout=10.0)
        assert windows.trigger_index.tolist() == [501]
        np.testing.assert_array_equal(windows.data[0, :, 1], np.arange(496, 506))
        assert len(tr.read(timeout=0.05)) == 0  # nothing more: empty, after the timeout
        reader.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pre": -1, "post": 5}, "pre is -1"),
        ({"pre": 1, "post": 0}, "post is 0"),
        ({"pre": 1, "post": 2, "holdoff": 1.5}, "holdoff is 1.5"),
    ],
)
def test_bad_window_arguments_are_refused(kwargs, match):
    with StreamRing(1024, (2,), np.float64, info=INFO) as ring:
        with pytest.raises(ValueError, match=match):
            TriggeredReader(ring.reader("x"), digital_edge(0), **kwargs)
    with pytest.raises(ValueError, match="edge is 'up'"):
        LevelTrigger(0, 1.0, "up")


def test_a_trigger_too_near_the_first_sample_is_counted_too_early_not_missed():
    line = np.zeros(200)
    line[[5, 50, 120]] = 1
    data = np.column_stack((line, np.arange(200, dtype=np.float64)))
    with StreamRing(1024, (2,), np.float64, info=INFO) as ring:
        ring.write(data[:30])  # written before the reader: not its stream
        tr = TriggeredReader(ring.reader("late"), digital_edge(0), pre=10, post=10)
        ring.write(data[30:])
        # the reader's first sample is 30: the edge at 50 is fine, none lies before 40
        assert tr.poll().trigger_index.tolist() == [50, 120]
        assert (tr.stats.too_early, tr.stats.missed) == (0, 0)
    with StreamRing(1024, (2,), np.float64, info=INFO) as ring:
        tr = TriggeredReader(ring.reader("early"), digital_edge(0), pre=10, post=10)
        ring.write(data)
        assert tr.poll().trigger_index.tolist() == [50, 120]
        assert (tr.stats.too_early, tr.stats.missed, tr.stats.triggers) == (1, 0, 3)


def test_a_hub_reader_started_after_the_triggered_reader_was_made_cuts_true_windows():
    source = HandFedSource(channels=("a", "b"), sample_rate=1e5)
    with StreamHub(source, name="late_start_hub", shared=False, max_poll_rate=200) as hub:
        other = hub.open_reader("other")
        other.start()
        source.feed(1000)  # the stream runs on before the scope starts
        _wait_for(lambda: hub.ring.write_index == 1000)
        scope = hub.open_reader("scope")
        tr = TriggeredReader(scope, LevelTrigger(0, 1500.5), pre=5, post=5)
        scope.start()
        source.feed(2000)
        windows = tr.read(timeout=10.0)
        assert windows.trigger_index.tolist() == [1501]
        np.testing.assert_array_equal(windows.data[0, :, 1], np.arange(1496, 1506))
        scope.close()
        other.close()


def _wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_events_of_chosen_channels_trigger_windows_at_their_times():
    from qudi.util.instream.events import EVENT_DTYPE, event_ring
    from qudi.util.instream.trigger_sources import EventTrigger

    rate = 1e4
    data = np.column_stack((np.zeros(20_000), np.arange(20_000, dtype=np.float64)))
    events = np.zeros(4, EVENT_DTYPE)
    events["time"] = [0.10004, 0.25, 0.5, 2.5]  # s; the last one is beyond this stream
    events["channel"] = [0, 1, 0, 0]
    with (
        event_ring(1024, ["apd0", "apd1"], 100.0) as photons,
        StreamRing(1 << 16, (2,), np.float64, info=INFO) as ring,
    ):
        trigger = EventTrigger(photons.reader("trig"), rate, channels=[0])
        scope = TriggeredReader(ring.reader("scope"), trigger, pre=2, post=3)
        photons.write(events)
        ring.write(data)
        windows = scope.poll()
    assert windows.trigger_index.tolist() == [1000, 5000]  # rounded to the nearest sample
    np.testing.assert_array_equal(
        windows.data[:, :, 1], [np.arange(998, 1003), np.arange(4998, 5003)]
    )
    assert scope.pending == 0 and scope.stats.triggers == 2  # 2.5 s waits in the trigger


def test_markers_trigger_at_their_sample_index_when_their_text_matches():
    from qudi.util.instream.session_recorder import Marker
    from qudi.util.instream.trigger_sources import MarkerTrigger

    data = np.column_stack((np.zeros(3000), np.arange(3000, dtype=np.float64)))
    trigger = MarkerTrigger(match="laser")
    with StreamRing(8192, (2,), np.float64, info=INFO) as ring:
        scope = TriggeredReader(ring.reader("scope"), trigger, pre=4, post=4)
        assert trigger.add_marker(Marker(1.0, 1200, "laser on"))
        assert not trigger.add_marker(Marker(1.1, 1500, "coffee"))
        assert trigger.add_marker(Marker(1.2, 2500, "laser off"))
        ring.write(data)
        windows = scope.poll()
    assert windows.trigger_index.tolist() == [1200, 2500]
    np.testing.assert_array_equal(windows.data[0, :, 1], np.arange(1196, 1204))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LevelTrigger(0, float("nan")), "level is nan"),
        (lambda: LevelTrigger(0, "1"), "level is '1'"),
        (lambda: LevelTrigger(-1, 1.0), "channel is -1"),
        (lambda: LevelTrigger(0, 1.0, hysteresis=float("inf")), "hysteresis is inf"),
    ],
)
def test_bad_trigger_arguments_are_refused_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_trigger_channel_or_window_the_stream_cannot_hold_is_refused():
    with StreamRing(1024, (2,), np.float64, info=INFO) as ring:
        with pytest.raises(ValueError, match="channel is 2: stream .* has channels 0 to 1"):
            TriggeredReader(ring.reader("x"), LevelTrigger(2, 0.5), pre=1, post=1)
        with pytest.raises(ValueError, match="pre \\+ post is 600 samples: use at most half"):
            TriggeredReader(ring.reader("y"), digital_edge(0), pre=300, post=300)
