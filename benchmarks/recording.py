"""Recording benchmark: StreamRecorder throughput to HDF5 and its memory over time.

    python benchmarks/recording.py            # full run (about 1.5 minutes)
    python benchmarks/recording.py --quick    # shortened run (under 30 s)
    python benchmarks/recording.py --dir /data/fast_disk   # record onto another disk

Both parts record 8-channel float64 samples (64 bytes each) into a file in a temporary
directory, which is deleted afterwards:

* **lossless maximum**: a writer thread fills a StreamRing (64 MiB) in 1 MiB chunks as fast as
  the recorder drains it. The ring never waits for readers, so the benchmark adds back-pressure:
  the writer polls until the recorder's reader has left room for the next chunk, and nothing
  is lost. The rate is the bytes recorded over the time from ``start()`` until ``stop()`` has
  closed the file. The ring says the stream runs at 8 ch x 1 MS/s, so the recorder picks the
  read block it would pick for the paced part (0.2 s = 12.8 MB).
* **paced hub**: a real StreamHub over a SimulatedSource (8 'ramp' channels at 1 MS/s each,
  64 MB/s), recorded for a fixed time; losses must be 0 and the ramp must be intact.

Memory: VmRSS from /proc/self/status, sampled every 0.1 s. "start" is taken two seconds after
``start()`` (a third of the run if that is shorter), once the recorder has allocated its block
and HDF5 its chunk caches (a fixed cost); the growth is end minus start and should be about
zero. HDF5's metadata cache fills up to its limit (64 KiB in the file, about 0.5 MB of memory)
over the first 1.5 GB recorded and stays there. The operating system's page cache, which holds
what the disk has not taken yet, is not part of the process and not counted.
A rate far above the disk's own speed means the page cache absorbed the run; the full run
writes long enough to be throttled to the disk's speed on most machines.

The last line of output is ``recording: <R> MB/s, RSS growth <G> MB`` (R: the lossless
maximum; G: the larger growth of the two parts; MB = 10^6 bytes).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from qudi.util.instream import RingReader, StreamHub, StreamInfo, StreamRing
from qudi.util.instream.recorder import RecordingSummary, StreamRecorder
from qudi.util.instream.simulated import SimulatedSource

CHANNELS = 8
DTYPE = np.dtype(np.float64)
SAMPLE_BYTES = CHANNELS * DTYPE.itemsize
RATE = 1e6  # samples per second and channel: the paced stream, and the nominal rate of both
CHUNK_SAMPLES = 1 << 14  # 1 MiB per write into the ring
RING_SAMPLES = 1 << 20  # 64 MiB: more than one recorder poll interval at any rate reached
BACKPRESSURE_SLEEP_S = 50e-6
STALL_TIMEOUT_S = 10.0
RSS_PERIOD_S = 0.1
RSS_SETTLE_S = 2.0
SPOT_CHECKS = 200


@dataclass(frozen=True)
class Plan:
    """How long each part runs; ``--quick`` shrinks everything."""

    max_seconds: float
    max_bytes: int  # caps the lossless maximum's file (the recorder stops at its size limit)
    paced_seconds: float


FULL = Plan(max_seconds=20.0, max_bytes=24 * 10**9, paced_seconds=60.0)
QUICK = Plan(max_seconds=5.0, max_bytes=8 * 10**9, paced_seconds=5.0)


@dataclass(frozen=True)
class RunResult:
    """One recording: what the recorder reports, process CPU, and RSS over time (bytes)."""

    name: str
    summary: RecordingSummary
    cpu_percent: float
    rss_before: int
    rss_start: int
    rss_middle: int
    rss_end: int
    intact: bool  # every spot-checked sample is where it belongs and the count adds up

    @property
    def rate(self) -> float:
        """Bytes recorded per second of wall time, start() to the closed file."""
        return self.summary.bytes / self.summary.seconds

    @property
    def rss_growth(self) -> int:
        return self.rss_end - self.rss_start


# ----------------------------------------------------------------------------- memory
def rss_bytes() -> int:
    """This process's resident set size (Linux: VmRSS in /proc/self/status)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status (this benchmark needs Linux)")


