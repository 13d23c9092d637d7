"""Fan-out benchmark: one stream, many consumers, one ring with a cursor per consumer.

    python benchmarks/fanout.py            # full run (about 3 minutes)
    python benchmarks/fanout.py --quick    # shortened run (under a minute on 2 cores)
    python benchmarks/fanout.py --paced    # only the paced StreamHub run
    python benchmarks/fanout.py --json fanout.json   # also write the numbers as JSON

What it measures, all in one process on this machine:

* numpy memcpy bandwidth of large (DRAM-bound) blocks, the yardstick for everything else;
* lossless fan-out throughput of one StreamRing to N = 1, 2, 4, 8 reader threads, against the
  design it replaces: a ring per consumer that the writer copies every chunk into;
* memory per extra reader (tracemalloc) and the write -> reader wake-up latency;
* a real StreamHub over a SimulatedSource at 8 channels x 1 MS/s with 4 readers: CPU and losses.

The last line of output is a one-line summary for N = 4 (see :func:`summary_line`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qudi.util.instream import (
    RingReader,
    StreamHub,
    StreamOverrunError,
    StreamRing,
    StreamStoppedError,
)
from qudi.util.instream.simulated import SimulatedSource

CHANNELS = 8
DTYPE = np.dtype(np.float64)
SAMPLE_BYTES = CHANNELS * DTYPE.itemsize  # 64 bytes per 8-channel float64 sample
READER_COUNTS = (1, 2, 4, 8)

# Chunk and ring size decide whether readers copy from cache or from DRAM. A reader that
# follows the writer closely copies a chunk the writer has just written, which is still in the
# cache, so the aggregate copy-out rate can beat a DRAM-bound memcpy. With back-pressure the
# writer runs at most one ring ahead of the slowest reader, so the ring size bounds how far
# behind (how cold) the data the readers copy can be. Hence (see benchmarks/README.md for the
# sweep behind these numbers):
# * CHUNK_SAMPLES: 16384 samples = 1 MiB per write and per read. Each read costs a wake-up and
#   some Python under the GIL (~5-30 us); with 256 KiB chunks the N = 4 rate was a third of
#   that with 1 MiB, where the overhead is small next to the copy while a chunk plus a
#   reader's output buffer still fit in one core's 2 MiB L2 cache. Larger chunks gained little.
# * RING_SAMPLES: 8 chunks = 8 MiB: slack for the writer's ~80 us polling sleeps, while the
#   ring stays well inside the 32 MiB L3 cache. Both designs use it, so they are compared on
#   equal terms; both also run with today's per-consumer buffer size (TODAY_RING_SAMPLES,
#   1 Mi samples = 64 MiB, the time-series logic's default channel_buffer_size), where the
#   ring no longer fits the cache.
CHUNK_SAMPLES = 1 << 14
RING_SAMPLES = 8 * CHUNK_SAMPLES
TODAY_RING_SAMPLES = 1 << 20

# Back-pressure: the writer polls the slowest reader's position with short sleeps. The ring
# itself never waits for readers (by design); this wait is the benchmark's, so that what is
# measured is lossless throughput.
BACKPRESSURE_SLEEP_S = 20e-6
READ_TIMEOUT_S = 10.0

MEMCPY_BLOCK_BYTES = 128 << 20  # 128 MiB, far beyond the L3 cache: DRAM-bound
LATENCY_PERIOD_S = (1e-3, 2e-3)  # the paced writer publishes one sample every 1-2 ms
MEMORY_READERS = 2000

# The paced StreamHub run: 8 ch x 1 MS/s, 4 readers, each read 0.1 s of data (a qudi logic
# module reading a DAQ card reads about ten times a second).
PACED_RATE = 1e6
PACED_READERS = 4
PACED_READ_CHUNK = 100_000


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class FanoutResult:
    """One throughput run: ``readers`` consumers each copied ``samples_per_reader`` out."""

    design: str
    readers: int
    ring_samples: int  # capacity of the ring (of each ring, for copy/consumer)
    samples_per_reader: int
    wall_s: float
    cpu_s: float
    lost: int
    wrong_chunks: int

    @property
    def ring_bytes(self) -> int:
        return self.ring_samples * SAMPLE_BYTES

    @property
    def aggregate_rate(self) -> float:
        """Samples copied out by all readers together, per second."""
        return self.readers * self.samples_per_reader / self.wall_s

    @property
    def cpu_percent(self) -> float:
        """Process CPU time over wall time, in % of one core."""
        return 100.0 * self.cpu_s / self.wall_s


@dataclass(frozen=True)
class LatencyResult:
    """Write -> reader wake-up latencies (seconds) of ``readers`` blocked readers."""

    readers: int
    latencies: np.ndarray
    lost: int

    @property
    def median_ms(self) -> float:
        return 1e3 * float(np.median(self.latencies))

    @property
    def p99_ms(self) -> float:
        return 1e3 * float(np.percentile(self.latencies, 99))


@dataclass(frozen=True)
class PacedResult:
    """The StreamHub run: CPU of the whole process and what each reader saw."""

    seconds: float
    cpu_percent: float
    samples_per_reader: tuple[int, ...]
    lost_per_reader: tuple[int, ...]
    breaks_per_reader: tuple[int, ...]


# ----------------------------------------------------------------------------- memcpy
def measure_memcpy(block_bytes: int, repeats: int) -> float:
    """Best bandwidth of ``np.copyto`` between two large arrays, in bytes per second.

    The blocks are much larger than the last-level cache, so this is the DRAM-bound copy rate
    that "x memcpy" refers to. Both arrays are touched first so page faults are not timed. The
    best of several copies, not the median: the stricter yardstick, and the one least moved
    by whatever else the machine does meanwhile.
    """
    samples = block_bytes // SAMPLE_BYTES
    source = np.ones((samples, CHANNELS), DTYPE)
    target = np.empty_like(source)
    target.fill(0.0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - start)
    return source.nbytes / min(times)


# ----------------------------------------------------------------------------- helpers
def wait_for_room(readers: Sequence[RingReader], oldest_needed: int) -> None:
    """Block until every reader has consumed up to ``oldest_needed`` (benchmark back-pressure).

    Polls with short sleeps: the ring never waits for readers, so without this the writer
    would overrun them and the run would measure losses, not throughput. Raises RuntimeError
    if the readers make no progress for READ_TIMEOUT_S (a reader thread died).
    """
    give_up = None
    while min(reader.position for reader in readers) < oldest_needed:
        now = time.monotonic()
        give_up = give_up if give_up is not None else now + READ_TIMEOUT_S
        if now > give_up:
            raise RuntimeError(f"readers stalled for {READ_TIMEOUT_S} s: {list(readers)}")
        time.sleep(BACKPRESSURE_SLEEP_S)


def touch_ring(ring: StreamRing) -> None:
    """Write the whole ring once, before any reader exists.

    Mapping fresh pages is a one-off cost of a new ring, not of streaming, so it is kept out
    of the timed part.
    """
    while ring.write_index < ring.capacity:
        slots, _ = ring.reserve(ring.capacity - ring.write_index)
        slots.fill(0.0)
        ring.publish(len(slots))


def make_device_chunk(chunk: int) -> np.ndarray:
    """The "hardware" buffer the writer produces chunks from (same cost in both designs)."""
    return np.random.default_rng(0).standard_normal((chunk, CHANNELS))


def produce_chunk(target: np.ndarray, device: np.ndarray, first_index: int) -> None:
    """Fill ``target`` as a hardware read would: one copy, tagged with its first sample index.

    The tag lets each reader check, for one scalar per chunk, that it got the right chunk.
    """
    np.copyto(target, device)
    target[0, 0] = first_index


def drain_reader(reader: RingReader, chunk: int, tally: dict) -> None:
    """Read whole chunks (blocking) into a preallocated buffer until the writer stops.

    Counts the chunks read and those not where they belong (by their first-sample tag);
    losses are counted by the reader itself (:attr:`RingReader.lost`).
    """
    out = np.empty((chunk, CHANNELS), DTYPE)
    first = reader.position
    chunks = wrong = 0
    tally.update(chunks=0, lost=0, wrong=1)  # what is reported if this thread dies
    while True:
        try:
            reader.read_into(out, timeout=READ_TIMEOUT_S)
        except StreamStoppedError:  # the writer is done and every whole chunk has been read
            break
        except StreamOverrunError:  # already counted in reader.lost
            wrong += 1
            continue
        if out[0, 0] != first + chunks * chunk:
            wrong += 1
        chunks += 1
    tally.update(chunks=chunks, lost=reader.lost, wrong=wrong)


def time_threads(writer: threading.Thread, readers: Sequence[threading.Thread]) -> tuple:
    """Start the readers, then time from the writer's start until every thread is done.

    Returns ``(wall seconds, process CPU seconds)``.
    """
    for thread in readers:
        thread.start()
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    writer.start()
    writer.join()
    for thread in readers:
        thread.join()
    return time.perf_counter() - wall0, time.process_time() - cpu0


def run_fanout(
    design: str,
    rings: Sequence[StreamRing],
    readers: Sequence[RingReader],
    write_chunk: Callable[[int], None],
    chunk: int,
    seconds: float,
) -> FanoutResult:
    """Write chunks for ``seconds`` while every reader drains in its own thread.

    ``write_chunk(first)`` writes the chunk starting at absolute sample ``first``. The writer
    then marks the rings stopped, which ends each reader's loop once it has read everything.
    """
    start = rings[0].write_index
    written = [0]

    def write() -> None:
        deadline = time.perf_counter() + seconds
        try:
            while time.perf_counter() < deadline:
                write_chunk(start + written[0] * chunk)
                written[0] += 1
        finally:  # also on failure, so no reader waits for more
            for ring in rings:
                ring.mark_stopped()

    tallies = [{} for _ in readers]
    threads = [
        threading.Thread(target=drain_reader, args=(r, chunk, t), name=f"fanout-{r.name}")
        for r, t in zip(readers, tallies, strict=True)
    ]
    wall, cpu = time_threads(threading.Thread(target=write, name="fanout-writer"), threads)
    wrong = sum(t["wrong"] + abs(t["chunks"] - written[0]) for t in tallies)
    return FanoutResult(
        design,
        len(readers),
        rings[0].capacity,
        written[0] * chunk,
        wall,
        cpu,
        sum(t["lost"] for t in tallies),
        wrong,
    )


# ----------------------------------------------------------------------------- designs
def run_single_ring(n_readers: int, chunk: int, capacity: int, seconds: float) -> FanoutResult:
    """One ring, one cursor per reader: the writer produces straight into the ring."""
    ring = StreamRing(capacity, (CHANNELS,), DTYPE)
    touch_ring(ring)
    readers = [ring.reader(f"reader {i}", allow_overwrite=False) for i in range(n_readers)]
    device = make_device_chunk(chunk)

    def write_chunk(first: int) -> None:
        wait_for_room(readers, first + chunk - capacity)
        slots, _ = ring.reserve(chunk)  # a whole chunk: capacity is a multiple of chunk
        produce_chunk(slots, device, first)
        ring.publish(chunk)

    try:
        return run_fanout("single ring", [ring], readers, write_chunk, chunk, seconds)
    finally:
        ring.close()


def run_copy_per_consumer(
    n_readers: int, chunk: int, capacity: int, seconds: float
) -> FanoutResult:
    """The design being replaced: a ring per consumer, every chunk copied into each of them.

    The writer first produces a chunk into a staging array (the hardware read), then writes
    that chunk into every consumer's ring; each consumer reads its own ring.
    """
    rings = [StreamRing(capacity, (CHANNELS,), DTYPE) for _ in range(n_readers)]
    for ring in rings:
        touch_ring(ring)
    readers = [ring.reader(f"reader {i}", allow_overwrite=False) for i, ring in enumerate(rings)]
    device = make_device_chunk(chunk)
    staging = np.empty((chunk, CHANNELS), DTYPE)

    def write_chunk(first: int) -> None:
        produce_chunk(staging, device, first)
        for ring, reader in zip(rings, readers, strict=True):
            wait_for_room((reader,), first + chunk - capacity)
            ring.write(staging)

    try:
        return run_fanout("copy/consumer", rings, readers, write_chunk, chunk, seconds)
    finally:
        for ring in rings:
            ring.close()


DESIGNS = {"single ring": run_single_ring, "copy/consumer": run_copy_per_consumer}


def measure_fanout(
    design: str, n_readers: int, chunk: int, capacity: int, seconds: float, repeats: int
) -> FanoutResult:
    """Median of ``repeats`` runs (by aggregate rate); raises if any run lost anything.

    Thread scheduling on two cores makes single runs scatter by tens of percent, hence the
    median.
    """
    runs = [DESIGNS[design](n_readers, chunk, capacity, seconds) for _ in range(repeats)]
    for run in runs:
        if run.lost or run.wrong_chunks:
            raise AssertionError(
                f"{design} at N={n_readers} lost {run.lost} samples and got "
                f"{run.wrong_chunks} wrong or missing chunks"
            )
    return sorted(runs, key=lambda run: run.aggregate_rate)[len(runs) // 2]


# ----------------------------------------------------------------------------- memory
def measure_reader_memory(count: int) -> float:
    """Bytes allocated per extra reader: create ``count`` readers and read once with each.

    The output buffer is the consumer's own and exists in either design, so all readers share
    one; what is counted is the cursor and whatever reading through it keeps alive. The ring
    has wrapped a few times, so positions are large integers (objects of their own), as in a
    real stream.
    """
    ring = StreamRing(1024, (CHANNELS,), DTYPE)
    out = np.empty((16, CHANNELS), DTYPE)
    ring.write(np.zeros((5000, CHANNELS)))
    readers = []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            reader = ring.reader(f"reader {i}", allow_overwrite=False, from_oldest=True)
            reader.read_into(out, timeout=0)
            readers.append(reader)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # the list that holds the readers grows by one pointer per reader: not the reader's cost
    list_bytes = sys.getsizeof(readers) - sys.getsizeof([])
    ring.close()
    return (after - before - list_bytes) / count


# ----------------------------------------------------------------------------- latency
def measure_wake_latency(n_readers: int, events: int) -> LatencyResult:
    """Median and tail of the delay from publish to a blocked reader having the sample.

    A paced writer publishes one sample every 1-2 ms holding ``perf_counter()`` of the
    publish; each reader blocks in ``read_into`` and subtracts that from its own clock.
    """
    ring = StreamRing(1 << 14, (CHANNELS,), DTYPE)
    readers = [ring.reader(f"reader {i}") for i in range(n_readers)]
    latencies = np.zeros((n_readers, events))

    def listen(reader: RingReader, row: np.ndarray) -> None:
        out = np.empty((1, CHANNELS), DTYPE)
        for k in range(events):
            reader.read_into(out, timeout=READ_TIMEOUT_S)
            row[k] = time.perf_counter() - out[0, 0]

    def write() -> None:
        pauses = np.random.default_rng(1).uniform(*LATENCY_PERIOD_S, events)
        for pause in pauses:
            time.sleep(pause)
            slots, _ = ring.reserve(1)
            slots[0, 1:] = 0.0
            slots[0, 0] = time.perf_counter()
            ring.publish(1)

    threads = [
        threading.Thread(target=listen, args=(r, row))
        for r, row in zip(readers, latencies, strict=True)
    ]
    time_threads(threading.Thread(target=write, name="latency-writer"), threads)
    lost = sum(r.lost for r in readers)
    ring.close()
    return LatencyResult(n_readers, latencies.ravel(), lost)


# ----------------------------------------------------------------------------- paced hub
def verify_ramp(reader: RingReader, chunk: int, stop: threading.Event, tally: dict) -> None:
    """Blocking reads of ``chunk`` samples; count samples and breaks in channel 0's ramp.

    Channel 0 of a 'ramp' source holds each sample's absolute index, so any lost or repeated
    sample shows as a break. The check works in preallocated arrays: it is the consumer's own
    work and its CPU counts too.
    """
    out = np.empty((chunk, CHANNELS), DTYPE)
    step = np.arange(chunk, dtype=DTYPE)
    offsets = np.empty(chunk, DTYPE)
    expected, samples, breaks = None, 0, 0
    while not stop.is_set():
        try:
            count = reader.read_into(out, timeout=READ_TIMEOUT_S)
        except StreamOverrunError:  # counted in reader.lost
            breaks += 1
            expected = None
            continue
        ramp = out[:count, 0]
        if expected is None:
            expected = ramp[0]
        np.subtract(ramp, expected, out=offsets[:count])
        if not np.array_equal(offsets[:count], step[:count]):
            breaks += 1
        expected = ramp[-1] + 1
        samples += count
    tally.update(samples=samples, breaks=breaks, lost=reader.lost)


def run_paced(
    seconds: float,
    warmup: float,
    n_readers: int = PACED_READERS,
    rate: float = PACED_RATE,
    read_chunk: int = PACED_READ_CHUNK,
) -> PacedResult:
    """A StreamHub over an 8-channel ramp SimulatedSource at ``rate`` samples/s per channel.

    Each reader thread reads ``read_chunk`` samples per blocking read. CPU is measured over
    ``seconds`` after ``warmup``: the first second maps the ring's fresh pages, a one-off
    cost; losses and ramp breaks are counted over the whole run.
    """
    names = [f"ch{i}" for i in range(CHANNELS)]
    source = SimulatedSource(names, ["ramp"] * CHANNELS, sample_rate=rate, buffer_size=int(rate))
    stop = threading.Event()
    tallies = [{} for _ in range(n_readers)]
    with StreamHub(source, name=f"fanout_bench_{threading.get_native_id()}") as hub:
        readers = [hub.open_reader(f"reader {i}") for i in range(n_readers)]
        threads = [
            threading.Thread(
                target=verify_ramp, args=(r, read_chunk, stop, t), name=f"paced-{r.name}"
            )
            for r, t in zip(readers, tallies, strict=True)
        ]
        for reader in readers:
            reader.start()
        for thread in threads:
            thread.start()
        time.sleep(warmup)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        time.sleep(seconds)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        stop.set()
        for thread in threads:
            thread.join()
    return PacedResult(
        wall,
        100.0 * cpu / wall,
        tuple(t["samples"] for t in tallies),
        tuple(t["lost"] for t in tallies),
        tuple(t["breaks"] for t in tallies),
    )


# ----------------------------------------------------------------------------- reporting
def print_table(
    results: Sequence[FanoutResult], memcpy_rate: float, bytes_per_reader: float
) -> None:
    """One row per configuration; rates are aggregates over all readers (median runs)."""
    print(
        f"{'N':>2}  {'design':<14} {'ring':>7} {'M samples/s':>12} {'GB/s':>6} {'x memcpy':>9} "
        f"{'CPU %':>6} {'lost':>5} {'bytes/extra consumer':>21}"
    )
    for r in results:
        rate = r.aggregate_rate
        extra = r.ring_bytes if r.design == "copy/consumer" else round(bytes_per_reader)
        print(
            f"{r.readers:>2}  {r.design:<14} {r.ring_bytes / 2**20:>3g} MiB {rate / 1e6:>12.1f} "
            f"{rate * SAMPLE_BYTES / 1e9:>6.2f} {rate / memcpy_rate:>9.2f} "
            f"{r.cpu_percent:>6.0f} {r.lost:>5} {extra:>21}"
        )


def print_paced(result: PacedResult, rate: float) -> None:
    print(
        f"paced StreamHub, {CHANNELS} ch x {rate / 1e6:g} MS/s, "
        f"{len(result.lost_per_reader)} readers: CPU {result.cpu_percent:.1f} % of one core "
        f"(whole process, {result.seconds:.1f} s after warm-up)"
    )
    rows = zip(
        result.samples_per_reader, result.lost_per_reader, result.breaks_per_reader, strict=True
    )
    for i, (samples, lost, breaks) in enumerate(rows):
        print(f"  reader {i}: {samples} samples read, {lost} lost, {breaks} ramp breaks")


def summary_line(
    single: FanoutResult,
    baseline: FanoutResult,
    memcpy_rate: float,
    bytes_per_reader: float,
    latency: LatencyResult,
) -> str:
    """The last line of output: the N = 4 figures the issue's targets are stated in."""
    return (
        f"fanout N={single.readers}: {single.aggregate_rate / memcpy_rate:.2f}x memcpy, "
        f"{single.aggregate_rate / baseline.aggregate_rate:.1f}x copy-per-consumer, "
        f"{round(bytes_per_reader)} bytes per extra reader, p99 wake {latency.p99_ms:.2f} ms"
    )


