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
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def make_config(path: Path, channels: int, buffers: int) -> None:
    names = [f"ch{i}" for i in range(channels)]
    lines = [
        "global:",
        "    startup_modules: []",
        "hardware:",
        "    dummy:",
        "        module.Class: 'instream.dummy.InStreamDummy'",
        "        options:",
        f"            channel_names: {names}",
        f"            channel_units: {['V'] * channels}",
        f"            channel_signals: {['ramp'] * channels}",
    ]
    for index in range(1, buffers + 1):
        lines += [
            f"    buffer{index}:",
            "        module.Class: 'instream.buffer.DataInStreamBuffer'",
            "        options: {allow_overwrite: False, max_poll_rate: 30.0}",
            "        connect: {streamer: 'dummy'}",
        ]
    path.write_text("\n".join(lines) + "\n")


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

    home = tempfile.mkdtemp(prefix="qudi-instream-bench-")
    os.environ["HOME"] = home
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication
    from qudi.core.application import Qudi

    from qudi.interface.instream_interface import StreamingMode

    config = Path(home) / "bench.cfg"
    make_config(config, args.channels, args.buffers)
    app = QApplication.instance() or QApplication(sys.argv)
    qudi = Qudi(no_gui=True, log_dir=str(Path(home) / "log"), config_file=str(config))
    qudi._configure_qudi()
    manager = qudi.module_manager
    names = [f"buffer{i}" for i in range(1, args.buffers + 1)]
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
    manager.stop_all_modules()
    qudi.thread_manager.quit_all_threads()
    app.processEvents()

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
