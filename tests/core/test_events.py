"""Event streams: structured records through ring, hub, readers, shared memory in another
process and the recorder; 10^6 events/s on 4 channels to 3 consumers, every event once, in
order, and ``lost`` exact when a consumer is overrun.

The source's clock is moved by the test (a generated source, not real time), so a second of
stream takes a fraction of one; benchmarks/stream_kinds.py measures real rates.
"""

from __future__ import annotations

import multiprocessing
import threading
import time

import h5py
import numpy as np
import pytest

from qudi.util.instream import StreamHub, StreamOverrunError
from qudi.util.instream.events import (
    BLOCK_S,
    EVENT_DTYPE,
    EventSource,
    EventSourceOverflowError,
    PoissonEvents,
    as_events,
    bin_rates,
    event_ring,
)
from qudi.util.instream.recorder import StreamRecorder


class ManualClock:
    """A monotonic clock that moves only when the test says (thread-safe enough: a float)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _wait(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


def _records(n: int, first: int = 0) -> np.ndarray:
    out = np.empty(n, EVENT_DTYPE)
    out["time"] = np.arange(first, first + n) * 1e-6
    out["channel"] = np.arange(first, first + n) % 4
    out["value"] = 1.0
    return out


def test_poisson_events_are_the_same_however_they_are_read_and_have_their_rates():
    events = PoissonEvents([1e5, 2e5, 3e5, 4e5], seed=3)
    whole = events.between(0, 200)
    again = np.concatenate([events.between(0, 50), events.between(50, 51), events.between(51, 200)])
    np.testing.assert_array_equal(whole, again)
    assert (np.diff(whole["time"]) >= 0).all() and whole["time"].max() < 0.2
    counts = np.bincount(whole["channel"], minlength=4)
    expected = np.array([1e5, 2e5, 3e5, 4e5]) * 0.2
    assert (np.abs(counts - expected) < 5 * np.sqrt(expected)).all()  # Poisson: 5 sigma
    rates = bin_rates(whole, 4, 0.0, 0.1, 2)
    np.testing.assert_array_equal(rates.sum(axis=0) * 0.1, counts)


def test_a_shared_ring_of_records_is_read_by_another_process(stream_name, spawn_process):
    context_queue = multiprocessing.get_context("spawn").Queue()
    with event_ring(4096, ["apd0", "apd1"], 1e6, shared=True, name=stream_name) as ring:
        ring.write(_records(1000))
        child = spawn_process(_read_in_child, stream_name, context_queue)
        got = context_queue.get(timeout=60)
        child.join(30)
    assert got == (str(EVENT_DTYPE), ["apd0", "apd1"], _records(1000).tobytes())


def _read_in_child(name, queue):
    from qudi.util.instream import attach

    ring = attach(name)
    reader = ring.reader("child", from_oldest=True)
    out = np.empty(reader.available, ring.dtype)
    reader.read_into(out, timeout=5.0)
    queue.put((str(ring.dtype), ring.info.extra["event_channels"], out.tobytes()))
    ring.close()


def test_records_are_recorded_as_a_compound_dataset(tmp_path):
    with event_ring(4096, ["a"], 1e6) as ring:
        reader = ring.reader("rec")
        with StreamRecorder(reader, tmp_path / "events.h5"):
            ring.write(_records(3000))
        with h5py.File(tmp_path / "events.h5") as f:
            data = f["data"][:]
            assert data.dtype == EVENT_DTYPE and f.attrs["sample_rate"] == 1e6
    np.testing.assert_array_equal(data, _records(3000))


def _event_hub(clock, rate_per_channel=2.5e5, ring_seconds=0.1):
    source = EventSource(
        ["apd0", "apd1", "apd2", "apd3"], [rate_per_channel] * 4, seed=7, clock=clock
    )
    hub = StreamHub(
        source, name="events_hub", shared=False, max_poll_rate=1000, min_ring_seconds=ring_seconds
    )
    return source, hub


def _step(hub, source, clock, blocks: int) -> None:
    """Move the clock on by ``blocks`` ms and wait until the pump has moved what came."""
    clock.now += blocks * BLOCK_S
    _wait(lambda: source.available_samples == 0)


def test_1e6_events_per_s_on_4_channels_reach_3_consumers_once_each_in_order():
    clock = ManualClock()
    source, hub = _event_hub(clock)
    with hub:
        assert hub.ring.dtype == EVENT_DTYPE and hub.ring.info.sample_rate == 1e6
        assert hub.ring.info.extra["event_channels"] == ["apd0", "apd1", "apd2", "apd3"]
        readers = [hub.open_reader(f"consumer{i}") for i in range(3)]
        for reader in readers:
            reader.start()
        got = [[] for _ in readers]
        for _ in range(100):  # one second of stream, 10 ms a step
            _step(hub, source, clock, 10)
            for reader, parts in zip(readers, got, strict=True):
                out = np.empty((reader.available, 1), EVENT_DTYPE)
                parts.append(as_events(out)[: reader.read_available_into(out)].copy())
        want = source.events_until(1000)
        assert len(want) > 990_000  # about 10^6
        for reader, parts in zip(readers, got, strict=True):
            np.testing.assert_array_equal(np.concatenate(parts), want)
            assert reader.lost == 0
            reader.close()


@pytest.mark.parametrize("allow_overwrite", [False, True])
def test_an_overrun_consumer_loses_an_exact_count_and_the_others_nothing(allow_overwrite):
    clock = ManualClock()
    source, hub = _event_hub(clock)
    with hub:
        steady = hub.open_reader("steady")
        slow = hub.open_reader("slow", allow_overwrite=allow_overwrite)
        steady.start()
        slow.start()
        got_steady, got_slow = [], []
        reported = 0
        for step in range(60):
            _step(hub, source, clock, 10)
            out = np.empty((steady.available, 1), EVENT_DTYPE)
            got_steady.append(out[: steady.read_available_into(out)].copy())
            if 20 <= step < 40:
                continue  # the slow consumer stalls for 0.2 s: more than its ring holds
            out = np.empty((slow.available + hub.ring.capacity, 1), EVENT_DTYPE)
            try:
                got_slow.append(out[: slow.read_available_into(out)].copy())
            except StreamOverrunError as exc:
                reported += exc.lost
                got_slow.append(out[: slow.read_available_into(out)].copy())
        want = source.events_until(600)
        steady_events = as_events(np.concatenate(got_steady))
        slow_events = as_events(np.concatenate(got_slow))
        np.testing.assert_array_equal(steady_events, want)
        lost = len(want) - len(slow_events)
        assert lost > 0 and slow.lost == lost and steady.lost == 0
        if not allow_overwrite:
            assert reported == lost
        # what the slow consumer got is the stream with one contiguous run of events missing
        cut = int(np.flatnonzero(slow_events != want[: len(slow_events)])[0])
        np.testing.assert_array_equal(slow_events[:cut], want[:cut])
        np.testing.assert_array_equal(slow_events[cut:], want[cut + lost :])
        steady.close()
        slow.close()


def test_the_source_overflows_its_own_buffer_when_not_read_and_says_so():
    clock = ManualClock()
    source = EventSource(["a"], [1e5], buffer_size=500, clock=clock)
    source.start_stream()
    clock.now = 0.1  # about 10 000 events due
    with pytest.raises(EventSourceOverflowError, match="500 events overflowed"):
        _ = source.available_samples
    assert not source.is_running and source.available_samples == 500


def test_event_sources_refuse_bad_rates_and_configurations():
    with pytest.raises(ValueError, match="rates is"):
        PoissonEvents([0.0, 0.0])
    with pytest.raises(ValueError, match="rates is"):
        PoissonEvents([1.0, float("inf")])
    source = EventSource(["a", "b"], [1.0, 3.0])
    with pytest.raises(ValueError, match="use \\['events'\\]"):
        source.configure(["a"], "CONTINUOUS", 1000, 10.0)
    source.configure(["events"], "CONTINUOUS", 1000, 40.0)
    assert source.events.rates.tolist() == [10.0, 30.0]


def test_a_real_time_event_source_streams_through_a_hub():
    source = EventSource(["a", "b"], [5e4, 5e4], seed=1)
    with StreamHub(source, name="rt_events", shared=False, max_poll_rate=200) as hub:
        reader = hub.open_reader("r")
        reader.start()
        out = np.empty((20_000, 1), EVENT_DTYPE)
        reader.read_into(out, timeout=10.0)
        events = as_events(out)
        assert (np.diff(events["time"]) >= 0).all()
        np.testing.assert_array_equal(events, source.events.between(0, 1000)[:20_000])
        reader.close()
    assert not any(t.name.startswith("instream-pump-rt") for t in threading.enumerate())


def test_a_hub_readers_events_are_recorded_every_one(tmp_path):
    clock = ManualClock()
    source, hub = _event_hub(clock, rate_per_channel=2.5e4)
    with hub:
        reader = hub.open_reader("recorder")
        reader.start()
        with StreamRecorder(reader, tmp_path / "hub_events.h5") as recorder:
            for _ in range(20):
                _step(hub, source, clock, 10)
            _wait(lambda: recorder.samples_written == hub.ring.write_index)
        reader.close()
    with h5py.File(tmp_path / "hub_events.h5") as f:
        data = f["data"][:]
        assert data.shape[1:] == (1,) and data.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(as_events(data), source.events_until(200))
