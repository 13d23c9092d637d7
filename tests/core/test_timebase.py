"""The time model: the clock fit and its uncertainty, the ring's time table (across processes),
the pump's rows and the hub's run start, and a reader's "time of sample i"."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from qudi.util.instream.errors import StreamFormatError
from qudi.util.instream.hub import StreamHub
from qudi.util.instream.ring import StreamRing
from qudi.util.instream.simulated import SimulatedSource
from qudi.util.instream.simulated_clock import SimulatedClock, shared_clock
from qudi.util.instream.stream_clock import StreamClock
from qudi.util.instream.stream_format import StreamInfo, parse_description
from qudi.util.instream.timebase import (
    ClockFit,
    RunStart,
    SampleClock,
    StreamTime,
    TimeTable,
    fit_clock,
)


def simulated_table(rate, drift_ppm, jitter, seed, seconds, poll=1 / 30, delay=2e-5):
    """The rows a pump polling every ``poll`` s (a little late each time) writes for a
    simulated clock, and that clock (which knows the true times)."""
    rng = np.random.default_rng(seed)
    clock = SimulatedClock(start_offset=0.05, drift_ppm=drift_ppm, jitter=jitter, seed=seed)
    start = 1000.0 + rng.uniform(0, 1)
    clock.start(start, rate)
    now, last, rows = start, 0, []
    while now < start + seconds:
        now += poll + rng.uniform(0, 0.002)
        n = clock.arrived_by(now)
        if n > last:
            rows.append((n, now + rng.exponential(delay), (n - 1) / rate))
            last = n
    index, host, device = np.array(rows).T
    return clock, TimeTable.of(index, host, device)


def test_a_fit_of_exact_rows_is_exact():
    device = np.arange(100) * 0.01
    fit = fit_clock(device, 5.0 + 1.0001 * device)
    assert fit.offset == pytest.approx(5.0, abs=1e-12)
    assert fit.drift_ppm == pytest.approx(100, abs=1e-6)
    assert fit.device_time(fit.host_time(0.37)) == pytest.approx(0.37, abs=1e-12)


def test_the_fit_lies_below_every_row_and_touches_the_lowest():
    rng = np.random.default_rng(1)
    device = np.sort(rng.uniform(0, 10, 300))
    host = 2.0 + device + rng.exponential(0.01, 300)
    fit = fit_clock(device, host)
    residuals = host - fit.host_time(device)
    assert residuals.min() == pytest.approx(0, abs=1e-12) and (residuals > -1e-12).all()


@pytest.mark.parametrize(
    ("rate", "jitter", "seconds"),
    [(1000, 0.0, 5), (1000, 0.005, 20), (10, 0.0, 5), (10, 0.0, 30), (10, 0.005, 20)],
)
def test_the_uncertainty_covers_the_true_error_in_95_percent_of_runs(rate, jitter, seconds):
    covered = 0
    trials = 60
    for seed in range(trials):
        clock, table = simulated_table(rate, 100.0, jitter, seed, seconds)
        fit = table.fit()
        x = np.linspace(table.device[0], table.device[-1], 25)
        error = fit.host_time(x) - clock.true_time(x * rate)
        covered += bool(np.all(np.abs(error) <= fit.uncertainty(x)))
    assert covered >= 0.95 * trials


def test_more_rows_fit_better():
    spans = []
    for seconds in (3, 30):
        errors = []
        for seed in range(20):
            clock, table = simulated_table(10, 100.0, 0.0, seed, seconds)
            fit = table.fit()
            last = table.index[-1] - 1
            errors.append(abs(fit.host_time(table.device[-1]) - clock.true_time(last)))
        spans.append(np.median(errors))
    assert spans[1] < spans[0] / 3


def test_one_row_has_no_drift_and_no_certainty():
    fit = fit_clock([0.5], [10.0])
    assert fit.slope == 1.0 and fit.host_time(0.5) == pytest.approx(10.0)
    assert np.isinf(fit.uncertainty(0.5))


@pytest.mark.parametrize(
    ("device", "host", "message"),
    [
        ([], [], "at least one row"),
        ([0, 1], [0], "2 device times for 1 host times"),
        ([0, np.nan], [0, 1], "finite"),
        ([1, 0], [0, 1], "in order"),
    ],
)
def test_bad_rows_are_refused(device, host, message):
    with pytest.raises(ValueError, match=message):
        fit_clock(device, host)


def test_sample_clocks_are_checked_and_round_trip():
    clock = SampleClock("shared", "lab", 1e6, "trig", 42)
    assert SampleClock.from_description(clock.as_description()) == clock
    assert SampleClock("external", "/Dev1/PFI0").shares_clock_with(
        SampleClock("shared", "/Dev1/PFI0")
    )
    assert not SampleClock().shares_clock_with(SampleClock())
    with pytest.raises(ValueError, match="'sundial'"):
        SampleClock("sundial")
    with pytest.raises(ValueError, match="unknown keys \\['speed'\\]"):
        SampleClock.from_description({"kind": "internal", "speed": 2})
    with pytest.raises(ValueError, match="needs the shared clock's name"):
        SampleClock("shared")


def test_a_description_carries_the_sample_clock():
    info = StreamInfo(("a",), ("V",), 10.0, sample_clock=SampleClock("shared", "lab", 1e3))
    with StreamRing(64, 1, info=info) as ring:
        description = ring.description()
        assert description["sample_clock"]["source"] == "lab"
        assert parse_description(description)[1] == info
    with pytest.raises(StreamFormatError, match="sample_clock"):
        parse_description({**description, "sample_clock": {"kind": "sundial"}})


def test_a_table_reads_back_and_drops_rows_of_the_run_before():
    with StreamRing(64, 1, time_slots=8) as ring:
        table = ring.time_table
        table.write_run(RunStart(1, 0, 5.0, 1.7e9))
        for i in range(1, 21):
            table.append(i, 5.0 + i, i - 1.0)
        rows, count = table.rows()
        assert count == 20 and list(rows.index) == list(range(14, 21))  # 8 slots, 1 in reuse
        table.write_run(RunStart(2, 20, 30.0, 1.7e9 + 25))
        table.append(25, 31.0, 4.0)
        rows, count = table.rows()
        assert list(rows.index) == [25] and table.run().run_epoch == 2
        assert table.rows(count)[0].index.size == 0


def test_bad_time_slots_are_refused():
    with pytest.raises(ValueError, match="time_slots=-1"):
        StreamRing(64, 1, time_slots=-1)


ATTACH_AND_FIT = """
import sys, time
from qudi.util.instream.ring import StreamRing
from qudi.util.instream.stream_clock import StreamClock
ring = StreamRing.attach(sys.argv[1])
clock = StreamClock(ring)
deadline = time.monotonic() + 20
while clock.refresh() is None or len(clock.rows) < 5:
    assert time.monotonic() < deadline, "no rows"
    time.sleep(0.05)
