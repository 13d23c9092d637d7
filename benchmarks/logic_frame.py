"""TimeSeriesReaderLogic in a real qudi: the cost of one frame, and recording at full rate.

    python benchmarks/logic_frame.py            # 600 frames; 60 s recording of 8 ch x 1 MS/s
    python benchmarks/logic_frame.py --quick    # 300 frames; 10 s recording

* **frame**: a dummy streams 4 channels (ramp, sine, counts, noise) at 500 kS/s through a
  buffer into the logic with a 6 s window, i.e. 3 M points per channel, moving average on all
  four. Once the window is full, frames are driven at 20 Hz and each is timed: reading what
  arrived (25 000 samples), oversampling, appending to the trace rings, averaging, emitting.
  The trace rings hold three windows and wrap every two windows of points (240 frames here):
  the run is long enough to wrap at least once, and the table gives the median, p95, p99 and
  the slowest frame (a ring that copied its window on a wrap showed there as a 20+ ms spike).
  Timing starts once two windows of points have arrived, when every page of the rings has
  been written once (first writes are page faults: start-up costs, dear in a VM, not frames).
  On a shared machine the tail also holds whatever else ran then: compare with the median.
* **recording**: a second logic records a dummy's 8 'ramp' channels at 1 MS/s (64 MB/s) to
  HDF5 while reading; RSS is sampled all along and the file is checked to hold every sample
  exactly once. Then ``benchmarks/recording.py``'s lossless maximum gives the recorder's top
  speed (the logic records through the same ``StreamRecorder``).

Last line: ``logic: frame <F.F> ms, p99 <P.P> ms at 3M window, recording <R> MB/s`` (F: median
frame, P: its 99th percentile, R: the recorder's lossless maximum).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

import recording
from qudi_harness import buffer_entry, dummy_entry, logic_entry, start_qudi, stop_qudi

FRAME_RATE = 20.0


RECORD_OPTIONS = "{max_frame_rate: 20, max_raw_data_bytes: 100000000000}"


def percentile(values: list[float], share: float) -> float:
    """The value below which ``share`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def measure_frames(logic, qapp, frames: int) -> list[float]:
    """Fill the 3 M-point window, then time ``frames`` frames driven at 20 Hz."""
    logic.set_channel_settings(["ch0", "ch1", "ch2", "ch3"], ["ch0", "ch1", "ch2", "ch3"])
    logic.set_trace_settings(
        data_rate=500_000.0, oversampling_factor=1, trace_window_size=6.0, moving_average_width=9
    )
    logic.start_reading()
    logic._sigStopFrames.emit()  # this benchmark drives the frames itself, to time them
    deadline = time.monotonic() + 90
    # two windows of points: the window filled, and every page of the rings written once (a
    # page's first write costs a page fault, much dearer in a VM; that is start-up, not a frame)
    while logic._trace.count < 2 * logic._trace.size and time.monotonic() < deadline:
        qapp.processEvents()
        logic._read_frame()
        time.sleep(1 / FRAME_RATE)
    wraps_before = logic._trace.count // (2 * logic._trace.size)
    costs = []
    for _ in range(frames):
        started = time.perf_counter()
        logic._read_frame()
        costs.append(time.perf_counter() - started)
        time.sleep(max(0.0, 1 / FRAME_RATE - costs[-1]))
    wraps = logic._trace.count // (2 * logic._trace.size) - wraps_before
    points = len(logic.trace_data[0])
    logic.stop_reading()
    print(
        f"frame: 4 ch, window {points} points, {frames} frames at {FRAME_RATE:g} Hz, "
        f"the trace ring wrapped {wraps} time{'' if wraps == 1 else 's'} meanwhile"
    )
    return costs


def measure_recording(logic, seconds: float) -> None:
    """Record 8 ch x 1 MS/s for ``seconds``; check the file; print RSS along the way."""
    channels = [f"ch{i}" for i in range(8)]
    logic.set_channel_settings(channels, [])
    logic.set_trace_settings(
        data_rate=1e6, oversampling_factor=1, trace_window_size=1.0, moving_average_width=1
    )
    logic.start_recording()
    rss = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.5)
        rss.append(recording.rss_bytes())
    path = logic.stop_recording()
    info = logic.recording_info
    logic.stop_reading()
    if path is None:  # it stopped by itself (the log says why: on a busy machine, an overrun)
        print("recording via the logic: stopped before the end, see the log above")
        return
    with h5py.File(path, "r") as file:
        ramp = file["data"][:, 0]
        intact = bool(np.all(np.diff(ramp) == 1)) and file.attrs["samples_lost"] == 0
    settled = rss[min(4, len(rss) - 1)]  # after the first 2 s of allocations
    print(
        f"recording via the logic: {info['samples']} samples x 8 ch in {info['seconds']:.1f} s "
        f"= {info['bytes'] / info['seconds'] / 1e6:.1f} MB/s, every sample once: {intact}; "
        f"RSS {settled / 1e6:.0f} MB after 2 s, {rss[-1] / 1e6:.0f} MB at the end "
        f"(growth {(rss[-1] - settled) / 1e6:+.1f} MB)"
    )
    Path(path).unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)

    hardware = dummy_entry("frame_dummy", 4) + buffer_entry("frame_buffer", "frame_dummy")
    hardware += dummy_entry("record_dummy", 8) + buffer_entry("record_buffer", "record_dummy")
    logic = logic_entry("frame_logic", "frame_buffer", RECORD_OPTIONS)
    logic += logic_entry("record_logic", "record_buffer", RECORD_OPTIONS)
    app, qudi = start_qudi({"hardware": hardware, "logic": logic})
    manager = qudi.module_manager
    for name in ("frame_logic", "record_logic"):
        manager.activate_module(name)

    costs = measure_frames(manager["frame_logic"].instance, app, 300 if args.quick else 600)
    median_ms = statistics.median(costs) * 1e3
    p95_ms, p99_ms = (percentile(costs, share) * 1e3 for share in (0.95, 0.99))
    print(
        f"frame cost: median {median_ms:.2f} ms, p95 {p95_ms:.2f} ms, p99 {p99_ms:.2f} ms, "
        f"max {max(costs) * 1e3:.2f} ms"
    )
    measure_recording(manager["record_logic"].instance, 10.0 if args.quick else 60.0)
    stop_qudi(app, qudi)

    plan = recording.QUICK if args.quick else recording.FULL
    with tempfile.TemporaryDirectory(prefix="instream_logic_bench_") as directory:
        top = recording.run_lossless_maximum(Path(directory), plan)
    print(f"recorder lossless maximum: {top.rate / 1e6:.0f} MB/s")
    print(
        f"logic: frame {median_ms:.1f} ms, p99 {p99_ms:.1f} ms at 3M window, "
        f"recording {top.rate / 1e6:.0f} MB/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
