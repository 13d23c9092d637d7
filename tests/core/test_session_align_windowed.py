"""Offline realignment in the live readers' windows: a clock whose drift changes mid-session
is followed as a live StreamClock follows it, with an honest uncertainty."""

from __future__ import annotations

import numpy as np
import pytest

from qudi.util.instream.alignment import EXACT, FITTED
from qudi.util.instream.ring import StreamRing
from qudi.util.instream.session import open_session
from qudi.util.instream.session_align import align_session, realign_session, realign_stream
from qudi.util.instream.session_recorder import SessionRecorder
from qudi.util.instream.stream_clock import StreamClock
from qudi.util.instream.stream_format import StreamInfo
from qudi.util.instream.timebase import DEFAULT_WINDOW_S, RunStart, SampleClock, TimeTable
from qudi.util.instream.windowed_fit import WindowedFit, windowed_fit

from .test_recorder import wait_until
from .test_timebase import drifting_table

SECONDS = 120.0  # of device time: four live windows
POLL = 1 / 20  # a pump polling 20 times a second


def device_grid(table: TimeTable, points: int = 400) -> np.ndarray:
    return np.linspace(0.0, float(table.device[-1]), points)


# a jump down bends the rows concave: the windows' lines then cut the corner, and only the
# bend check's widening covers that (without it -50 ppm is covered in a sixth of the runs)
@pytest.mark.parametrize("change", [("jump", 50.0), ("jump", -50.0), ("ramp", 100.0)])
def test_windowed_times_stay_honest_and_beat_one_line_when_the_drift_changes(change):
    """Over 100 simulated two-minute runs whose drift jumps (at a random time) or ramps: the
    true time of every sample is inside the windowed uncertainty in >= 95 % of runs, and the
    windowed times are far closer than one line over the run."""
    trials, covered, windowed_error, line_error = 100, 0, [], []
    for seed in range(trials):
        true_host, table = drifting_table(seed, change, seconds=SECONDS, poll=POLL)
        fit, line = windowed_fit(table, DEFAULT_WINDOW_S), table.fit()
        assert isinstance(fit, WindowedFit) and len(fit.fits) > 4
        x = device_grid(table)
        error = np.abs(fit.host_time(x) - true_host(x))
        covered += bool(np.all(error <= fit.uncertainty(x)))
        windowed_error.append(error.max())
        line_error.append(np.abs(line.host_time(x) - true_host(x)).max())
    assert covered / trials >= 0.95, covered
    # the worst error of a run: where one line bends away from the drift most; a jump down is
    # the hardest for the windows too (they cut its corner by a 30 s window's sagitta)
    assert np.median(windowed_error) < 0.3 * np.median(line_error)


def test_on_a_straight_clock_the_windows_agree_with_one_line():
    trials, agreed, honest = 50, 0, 0
    for seed in range(trials):
        true_host, table = drifting_table(seed, ("jump", 0.0), seconds=SECONDS, poll=POLL)
        fit, line = windowed_fit(table, DEFAULT_WINDOW_S), table.fit()
        x = device_grid(table)
        agreed += bool(np.all(np.abs(fit.host_time(x) - line.host_time(x)) <= line.uncertainty(x)))
        honest += bool(np.all(np.abs(fit.host_time(x) - true_host(x)) <= fit.uncertainty(x)))
    assert agreed / trials >= 0.95 and honest / trials >= 0.95, (agreed, honest)


def test_the_windowed_times_are_continuous():
    """No step where one knot's fit hands over to the next: neighbouring samples 1 ms apart
    differ by 1 ms (and the clock's drift), never by a jump."""
    _, table = drifting_table(4, ("jump", -200.0), seconds=SECONDS, poll=POLL)
    fit = windowed_fit(table, DEFAULT_WINDOW_S)
    x = np.arange(0.0, float(table.device[-1]), 1e-3)
    steps = np.diff(fit.host_time(x))
    assert np.all(np.abs(steps - 1e-3) < 1e-3 * 1e-3)  # within 1000 ppm of the sample period
    assert np.all(np.abs(np.diff(fit.uncertainty(x))) < 1e-6)
    host = fit.host_time(x[::997])
    np.testing.assert_allclose(fit.device_time(host), x[::997], rtol=0, atol=1e-9)


