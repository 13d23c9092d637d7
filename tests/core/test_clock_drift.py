"""The clock offset estimate measures the drift between two hosts and keeps its bound honest.

* Simulated probes between two clocks (a true drift of 0, 50 and -150 ppm; round trips of
  0.1 to 2 ms split at random between the two ways, one in twenty of 20 ms) over three
  minutes, many seeded trials: the true offset is inside the bound at every query, the bound
  is never wider than the single-probe rule of before (half a round trip plus 200 ppm of the
  probe's age) and after a minute far narrower, and the measured drift's range holds the
  true drift.
* A drift that changes within the allowed bend stays inside; a clock step (the offset jumps
  by 5 ms) is found by the first probe that contradicts the kept ones, and the answer is
  honest from then on.
* The polygon of lines agrees with scipy's linear programming on the same constraints.
* Bad constructor values are refused naming the key, the value and what is valid.
* Through real ZeroMQ on loopback: a probe whose clock runs 100 ppm fast relative to the
  publisher's maps the publisher's times within the reported bound and measures the drift
  within its range.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from qudi.util.instream.hub import StreamHub
from qudi.util.instream.network import StreamPublisher, StreamSubscriber
from qudi.util.instream.simulated import SimulatedSource
from qudi.util.instream.simulated_clock import SimulatedClock
from qudi.util.instream.transport.clock_sync import (
    MAX_HOST_DRIFT_PPM,
    ClockProbe,
    OffsetEstimate,
    TimeServer,
)
from qudi.util.instream.transport.offset_lines import feasible_lines, range_at

GAP_S = 0.5  # between probes in the simulations (a ClockProbe's default is 0.25 s)
QUERIES = 3  # questions between two probes, at random times


def round_trip(rng: np.random.Generator) -> float:
    return 0.02 if rng.random() < 0.05 else float(rng.uniform(1e-4, 2e-3))


class Simulation:
    """Probes of a publisher whose offset from the subscriber's clock is ``true(t)`` (local
    time ``t``); the old single-probe rule over the same kept probes, for comparison."""

    def __init__(self, true, seed: int, estimate: OffsetEstimate | None = None):
        self.true = true
        self.rng = np.random.default_rng(seed)
        self.estimate = estimate or OffsetEstimate()
        self.now = 1000.0 + 1e5 * self.rng.random()  # some uptime of the subscriber's host
        self.start = self.now
        self.probes: list[tuple[float, float, float]] = []  # mid, offset, half (as measured)

    def probe(self) -> float:
        """One probe; its round trip."""
        trip = round_trip(self.rng)
        t0 = self.now
        instant = t0 + trip * self.rng.random()  # the publisher reads its clock then
        remote = instant - self.true(instant)
        t3 = t0 + trip
        self.estimate.add(t0, remote, t3)
        mid = 0.5 * (t0 + t3)
        self.probes.append((mid, mid - remote, 0.5 * trip))
        self.now = t3
        return trip

    def old_bound(self, when: float) -> float:
        """The rule before: the single kept probe whose half plus 200 ppm of age is least."""
        newest = max(mid for mid, _, _ in self.probes)
        return min(
            half + MAX_HOST_DRIFT_PPM * 1e-6 * abs(when - mid)
            for mid, _, half in self.probes
            if mid >= newest - self.estimate.span_s
        )

    def queries(self):
        """Times between now and the next probe, with the estimate's answer there."""
        times = np.sort(self.now + GAP_S * self.rng.random(QUERIES))
        for when in times:
            found, bound = self.estimate.offset(float(when))
            yield float(when), found, bound
        self.now += GAP_S


@pytest.mark.parametrize("ppm", [0.0, 50.0, -150.0])
def test_the_bound_holds_the_true_offset_and_narrows_with_the_measured_drift(ppm):
    for seed in range(6):
        rng = np.random.default_rng([seed, int(ppm) + 1000])
        origin = float(rng.uniform(-1e4, 1e4))  # the other host's clock counts from elsewhere

        def true(t, origin=origin):
            return origin + ppm * 1e-6 * (t - 1000.0)

        sim = Simulation(true, seed)
        ratios = []
        while sim.now < sim.start + 180.0:
            sim.probe()
            for when, found, bound in sim.queries():
                assert abs(found - true(when)) <= bound, (seed, when - sim.start)
                old = sim.old_bound(when)
                assert bound <= old + 3e-9  # never wider than the old rule (but its rounding)
                if when > sim.start + 60.0:
                    ratios.append(bound / old)
            if len(sim.probes) % 40 == 0:
                drift = sim.estimate.measured_drift()
                assert drift.low_ppm <= ppm <= drift.high_ppm, (seed, drift)
        assert np.median(ratios) < 1 / 3, np.median(ratios)
        drift = sim.estimate.measured_drift()
        assert drift.high_ppm - drift.low_ppm < 10.0  # measured: the prior's range is 400
        assert drift.span_s > 100.0 and drift.probes > 200 and sim.estimate.steps == 0


