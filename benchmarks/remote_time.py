"""Remote time benchmark: when were a ZeroMQ subscriber's samples taken, against the truth.

    python benchmarks/remote_time.py            # 10 s of a 1 kHz stream
    python benchmarks/remote_time.py --quick    # 4 s

A simulated 1 kHz card (its clock 100 ppm fast, its first sample 20 ms after the start call)
behind a StreamHub and a StreamPublisher on loopback; a StreamSubscriber reads it. The
simulated clock knows when each sample was truly taken; loopback shares the host's monotonic
clock, so the subscriber's times can be compared with that truth directly.

* **publisher's rows** (this version): the subscriber's ``clock.time_of(i)``, from the
  publisher's run start and time-table rows mapped by the offset its round-trip probes
  measured (the run's ``host_uncertainty`` is that offset's bound);
* **arrival rows** (the baseline: what a subscriber did before, and still does for an older
  publisher): a row per read of the subscriber, "by now these samples had arrived", fitted
  by the same :func:`~qudi.util.instream.timebase.fit_clock`: late by the publisher's
  batching and the transfer, which the fit cannot tell from acquisition.

Each is judged on the samples of the last second: the worst error (ms), the reported
uncertainty and whether it held. The last line is
``remote time: publisher's rows X ms (uncertainty U ms), arrival rows Y ms``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from qudi.util.instream.hub import StreamHub
from qudi.util.instream.network import StreamPublisher, StreamSubscriber
from qudi.util.instream.simulated import SimulatedSource
from qudi.util.instream.simulated_clock import SimulatedClock
from qudi.util.instream.timebase import TimeTable

RATE = 1000.0


def run(seconds: float) -> dict[str, float]:
    clock = SimulatedClock(start_offset=0.02, drift_ppm=100.0)
    source = SimulatedSource(["ramp"], sample_rate=RATE, clock=clock)
    name = f"bench_remote_time{time.monotonic_ns() % 10**9}"
    arrivals: list[tuple[int, float, float]] = []
    with (
        StreamHub(source, name=name, shared=False) as hub,
        StreamPublisher(hub) as publisher,
        StreamSubscriber(publisher.endpoint, allow_overwrite=True) as sub,
    ):
        out = np.empty((int(RATE), 1))
        ramp = np.empty(0)
        begin = time.monotonic()
        while time.monotonic() - begin < seconds:
            got = sub.read_into(out, 1, timeout=5.0)
            got += sub.read_available_into(out[got:])
            now = time.monotonic()
            ramp = np.concatenate([ramp, out[:got, 0]])[-int(RATE) :]
            # the baseline's row: the newest sample (its publisher index) had arrived by now
            arrivals.append((int(out[got - 1, 0]) + 1, now, out[got - 1, 0] / RATE))
        local = np.arange(sub.position - len(ramp), sub.position)
        said = sub.clock.time_of(local)
        spread = sub.clock.uncertainty_of(local)
        host_bound = sub.clock.run.host_uncertainty
        offset = sub.receiver.remote_time.offset
    truth = clock.true_time(ramp)
    rows = np.array(arrivals)
    baseline = TimeTable.of(rows[:, 0], rows[:, 1], rows[:, 2]).fit()
    old = baseline.host_time(ramp / RATE)
    return {
        "new_ms": float(np.max(np.abs(said - truth))) * 1e3,
        "new_uncertainty_ms": float(np.max(spread)) * 1e3,
        "new_held": float(np.all(np.abs(said - truth) <= spread)),
        "host_bound_ms": host_bound * 1e3,
        "offset_us": (offset[0] if offset else float("nan")) * 1e6,
        "old_ms": float(np.max(np.abs(old - truth))) * 1e3,
        "old_uncertainty_ms": float(np.max(baseline.uncertainty(ramp / RATE))) * 1e3,
        "old_held": float(np.all(np.abs(old - truth) <= baseline.uncertainty(ramp / RATE))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 s instead of 10 s")
    args = parser.parse_args(argv)
    seconds = 4.0 if args.quick else 10.0
    print(
        f"{seconds:g} s of a {RATE:g} Hz simulated card (100 ppm, 20 ms start offset), "
        "published and subscribed on loopback; the last second's samples against the truth"
    )
    result = run(seconds)
    print(f"{'times of the samples':<26} {'worst error':>12} {'uncertainty':>12} {'held':>6}")
    for label, key in (("publisher's rows", "new"), ("arrival rows (baseline)", "old")):
        held = "yes" if result[f"{key}_held"] else "no"
        print(
            f"{label:<26} {result[f'{key}_ms']:>9.3f} ms {result[f'{key}_uncertainty_ms']:>9.3f} ms"
            f" {held:>6}"
        )
    print(
        f"measured clock offset {result['offset_us']:.0f} us (truly 0 on one host), its bound "
        f"in the run record {result['host_bound_ms']:.3f} ms"
    )
    print(
        f"remote time: publisher's rows {result['new_ms']:.3f} ms (uncertainty "
        f"{result['new_uncertainty_ms']:.3f} ms), arrival rows {result['old_ms']:.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