# --------------------------------------------------------------------- a recorded session
def simulated_ring(true_host, table, rate, *, timestamps=False, clock=None, start_tick=None):
    """A ring holding a whole simulated run: each sample's value is the true host time at
    which it was taken, its time table the pump's rows of ``table``."""
    count = int(table.index[-1])
    info = StreamInfo(
        ("truth",),
        ("s",),
        rate,
        "TIMESTAMP" if timestamps else "CONSTANT",
        sample_clock=clock or SampleClock(),
    )
    ring = StreamRing(count + 16, (1,), timestamps=timestamps, info=info, time_slots=len(table))
    ring.time_table.write_run(RunStart(1, 0, float(true_host(0.0)), 1.7e9, start_tick=start_tick))
    for index, host, device in zip(table.index, table.host, table.device, strict=True):
        ring.time_table.append(int(index), float(host), float(device))
    return ring, count


def record(path, streams):
    """Record ``streams`` (label: (true_host, table, rate, ring options)) into a session."""
    rings, readers, counts = [], {}, {}
    try:
        for label, (true_host, table, rate, options) in streams.items():
            ring, count = simulated_ring(true_host, table, rate, **options)
            rings.append(ring)
            readers[label], counts[label] = ring.reader("rec"), count
            device = np.arange(count) / rate
            stamps = device if ring.has_timestamps else None
            ring.write(true_host(device).reshape(-1, 1), stamps)
        recorder = SessionRecorder(readers, path, flush_interval=0.2)
        recorder.start()
        wait_until(lambda: recorder.samples_written == counts, timeout=20)
        for ring in rings:  # the streams end: the recorder takes every row and closes
            ring.mark_stopped()
        assert recorder.wait(10.0)
    finally:
        for ring in rings:
            ring.close()


@pytest.fixture(scope="module")
def drifting_session(tmp_path_factory):
    """A 1 kHz stream whose drift jumps by 50 ppm and a 10 Hz timestamped one whose drift
    ramps by 100 ppm, two minutes each, recorded into one session."""
    path = tmp_path_factory.mktemp("windowed") / "drifting.h5"
    fast = drifting_table(11, ("jump", 50.0), seconds=SECONDS, poll=POLL, at=70.0)
    slow = drifting_table(12, ("ramp", 100.0), seconds=SECONDS, rate=10.0, poll=POLL)
    record(
        path,
        {
            "fast": (*fast, 1000.0, {}),
            "slow": (*slow, 10.0, {"timestamps": True}),
        },
    )
    return path


def test_a_recorded_session_is_realigned_in_windows(drifting_session):
    with open_session(drifting_session) as session:
        windowed = realign_session(session)
        line = realign_session(session, window=None)
        truth = {label: s.read(0, s.rows)[0][:, 0] for label, s in session.streams.items()}
    for label in ("fast", "slow"):
        assert isinstance(windowed[label].time.fit, WindowedFit)
        assert not isinstance(line[label].time.fit, WindowedFit)
        error = np.abs(windowed[label].times - truth[label])
        assert np.mean(error <= windowed[label].uncertainty) >= 0.95, label
        assert np.all(np.diff(windowed[label].times) > 0)
        # the average drift is still the one line's
        assert windowed[label].drift_ppm == line[label].drift_ppm
    # the jump of the fast stream's drift bends one line away from it; the windows follow it
    # (the slow one's ramp is gentle, and its 10 rows a second per window are as noisy as
    # the line is bent: there the windows are honest, not closer)
    fast_error = np.abs(windowed["fast"].times - truth["fast"])
    assert fast_error.max() < 0.2 * np.abs(line["fast"].times - truth["fast"]).max()


