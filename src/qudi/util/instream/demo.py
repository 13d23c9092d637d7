"""Headless demo of the stream core: one simulated card, several consumers, live stats.

    python -m qudi.util.instream.demo --seconds 5 --rate 1e6 --channels 8 --readers 3

A simulated 8-channel card streams into one shared-memory ring. Consumer threads in this
process and one consumer in a separate process (attached by the stream's name) each check
that the ramp in channel 0 has no gap and no repeat, while the table shows the hub's health.
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time

import numpy as np

from qudi.util.instream import StreamHub, StreamRing
from qudi.util.instream.simulated import SimulatedSource

_CHUNK = 16384


def _verify(reader, stop: threading.Event, result: dict) -> None:
    """Read until told to stop; count samples and ramp discontinuities (gaps or repeats)."""
    out = np.empty((_CHUNK, reader.ring.sample_shape[0]), reader.ring.dtype)
    expected, samples, breaks = None, 0, 0
    while not stop.is_set():
        count = reader.read_available_into(out)
        if count == 0:
            time.sleep(0.005)
            continue
        ramp = out[:count, 0]
        if expected is not None and ramp[0] != expected:
            breaks += 1
        breaks += int(np.count_nonzero(np.diff(ramp) != 1))
        expected = ramp[-1] + 1
        samples += count
        result.update(samples=samples, breaks=breaks)


def _child_consumer(stream_name: str, seconds: float, queue) -> None:
    ring = StreamRing.attach(stream_name)
    reader = ring.reader("other process")
    stop, result = threading.Event(), {"samples": 0, "breaks": 0}
    worker = threading.Thread(target=_verify, args=(reader, stop, result))
    worker.start()
    time.sleep(seconds)
    stop.set()
    worker.join()
    queue.put({**result, "lost": reader.lost})
    ring.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1e6, help="samples per second per channel")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--readers", type=int, default=3, help="consumers in this process")
    args = parser.parse_args(argv)

    names = [f"ch{i}" for i in range(args.channels)]
    signals = ["ramp"] + ["sine"] * (args.channels - 1)
    source = SimulatedSource(names, signals, sample_rate=args.rate, buffer_size=int(args.rate))
    cpu_start, wall_start = time.process_time(), time.monotonic()
    with StreamHub(source, name=f"demo_{multiprocessing.current_process().pid}") as hub:
        readers = [hub.open_reader(f"consumer {i + 1}") for i in range(args.readers)]
        for reader in readers:
            reader.start()
        stop = threading.Event()
        results = [{"samples": 0, "breaks": 0} for _ in readers]
        threads = [
            threading.Thread(target=_verify, args=(r, stop, res))
            for r, res in zip(readers, results, strict=True)
        ]
        for thread in threads:
            thread.start()
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        child = context.Process(target=_child_consumer, args=(hub.name, args.seconds, queue))
        child.start()

        print(
            f"stream '{hub.name}': {args.channels} ch x {args.rate:g} S/s, ring of "
            f"{hub.ring.capacity} samples ({hub.ring.nbytes / 2**20:.0f} MiB shared memory)"
        )
        print(
            f"{'time':>5} {'written':>12} {'rate S/s':>12}  "
            + "  ".join(f"{r.name + ' fill/lost':>22}" for r in readers)
        )
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            stats = hub.stats()
            cells = "  ".join(f"{s.fill:>15.1%} / {s.lost:<4d}" for s in stats.readers)
            print(
                f"{time.monotonic() - wall_start:5.1f} {stats.samples_written:12d} "
                f"{stats.measured_rate:12.0f}  {cells}"
            )
        child_result = queue.get(timeout=60)
        child.join(timeout=60)
        stop.set()
        for thread in threads:
            thread.join()
        cpu = (time.process_time() - cpu_start) / (time.monotonic() - wall_start)

    print("\nconsumer            samples read    lost   ramp breaks")
    for reader, result in zip(readers, results, strict=True):
        print(f"{reader.name:<18} {result['samples']:13d} {reader.lost:7d} {result['breaks']:13d}")
    print(
        f"{'other process':<18} {child_result['samples']:13d} {child_result['lost']:7d} "
        f"{child_result['breaks']:13d}"
    )
    print(f"CPU of this process: {cpu:.1%} of one core")
    clean = all(r["breaks"] == 0 for r in [*results, child_result])
    print("every consumer saw every sample exactly once" if clean else "DATA WAS LOST")
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
