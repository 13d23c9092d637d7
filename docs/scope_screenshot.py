"""Take docs/scope_view.png: the time-series GUI's triggered view on a virtual screen (Xvfb).

    xvfb-run -a -s "-screen 0 1400x800x24" \
        .venv/bin/python docs/scope_screenshot.py docs/scope_view.png

Runs qudi in this process (a temporary HOME) with a dummy whose noise goes through a buffer's
low-pass filter (a smooth random signal), a time-series logic and its GUI; the triggered view
cuts windows where the filtered noise rises through 0.25 V (hysteresis 0.1 V), keeps 40 and
averages them. The picture shows the main window and the triggered view
side by side (Xvfb has no window manager).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """\
global:
    startup_modules: []
hardware:
    shot_dummy:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['noise']
            channel_units: ['V']
            channel_signals: ['noise']
            seed: 5
    shot_buffer:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        options:
            filters:
                - iir: {btype: 'lowpass', cutoff: 20.0, order: 4}
        connect:
            streamer: 'shot_dummy'
logic:
    shot_logic:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'shot_buffer'
gui:
    shot_gui:
        module.Class: 'instream.time_series_gui.TimeSeriesGui'
        connect:
            _time_series_logic_con: 'shot_logic'
"""


def main(out: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="scope_shot_"))
    os.environ["HOME"] = str(home)
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    from PIL import ImageGrab
    from PySide6 import QtWidgets
    from qudi.core.application import Qudi

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    (home / "log").mkdir()
    config = home / "scope.cfg"
    config.write_text(CONFIG)
    qudi = Qudi(no_gui=False, log_dir=str(home / "log"), config_file=str(config))
    qudi._configure_qudi()
    manager = qudi.module_manager
    manager.activate_module("shot_gui")
    logic, gui = manager["shot_logic"].instance, manager["shot_gui"].instance
    logic.set_trace_settings(
        data_rate=1000.0, oversampling_factor=1, trace_window_size=4.0, moving_average_width=9
    )
    logic.set_scope_settings(
        source="level", channel="noise", edge="rising", level=0.25, hysteresis=0.1,
        unit="seconds", pre=0.1, post=0.3, holdoff=0.2, windows=40, display="both",
        enabled=True,
    )  # fmt: skip
    gui.window.setGeometry(0, 30, 700, 740)
    gui.scope_view.action.trigger()
    gui.scope_view.setGeometry(700, 30, 700, 740)
    logic.start_reading()
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and logic.scope_windows.stats.get("kept", 0) < 40:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(50):  # the last views drawn
        app.processEvents()
        time.sleep(0.01)
    ImageGrab.grab(bbox=(0, 0, 1400, 800)).save(out)
    logic.stop_reading()
    manager.stop_all_modules()
    qudi.thread_manager.quit_all_threads()
    app.processEvents()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs" / "scope_view.png"))
