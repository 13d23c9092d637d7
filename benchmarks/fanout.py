"""Fan-out benchmark: one stream, many consumers, one ring with a cursor per consumer.

    python benchmarks/fanout.py            # full run (a few minutes)
    python benchmarks/fanout.py --quick    # shortened run (under a minute on 2 cores)
    python benchmarks/fanout.py --paced    # only the paced StreamHub run

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
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qudi.util.instream import RingReader, StreamHub, StreamOverrunError, StreamRing
from qudi.util.instream.simulated import SimulatedSource

CHANNELS = 8
DTYPE = np.dtype(np.float64)
SAMPLE_BYTES = CHANNELS * DTYPE.itemsize  # 64 bytes per 8-channel float64 sample
READER_COUNTS = (1, 2, 4, 8)

# Chunk and ring size decide whether readers copy from cache or from DRAM. A reader that
# follows the writer closely copies a chunk the writer has just written, which is still in the
# cache, so the aggregate copy-out rate can beat a DRAM-bound memcpy. Hence:
# * CHUNK_SAMPLES: 4096 samples = 256 KiB, large enough that the per-read Python overhead
#   (a few microseconds, serialised by the GIL) is small next to the copy, small enough that a
#   chunk and a reader's output buffer sit together in one core's 2 MiB L2 cache.
# * RING_CHUNKS: the ring holds 16 chunks = 4 MiB: enough slack that the writer rarely waits for
#   the slowest reader (its poll sleeps ~80 us), while the whole ring, plus every reader's
#   output buffer, still fits in the 32 MiB L3 cache even for the copy-per-consumer baseline
#   at N = 4, so both designs are compared on equal cache terms.
CHUNK_SAMPLES = 4096
RING_CHUNKS = 16

# Back-pressure: the writer polls the slowest reader's position with short sleeps. The ring
# itself never waits for readers (by design); this wait is the benchmark's, so that what is
# measured is lossless throughput.
BACKPRESSURE_SLEEP_S = 20e-6
READ_TIMEOUT_S = 10.0

MEMCPY_BLOCK_BYTES = 128 << 20  # 128 MiB, far beyond the L3 cache: DRAM-bound
LATENCY_PERIOD_S = (1e-3, 2e-3)  # the paced writer publishes one sample every 1-2 ms
MEMORY_READERS = 2000


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class FanoutResult:
    """One throughput run: ``readers`` consumers each copied ``samples_per_reader`` out."""

    design: str
    readers: int
    samples_per_reader: int
    wall_s: float
    cpu_s: float
    lost: int
    wrong_chunks: int

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
    gaps_per_reader: tuple[int, ...]


# ----------------------------------------------------------------------------- memcpy
def measure_memcpy(block_bytes: int, repeats: int) -> float:
    """Median bandwidth of ``np.copyto`` between two large arrays, in bytes per second.

    The blocks are much larger than the last-level cache, so this is the DRAM-bound copy rate
    that "x memcpy" refers to. Both arrays are touched first so page faults are not timed.
    """
    samples = block_bytes // SAMPLE_BYTES
    source = np.ones((samples, CHANNELS), DTYPE)
    target = np.zeros_like(source)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - start)
    return source.nbytes / statistics.median(times)


# ----------------------------------------------------------------------------- helpers
def wait_for_room(readers: Sequence[RingReader], oldest_needed: int) -> None:
    """Block until every reader has consumed up to ``oldest_needed`` (benchmark back-pressure).

    Polls with short sleeps: the ring never waits for readers, so without this the writer
    would overrun them and the run would measure losses, not throughput.
    """
    while min(reader.position for reader in readers) < oldest_needed:
        time.sleep(BACKPRESSURE_SLEEP_S)


def make_device_chunk(chunk: int) -> np.ndarray:
    """The "hardware" buffer the writer produces chunks from (same cost in both designs)."""
    return np.random.default_rng(0).standard_normal((chunk, CHANNELS))


def produce_chunk(target: np.ndarray, device: np.ndarray, first_index: int) -> None:
    """Fill ``target`` as a hardware read would: one copy, tagged with its first sample index.

    The tag lets each reader check, for one scalar per chunk, that it got the right chunk.
    """
    np.copyto(target, device)
    target[0, 0] = first_index


def drain_reader(reader: RingReader, out: np.ndarray, chunks: int, tally: dict) -> None:
    """Read ``chunks`` chunks into ``out`` (blocking) and count lost or misplaced chunks."""
    chunk = len(out)
    wrong = 0
    for k in range(chunks):
        try:
            reader.read_into(out, timeout=READ_TIMEOUT_S)
        except StreamOverrunError:  # counted in reader.lost; the chunk is gone
            wrong += 1
            continue
        if out[0, 0] != k * chunk:
            wrong += 1
    tally["lost"] = reader.lost
    tally["wrong"] = wrong


def run_threads(writer: Callable[[], None], readers: Sequence[threading.Thread]) -> tuple:
    """Start the readers, then time the writer thread until every thread is done.

    Returns ``(wall seconds, process CPU seconds)``.
    """
    for thread in readers:
        thread.start()
    writer_thread = threading.Thread(target=writer, name="fanout-writer")
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    writer_thread.start()
    writer_thread.join()
    for thread in readers:
        thread.join()
    return time.perf_counter() - wall0, time.process_time() - cpu0


# ----------------------------------------------------------------------------- designs
def run_single_ring(n_readers: int, chunk: int, ring_chunks: int, chunks: int) -> FanoutResult:
    """One ring, one cursor per reader: the writer produces straight into the ring."""
    ring = StreamRing(chunk * ring_chunks, (CHANNELS,), DTYPE)
    readers = [ring.reader(f"reader {i}", allow_overwrite=False) for i in range(n_readers)]
    device = make_device_chunk(chunk)

    def write() -> None:
        capacity = ring.capacity
        for k in range(chunks):
            first = k * chunk
            wait_for_room(readers, first + chunk - capacity)
            slots, _ = ring.reserve(chunk)
            produce_chunk(slots, device, first)
            ring.publish(chunk)

    tallies = [{} for _ in readers]
    threads = [
        threading.Thread(target=drain_reader, args=(r, np.empty((chunk, CHANNELS)), chunks, t))
        for r, t in zip(readers, tallies, strict=True)
    ]
    wall, cpu = run_threads(write, threads)
    ring.close()
    return FanoutResult("single ring", n_readers, chunks * chunk, wall, cpu,
                        sum(t["lost"] for t in tallies), sum(t["wrong"] for t in tallies))


def run_copy_per_consumer(n_readers: int, chunk: int, ring_chunks: int,
                          chunks: int) -> FanoutResult:
    """The design being replaced: a ring per consumer, every chunk copied into each of them.

    The writer first produces a chunk into a staging array (the hardware read), then writes
    that chunk into every consumer's ring; each consumer reads its own ring.
    """
    rings = [StreamRing(chunk * ring_chunks, (CHANNELS,), DTYPE) for _ in range(n_readers)]
    readers = [ring.reader(f"reader {i}", allow_overwrite=False) for i, ring in enumerate(rings)]
    device = make_device_chunk(chunk)
    staging = np.empty((chunk, CHANNELS), DTYPE)

    def write() -> None:
        capacity = chunk * ring_chunks
        for k in range(chunks):
            first = k * chunk
            produce_chunk(staging, device, first)
            for ring, reader in zip(rings, readers, strict=True):
                wait_for_room((reader,), first + chunk - capacity)
                ring.write(staging)

    tallies = [{} for _ in readers]
    threads = [
        threading.Thread(target=drain_reader, args=(r, np.empty((chunk, CHANNELS)), chunks, t))
        for r, t in zip(readers, tallies, strict=True)
    ]
    wall, cpu = run_threads(write, threads)
    for ring in rings:
        ring.close()
    return FanoutResult("copy/consumer", n_readers, chunks * chunk, wall, cpu,
                        sum(t["lost"] for t in tallies), sum(t["wrong"] for t in tallies))


# ----------------------------------------------------------------------------- memory
def measure_reader_memory(count: int) -> float:
    """Bytes allocated per extra reader: create ``count`` readers and read once with each.

    The output buffer is the consumer's own and exists in either design, so all readers share
    one; what is counted is the cursor and whatever reading through it keeps alive.
    """
    ring = StreamRing(1024, (CHANNELS,), DTYPE)
    out = np.empty((16, CHANNELS), DTYPE)
    ring.write(np.zeros((16, CHANNELS)))
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

    threads = [threading.Thread(target=listen, args=(r, row))
               for r, row in zip(readers, latencies, strict=True)]
    run_threads(write, threads)
    lost = sum(r.lost for r in readers)
    ring.close()
    return LatencyResult(n_readers, latencies.ravel(), lost)


# ----------------------------------------------------------------------------- paced hub
def verify_ramp(reader, chunk: int, stop: threading.Event, tally: dict) -> None:
    """Blocking reads of ``chunk`` samples; count samples and breaks in channel 0's ramp."""
    out = np.empty((chunk, CHANNELS), DTYPE)
    step = np.arange(chunk, dtype=DTYPE)
    expected, samples, gaps = None, 0, 0
    while not stop.is_set():
        try:
            count = reader.read_into(out, timeout=1.0)
        except StreamOverrunError:
            gaps += 1
            expected = None
            continue
        ramp = out[:count, 0]
        if expected is None:
            expected = ramp[0]
        if not np.array_equal(ramp, step[:count] + expected):
            gaps += 1
        expected = ramp[-1] + 1
        samples += count
    tally.update(samples=samples, gaps=gaps, lost=reader.lost)


