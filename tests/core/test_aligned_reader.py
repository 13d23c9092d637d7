"""Streams on one time axis: align() on time bases, and the AlignedReader on live hubs (real
pump threads over simulated sources whose clocks know the truth)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from qudi.util.instream.aligned_reader import AlignedReader
from qudi.util.instream.alignment import EXACT, FITTED, ROUNDED, align
from qudi.util.instream.errors import StreamStoppedError, StreamTimeoutError
from qudi.util.instream.hub import StreamHub
from qudi.util.instream.simulated import SimulatedSource
from qudi.util.instream.simulated_clock import SimulatedClock, shared_clock
from qudi.util.instream.timebase import ClockFit, RunStart, SampleClock, StreamTime

FAST, SLOW = 1000.0, 10.0
INTERNAL = SampleClock()


def time_base(offset, slope=1.0, rate=FAST, clock=INTERNAL, tick=None, scale=1e-4):
    fit = ClockFit(offset, slope, scale, x_centre=5.0, x_span=10.0, points=100)
    return StreamTime(RunStart(1, 0, offset, 1.7e9, 0.0, tick), rate, fit, clock)


def test_start_ticks_on_one_clock_align_exactly():
    lab = SampleClock("shared", "lab", 1000.0)
    primary = time_base(100.0, clock=lab, tick=2000)
    secondary = time_base(100.05, 1.0001, SLOW, clock=lab, tick=2050)  # its host fit is off
    alignment = align(primary, secondary)
    assert alignment.method == EXACT and alignment.exact
    assert alignment.primary_index([0, 1]) == pytest.approx([50.0, 150.0], abs=1e-9)
    assert alignment.uncertainty([0.0]) == [0.0]


def test_one_start_trigger_aligns_exactly():
    clock = SampleClock("shared", "/Dev1/ai/SampleClock", start_trigger="/Dev1/ai/StartTrigger")
    alignment = align(time_base(5.0, clock=clock), time_base(5.3, rate=SLOW, clock=clock))
    assert alignment.method == EXACT and alignment.primary_index([2]) == pytest.approx([200.0])


def test_one_clock_with_an_unknown_start_rounds_a_good_fit_to_whole_ticks():
    lab = SampleClock("shared", "lab", 1000.0)
    primary = time_base(10.0, clock=lab, scale=1e-6)
    secondary = time_base(10.0501, rate=SLOW, clock=lab, scale=1e-6)  # 50.1 ms: 0.1 tick off
    alignment = align(primary, secondary)
    assert alignment.method == ROUNDED and alignment.exact
    assert alignment.offset == pytest.approx(0.050, abs=1e-12)


def test_separate_clocks_are_fitted_and_chained():
    primary = time_base(10.0)
    secondary = time_base(10.05, 1.0001, SLOW)
    alignment = align(primary, secondary)
    assert alignment.method == FITTED and not alignment.exact
    # secondary sample 10 (1 s of its clock): host 10.05 + 1.0001 s, primary 1.0501 s
    assert alignment.primary_index([10]) == pytest.approx([1050.1], abs=1e-6)
    assert alignment.secondary_time(alignment.primary_time(1.0)) == pytest.approx(1.0)
    assert alignment.uncertainty([5.0])[0] > 0


def hub_pair(stream_name, p_clock, s_clock, s_rate=SLOW):
    primary = SimulatedSource(["ramp"], sample_rate=FAST, clock=p_clock)
    secondary = SimulatedSource(["ramp"], sample_rate=s_rate, clock=s_clock)
    return (
        StreamHub(primary, name=f"{stream_name}_p", max_poll_rate=100.0, min_ring_seconds=5),
        StreamHub(secondary, name=f"{stream_name}_s", max_poll_rate=100.0, min_ring_seconds=5),
    )


def true_secondary_index(p_clock, s_clock, primary_index):
    return (p_clock.true_time(primary_index) - s_clock.true_time(0)) * SLOW * s_clock.speed


class Running:
    """Both hubs with a started reader each; everything stopped and closed on exit."""

    def __init__(self, hubs):
        self.hubs = hubs

    def __enter__(self):
        self.readers = [hub.open_reader("aligned") for hub in self.hubs]
        for reader in self.readers:
            reader.start()
        return self.readers

    def __exit__(self, *exc):
        for reader in self.readers:
            reader.close()
        for hub in self.hubs:
            hub.close()


def test_a_shared_clock_is_exact_live(stream_name):
    lab = shared_clock(f"{stream_name}-lab", drift_ppm=100.0, tick_rate=FAST)
    p_clock, s_clock = SimulatedClock(shared=lab), SimulatedClock(shared=lab, start_offset=0.05)
    with Running(hub_pair(stream_name, p_clock, s_clock)) as (primary, secondary):
        reader = AlignedReader(primary, {"wavemeter": secondary})
        reader.read(100, timeout=10)  # before the secondary's first sample: NaN
        chunk = reader.read(400, timeout=10)
    assert chunk.method == {"wavemeter": EXACT} and chunk.uncertainty == {"wavemeter": 0.0}
    got = chunk.secondary["wavemeter"][:, 0]
    assert chunk.missing["wavemeter"] == 0 and np.isfinite(got).all()
    assert np.abs(got - true_secondary_index(p_clock, s_clock, chunk.index)).max() < 1e-6


def test_separate_clocks_are_aligned_within_the_reported_uncertainty(stream_name):
    p_clock = SimulatedClock()
    s_clock = SimulatedClock(start_offset=0.05, drift_ppm=100.0)
    covered, chunks = 0, 0
    with Running(hub_pair(stream_name, p_clock, s_clock)) as (primary, secondary):
        reader = AlignedReader(primary, {"wavemeter": secondary}, missing="wait")
        for _ in range(12):
            chunk = reader.read(250, timeout=10)
            got = chunk.secondary["wavemeter"][:, 0]
            ok = np.isfinite(got)
            if ok.any():
                truth = true_secondary_index(p_clock, s_clock, chunk.index[ok])
                error = np.abs(got[ok] - truth).max() / SLOW
                covered += error <= chunk.uncertainty["wavemeter"]
                chunks += 1
    assert chunk.method["wavemeter"] == FITTED and chunks >= 10
    assert covered >= 0.8 * chunks  # about 95 % honest; a busy machine may cost a chunk


def test_times_before_a_secondary_started_are_nan_and_counted_never_held(stream_name):
    p_clock, s_clock = SimulatedClock(), SimulatedClock(start_offset=0.4)
    with Running(hub_pair(stream_name, p_clock, s_clock, s_rate=100.0)) as readers:
        primary, secondary = readers
        reader = AlignedReader(primary, {"late": secondary}, missing="nan")
        deadline = time.monotonic() + 10
        while secondary.clock.refresh() is None:  # its first rows: its time base is known
            assert time.monotonic() < deadline, "the secondary never started"
            time.sleep(0.01)
        chunk = reader.read(200, timeout=10)
    assert chunk.missing == {"late": 200} and np.isnan(chunk.secondary["late"]).all()


def test_a_wait_that_times_out_consumes_nothing(stream_name):
    p_clock, s_clock = SimulatedClock(), SimulatedClock(start_offset=30.0)
    with Running(hub_pair(stream_name, p_clock, s_clock)) as (primary, secondary):
        reader = AlignedReader(primary, {"never": secondary}, missing="wait")
        deadline = time.monotonic() + 30
        while primary.available < 50:  # the primary's part is there: only the secondary waits
            assert time.monotonic() < deadline, "the primary never had 50 samples"
            time.sleep(0.01)
        position = primary.position
        with pytest.raises(StreamTimeoutError, match="did not come in time"):
            reader.read(50, timeout=0.3)
        assert primary.position == position and primary.available >= 50


def test_a_stopped_secondary_ends_a_wait(stream_name):
    p_clock, s_clock = SimulatedClock(), SimulatedClock()
    with Running(hub_pair(stream_name, p_clock, s_clock)) as (primary, secondary):
        reader = AlignedReader(primary, {"stops": secondary}, missing="wait")
        reader.read(200, timeout=10)
        secondary.stop()
        while secondary.available:
            secondary.read_available_into(np.empty((secondary.available, 1)))
        with pytest.raises(StreamStoppedError, match="'stops' stopped"):
            reader.read(400, timeout=10)


def test_bad_options_are_refused(stream_name):
    with Running(hub_pair(stream_name, SimulatedClock(), SimulatedClock())) as (p, s):
        with pytest.raises(ValueError, match="missing='hold'"):
            AlignedReader(p, {"s": s}, missing="hold")
        with pytest.raises(ValueError, match="\\['t'\\]"):
            AlignedReader(p, {"s": s}, clocks={"t": SampleClock()})


def test_a_timestamped_secondary_is_placed_by_its_stamps(stream_name):
    p_clock = SimulatedClock()
    s_clock = SimulatedClock(start_offset=0.05, drift_ppm=100.0)
    primary = SimulatedSource(["ramp"], sample_rate=FAST, clock=p_clock)
    secondary = SimulatedSource(["ramp"], sample_rate=50.0, timestamps=True, clock=s_clock)
    hubs = (
        StreamHub(primary, name=f"{stream_name}_p", max_poll_rate=100.0, min_ring_seconds=5),
        StreamHub(secondary, name=f"{stream_name}_s", max_poll_rate=100.0, min_ring_seconds=5),
    )
    with Running(hubs) as (p, s):
        assert s.ring.has_timestamps
        reader = AlignedReader(p, {"stamped": s}, missing="wait")
        for _ in range(6):
            chunk = reader.read(250, timeout=10)
    got = chunk.secondary["stamped"][:, 0]
    truth = (p_clock.true_time(chunk.index) - s_clock.true_time(0)) * 50.0 * s_clock.speed
    assert np.isfinite(got).all()
    # the stamps carry a little jitter of their own (a hundredth of a sample)
    error = np.abs(got - truth).max() / 50.0
    assert error <= chunk.uncertainty["stamped"] + 0.02 / 50.0


def test_a_timestamped_primary_sets_the_axis_by_its_stamps(stream_name):
    p_clock, s_clock = SimulatedClock(), SimulatedClock(start_offset=0.05, drift_ppm=100.0)
    primary = SimulatedSource(["ramp"], sample_rate=FAST, timestamps=True, clock=p_clock)
    secondary = SimulatedSource(["ramp"], sample_rate=SLOW, clock=s_clock)
    hubs = (
        StreamHub(primary, name=f"{stream_name}_p", max_poll_rate=100.0, min_ring_seconds=5),
        StreamHub(secondary, name=f"{stream_name}_s", max_poll_rate=100.0, min_ring_seconds=5),
    )
    with Running(hubs) as (p, s):
        reader = AlignedReader(p, {"wavemeter": s}, missing="wait")
        for _ in range(6):
            assert reader.available <= p.available
            chunk = reader.read(250, timeout=10)
    assert np.allclose(chunk.device_time, chunk.index / FAST, atol=0.21 / FAST)  # its stamps
    got = chunk.secondary["wavemeter"][:, 0]
    ok = np.isfinite(got)
    assert ok.sum() >= 200  # a stamp past the secondary's newest sample may be NaN
    truth = (p_clock.true_time(chunk.index[ok]) - s_clock.true_time(0)) * SLOW * s_clock.speed
    # the stamps jitter by up to 0.2 of a sample (the simulated card says so)
    assert np.abs(got[ok] - truth).max() / SLOW <= chunk.uncertainty["wavemeter"] + 0.21 / FAST