print(clock.run.first_index, float(clock.time_of(0)), clock.time.fit.points)
ring.close()
"""


def test_another_process_reads_the_time_of_a_shared_stream(stream_name):
    source = SimulatedSource(["a"], sample_rate=1000.0)
    with StreamHub(source, name=stream_name) as hub:
        reader = hub.open_reader("here")
        reader.start()
        try:
            done = subprocess.run(
                [sys.executable, "-c", ATTACH_AND_FIT, stream_name],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            first, time_of_0, points = done.stdout.split()
            mine = float(reader.clock.time_of(0))
            assert int(first) == 0 and int(points) >= 5
            # both fits see the same sample 0, within their own uncertainties
            assert abs(float(time_of_0) - mine) < 5e-3
            run = reader.clock.run
            assert run.monotonic_start <= mine <= time.monotonic()
            assert abs(run.utc_start - time.time() + time.monotonic() - run.monotonic_start) < 1
        finally:
            reader.stop()
            reader.close()


def test_a_hub_writes_a_row_per_chunk_and_a_reader_asks_for_times(stream_name):
    source = SimulatedSource(["a"], sample_rate=2000.0)
    with StreamHub(source, name=stream_name, max_poll_rate=100.0) as hub:
        reader = hub.open_reader("r")
        reader.start()
        try:
            out = np.empty((600, 1))
            reader.read_into(out, 600, timeout=10)
            clock = reader.clock
            assert clock.refresh() is not None
            rows = clock.rows
            assert len(rows) >= 2 and np.all(np.diff(rows.index) > 0)
            assert np.all(rows.device == (rows.index - 1) / 2000.0)
            t0, t1 = clock.time_of([100, 300])
            slack = float(np.sum(clock.uncertainty_of([100, 300])))
            assert abs(t1 - t0 - 0.1) <= slack  # a fit of a few rows: its drift is uncertain
            assert clock.indices_between(t0, t1) == (100, 300)
        finally:
            reader.stop()
            reader.close()


def test_a_shared_simulated_clock_puts_starts_on_its_ticks():
    lab = shared_clock("test-lab", drift_ppm=100.0, tick_rate=1000.0, epoch=10.0)
    a = SimulatedClock(shared=lab)
    b = SimulatedClock(shared=lab, start_offset=0.05)
    a.start(10.0004, 1000.0)
    b.start(10.0004, 10.0)
    assert b.sample_clock.start_tick - a.sample_clock.start_tick == 50
    assert b.true_time(1) - a.true_time(150) == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="test-lab"):
        shared_clock("test-lab", drift_ppm=5.0, tick_rate=1000.0)


def test_stream_time_maps_both_ways():
    run = RunStart(1, 100, 50.0, 1.7e9)
    fit = ClockFit(offset=50.0, slope=1.0, scale=1e-4, x_centre=1.0, x_span=2.0, points=10)
    time_base = StreamTime(run, 10.0, fit)
    assert time_base.time_of(110) == pytest.approx(51.0)
    assert time_base.utc_of(110) == pytest.approx(1.7e9 + 1.0)
    assert time_base.indices_between(50.95, 51.25) == (110, 113)
    assert time_base.indices_between(0.0, 1.0) == (100, 100)
    with pytest.raises(ValueError, match="no time table"):
        StreamClock(StreamRing(8, 1, time_slots=0))


def test_many_looks_at_a_simulated_clock_count_as_looks_one_by_one():
    times = np.sort(np.random.default_rng(3).uniform(0.0, 2.0, 500))
    one, many = (
        SimulatedClock(start_offset=0.05, drift_ppm=100.0),
        SimulatedClock(start_offset=0.05, drift_ppm=100.0),
    )
    one.start(0.0, 1000.0)
    many.start(0.0, 1000.0)
    assert list(many.arrived_by_many(times)) == [one.arrived_by(t) for t in times]
    assert one.taken_by(0.05) == 1 and one.taken_by(0.0499) == 0


class _BadlyDeclaredSource(SimulatedSource):
    @property
    def sample_clock(self):
        return {"kind": "sundial"}


def test_a_clock_a_source_declares_badly_is_taken_as_internal_and_said(stream_name, caplog):
    with StreamHub(_BadlyDeclaredSource(["a"]), name=stream_name) as hub:
        assert hub.ring.info.sample_clock == SampleClock()
    assert "sundial" in caplog.text and "taken as internal" in caplog.text


def test_a_few_rows_do_not_make_a_wild_drift_and_say_so():
    device = np.array([0.0, 0.05, 0.95, 1.0])
    host = 10.0 + device + np.array([0.020, 0.020, 0.0, 0.0])  # the first two a poll late
    fit = fit_clock(device, host)
    assert abs(fit.drift_ppm) <= 1000.0 + 1e-6 and fit.slope_error == pytest.approx(2e-3)
    true_host = 10.0 + device  # the rows' true line
    assert np.all(np.abs(fit.host_time(device) - true_host) <= fit.uncertainty(device))
    assert fit_clock(device, host, max_drift_ppm=1e5).slope_error == 0.0
    with pytest.raises(ValueError, match="max_drift_ppm=0"):
        fit_clock(device, host, max_drift_ppm=0)


# ------------------------------------------------------------------ a drift that changes
def drifting_table(seed, change, seconds=60.0, rate=1000.0, poll=1 / 30, delay=2e-5, at=None):
    """Rows of a 1 kHz card polled at about 30 Hz whose clock's drift ``change``s mid-run:
    ``("jump", ppm)`` from 0 to ``ppm`` at a random time, ``("ramp", ppm)`` from 0 to
    ``ppm`` over the run (a clock warming up). Returns the true host time of a device time
    (seconds since the first sample) and the table, built directly (the simulated card's
    drift is constant)."""
    rng = np.random.default_rng(seed)
    start = 1000.0 + rng.uniform(0, 1)
    kind, ppm = change
    at = rng.uniform(0.3, 0.9) * seconds if at is None else at
    fine = np.linspace(0.0, seconds + 1.0, 20001)  # device time -> host time, integrated
    if kind == "jump":
        drift = np.where(fine < at, 0.0, ppm * 1e-6)
    else:
        drift = ppm * 1e-6 * fine / seconds
    host_of = start + np.concatenate(([0.0], np.cumsum((1 + drift[1:]) * np.diff(fine))))

    def true_host(device):
        return np.interp(device, fine, host_of)

    polls = start + np.cumsum(poll * (1 + rng.uniform(0, 0.2, int(seconds / poll))))
    taken = np.floor(np.interp(polls, host_of, fine) * rate).astype(np.int64) + 1
    new = np.r_[True, np.diff(taken) > 0]
    index = taken[new]
    host = polls[new] + rng.exponential(delay, int(new.sum()))
    return true_host, TimeTable.of(index, host, (index - 1) / rate)


def coverage(change, window, trials=200):
    """Of ``trials`` runs: in how many the uncertainty covered the error at the newest
    seconds (a live reader's samples), and everywhere in the window."""
    newest = everywhere = 0
    for seed in range(trials):
        true_host, table = drifting_table(seed, change)
        fit = table.fit(window)
        last = table.device[-1]
        x = np.linspace(last - (window or last), last, 25)
        error = np.abs(fit.host_time(x) - true_host(x))
        inside = error <= fit.uncertainty(x)
        newest += bool(inside[-5:].all())
        everywhere += bool(inside.all())
    return newest / trials, everywhere / trials


@pytest.mark.parametrize(
    "change", [("jump", 100.0), ("jump", -200.0), ("ramp", 100.0), ("jump", 0.0)]
)
def test_a_windowed_fit_stays_honest_when_the_drift_changes(change):
    newest, everywhere = coverage(change, window=20.0)
    assert newest >= 0.95 and everywhere >= 0.95, (newest, everywhere)


def test_one_line_over_the_whole_run_misses_a_drift_that_jumped():
    """Why the window: the line of all rows is off at the newest samples by far more than the
    window's, and even the bend it finds does not cover that in 95 % of runs."""
    newest, _ = coverage(("jump", 100.0), window=None, trials=50)
    line, recent = [], []
    for seed in range(50):
        true_host, table = drifting_table(seed, ("jump", 100.0))
        x = table.device[-1]
        line.append(abs(float(table.fit().host_time(x) - true_host(x))))
        recent.append(abs(float(table.fit(20.0).host_time(x) - true_host(x))))
    assert newest < 0.95 and np.median(recent) < 0.1 * np.median(line)


def test_a_bend_widens_the_uncertainty_of_a_windowed_fit():
    _, table = drifting_table(3, ("jump", 200.0), at=50.0)  # inside the last 20 s
    straight_fit = fit_clock(table.device, table.host, window=20.0)
    _, steady = drifting_table(3, ("jump", 0.0))
    assert straight_fit.bend > 50e-6 > fit_clock(steady.device, steady.host, window=20.0).bend
    with pytest.raises(ValueError, match="window"):
        fit_clock(table.device, table.host, window=0.0)


def test_a_stream_clock_follows_a_drift_change_in_its_rings_table():
    true_host, table = drifting_table(7, ("jump", 150.0), at=25.0)  # before the last 30 s
    info = StreamInfo(("a",), ("V",), 1000.0)
    ring = StreamRing(1024, (1,), info=info, time_slots=4096)
    try:
        ring.time_table.write_run(RunStart(1, 0, float(true_host(0.0)), 1.7e9))
        for row in zip(table.index, table.host, table.device, strict=True):
            ring.time_table.append(int(row[0]), float(row[1]), float(row[2]))
        recent, whole = StreamClock(ring), StreamClock(ring, window=None)
        index = np.arange(int(table.index[-1]) - 5000, int(table.index[-1]))
        truth = true_host(index / 1000.0)
        assert np.all(np.abs(recent.time_of(index) - truth) <= recent.uncertainty_of(index))
        # one line over the run knows of the bend too, so it can only say far less
        assert np.all(np.abs(whole.time_of(index) - truth) <= whole.uncertainty_of(index))
        assert whole.uncertainty_of(index).min() > 10 * recent.uncertainty_of(index).max()
    finally:
        ring.close()