def run_paced(seconds: float, n_readers: int = 4, rate: float = 1e6,
              read_chunk: int = 100_000) -> PacedResult:
    """A StreamHub over an 8-channel ramp SimulatedSource at ``rate`` samples/s per channel.

    ``read_chunk`` = 0.1 s of data per read, i.e. about ten reads a second per reader, as a
    qudi logic module reading a DAQ card would do.
    """
    names = [f"ch{i}" for i in range(CHANNELS)]
    source = SimulatedSource(names, ["ramp"] * CHANNELS, sample_rate=rate,
                             buffer_size=int(rate))
    stop = threading.Event()
    tallies = [{} for _ in range(n_readers)]
    with StreamHub(source, name=f"fanout_bench_{threading.get_native_id()}") as hub:
        readers = [hub.open_reader(f"reader {i}") for i in range(n_readers)]
        threads = [threading.Thread(target=verify_ramp, args=(r, read_chunk, stop, t))
                   for r, t in zip(readers, tallies, strict=True)]
        for reader in readers:
            reader.start()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return PacedResult(
        wall,
        100.0 * cpu / wall,
        tuple(t["samples"] for t in tallies),
        tuple(t["lost"] for t in tallies),
        tuple(t["gaps"] for t in tallies),
    )


# ----------------------------------------------------------------------------- reporting
def print_table(results: Sequence[FanoutResult], memcpy_rate: float) -> None:
    """The throughput table; rates are aggregates over all readers of one run."""
    print(f"{'N':>2}  {'design':<14} {'M samples/s':>12} {'GB/s':>7} {'x memcpy':>9} "
          f"{'CPU %':>6} {'lost':>5}")
    for r in results:
        rate = r.aggregate_rate
        print(f"{r.readers:>2}  {r.design:<14} {rate / 1e6:>12.1f} {rate * SAMPLE_BYTES / 1e9:>7.2f} "
              f"{rate / memcpy_rate:>9.2f} {r.cpu_percent:>6.0f} {r.lost:>5}")