class RssSampler:
    """Samples RSS every 0.1 s from a thread, so the middle of a run is seen as it happens."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []  # (seconds since start, bytes)
        self._stop = threading.Event()
        self._began = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self._began, rss_bytes()))
            self._stop.wait(RSS_PERIOD_S)

    def stop(self) -> tuple[int, int, int]:
        """RSS at the start (after settling), the middle and the end of the run."""
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic() - self._began, rss_bytes()))
        end_time = self.samples[-1][0]
        start_time = min(RSS_SETTLE_S, end_time / 3)
        return (
            self._at(start_time),
            self._at(start_time + (end_time - start_time) / 2),
            self.samples[-1][1],
        )

    def _at(self, seconds: float) -> int:
        return next(rss for t, rss in self.samples if t >= seconds)


# ----------------------------------------------------------------------------- parts
def wait_for_room(reader: RingReader, oldest_needed: int) -> None:
    """Block until the reader has consumed up to ``oldest_needed`` (benchmark back-pressure)."""
    give_up = time.monotonic() + STALL_TIMEOUT_S
    while reader.position < oldest_needed:
        if time.monotonic() > give_up:
            raise RuntimeError(f"the recorder made no progress for {STALL_TIMEOUT_S} s: {reader}")
        time.sleep(BACKPRESSURE_SLEEP_S)


def write_as_fast_as_drained(
    ring: StreamRing, reader: RingReader, recorder: StreamRecorder, seconds: float
) -> None:
    """Fill the ring chunk by chunk, each tagged with its first sample's index, for ``seconds``.

    Ends early when the recorder stops by itself (size limit, error).
    """
    device = np.random.default_rng(0).standard_normal((CHUNK_SAMPLES, CHANNELS))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and recorder.running:
        first = ring.write_index
        wait_for_room(reader, first + CHUNK_SAMPLES - ring.capacity)
        slots, _ = ring.reserve(CHUNK_SAMPLES)
        np.copyto(slots, device[: len(slots)])
        slots[0, 0] = first
        ring.publish(len(slots))


def check_chunk_tags(path: Path, summary: RecordingSummary) -> bool:
    """Spot-check the chunk tags (every chunk starts with its index) of a lossless recording."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "r") as file:
        data = file["data"]
        if len(data) != summary.samples:
            return False
        chunks = len(data) // CHUNK_SAMPLES
        picks = np.unique(rng.integers(0, max(chunks, 1), SPOT_CHECKS)) * CHUNK_SAMPLES
        picks = picks[picks < len(data)]
        return bool(np.array_equal(data[picks, 0], picks.astype(np.float64)))


def check_ramp(path: Path, summary: RecordingSummary) -> bool:
    """Spot-check a recorded ramp: sample i holds i (+ the first index) on every channel."""
    rng = np.random.default_rng(2)
    with h5py.File(path, "r") as file:
        data = file["data"]
        first = int(file.attrs["first_sample_index"])
        if len(data) != summary.samples or len(data) == 0:
            return False
        picks = np.unique(np.concatenate([[0, len(data) - 1], rng.integers(0, len(data), 200)]))
        expected = (picks + first).astype(np.float64)[:, None]
        return bool(np.array_equal(data[picks], np.broadcast_to(expected, (len(picks), 8))))


