"""TimeSeriesGui in a real qudi: frames drawn per second as the trace window grows.

    python benchmarks/gui_fps.py            # 10 s windows at 1, 10, 100 kHz, 1 MHz; 5 s per run
    python benchmarks/gui_fps.py --quick    # 2 s windows at 5, 50, 500 kHz, then 10 s at 1 MHz
    python benchmarks/gui_fps.py --compare  # also with pyqtgraph's own clipping + downsampling

One process: dummy (4 'noise' channels, the hardest case for peak downsampling) -> buffer ->
logic (30 frames/s at most) -> TimeSeriesGui, offscreen unless QT_QPA_PLATFORM says otherwise
(under Xvfb: ``QT_QPA_PLATFORM=xcb DISPLAY=:99 python benchmarks/gui_fps.py``). For windows
of 10^4, 10^5, 10^6 and 10^7 points per channel (the last: 4 MS/s through the chain, 1.4 GB
of trace window) the logic reads until two windows of points have arrived (the window is full
and every page of the logic's trace rings has been written once: first writes are page faults,
a start-up cost that is dear in a VM and no part of a frame); then the Qt event loop is spun
(``QApplication.processEvents``) and we count

* **sent**: frames the logic sent (``sigDataChanged``: frames that brought new points; a
  frame that finds no new sample is not sent),
* **drawn**: frames the GUI handed to its curves (calls of ``_draw_frame`` that had a frame;
  several frames queued behind a slow draw count once, as the GUI draws only the newest),
* **paints**: paint events of the plot's viewport, i.e. the scene really rendered,
* **logic**: the logic's frame rate from ``stream_health`` (every frame, with news or not),
* **CPU**: process CPU time over wall time (all threads: dummy, buffer, logic, GUI).

Redraw cost should not grow with the window: each curve keeps a min/max pyramid that a frame
updates with its new points only, and a draw reads about two points per pixel column from it
(``qudi.gui.instream.pyramid``); what grows with the data rate is the chain's own work
(generating, copying, the logic's oversampling and rings), all in this one process.
``--compare`` runs the first three rows a second time with pyqtgraph doing that job instead
(``setClipToView(True)``, ``setDownsampling(auto=True, method='peak')``, full arrays handed to
the curves): the measurement that justified drawing our own min/max points
(``qudi.gui.instream.decimate``, now from the pyramid; docs/performance.md has the numbers).

The GUI draws at most 33 frames per second and about one per 20 new trace points
(``qudi.gui.instream.frame_pacer``): at these rates every frame of the logic's 30 a second.

The buffer reads the dummy up to 60 times a second: at its default ``max_poll_rate`` of 30 its
pump stretches each interval by 0-20 % and so polls about 27 times a second, and a logic
framing 30 times a second then finds no new sample in one frame of ten: it sends (and the GUI
can draw) no more than the buffer's 27 (the 27.3 fps of earlier runs). The *sent* column
shows what the GUI got.

The machine's other load counts too: on 2 shared cores the numbers are noisy.

Last line: ``gui: <F.F> fps at 4x1e7 points`` (F: drawn frames per second, 4 channels with a
window of 1e7 points each).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qudi_harness import (  # noqa: E402
    buffer_entry,
    dummy_entry,
    gui_entry,
    logic_entry,
    start_qudi,
    stop_qudi,
)

CHANNELS = ["ch0", "ch1", "ch2", "ch3"]
SENT = [0]  # frames the logic sent (count_sent)


def count_draws(gui_class) -> list[int]:
    """Count the GUI's frame draws: wraps ``_draw_frame`` on the class before activation
    (the GUI connects the bound method when it activates). Returns the one-item counter."""
    counter = [0]
    original = gui_class._draw_frame

    def draw_frame(self):
        if self._pending_frame is not None:
            counter[0] += 1
        original(self)

    gui_class._draw_frame = draw_frame
    return counter


def paint_counter(widget):
    """An event filter on ``widget`` counting its paint events (``.count``)."""
    from PySide6 import QtCore

    class PaintCounter(QtCore.QObject):
        count = 0

        def eventFilter(self, watched, event):  # noqa: N802 (Qt's name)
            if event.type() == QtCore.QEvent.Type.Paint:
                self.count += 1
            return False

    counter = PaintCounter()
    widget.installEventFilter(counter)
    return counter


def use_pyqtgraph_downsampling() -> None:
    """Let pyqtgraph clip and peak-downsample full arrays (instead of the GUI's decimation):
    patches the GUI's classes for this process, before the plots are built."""
    from qudi.gui.instream.time_series_window import TimeSeriesWindow
    from qudi.gui.instream.trace_plot import TracePlot

    build_plots = TimeSeriesWindow.set_plot_units

    def set_plot_units(self, units, names=None, plot_units=None):
        build_plots(self, units, names, plot_units)
        for plot in self.plot_items.values():
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")

    TimeSeriesWindow.set_plot_units = set_plot_units
    TracePlot.decimating = False


def spin(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.001)


def count_sent(logic) -> None:
    """Count the frames the logic sends in ``SENT`` (``sigDataChanged``, in its thread)."""
    from PySide6 import QtCore

    def sent(*_frame) -> None:
        SENT[0] += 1

    logic.sigDataChanged.connect(sent, QtCore.Qt.ConnectionType.DirectConnection)


def measure(app, logic, gui, draws, paints, rate: float, window: float, seconds: float) -> dict:
    logic.set_channel_settings(CHANNELS, [])
    logic.set_trace_settings(
        data_rate=rate, oversampling_factor=1, trace_window_size=window, moving_average_width=1
    )
    points = round(rate * window)
    logic.start_reading()
    deadline = time.monotonic() + window * 6 + 60
    restarts = 0
    while time.monotonic() < deadline:
        spin(app, 0.1)
        if logic.module_state() != "locked":  # stopped by an error: the log above says which
            if restarts == 2:
                raise RuntimeError("the logic stopped three times while its window filled")
            restarts += 1
            print(f"(the logic stopped while its window of {points} points filled: restarted)")
            logic.start_reading()
            continue
        # the window's fill, not trace_data: a copy of 4 x 10^7 points per look would be
        # most of what we measure; two windows, so that every page of the logic's rings has
        # been written once (first writes are page faults, dear in a VM: start-up, not frames)
        if logic._trace.filled >= points and logic._trace.count >= 2 * logic._trace.size:
            break
    else:
        raise RuntimeError(f"the window of {points} points did not fill")
    spin(app, 1.0)  # settle: the first frames after filling
    drawn, painted, sent = draws[0], paints.count, SENT[0]
    wall, cpu = time.perf_counter(), time.process_time()
    spin(app, seconds)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = {
        "points": logic._trace.filled,  # the window; the curves get it decimated
        "sent": (SENT[0] - sent) / wall,
        "drawn": (draws[0] - drawn) / wall,
        "paints": (paints.count - painted) / wall,
        "logic": logic.stream_health["frame_rate"],
        "cpu": 100 * cpu / wall,
    }
    logic.stop_reading()
    spin(app, 0.5)
    return result


def run_rows(app, logic, gui, draws, paints, rows, seconds, label) -> list[dict]:
    """One table: a row per (data rate, window); ``label`` says who decimates ("ours",
    "pyqtgraph")."""
    print(f"downsampling: {label}")
    print(
        f"{'window points':>14} {'data rate':>10} {'sent fps':>9} {'drawn fps':>10} "
        f"{'paints/s':>9} {'logic fps':>10} {'CPU %':>6}"
    )
    results = []
    for rate, window in rows:
        row = measure(app, logic, gui, draws, paints, rate, window, seconds)
        results.append(row)
        print(
            f"{row['points']:>14} {rate:>8g}Hz {row['sent']:>9.1f} {row['drawn']:>10.1f} "
            f"{row['paints']:>9.1f} {row['logic']:>10.1f} {row['cpu']:>6.0f}"
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--compare", action="store_true", help="also run with pyqtgraph's own downsampling"
    )
    args = parser.parse_args(argv)
    window, seconds = (2.0, 3.0) if args.quick else (10.0, 5.0)
    rows = [(points / window, window) for points in (10**4, 10**5, 10**6)]
    rows.append((1e6, 10.0))  # 10^7 points: 1 MS/s per channel, in both modes

    app, qudi = start_qudi(
        {
            # polls 60/s: new samples for each of the logic's 30 frames (see the docstring)
            "hardware": dummy_entry("fps_dummy", 4, "noise")
            + [
                line.replace("max_poll_rate: 30.0", "max_poll_rate: 60.0")
                for line in buffer_entry("fps_buffer", "fps_dummy")
            ],
            # 10^7 points x 4 channels take 1.4 GB of trace window (three windows of x + 4 y);
            # a stream buffer of 8 s at 1 MS/s rides out a busy machine's stalls
            "logic": logic_entry(
                "fps_logic",
                "fps_buffer",
                "{max_frame_rate: 30, max_trace_bytes: 4000000000, channel_buffer_size: 8388608}",
            ),
            "gui": gui_entry("fps_gui", "fps_logic"),
        },
        no_gui=False,
    )
    from qudi.gui.instream.time_series_gui import TimeSeriesGui

    draws = count_draws(TimeSeriesGui)
    manager = qudi.module_manager
    manager.activate_module("fps_gui")
    gui = manager["fps_gui"].instance
    logic = manager["fps_logic"].instance
    count_sent(logic)
    gui.window.resize(1100, 700)
    paints = paint_counter(gui.window.plot_widget.viewport())

    platform = os.environ["QT_QPA_PLATFORM"]
    print(f"4 ch 'noise', {seconds:g} s per run, Qt platform {platform}")
    results = run_rows(app, logic, gui, draws, paints, rows, seconds, "ours")
    if args.compare:
        manager.deactivate_module("fps_gui")
        use_pyqtgraph_downsampling()
        manager.activate_module("fps_gui")
        gui = manager["fps_gui"].instance
        gui.window.resize(1100, 700)
        paints = paint_counter(gui.window.plot_widget.viewport())
        run_rows(app, logic, gui, draws, paints, rows[:-1], seconds, "pyqtgraph")
    manager.deactivate_module("fps_gui")
    stop_qudi(app, qudi)
    last = results[-1]
    points = "1e7" if last["points"] == 10**7 else str(last["points"])
    print(f"gui: {last['drawn']:.1f} fps at 4x{points} points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
