"""Take docs/time_series_views.png: analog plots, digital lanes and markers on a virtual screen.

    xvfb-run -a -s "-screen 0 1280x800x24" \
        .venv/bin/python docs/time_series_views_screenshot.py docs/time_series_views.png

Runs qudi in this process with ``cfg/instream_kinds.cfg`` (a temporary HOME): the dummy's
counts and sine above its two digital lines, drawn as lanes; two markers written through the
logic's ``add_marker`` (as the window's marker field does) while it runs. Then it grabs the
screen (Xvfb has no window manager: the window is placed at the top left).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_for(app, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def main(out: str) -> None:
    os.environ["HOME"] = tempfile.mkdtemp(prefix="views_shot_")
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    from PIL import ImageGrab
    from PySide6 import QtWidgets
    from qudi.core.application import Qudi

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    log_dir = Path(os.environ["HOME"]) / "log"
    log_dir.mkdir()
    config = ROOT / "cfg" / "instream_kinds.cfg"
    qudi = Qudi(no_gui=False, log_dir=str(log_dir), config_file=str(config))
    qudi._configure_qudi()
    manager = qudi.module_manager
    manager.activate_module("time_series_gui_kinds")
    gui = manager["time_series_gui_kinds"].instance
    logic = manager["time_series_logic_kinds"].instance
    logic.set_channel_settings(["APD", "analog 1", "gate", "shutter"], ["APD", "analog 1"])
    logic.set_trace_settings(  # while it reads (it started on activation)
        data_rate=200.0, oversampling_factor=1, trace_window_size=6.0, moving_average_width=21
    )
    gui.window.setGeometry(0, 30, 1280, 770)
    _run_for(app, 2.5)
    logic.add_marker("pump on")
    _run_for(app, 2.0)
    logic.add_marker("probe off")
    gui.window.marker_text_edit.setText("sample moved")  # typed, not yet added
    _run_for(app, 1.5)
    drawn = [text for _, text in gui.plot.markers.markers]
    if drawn != ["pump on", "probe off"] or not gui.plot.lanes:
        raise RuntimeError(f"the window does not show what it should: markers {drawn}")
    ImageGrab.grab(bbox=(0, 0, 1280, 800)).save(out)
    manager.stop_all_modules()
    qudi.thread_manager.quit_all_threads()
    app.processEvents()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs" / "time_series_views.png"))