def test_each_sample_has_the_time_a_live_clock_with_its_windows_rows_gave(drifting_session):
    """A live StreamClock fed the recorded rows one by one: at each knot's window end it says,
    for the sample at that window's middle, exactly what offline realignment says (1 ns);
    a sample between two knots gets a time between those two live answers."""
    with open_session(drifting_session) as session:
        stream = session.streams["fast"]
        offline = realign_stream(stream)
        rows = stream.time_table
        run = RunStart(**stream.time_base["run"])
    fit = offline.time.fit
    assert isinstance(fit, WindowedFit)
    info = StreamInfo(("truth",), ("s",), 1000.0)
    ring = StreamRing(16, (1,), info=info, time_slots=len(rows))
    try:
        ring.time_table.write_run(run)
        live = StreamClock(ring)  # the live readers' window, DEFAULT_WINDOW_S
        ends, said = list(fit.ends), []
        for index, host, device in rows.tolist():
            ring.time_table.append(index, host, device)
            if ends and device == ends[0]:
                ends.pop(0)
                assert live.refresh() is not None
                said.append(live.time)
        assert not ends and len(said) == len(fit.fits)
    finally:
        ring.close()
    centres = np.round(np.asarray(fit.centres) * 1000.0).astype(np.int64)  # sample indices
    at_centres = [float(time.time_of(i)) for time, i in zip(said, centres, strict=True)]
    np.testing.assert_allclose(offline.times[centres], at_centres, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        offline.uncertainty[centres],
        [float(t.uncertainty_of(i)) for t, i in zip(said, centres, strict=True)],
        rtol=1e-9,
    )
    for k in range(len(said) - 1):  # between two centres: between the two live answers
        between = np.arange(centres[k], centres[k + 1] + 1, 97)
        one, other = said[k].time_of(between), said[k + 1].time_of(between)
        low, high = np.minimum(one, other), np.maximum(one, other)
        assert np.all(
            (offline.times[between] >= low - 1e-9) & (offline.times[between] <= high + 1e-9)
        )
        # and the two live answers are within their uncertainties of each other
        gap = np.abs(one - other)
        assert np.all(gap <= said[k].uncertainty_of(between) + said[k + 1].uncertainty_of(between))


def test_align_session_lines_up_the_streams_by_both_windowed_clocks(drifting_session):
    """The slow stream (its value: its true sample times) at each fast sample lands on the
    fast sample's true time, inside the uncertainty, closer than by one line each."""
    with open_session(drifting_session) as session:
        windowed = align_session(session, "fast")
        line = align_session(session, "fast", window=None)
        fast_truth = session.streams["fast"].read(0, session.streams["fast"].rows)[0][:, 0]
        slow_truth = session.streams["slow"].read(0, session.streams["slow"].rows)[0][:, 0]
    assert windowed.methods == {"slow": FITTED}
    values = windowed.values["slow"][:, 0]
    known = ~np.isnan(values)
    assert windowed.missing["slow"] == np.count_nonzero(~known) < len(values) // 10
    error = np.abs(values[known] - fast_truth[known])
    # the uncertainty is said per slow sample: take it where the fast sample fell
    allowed = np.interp(values[known], slow_truth, windowed.uncertainty["slow"])
    assert np.mean(error <= allowed) >= 0.95
    line_error = np.abs(line.values["slow"][known, 0] - fast_truth[known])
    # both clocks' windows: the fast one's jump no longer bends the line (the slow stream's
    # few rows per window keep its part of the error, see the test above)
    assert np.median(error) < 0.5 * np.median(line_error)


def test_a_declared_shared_clock_stays_exact(tmp_path):
    """Two streams on one declared clock with known start ticks: exact, whatever the fits'
    windows say (the same values as with one line, no uncertainty)."""
    clock = SampleClock(kind="shared", source="card_clock", tick_rate=1e6)
    fast = drifting_table(21, ("jump", 50.0), seconds=SECONDS, poll=POLL)
    slow = drifting_table(22, ("jump", 50.0), seconds=SECONDS, rate=10.0, poll=POLL)
    path = tmp_path / "shared.h5"
    record(
        path,
        {
            "fast": (*fast, 1000.0, {"clock": clock, "start_tick": 1000}),
            "slow": (*slow, 10.0, {"clock": clock, "start_tick": 51000, "timestamps": True}),
        },
    )
    with open_session(path) as session:
        windowed = align_session(session)
        line = align_session(session, window=None)
    assert windowed.methods == line.methods == {"slow": EXACT}
    np.testing.assert_array_equal(windowed.values["slow"], line.values["slow"])
    assert not np.any(windowed.uncertainty["slow"])


@pytest.mark.parametrize("window", [0, -30.0, float("nan"), float("inf"), "30", True])
def test_a_bad_window_is_refused_naming_it(drifting_session, window):
    with open_session(drifting_session) as session:
        for call in (
            lambda: realign_session(session, window=window),
            lambda: realign_stream(session.streams["fast"], window=window),
            lambda: align_session(session, window=window),
        ):
            with pytest.raises(ValueError, match=r"window=.*seconds > 0.*or None"):
                call()
        assert set(realign_session(session)) == {"fast", "slow"}  # nothing changed
