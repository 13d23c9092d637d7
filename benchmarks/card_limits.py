"""The whole chain at a fast card's limits, in one real qudi: is the software ever the limit?

    python benchmarks/card_limits.py            # 60 s
    python benchmarks/card_limits.py --quick    # 15 s
    python benchmarks/card_limits.py --seconds 30

A dummy samples 8 channels at 2 MS/s each in int16 (a PCIe-6368's simultaneous rate; 32 MB/s):
'sawtooth' (the sample index modulo 32 768) on ch0, ch2, ch4, ch6 and photon 'counts' on the
others. Two buffers read it, each for its own TimeSeriesReaderLogic:

* **live**: oversampling 100 (a 20 kHz trace, 10 s window, 8 channels) drawn by a
  TimeSeriesGui on a real X screen (Xvfb, when installed; offscreen otherwise);
* **record**: oversampling 2000 (1 kHz trace) while recording every raw sample to HDF5.

After the run the recorded file is read back: every sawtooth column must step by one (modulo
32 768) from its first sample to its last, i.e. nothing lost, repeated or reordered. "lost"
adds the samples the logics' streamers and the recorder (its file's ``samples_lost``) report
lost; a break of the recorded sawtooth that nothing reported counts as one at least. A reader
that falls behind stops with an error (overwrite is not allowed): the log says so, and a
recording that stopped before the end is printed as such.

CPU is the qudi process's CPU time over the wall time, all its threads (dummy, pumps,
buffers, logics, recorder, GUI), in cores; the X server's share (another process) is printed
apart. The target is 1.2 cores or less. This machine has 2 cores shared with other work:
expect noisy numbers and compare runs made together.

Last line: ``card limits: 8ch x 2MS/s int16, <L> lost, <C.CC> cores, gui <F.F> fps``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import h5py
import numpy as np

from gui_idle import cpu_ticks, display
from qudi_harness import buffer_entry, gui_entry, logic_entry, start_qudi, stop_qudi

CHANNELS = [f"ch{i}" for i in range(8)]
SIGNALS = ["sawtooth", "counts"] * 4
RATE = 2e6
# 2**25 samples per channel (16 s at 2 MS/s, 512 MB of int16 ring): on a shared machine a
# reader (the recorder's disk writes above all) can stall for seconds without losing samples
LOGIC_OPTIONS = (
    "{max_frame_rate: 30, channel_buffer_size: 33554432, max_raw_data_bytes: 1000000000000}"
)


def dummy_lines() -> list[str]:
    return [
        "    card_dummy:",
        "        module.Class: 'instream.dummy.InStreamDummy'",
        "        options:",
        f"            channel_names: {CHANNELS}",
        f"            channel_units: {['V', 'counts'] * 4}",
        f"            channel_signals: {SIGNALS}",
        "            data_type: 'int16'",
        "            seed: 1",
    ]


def count_draws(gui_class) -> list[int]:
    """Frames the GUI hands to its curves (as benchmarks/gui_fps.py counts them)."""
    counter = [0]
    original = gui_class._draw_frame

    def draw_frame(self):
        if self._pending_frame is not None:
            counter[0] += 1
        original(self)

    gui_class._draw_frame = draw_frame
    return counter


def spin(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.002)


def file_check(path: str) -> tuple[int, int, int, str]:
    """(samples in the file, breaks of the sawtooth, its samples_lost and status attributes)."""
    with h5py.File(path, "r") as file:
        data = file["data"]
        samples, broken, previous = len(data), 0, None
        chunk = 1 << 21
        for start in range(0, samples, chunk):
            # whole rows (a strided column selection is slow in HDF5), then the sawtooth columns
            block = data[start : start + chunk][:, 0::2].astype(np.int64)
            if previous is not None:
                block = np.vstack([previous, block])
            steps = np.diff(block, axis=0) % 32_768
            broken += int(np.count_nonzero(steps != 1, axis=0).max())
            previous = block[-1:]
        status = file.attrs.get("status", "")
        status = status.decode() if isinstance(status, bytes) else str(status)
        return samples, broken, int(file.attrs.get("samples_lost", 0)), status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 s instead of 60 s")
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    seconds = args.seconds or (15.0 if args.quick else 60.0)

    with display() as (screen, description, x_pid):
        os.environ.update(screen)
        app, qudi = start_qudi(
            {
                "hardware": dummy_lines()
                + buffer_entry("live_buffer", "card_dummy")
                + buffer_entry("record_buffer", "card_dummy"),
                "logic": logic_entry("live_logic", "live_buffer", LOGIC_OPTIONS)
                + logic_entry("record_logic", "record_buffer", LOGIC_OPTIONS),
                "gui": gui_entry("live_gui", "live_logic"),
            },
            no_gui=False,
        )
        from qudi.gui.instream.time_series_gui import TimeSeriesGui

        draws = count_draws(TimeSeriesGui)
        manager = qudi.module_manager
        manager.activate_module("live_gui")
        manager.activate_module("record_logic")
        gui = manager["live_gui"].instance
        gui.window.resize(1100, 700)
        live, record = manager["live_logic"].instance, manager["record_logic"].instance
        for logic, oversampling in ((live, 100), (record, 2000)):
            logic.set_channel_settings(CHANNELS, [])
            logic.set_trace_settings(
                data_rate=RATE / oversampling,
                oversampling_factor=oversampling,
                trace_window_size=10.0,
                moving_average_width=1,
            )
        print(
            f"8 ch x {RATE / 1e6:g} MS/s int16 ({8 * RATE * 2 / 1e6:.0f} MB/s), {seconds:g} s, "
            f"two buffers and logics, one GUI on {description}, one HDF5 recording"
        )
        live.start_reading()
        record.start_recording()
        spin(app, 2.0)  # settle: buffers allocated, first frames drawn
        drawn = draws[0]
        x_before = cpu_ticks(Path(f"/proc/{x_pid}/stat"))[1] if x_pid else 0
        wall, cpu = time.perf_counter(), time.process_time()
        spin(app, seconds)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        x_cpu = (cpu_ticks(Path(f"/proc/{x_pid}/stat"))[1] - x_before) if x_pid else 0
        fps = (draws[0] - drawn) / wall
        health = {name: logic.stream_health for name, logic in (("live", live), ("record", record))}
        ended_early = not record.data_recording_active  # stopped by itself (the log says why)
        path = record.stop_recording() or (record.recording_info or {}).get("path")
        info = record.recording_info
        live.stop_reading()
        record.stop_reading()
        manager.deactivate_module("live_gui")
        stop_qudi(app, qudi)

    cores = cpu / wall
    x_cores = x_cpu / os.sysconf("SC_CLK_TCK") / wall
    print(f"{'':<28} {'frame rate':>10} {'sample rate':>12} {'lost':>6}")
    for name, values in health.items():
        print(
            f"{name + ' logic':<28} {values['frame_rate']:>8.1f}/s "
            f"{values['sample_rate'] / 1e6:>8.3f} MS/s {values['lost_samples']:>6}"
        )
    print(f"GUI: {fps:.1f} drawn frames/s")
    print(f"CPU: qudi process {cores:.2f} cores; X server {x_cores:.2f} cores (another process)")
    try:
        samples, broken, lost_in_file, status = file_check(path)
        size = Path(path).stat().st_size
    finally:
        Path(path).unlink()
    recorded_seconds = info["seconds"]
    print(
        f"recording: {samples} samples x 8 ch in {recorded_seconds:.1f} s "
        f"({samples / recorded_seconds / 1e6:.3f} MS/s), {size / 1e6:.0f} MB; "
        f"sawtooth breaks {broken}, samples_lost {lost_in_file}, status {status!r}"
    )
    if ended_early:
        print(f"the recording stopped by itself after {recorded_seconds:.1f} of {seconds:g} s")
    # a gap the recorder reported also breaks the sawtooth once: count it once
    lost = sum(h["lost_samples"] for h in health.values()) + max(lost_in_file, broken)
    print(f"card limits: 8ch x 2MS/s int16, {lost} lost, {cores:.2f} cores, gui {fps:.1f} fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