# ----------------------------------------------------------------------------- main
@dataclass(frozen=True)
class Plan:
    """How long each part runs; ``--quick`` shrinks everything."""

    run_seconds: float  # how long the writer writes in one throughput run
    repeats: int  # throughput runs per row (the median is shown)
    memcpy_repeats: int
    latency_events: int
    latency_readers: tuple[int, ...]
    paced_seconds: float
    paced_warmup: float


FULL = Plan(1.5, 5, 7, 3000, READER_COUNTS, 10.0, 1.5)
QUICK = Plan(0.5, 3, 5, 2000, (4,), 3.0, 1.5)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shortened run (< 60 s)")
    parser.add_argument("--paced", action="store_true", help="run only the paced StreamHub part")
    parser.add_argument(
        "--chunk",
        type=int,
        default=CHUNK_SAMPLES,
        help=f"samples per write and per read (default {CHUNK_SAMPLES})",
    )
    parser.add_argument(
        "--ring",
        type=int,
        default=RING_SAMPLES,
        help=f"ring capacity in samples, a multiple of the chunk (default {RING_SAMPLES})",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write every number as JSON to PATH (benchmarks/run_all.py reads it)",
    )
    args = parser.parse_args(argv)
    if args.chunk < 1 or args.ring < args.chunk or args.ring % args.chunk:
        parser.error("--ring must be a positive multiple of --chunk")
    return args


