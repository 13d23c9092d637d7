"""Alignment benchmark: a 10 Hz stream on a 1 kHz stream's time axis, against the truth.

    python benchmarks/alignment.py            # 200 simulated runs of 60 s + a 20 s live run
    python benchmarks/alignment.py --quick    # the same with an 8 s live run

Two simulated streams: a 1 kHz primary on its own clock and a 10 Hz secondary (a
"wavemeter") whose first sample comes 50 ms after the primary's and whose clock runs 100 ppm
fast. The simulated clocks (:mod:`qudi.util.instream.simulated_clock`) know when each sample
was truly taken; the error of an alignment is where it puts each secondary sample on the
primary's axis minus where the truth puts it (ms, or primary samples).

* **trials** (200, fixed seeds): the time tables a pump polling each stream 30 times a
  second (each poll up to 2 ms late, each row stamped 0.2 ms after the read on average, 2 % of
  them up to 10 ms later still, as on a busy machine) would write,
  simulated in virtual time (each interval stretched by up to 20 % as the pump does), then
  aligned three ways:

  - *shared clock*: both streams on one simulated clock (drifting 100 ppm against the host),
    the secondary started 50 ms later, declared as shared; once with the start ticks known
    (exact by construction) and once without (the start fitted, then rounded to whole ticks
    of the 1 kHz clock);
  - *fitted*: separate clocks, offset and drift fitted from the tables
    (:func:`~qudi.util.instream.alignment.align`); the reported uncertainty must contain the
    true error of every secondary sample of a trial in >= 95 % of trials;
  - *baseline*: what qudi-iqo-modules' DataInStreamSync does: each stream's time is index /
    nominal rate from its own start, the secondary interpolated onto the primary's times,
    edges held, no skew or drift correction (written here from its description, not copied).

  A trial's error is its worst secondary sample's; the table gives the median and the worst
  trial.
  The fitted case is also run with polls every 10 ms, the rate DataInStreamSync joins its
  streamers' hubs with (its ``max_poll_rate``, 100 by default): slow streams are timed
  better the more often they are polled.
* **drift change** (200 more trials): the secondary's drift jumps by 100 ppm at a random
  time in the second half of the run; its newest 10 s aligned by a live clock's fit (its last
  30 s) and by one line over the run, each with the error and whether the uncertainty held.
* **live**: real StreamHubs (polling at 100 Hz, as under DataInStreamSync) and pump threads
  over SimulatedSources with those clocks, an AlignedReader reading both in 0.25 s chunks;
  the secondary's ``ramp`` channel counts its samples, so its value interpolated at a
  primary sample's time says where the reader put that time, which the truth is compared
  with (each chunk against the uncertainty the reader reported for it). The baseline is
  applied to the same samples.

The last line is ``alignment: shared clock X samples, fitted Y ms, baseline Z ms``: X the
worst shared-clock trial (the start-fitted case) in primary samples, Y and Z the median over
the trials of each trial's worst error.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from qudi.util.instream.aligned_reader import AlignedReader
from qudi.util.instream.alignment import align
from qudi.util.instream.hub import StreamHub
from qudi.util.instream.simulated import SimulatedSource
from qudi.util.instream.simulated_clock import SimulatedClock, shared_clock
from qudi.util.instream.timebase import (
    DEFAULT_WINDOW_S,
    RunStart,
    SampleClock,
    StreamTime,
    TimeTable,
)

FAST, SLOW = 1000.0, 10.0  # Hz
SKEW = 0.050  # s: the secondary's first sample after the primary's
DRIFT = 100.0  # ppm
POLL = 1 / 30  # s: the pump's poll period at the hubs' default max_poll_rate (30)
SYNC_POLL = 1 / 100  # s: DataInStreamSync's default max_poll_rate (100, as qudi-iqo-modules')
POLL_LATE = 0.002  # s: how late a poll may come
STAMP_DELAY = 200e-6  # s: mean delay from the read to the row's time stamp
DESCHEDULED = 0.02  # of rows: stamped up to 10 ms late more (a busy machine)
INTERNAL = SampleClock()
GOLDEN = (5**0.5 - 1) / 2
TRIALS = 200
LIVE_HUB = {"min_ring_seconds": 10, "max_poll_rate": 100.0}  # as DataInStreamSync joins hubs
JUMP = 100.0  # ppm: how much the secondary's drift changes mid-run in the drift-change trials
NEWEST_S = 10.0  # s: the drift-change trials judge the newest samples (a live reader's)


@dataclass
class Simulated:
    """One simulated stream: its clock (the truth) and the time base a reader would build."""

    clock: SimulatedClock
    time: StreamTime


class JumpingClock:
    """A card clock whose drift jumps from ``DRIFT`` to ``DRIFT + JUMP`` ppm at host time
    ``start + at`` (the simulated clocks' drift is constant): the truth of the drift-change
    trials, with the parts of :class:`SimulatedClock` that :func:`simulate` uses."""

    def __init__(self, at: float):
        self.at = at
        self.sample_clock = INTERNAL
        self.speed = 1 + DRIFT * 1e-6  # before the jump (true_primary_index wants a primary's)

    def start(self, host_time: float, rate: float) -> None:
        self.first, self.rate = host_time + SKEW, rate
        self.jump_index = self.at * rate * (1 + DRIFT * 1e-6)  # samples taken by the jump

    def true_time(self, index):
        index = np.asarray(index, np.float64)
        before = index / (self.rate * (1 + DRIFT * 1e-6))
        after = self.at + (index - self.jump_index) / (self.rate * (1 + (DRIFT + JUMP) * 1e-6))
        return self.first + np.where(index < self.jump_index, before, after)

    def arrived_by_many(self, host_times: np.ndarray) -> np.ndarray:
        since = np.asarray(host_times, np.float64) - self.first
        before = since * self.rate * (1 + DRIFT * 1e-6)
        after = self.jump_index + (since - self.at) * self.rate * (1 + (DRIFT + JUMP) * 1e-6)
        taken = np.where(since < self.at, before, after)
        return np.where(since >= 0, np.floor(np.maximum(taken, 0)) + 1, 0).astype(np.int64)


def simulate(
    clock, rate, start, seconds, rng, declared=INTERNAL, tick_known=True, poll=POLL, window=None
):  # fmt: skip
    """The time table a pump would write for ``clock`` started at host ``start``, fitted as one
    line over the whole run, or over its last ``window`` seconds (as a live reader's clock
    fits it)."""
    clock.start(start, rate)
    count = int(seconds / poll) + 1
    # poll intervals stretched as the pump stretches them (golden-ratio sequence), a little late
    stretch = 1 + 0.2 * ((np.arange(1, count + 1) * GOLDEN) % 1.0)
    polls = start + np.cumsum(poll * stretch + rng.uniform(0, POLL_LATE, count))
    seen = clock.arrived_by_many(polls)
    new = np.flatnonzero(np.diff(np.r_[0, seen]) > 0)  # a row per poll that brought samples
    late = rng.exponential(STAMP_DELAY, len(new))
    late += np.where(rng.uniform(size=len(new)) < DESCHEDULED, rng.uniform(0, 0.010, len(new)), 0)
    index = seen[new]
    host = polls[new] + late
    device = (index - 1) / rate
    table = TimeTable.of(index, host, device)
    tick = clock.sample_clock.start_tick if tick_known else None
    run = RunStart(1, 0, start, start + 1.7e9, 0.0, tick)
    return Simulated(clock, StreamTime(run, rate, table.fit(window), declared))


def true_primary_index(primary: SimulatedClock, secondary: SimulatedClock, j: np.ndarray):
    """Fractional primary index at the instants secondary samples ``j`` were taken."""
    t = secondary.true_time(j)
    return (t - primary.true_time(0)) * FAST * primary.speed


def baseline_primary_index(j: np.ndarray) -> np.ndarray:
    """qudi-iqo-modules' sync: both streams' times from zero at their own start, by nominal
    rate; so secondary sample j sits at primary index j / SLOW * FAST."""
    return j / SLOW * FAST


def trial(seed: int, seconds: float) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    start = 1000.0 + rng.uniform(0, 100)
    j = np.arange(int(seconds * SLOW) - 5)
    errors = {}
    # separate clocks: fitted
    primary = simulate(SimulatedClock(seed=seed), FAST, start, seconds, rng)
    secondary = simulate(
        SimulatedClock(start_offset=SKEW, drift_ppm=DRIFT, seed=seed + 1),
        SLOW,
        start + rng.uniform(0, 1e-3),
        seconds,
        rng,
    )
    alignment = align(primary.time, secondary.time)
    truth = true_primary_index(primary.clock, secondary.clock, j)
    fitted = (alignment.primary_index(j) - truth) / FAST
    bound = alignment.uncertainty(j / SLOW)
    errors["fitted_ms"] = float(np.max(np.abs(fitted))) * 1e3
    errors["covered"] = float(np.all(np.abs(fitted) <= bound))
    errors["uncertainty_ms"] = float(np.max(bound)) * 1e3
    errors["baseline_ms"] = float(np.max(np.abs(baseline_primary_index(j) - truth))) / FAST * 1e3
    # the same at the poll rate DataInStreamSync joins its streamers' hubs with (100 Hz)
    primary = simulate(SimulatedClock(seed=seed), FAST, start, seconds, rng, poll=SYNC_POLL)
    secondary = simulate(
        SimulatedClock(start_offset=SKEW, drift_ppm=DRIFT, seed=seed + 1),
        SLOW,
        start + rng.uniform(0, 1e-3),
        seconds,
        rng,
        poll=SYNC_POLL,
    )
    alignment = align(primary.time, secondary.time)
    truth = true_primary_index(primary.clock, secondary.clock, j)
    fitted = (alignment.primary_index(j) - truth) / FAST
    errors["fitted_sync_ms"] = float(np.max(np.abs(fitted))) * 1e3
    errors["covered_sync"] = float(np.all(np.abs(fitted) <= alignment.uncertainty(j / SLOW)))
    # one shared clock, 100 ppm against the host; declared; start ticks known or not
    lab = shared_clock(f"bench-{seed}", drift_ppm=DRIFT, tick_rate=FAST, epoch=start - 1.0)
    for key, known in (("shared_exact", True), ("shared_fitted", False)):
        p_clock = SimulatedClock(shared=lab, seed=seed)
        s_clock = SimulatedClock(shared=lab, start_offset=SKEW, seed=seed + 1)
        declared = SampleClock("shared", lab.name, FAST)
        p = simulate(p_clock, FAST, start, seconds, rng, declared, known)
        s = simulate(s_clock, SLOW, start + 1e-4, seconds, rng, declared, known)
        shared = align(p.time, s.time)
        truth = true_primary_index(p.clock, s.clock, j)
        errors[key] = float(np.max(np.abs(shared.primary_index(j) - truth)))
    return errors


def drift_change_trial(seed: int, seconds: float) -> dict[str, float]:
    """The secondary's drift jumps by :data:`JUMP` ppm at a random time in the second half:
    its newest :data:`NEWEST_S` seconds aligned by the live clock's window, and by one line
    over the run; the error and whether the uncertainty held."""
    rng = np.random.default_rng(10_000 + seed)
    start = 1000.0 + rng.uniform(0, 100)
    at = rng.uniform(0.5, 0.8) * seconds
    j = np.arange(int((seconds - NEWEST_S) * SLOW), int(seconds * SLOW) - 5)
    errors = {}
    for key, window in (("window", DEFAULT_WINDOW_S), ("line", None)):
        pick = np.random.default_rng(seed)  # the same tables for both fits
        primary = simulate(SimulatedClock(seed=seed), FAST, start, seconds, pick, window=window)
        secondary = simulate(JumpingClock(at), SLOW, start, seconds, pick, window=window)
        alignment = align(primary.time, secondary.time)
        truth = true_primary_index(primary.clock, secondary.clock, j)
        error = np.abs(alignment.primary_index(j) - truth) / FAST
        errors[f"{key}_ms"] = float(np.max(error)) * 1e3
        errors[f"{key}_covered"] = float(np.all(error <= alignment.uncertainty(j / SLOW)))
    return errors


def live(seconds: float) -> dict[str, float | str]:
    """Real hubs and pumps: the AlignedReader's ramp-measured error, and the baseline's."""
    p_clock = SimulatedClock()
    s_clock = SimulatedClock(start_offset=SKEW, drift_ppm=DRIFT)
    primary = SimulatedSource(["ramp"], sample_rate=FAST, clock=p_clock)
    secondary = SimulatedSource(["ramp"], sample_rate=SLOW, clock=s_clock)
    suffix = f"{time.monotonic_ns() % 10**9}"
    chunks = []
    with (
        StreamHub(primary, name=f"bench_align_p{suffix}", **LIVE_HUB) as p_hub,
        StreamHub(secondary, name=f"bench_align_s{suffix}", **LIVE_HUB) as s_hub,
    ):
        p_reader, s_reader = p_hub.open_reader("aligned"), s_hub.open_reader("aligned")
        p_reader.start()
        s_reader.start()
        try:
            reader = AlignedReader(p_reader, {"wavemeter": s_reader}, missing="wait")
            for _ in range(int(seconds * 4)):
                chunks.append(reader.read(int(FAST / 4), timeout=10.0))
        finally:
            p_reader.stop()
            s_reader.stop()
    worst, covered, nan_rows, base = [], 0, 0, []
    for chunk in chunks:
        index = chunk.index
        got = chunk.secondary["wavemeter"][:, 0]  # the secondary's ramp: its fractional index
        true_j = (p_clock.true_time(index) - s_clock.true_time(0)) * SLOW * s_clock.speed
        ok = np.isfinite(got)
        nan_rows += chunk.missing["wavemeter"]
        if ok.any():
            error = np.max(np.abs(got[ok] - true_j[ok])) / SLOW
            worst.append(error)
            covered += error <= chunk.uncertainty["wavemeter"]
        # the baseline on the same samples: secondary j at j / SLOW, primary i at i / FAST
        held = np.interp(
            index / FAST,
            np.arange(int(seconds * SLOW) + 2) / SLOW,
            np.arange(int(seconds * SLOW) + 2, dtype=float),
        )
        base.append(np.max(np.abs(held - true_j)) / SLOW)
    late = worst[len(worst) // 2 :]
    return {
        "fitted_ms": float(np.max(late)) * 1e3,
        "first_ms": float(worst[0]) * 1e3,
        "covered": covered / max(1, len(worst)) * 100,
        "nan_rows": float(nan_rows),
        "baseline_ms": float(np.max(base)) * 1e3,
        "method": chunks[-1].method["wavemeter"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a shorter live run (the simulated trials are the same)",
    )
    parser.add_argument("--trials", type=int, default=TRIALS, help="simulated runs (200)")
    args = parser.parse_args(argv)
    seconds = 60.0  # simulated: cheap, so --quick shortens only the live run
    live_seconds = 8.0 if args.quick else 20.0
    print(
        f"{args.trials} trials of {seconds:g} s: primary {FAST:g} Hz, secondary {SLOW:g} Hz, "
        f"{SKEW * 1e3:g} ms start skew, {DRIFT:g} ppm drift, polls every {POLL * 1e3:.1f} ms"
    )
    results = [trial(seed, seconds) for seed in range(args.trials)]
    table = {key: np.array([r[key] for r in results]) for key in results[0]}
    print(f"{'alignment':<34} {'median':>10} {'worst':>10}")
    rows = [
        ("shared clock, start ticks known", "shared_exact", "samples"),
        ("shared clock, start fitted+rounded", "shared_fitted", "samples"),
        ("fitted offset + drift", "fitted_ms", "ms"),
        ("  its reported uncertainty", "uncertainty_ms", "ms"),
        ("fitted, 100 Hz polls (the sync's)", "fitted_sync_ms", "ms"),
        ("baseline (interpolation only)", "baseline_ms", "ms"),
    ]
    for label, key, unit in rows:
        values = table[key]
        print(f"{label:<34} {np.median(values):>10.4f} {values.max():>10.4f} {unit}")
    coverage = table["covered"].mean() * 100
    coverage_sync = table["covered_sync"].mean() * 100
    print(
        f"uncertainty contains every sample's true error in {coverage:.1f} % of trials "
        f"({coverage_sync:.1f} % at 100 Hz polls)"
    )
    jumps = [drift_change_trial(seed, seconds) for seed in range(args.trials)]
    for key, label in (("window", f"the live clock's {DEFAULT_WINDOW_S:g} s window"),
                       ("line", "one line over the run")):  # fmt: skip
        errors = np.array([r[f"{key}_ms"] for r in jumps])
        held = np.mean([r[f"{key}_covered"] for r in jumps]) * 100
        print(
            f"drift +{JUMP:g} ppm mid-run, newest {NEWEST_S:g} s, {label}: median "
            f"{np.median(errors):.4f} ms, worst {errors.max():.4f} ms, uncertainty held in "
            f"{held:.1f} % of trials"
        )
    result = live(live_seconds)
    print(
        f"live ({live_seconds:g} s, real hubs and pumps polling at 100 Hz, {result['method']}, "
        f"read in 0.25 s chunks): worst error {result['fitted_ms']:.3f} ms in the second half, "
        f"{result['first_ms']:.3f} ms in the first chunk; the chunk's uncertainty held in "
        f"{result['covered']:.0f} % of chunks; {result['nan_rows']:.0f} rows before the "
        f"secondary's first sample NaN; baseline {result['baseline_ms']:.3f} ms"
    )
    shared = table["shared_fitted"].max()
    fitted = np.median(table["fitted_ms"])
    baseline = np.median(table["baseline_ms"])
    print(
        f"alignment: shared clock {shared:.2f} samples, fitted {fitted:.3f} ms, "
        f"baseline {baseline:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
