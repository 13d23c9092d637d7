"""Consumer-side check in a real qudi: N buffers on one dummy, each read by its own thread.

    python benchmarks/qudi_buffers.py --seconds 30 --rate 1e6 --channels 8 --buffers 3

Runs qudi-core's application and module manager in this process (headless, HOME in a
temporary directory), wires an ``InStreamDummy`` to ``--buffers`` ``DataInStreamBuffer``
modules (``allow_overwrite: False``), starts them all and lets one thread per buffer read
blocks of 1/20 s, checking the ramp in channel 0 for gaps and repeats. Prints, per buffer,
samples read, samples lost and ramp breaks, and the CPU used by this (the qudi) process.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from qudi_harness import buffer_entry, dummy_entry, start_qudi, stop_qudi


def consume(buffer, channels: int, chunk: int, stop: threading.Event, report: dict) -> None:
    flat = np.empty(chunk * channels)
    expected, samples, breaks = None, 0, 0
    try:
        while not stop.is_set():
            buffer.read_data_into_buffer(flat, chunk, timeout=10)
            ramp = flat[::channels]
            if expected is not None and ramp[0] != expected:
                breaks += 1
            breaks += int(np.count_nonzero(np.diff(ramp) != 1))
            expected, samples = ramp[-1] + 1, samples + chunk
    except Exception as error:  # reported in the table
        report["error"] = f"{type(error).__name__}: {error}"
    report.update(samples=samples, breaks=breaks, lost=buffer.lost_samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=1e6)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--buffers", type=int, default=3)
    args = parser.parse_args(argv)

    names = [f"buffer{i}" for i in range(1, args.buffers + 1)]
    hardware = dummy_entry("dummy", args.channels)
    for name in names:
        hardware += buffer_entry(name, "dummy")
    app, qudi = start_qudi({"hardware": hardware})
    from qudi.interface.instream_interface import StreamingMode

    manager = qudi.module_manager
    for name in names:
        manager.activate_module(name)
    buffers = [manager[name].instance for name in names]
    channels = [f"ch{i}" for i in range(args.channels)]
    buffers[0].configure(channels, StreamingMode.CONTINUOUS, 2**20, args.rate)

    chunk = max(1, int(args.rate / 20))
    stop = threading.Event()
    reports = [{} for _ in buffers]
    threads = [
        threading.Thread(target=consume, args=(b, args.channels, chunk, stop, r))
        for b, r in zip(buffers, reports, strict=True)
    ]
    for buffer in buffers:
        buffer.start_stream()
    cpu_start, wall_start = time.process_time(), time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join(30)
    cpu = (time.process_time() - cpu_start) / (time.monotonic() - wall_start)
    for buffer in buffers:
        buffer.stop_stream()
    stop_qudi(app, qudi)

    print(f"{args.buffers} buffers x {args.channels} ch x {args.rate:g} S/s for {args.seconds:g} s")
    print(f"{'buffer':<10} {'samples read':>14} {'lost':>6} {'ramp breaks':>12}  error")
    for name, report in zip(names, reports, strict=True):
        print(
            f"{name:<10} {report['samples']:14d} {report['lost']:6d} {report['breaks']:12d}  "
            f"{report.get('error', '')}"
        )
    print(f"CPU of the qudi process: {cpu:.1%} of one core")
    clean = all(r["lost"] == 0 and r["breaks"] == 0 and "error" not in r for r in reports)
    print("no sample lost by any buffer" if clean else "SAMPLES WERE LOST")
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