def machine_busy_seconds() -> float | None:
    """CPU seconds every process on this machine has used so far (Linux), else None."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                int, stat.readline().split()[1:9]
            )
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """How much CPU other processes used from creation to :meth:`report`.

    Every number here depends on having both cores; this tells whether something else
    competed for them during a measurement.
    """

    def __init__(self) -> None:
        self._busy = machine_busy_seconds()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()

    def report(self) -> str:
        busy = machine_busy_seconds()
        if busy is None or self._busy is None:
            return "other processes: unknown (no /proc/stat)"
        others = busy - self._busy - (time.process_time() - self._cpu)
        share = 100.0 * max(others, 0.0) / (time.perf_counter() - self._wall)
        return f"other processes used {share:.0f} % of one core meanwhile"


def run_throughput(plan: Plan, chunk: int, capacity: int) -> list[FanoutResult]:
    """Both designs at every N, with the chosen ring and with today's 1 Mi-sample buffer.

    Starts with a discarded run: the first runs in a fresh process are often slower.
    """
    run_single_ring(1, chunk, capacity, plan.run_seconds)
    rings = [capacity] if capacity == TODAY_RING_SAMPLES else [capacity, TODAY_RING_SAMPLES]
    return [
        measure_fanout(design, n, chunk, ring, plan.run_seconds, plan.repeats)
        for n in READER_COUNTS
        for ring in rings
        for design in DESIGNS
    ]


def report_memcpy(plan: Plan) -> float:
    """Measure and print the memcpy yardstick; returns it in samples per second."""
    rate = measure_memcpy(MEMCPY_BLOCK_BYTES, plan.memcpy_repeats) / SAMPLE_BYTES
    print(
        f"numpy memcpy, {MEMCPY_BLOCK_BYTES >> 20} MiB blocks, best of "
        f"{plan.memcpy_repeats}: {rate * SAMPLE_BYTES / 1e9:.2f} GB/s = "
        f"{rate / 1e6:.1f} M samples/s of {CHANNELS}-ch float64"
    )
    return rate


def report_throughput(
    plan: Plan, chunk: int, capacity: int, memcpy_rate: float, bytes_per_reader: float
) -> list[FanoutResult]:
    """Run and print the throughput table, and how busy the rest of the machine was."""
    print(
        f"lossless fan-out: chunk {chunk} samples ({chunk * SAMPLE_BYTES / 2**20:g} MiB), "
        f"writer runs {plan.run_seconds:g} s per run, median of {plan.repeats} runs"
    )
    load = OtherLoad()
    results = run_throughput(plan, chunk, capacity)
    print_table(results, memcpy_rate, bytes_per_reader)
    print(
        "every reader of every run: 0 samples lost, every chunk in order "
        "(allow_overwrite=False, writer held back by the slowest reader)"
    )
    print(load.report())
    return results


def report_memory(capacity: int) -> float:
    """Measure and print memory per extra consumer; returns bytes per extra reader."""
    per_reader = measure_reader_memory(MEMORY_READERS)
    print(
        f"memory per extra consumer: single ring {per_reader:.0f} bytes (tracemalloc, average "
        f"of {MEMORY_READERS} readers); copy/consumer {capacity * SAMPLE_BYTES} bytes (its "
        f"ring), {TODAY_RING_SAMPLES * SAMPLE_BYTES} bytes with today's {TODAY_RING_SAMPLES}-"
        "sample buffer"
    )
    return per_reader


def report_latency(plan: Plan) -> dict[int, LatencyResult]:
    """Measure and print the wake-up latency for each reader count of the plan."""
    load = OtherLoad()
    latencies = {n: measure_wake_latency(n, plan.latency_events) for n in plan.latency_readers}
    for n, lat in latencies.items():
        print(
            f"wake latency, {n} blocked readers x {plan.latency_events} events: "
            f"median {lat.median_ms:.3f} ms, p99 {lat.p99_ms:.3f} ms, "
            f"max {1e3 * lat.latencies.max():.3f} ms, lost {lat.lost}"
        )
    print(load.report())
    return latencies


def report_paced(plan: Plan) -> PacedResult:
    """Run and print the paced StreamHub part."""
    load = OtherLoad()
    result = run_paced(plan.paced_seconds, plan.paced_warmup)
    print_paced(result, PACED_RATE)
    print(load.report())
    return result


def paced_json(result: PacedResult) -> dict:
    return {
        "channels": CHANNELS,
        "sample_rate": PACED_RATE,
        "readers": len(result.lost_per_reader),
        "seconds": result.seconds,
        "cpu_percent": result.cpu_percent,
        "lost_per_reader": list(result.lost_per_reader),
        "breaks_per_reader": list(result.breaks_per_reader),
    }


def write_json(path: Path, numbers: dict) -> None:
    """The machine-readable copy of what was printed (rates in samples per second)."""
    path.write_text(json.dumps(numbers, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.paced:
        paced = report_paced(plan)
        if args.json is not None:
            write_json(args.json, {"quick": args.quick, "paced": paced_json(paced)})
        return 0

    memcpy_rate = report_memcpy(plan)
    bytes_per_reader = report_memory(args.ring)
    print()
    results = report_throughput(plan, args.chunk, args.ring, memcpy_rate, bytes_per_reader)
    print()
    latencies = report_latency(plan)
    print()
    paced = report_paced(plan)
    print()

    def at_four(design: str) -> FanoutResult:
        return next(
            r
            for r in results
            if r.readers == 4 and r.design == design and r.ring_samples == args.ring
        )

    summary = summary_line(
        at_four("single ring"),
        at_four("copy/consumer"),
        memcpy_rate,
        bytes_per_reader,
        latencies[4],
    )
    print(summary)
    if args.json is not None:
        write_json(
            args.json,
            {
                "quick": args.quick,
                "sample_bytes": SAMPLE_BYTES,
                "chunk_samples": args.chunk,
                "ring_samples": args.ring,
                "memcpy_rate": memcpy_rate,
                "bytes_per_reader": bytes_per_reader,
                "throughput": [
                    {
                        "design": r.design,
                        "readers": r.readers,
                        "ring_samples": r.ring_samples,
                        "aggregate_rate": r.aggregate_rate,
                        "cpu_percent": r.cpu_percent,
                        "lost": r.lost,
                    }
                    for r in results
                ],
                "latency": {
                    str(n): {"median_ms": lat.median_ms, "p99_ms": lat.p99_ms, "lost": lat.lost}
                    for n, lat in latencies.items()
                },
                "paced": paced_json(paced),
                "summary": summary,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