def summary_line(single: FanoutResult, baseline: FanoutResult, memcpy_rate: float,
                 bytes_per_reader: float, latency: LatencyResult) -> str:
    """The last line of output: the N = 4 figures the issue's targets are stated in."""
    return (
        f"fanout N={single.readers}: {single.aggregate_rate / memcpy_rate:.2f}x memcpy, "
        f"{single.aggregate_rate / baseline.aggregate_rate:.1f}x copy-per-consumer, "
        f"{round(bytes_per_reader)} bytes per extra reader, p99 wake {latency.p99_ms:.2f} ms"
    )


def print_paced(result: PacedResult, rate: float) -> None:
    print(f"paced StreamHub, {CHANNELS} ch x {rate / 1e6:g} MS/s, "
          f"{len(result.lost_per_reader)} readers, {result.seconds:.1f} s: "
          f"CPU {result.cpu_percent:.1f} % of one core")
    for i, (samples, lost, gaps) in enumerate(zip(result.samples_per_reader,
                                                  result.lost_per_reader,
                                                  result.gaps_per_reader, strict=True)):
        print(f"  reader {i}: {samples} samples, lost {lost}, ramp breaks {gaps}")


# ----------------------------------------------------------------------------- main
@dataclass(frozen=True)
class Plan:
    """How long each part runs; ``--quick`` shrinks everything."""

    stream_samples: int  # samples per reader in each throughput run
    memcpy_repeats: int
    latency_events: int
    latency_readers: tuple[int, ...]
    paced_seconds: float