def test_a_drift_that_changes_within_the_allowed_bend_stays_inside():
    rate = 0.9e-6 / 60.0  # the drift changes by 0.9 ppm per minute (1 is allowed)

    def true(t):
        return 3.0 + 20e-6 * (t - 1000.0) + 0.5 * rate * (t - 1000.0) ** 2

    for seed in range(3):
        sim = Simulation(true, seed)
        sim.now = sim.start = 1000.0
        while sim.now < sim.start + 300.0:
            sim.probe()
            for when, found, bound in sim.queries():
                assert abs(found - true(when)) <= bound, (seed, when - sim.start)
            newest = max(mid for mid, _, _ in sim.probes)
            drift = sim.estimate.measured_drift()
            now_ppm = 20.0 + rate * (newest - 1000.0) * 1e6  # the drift at the newest probe
            assert drift.low_ppm <= now_ppm <= drift.high_ppm
        assert sim.estimate.steps == 0


def test_a_clock_step_is_found_and_the_answer_stays_honest_after_it():
    step_at = 1090.0

    def true(t):
        return -7.0 + 50e-6 * (t - 1000.0) + (0.005 if t >= step_at else 0.0)

    for seed in range(4):
        sim = Simulation(true, seed)
        sim.now = sim.start = 1000.0
        must_find = False
        while sim.now < sim.start + 180.0:
            trip = sim.probe()
            if sim.now - trip >= step_at and trip <= 2e-3:
                # a probe wholly after the step, its interval (at most 2 ms wide) beyond
                # anything the line before it allows there: it must contradict them
                must_find = True
            sim.estimate.offset(sim.now)
            assert sim.estimate.steps == (1 if must_find else sim.estimate.steps)
            assert sim.estimate.steps <= 1
            for when, found, bound in sim.queries():
                # between the step and the probe that shows it, nothing can tell: unchecked
                if when < step_at or sim.estimate.steps == 1:
                    assert abs(found - true(when)) <= bound, (seed, when - sim.start)
        assert must_find and sim.estimate.steps == 1
        drift = sim.estimate.measured_drift()
        assert drift.low_ppm <= 50.0 <= drift.high_ppm and drift.span_s > 60.0


def test_the_polygon_agrees_with_linear_programming():
    rng = np.random.default_rng(7)
    max_drift = 200e-6
    for _ in range(30):
        slope = rng.uniform(-150e-6, 150e-6)
        xs = np.concatenate([[0.0], -np.sort(rng.uniform(0, 60, rng.integers(1, 40)))])
        halves = rng.uniform(1e-5, 2e-3, len(xs))
        centres = slope * xs + rng.uniform(-1, 1, len(xs)) * halves
        intervals = list(zip(xs, centres - halves, centres + halves, strict=True))
        polygon = feasible_lines(intervals, max_drift)
        assert polygon  # the true line passes through them all
        # a + d x <= high and -(a + d x) <= -low, |d| <= max_drift
        rows = np.array([[1.0, x] for x in xs] + [[-1.0, -x] for x in xs])
        limits = np.concatenate([centres + halves, -(centres - halves)])
        bounds = [(None, None), (-max_drift, max_drift)]
        for tau in (0.0, 1.0, 30.0, -20.0):
            low = linprog([1.0, tau], A_ub=rows, b_ub=limits, bounds=bounds)
            high = linprog([-1.0, -tau], A_ub=rows, b_ub=limits, bounds=bounds)
            ours = range_at(polygon, tau)
            assert ours == pytest.approx((low.fun, -high.fun), abs=1e-12)
        drifts = [d for _, d in polygon]
        low = linprog([0.0, 1.0], A_ub=rows, b_ub=limits, bounds=bounds)
        high = linprog([0.0, -1.0], A_ub=rows, b_ub=limits, bounds=bounds)
        assert (min(drifts), max(drifts)) == pytest.approx((low.fun, -high.fun), abs=1e-12)
    # two intervals no line of the allowed drift passes through: none
    assert feasible_lines([(0.0, 0.0, 1e-4), (-1.0, 0.01, 0.0101)], max_drift) == []


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 0.05),  # the round trip
            st.floats(0, 1),  # where in it the publisher read its clock
            st.floats(-1e6, 1e6) | st.just(0.0),  # a step of the offset before this probe
            st.floats(0, 200.0),  # the time to the next probe
        ),
        min_size=1,
        max_size=40,
    ),
    st.floats(-199.0, 199.0),
)
def test_any_probes_give_a_finite_answer_honest_from_the_last_step_on(probes, ppm):
    """Steps of any size anywhere: always an answer; once the probes since the last step
    are all the estimate keeps, the true offset is inside its bound."""
    estimate = OffsetEstimate()
    offset, now, last_step_at = 5.0, 1000.0, 1000.0
    for trip, where, step, gap in probes:
        if step:
            offset += step
            last_step_at = now
        instant = now + trip * where
        true = offset + ppm * 1e-6 * (instant - last_step_at)
        estimate.add(now, instant - true, now + trip)
        now += trip + gap
        found, bound = estimate.offset(now)
        assert np.isfinite(found) and 0.0 <= bound < 1.0
    drift = estimate.measured_drift()
    assert -200.0 <= drift.low_ppm <= drift.ppm <= drift.high_ppm <= 200.0
    steps = [k for k, p in enumerate(probes) if p[2]]
    since = len(probes) - (steps[-1] if steps else 0)  # probes from the last step on
    if drift.probes <= since:  # the kept ones (the newest) are all on the present line
        true_now = offset + ppm * 1e-6 * (now - last_step_at)
        assert abs(found - true_now) <= bound + 1e-9 * (1 + abs(true_now))


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [
        ("keep", 1, "an integer number of probes >= 2"),
        ("keep", 2.5, "an integer number of probes >= 2"),
        ("keep", float("inf"), "an integer number of probes >= 2"),
        ("max_drift_ppm", 0.0, "a number of ppm > 0"),
        ("max_drift_ppm", float("nan"), "a number of ppm > 0"),
        ("span_s", -1.0, "a number of seconds > 0"),
        ("span_s", "60", "a number of seconds > 0"),
        ("drift_change_ppm_per_min", -0.1, "a number of ppm per minute >= 0"),
        ("drift_change_ppm_per_min", True, "a number of ppm per minute >= 0"),
    ],
)
def test_bad_estimate_values_are_refused_naming_them(key, value, valid):
    with pytest.raises(ValueError, match=rf"{key} must be {valid}.*got {value!r}"):
        OffsetEstimate(**{key: value})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": 0.0}, "interval must be a number of seconds > 0"),
        ({"clock": 5.0}, "clock must be a function returning seconds, got 5.0"),
    ],
)
def test_bad_probe_values_are_refused_before_a_socket_opens(kwargs, message):
    with zmq.Context() as context:
        with pytest.raises(ValueError, match=message):
            ClockProbe(context, "tcp://127.0.0.1:1", "bad", None, **kwargs)
    # the context ended: no socket was left open (term() would block on one)