def record(name: str, recorder: StreamRecorder, feed, check) -> RunResult:
    """Start ``recorder``, run ``feed()`` (returns when the run is over), stop, measure."""
    gc.collect()
    rss_before = rss_bytes()
    cpu0 = time.process_time()
    recorder.start()
    sampler = RssSampler()
    try:
        feed()
    finally:
        rss_start, rss_middle, rss_end = sampler.stop()
        summary = recorder.stop(timeout=60.0)
    cpu = time.process_time() - cpu0
    if summary.error is not None:
        raise RuntimeError(f"{name}: the recording failed") from summary.error
    return RunResult(
        name,
        summary,
        100.0 * cpu / summary.seconds,
        rss_before,
        rss_start,
        rss_middle,
        rss_end,
        check(recorder.path, summary),
    )


def run_lossless_maximum(directory: Path, plan: Plan) -> RunResult:
    info = StreamInfo(tuple(f"ch{i}" for i in range(CHANNELS)), ("V",) * CHANNELS, RATE)
    with StreamRing(RING_SAMPLES, (CHANNELS,), DTYPE, info=info) as ring:
        reader = ring.reader("recorder")
        path = directory / "lossless_maximum.h5"
        recorder = StreamRecorder(reader, path, max_bytes=plan.max_bytes)
        try:
            return record(
                "lossless maximum",
                recorder,
                lambda: write_as_fast_as_drained(ring, reader, recorder, plan.max_seconds),
                check_chunk_tags,
            )
        finally:
            path.unlink(missing_ok=True)


def run_paced_hub(directory: Path, plan: Plan) -> RunResult:
    names = [f"ch{i}" for i in range(CHANNELS)]
    source = SimulatedSource(names, ["ramp"] * CHANNELS, sample_rate=RATE, buffer_size=int(RATE))
    path = directory / "paced_hub.h5"
    with StreamHub(source, name="bench_recording", shared=False) as hub:
        reader = hub.open_reader("recorder")
        reader.start()
        recorder = StreamRecorder(reader, path, attributes={"benchmark": "paced hub"})
        try:
            return record(
                f"paced hub {CHANNELS} ch x {RATE / 1e6:g} MS/s",
                recorder,
                lambda: time.sleep(plan.paced_seconds),
                check_ramp,
            )
        finally:
            reader.stop()
            path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- report
def print_table(results: Sequence[RunResult]) -> None:
    mb = 1e6
    print(
        f"{'run':<26} {'seconds':>7} {'GB':>6} {'MB/s':>7} {'CPU %':>6} {'lost':>5} "
        f"{'intact':>6} {'RSS before':>10} {'start':>7} {'middle':>7} {'end':>7} {'growth':>7}"
    )
    for r in results:
        s = r.summary
        print(
            f"{r.name:<26} {s.seconds:>7.1f} {s.bytes / 1e9:>6.2f} {r.rate / mb:>7.0f} "
            f"{r.cpu_percent:>6.0f} {s.lost:>5} {'yes' if r.intact else 'NO':>6} "
            f"{r.rss_before / mb:>7.0f} MB {r.rss_start / mb:>4.0f} MB "
            f"{r.rss_middle / mb:>4.0f} MB {r.rss_end / mb:>4.0f} MB {r.rss_growth / mb:>4.1f} MB"
        )


def summary_line(maximum: RunResult, results: Sequence[RunResult]) -> str:
    growth = max(r.rss_growth for r in results)
    return f"recording: {maximum.rate / 1e6:.0f} MB/s, RSS growth {growth / 1e6:.1f} MB"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shortened run (under 30 s)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="record into a temporary directory under this one"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    print(
        f"h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}; {CHANNELS} ch float64; "
        f"lossless maximum {plan.max_seconds:g} s (at most {plan.max_bytes / 1e9:g} GB), "
        f"paced hub {plan.paced_seconds:g} s"
    )
    with tempfile.TemporaryDirectory(prefix="instream_recording_", dir=args.dir) as directory:
        maximum = run_lossless_maximum(Path(directory), plan)
        paced = run_paced_hub(Path(directory), plan)
    results = [maximum, paced]
    print_table(results)
    print(summary_line(maximum, results))
    return 0 if all(r.intact and r.summary.lost == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