FULL = Plan(1 << 25, 7, 3000, READER_COUNTS, 10.0)
QUICK = Plan(1 << 23, 5, 2000, (4,), 3.0)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shortened run (< 60 s)")
    parser.add_argument("--paced", action="store_true", help="run only the paced StreamHub part")
    parser.add_argument("--chunk", type=int, default=CHUNK_SAMPLES,
                        help=f"samples per write and per read (default {CHUNK_SAMPLES})")
    parser.add_argument("--ring-chunks", type=int, default=RING_CHUNKS,
                        help=f"ring capacity in chunks (default {RING_CHUNKS})")
    return parser.parse_args(argv)


def run_throughput(plan: Plan, chunk: int, ring_chunks: int) -> list[FanoutResult]:
    """Both designs at every reader count; every run must be lossless."""
    chunks = max(ring_chunks, plan.stream_samples // chunk)
    results = []
    for n in READER_COUNTS:
        for run in (run_single_ring, run_copy_per_consumer):
            result = run(n, chunk, ring_chunks, chunks)
            if result.lost or result.wrong_chunks:
                raise AssertionError(f"{result.design} at N={n} lost {result.lost} samples and "
                                     f"got {result.wrong_chunks} wrong chunks")
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    rate = 1e6
    if args.paced:
        print_paced(run_paced(plan.paced_seconds, rate=rate), rate)
        return 0

    memcpy_rate = measure_memcpy(MEMCPY_BLOCK_BYTES, plan.memcpy_repeats) / SAMPLE_BYTES
    print(f"numpy memcpy ({MEMCPY_BLOCK_BYTES >> 20} MiB blocks, median of "
          f"{plan.memcpy_repeats}): {memcpy_rate * SAMPLE_BYTES / 1e9:.2f} GB/s = "
          f"{memcpy_rate / 1e6:.1f} M samples/s of {CHANNELS}-ch float64")
    ring_bytes = args.chunk * args.ring_chunks * SAMPLE_BYTES
    print(f"chunk {args.chunk} samples ({args.chunk * SAMPLE_BYTES >> 10} KiB), ring "
          f"{args.chunk * args.ring_chunks} samples ({ring_bytes >> 10} KiB)")
    print()

    results = run_throughput(plan, args.chunk, args.ring_chunks)
    print_table(results, memcpy_rate)
    print("every reader of every run: 0 samples lost, every chunk in order")
    print()

    bytes_per_reader = measure_reader_memory(MEMORY_READERS)
    print(f"memory per extra reader: single ring {bytes_per_reader:.0f} bytes (tracemalloc, "
          f"average of {MEMORY_READERS}); copy-per-consumer {ring_bytes} bytes (its ring)")
    print()

    latencies = {}
    for n in plan.latency_readers:
        latencies[n] = measure_wake_latency(n, plan.latency_events)
        lat = latencies[n]
        print(f"wake latency, {n} blocked readers, {plan.latency_events} events: "
              f"median {lat.median_ms:.3f} ms, p99 {lat.p99_ms:.3f} ms, "
              f"max {1e3 * lat.latencies.max():.3f} ms, lost {lat.lost}")
    print()

    print_paced(run_paced(plan.paced_seconds, rate=rate), rate)
    print()

    def at_four(design: str) -> FanoutResult:
        return next(r for r in results if r.readers == 4 and r.design == design)

    print(summary_line(at_four("single ring"), at_four("copy/consumer"), memcpy_rate,
                       bytes_per_reader, latencies[4]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