def test_a_subscriber_clock_100_ppm_fast_is_mapped_and_its_drift_measured():
    base = time.monotonic()

    def fast() -> float:  # the subscriber's host: its clock runs 100 ppm fast
        return base + (time.monotonic() - base) * (1.0 + 100e-6)

    true_ppm = (1.0 - 1.0 / (1.0 + 100e-6)) * 1e6  # d(local - remote) / d(local)
    context = zmq.Context()
    server = TimeServer(context, "tcp://127.0.0.1:1", "drift", None)
    probe = None
    try:
        probe = ClockProbe(
            context, f"tcp://127.0.0.1:{server.port}", "drift", None, interval=0.02, clock=fast
        )
        deadline = time.monotonic() + 20.0
        checked = 0
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if not probe.settled:
                continue
            remote = time.monotonic()  # a publisher's host time (its clock is ours)
            truth = base + (remote - base) * (1.0 + 100e-6)  # the subscriber's clock then
            offset, bound = probe.estimate.offset(truth)
            assert abs(remote + offset - truth) <= bound, (offset, bound)
            checked += 1
            drift = probe.estimate.measured_drift()
            assert drift.low_ppm <= true_ppm <= drift.high_ppm, drift
            if drift.span_s > 6.0 and drift.low_ppm > 0.0:
                break  # measured: the range excludes no drift at all
        assert checked > 20
        assert drift.low_ppm > 0.0, drift  # within 20 s, the drift shows on loopback
    finally:
        if probe is not None:
            probe.close()
        server.close()
        context.term()


def test_a_subscriber_reports_the_drift_its_probes_measured(stream_name):
    """One host: the true drift is 0, inside the reported range, which narrows below the
    prior's as the probes span a few seconds; every mapped row is within the run's bound."""
    source = SimulatedSource(["ramp"], sample_rate=1000.0, clock=SimulatedClock())
    with (
        StreamHub(source, name=stream_name, shared=False) as hub,
        StreamPublisher(hub) as publisher,
        StreamSubscriber(publisher.endpoint) as sub,
    ):
        remote = sub.receiver.remote_time
        out = np.empty((100, 1))
        deadline = time.monotonic() + 15.0
        drift = None
        while time.monotonic() < deadline:
            sub.read_into(out, timeout=5.0)
            drift = remote.measured_drift
            if drift is not None:
                assert drift.low_ppm <= 0.0 <= drift.high_ppm, drift
                if drift.span_s > 3.0 and drift.high_ppm - drift.low_ppm < MAX_HOST_DRIFT_PPM:
                    break
        assert drift is not None and drift.high_ppm - drift.low_ppm < MAX_HOST_DRIFT_PPM, drift
        offset, bound = remote.offset
        assert abs(offset) <= bound  # one host: truly 0
        mine, _ = sub.ring.time_table.rows()
        theirs, _ = hub.ring.time_table.rows()  # a new subscriber's indices are the publisher's
        common, at_mine, at_theirs = np.intersect1d(mine.index, theirs.index, return_indices=True)
        assert len(common) > 10
        error = np.abs(mine.host[at_mine] - theirs.host[at_theirs])
        assert error.max() <= sub.ring.time_table.run().host_uncertainty
