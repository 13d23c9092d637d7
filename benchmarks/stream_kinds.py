"""Stream kinds benchmark: filter stages, triggered windows and event streams.

    python benchmarks/stream_kinds.py            # full run (about a minute)
    python benchmarks/stream_kinds.py --quick    # shortened run (about 20 s)

What it measures, in one process on this machine:

* the cost of each filter stage in ns per sample per channel (8 float64 channels, chunks of
  16384 samples), next to a plain copy of the same chunk (the one copy every consumer pays)
  and a FilteredReader's whole read (ring -> scratch -> chain -> caller) against a plain read;
* TriggeredReader throughput: windows (16 + 48 samples) cut per CPU second from a ring of a
  digital line with an edge every 20 samples, and a real-time run: a 1 MS/s digital line of
  the simulated source through a hub, 10^5 rising edges a second, with the windows missed;
* event streams: Poisson photon arrivals on 4 channels, paced by the real clock, through a hub
  to 3 consumer threads, at rising rates: the highest rate at which every consumer got every
  event (none lost, the source's buffer never overflowed).

The last line is the summary the issue names:
``stream kinds: events N/s lossless, triggers N/s, filters sos X ns/sample``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Sequence

import numpy as np

from qudi.util.instream import StreamHub, StreamInfo, StreamRing
from qudi.util.instream.events import BLOCK_S, EVENT_DTYPE, EventSource, PoissonEvents
from qudi.util.instream.filtered_reader import filtered
from qudi.util.instream.filters import ChunkFormat, build_chain
from qudi.util.instream.simulated_kinds import KindsSource
from qudi.util.instream.triggered import TriggeredReader, digital_edge

CHANNELS = 8
CHUNK = 16384
RATE = 1e6
STAGES = {
    "scale (gain + offset)": [{"scale": {"gain": 2.0, "offset": 0.5}}],
    "cast float32": [{"cast": "float32"}],
    "channels (4 of 8)": [{"channels": ["c1", "c3", "c5", "c7"]}],
    "iir sos (butter 4: 2 sections)": [{"iir": {"btype": "lowpass", "cutoff": 1e4, "order": 4}}],
    "notch (1 section)": [{"notch": {"frequency": 5e4}}],
    "decimate 10 (cheby1 8)": [{"decimate": {"factor": 10}}],
}
SOS_STAGE = "iir sos (butter 4: 2 sections)"


def _best_ns(run, repeats: int) -> float:
    """The fastest of ``repeats`` runs, in ns (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run()
        best = min(best, time.perf_counter_ns() - start)
    return best


def filter_costs(repeats: int) -> dict[str, float]:
    """ns per sample per channel of each stage (and of a plain copy, the baseline)."""
    names = tuple(f"c{i}" for i in range(CHANNELS))
    fmt = ChunkFormat(names, ("V",) * CHANNELS, np.dtype(np.float64), RATE)
    chunk = np.random.default_rng(0).standard_normal((CHUNK, CHANNELS))
    per = CHUNK * CHANNELS
    out = np.empty_like(chunk)
    costs = {"plain copy (baseline)": _best_ns(lambda: np.copyto(out, chunk), repeats) / per}
    for name, spec in STAGES.items():
        chain = build_chain(spec, fmt)
        costs[name] = _best_ns(lambda c=chain: c.process(chunk), repeats) / per
    return costs


def reader_costs(repeats: int) -> tuple[float, float]:
    """ns per sample per channel of a plain ring read and of a FilteredReader's (iir sos)."""
    info = StreamInfo(channel_names=tuple(f"c{i}" for i in range(CHANNELS)), sample_rate=RATE)
    data = np.random.default_rng(1).standard_normal((CHUNK, CHANNELS))
    out = np.empty_like(data)
    results = []
    with StreamRing(4 * CHUNK, (CHANNELS,), np.float64, info=info) as ring:
        for spec in (None, STAGES[SOS_STAGE]):
            reader = filtered(ring.reader(f"r{len(results)}"), spec)

            def run(reader=reader):
                ring.write(data)
                reader.read_into(out, CHUNK, timeout=1.0)

            results.append(_best_ns(run, repeats) / (CHUNK * CHANNELS))
    return results[0], results[1]


def trigger_throughput(seconds: float) -> tuple[float, float]:
    """Windows cut per CPU second, and samples scanned per second, from a dense line."""
    n = 1 << 20
    line = np.zeros((n, 2))
    line[::20, 0] = 1.0  # a 1-sample pulse every 20 samples: 52 429 edges per pass
    line[:, 1] = np.arange(n)
    info = StreamInfo(channel_names=("ttl", "index"), sample_rate=RATE)
    windows = samples = 0
    with StreamRing(1 << 17, (2,), np.float64, info=info) as ring:
        tr = TriggeredReader(ring.reader("scope"), digital_edge(0), pre=16, post=48)
        cpu_start = time.process_time()
        while time.process_time() - cpu_start < seconds:
            for start in range(0, n, 1 << 15):
                ring.write(line[start : start + (1 << 15)])
                windows += len(tr.poll())
            samples += n
        cpu = time.process_time() - cpu_start
    return windows / cpu, samples / cpu


def realtime_triggers(seconds: float) -> tuple[int, int, int, int]:
    """A 1 MS/s digital line with 10^5 rising edges/s through a hub: (windows, missed, lost,
    edges expected)."""
    source = KindsSource(["ttl"], ["digital"], edge_rate=2e5, sample_rate=RATE, seed=1)
    source.configure(["ttl"], "CONTINUOUS", 1 << 22, RATE)
    with StreamHub(source, name=f"bench_ttl_{os.getpid()}", shared=False, max_poll_rate=100) as hub:
        reader = hub.open_reader("scope")
        reader.start()
        tr = TriggeredReader(reader, digital_edge(0), pre=16, post=48)
        windows = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            windows += len(tr.read(timeout=0.1))
        reader.close()
    return windows, tr.stats.missed, tr.stats.lost, int(1e5 * seconds)  # rising: half the edges


class ReplayedEvents(PoissonEvents):
    """Poisson events drawn once for 64 blocks and replayed, shifted in time: the source then
    costs a copy per block, so the run measures the hub and its consumers, not numpy's
    random numbers (drawing them costs about 0.2 to 0.6 us per event here)."""

    def __init__(self, rates, seed):
        super().__init__(rates, seed)
        self._pool = [super(ReplayedEvents, self).block(b) for b in range(64)]

    def block(self, b: int) -> np.ndarray:
        out = self._pool[b % 64].copy()
        out["time"] += (b - b % 64) * BLOCK_S
        return out


def events_run(
    rate: float, seconds: float, replay: bool = True
) -> tuple[bool, int, list[int], list[int]]:
    """Poisson events at ``rate`` /s (4 channels, real clock) through a hub to 3 consumer
    threads: (lossless, events the source made, events each consumer got, lost of each)."""
    source = EventSource([f"apd{i}" for i in range(4)], [rate / 4] * 4, seed=2)
    if replay:
        source.events = ReplayedEvents(source.events.rates, 2)
    got = [0, 0, 0]
    errors: list[BaseException] = []
    stop = threading.Event()
    with StreamHub(
        source,
        name=f"bench_events_{os.getpid()}",
        shared=False,
        max_poll_rate=200,
        min_ring_seconds=0.5,
    ) as hub:
        readers = [hub.open_reader(f"consumer{i}") for i in range(3)]
        for reader in readers:
            reader.start()
        first = [reader.position for reader in readers]  # a later start joins later

        def consume(i: int) -> None:
            reader = readers[i]
            out = np.empty((1 << 16, 1), EVENT_DTYPE)
            try:
                while not stop.is_set() or reader.available:
                    count = reader.read_available_into(out)
                    got[i] += count
                    if count == 0:
                        reader.ring.wait(lambda: reader.available > 0 or stop.is_set(), 0.05)
            except BaseException as exc:  # an overrun or the source's overflow: not lossless
                errors.append(exc)

        threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        for reader in readers:
            reader.stop()  # the source stops with the last
        stop.set()
        for thread in threads:
            thread.join(30)
        made = hub.ring.write_index
        backlog = source.available_samples  # drawn but never moved: the pump fell behind
        lost = [reader.lost for reader in readers]
        fault = hub.error
        for reader in readers:
            reader.close()
    due = [made - f for f in first]
    kept_up = backlog < 0.1 * rate  # less than 0.1 s of events waited in the source
    lossless = not errors and fault is None and got == due and not any(lost) and kept_up
    return lossless, made, got, lost


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 20 s)")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 20
    seconds = 1.0 if args.quick else 3.0

    costs = filter_costs(repeats)
    print(f"Filter stages: {CHANNELS} float64 channels, chunks of {CHUNK} samples")
    print(f"  {'stage':34s} {'ns/sample/channel':>18s} {'x plain copy':>13s}")
    base = costs["plain copy (baseline)"]
    for name, ns in costs.items():
        print(f"  {name:34s} {ns:18.2f} {ns / base:13.1f}")
    plain, sos = reader_costs(repeats)
    print("Reads through a ring (write + read of one chunk):")
    print(f"  plain reader (no filter: no extra copy)  {plain:8.2f} ns/sample/channel")
    print(f"  FilteredReader with {SOS_STAGE}  {sos:8.2f} ns/sample/channel")
    print()

    per_cpu, scanned = trigger_throughput(seconds)
    print("TriggeredReader, windows of 16 + 48 samples, a digital edge every 20 samples:")
    print(f"  {per_cpu:,.0f} windows per CPU second ({scanned / 1e6:,.1f} M samples/s scanned)")
    windows, missed, lost, expected = realtime_triggers(2 * seconds)
    print(
        f"  real time, 1 MS/s line, about 10^5 rising edges/s for {2 * seconds:g} s: "
        f"{windows:,} windows (about {expected:,} expected), {missed} missed, "
        f"{lost} samples lost"
    )
    print()

    print("Events: Poisson arrivals on 4 channels, real clock, hub -> 3 consumer threads")
    print("  (64 ms of events drawn once and replayed: see ReplayedEvents)")
    print(f"  {'rate (events/s)':>16s} {'made':>12s} {'lossless':>9s}  got per consumer / lost")
    best = 0.0
    for rate in (2.5e5, 5e5, 1e6, 2e6, 4e6, 8e6):
        lossless, made, got, lost_each = events_run(rate, seconds)
        print(f"  {rate:16,.0f} {made:12,} {'yes' if lossless else 'no':>9s}  {got} / {lost_each}")
        if not lossless:
            break
        best = rate
    drawn = events_run(1e6, seconds, replay=False)
    print(
        f"  drawn afresh (the dummy's way) at 1 000 000/s: lossless "
        f"{'yes' if drawn[0] else 'no'}, made {drawn[1]:,} in {seconds:g} s"
    )
    print()
    print(
        f"stream kinds: events {best:.3g}/s lossless, triggers {per_cpu:.3g}/s, "
        f"filters sos {costs[SOS_STAGE]:.3g} ns/sample"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
