"""Take docs/camera.png: the camera demo's windows on a virtual screen (Xvfb).

    xvfb-run -a -s "-screen 0 1600x900x24" \
        .venv/bin/python docs/camera_screenshot.py docs/camera.png

Runs qudi in this process with ``cfg/instream_camera.cfg`` (a temporary HOME), activates the
viewer and the two time-series windows, places them side by side (Xvfb has no window manager),
lets them run a few seconds and grabs the screen.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(out: str) -> None:
    os.environ["HOME"] = tempfile.mkdtemp(prefix="camera_shot_")
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    from PIL import ImageGrab
    from PySide6 import QtWidgets
    from qudi.core.application import Qudi

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    log_dir = Path(os.environ["HOME"]) / "log"
    log_dir.mkdir()
    qudi = Qudi(
        no_gui=False, log_dir=str(log_dir), config_file=str(ROOT / "cfg" / "instream_camera.cfg")
    )
    qudi._configure_qudi()
    manager = qudi.module_manager
    places = {
        "camera_viewer_gui": (0, 0, 700, 760),
        "time_series_gui_roi": (700, 0, 900, 440),
        "time_series_gui_daq": (700, 460, 900, 440),
    }
    for name in places:
        manager.activate_module(name)
    for name, (x, y, w, h) in places.items():
        window = manager[name].instance.window
        window.setGeometry(x, y + 30, w, h - 30)
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    ImageGrab.grab(bbox=(0, 0, 1600, 900)).save(out)
    manager.stop_all_modules()
    qudi.thread_manager.quit_all_threads()
    app.processEvents()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs" / "camera.png"))
