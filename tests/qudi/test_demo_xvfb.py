"""The demo as a new user sees it: qudi with cfg/instream_dummy.cfg on a real X screen (Xvfb)
brings up both time-series windows with live curves."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import ImageGrab
from qudi_process import ROOT, connect, free_port, quit_qudi

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb")


@pytest.fixture
def x_display():
    number = 90 + os.getpid() % 9
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    assert server.poll() is None, "Xvfb did not start"
    yield f":{number}"
    server.terminate()
    server.wait(10)


def test_demo_brings_up_both_windows_with_live_curves(tmp_path, x_display):
    namespace_port, remote_port = free_port(), free_port()
    config = (ROOT / "cfg" / "instream_dummy.cfg").read_text()
    config = config.replace(
        "namespace_server_port: 18861", f"namespace_server_port: {namespace_port}"
    )
    config = config.replace("port: 12345", f"port: {remote_port}")
    path = tmp_path / "instream_dummy.cfg"
    path.write_text(config)
    env = {**os.environ, "HOME": str(tmp_path), "DISPLAY": x_display, "QT_QPA_PLATFORM": "xcb"}
    # what scripts/demo.sh does once the venv is set up
    subprocess.run(
        [sys.executable, "-m", "qudi.core.qudikernel", "install"],
        env=env,
        check=True,
        capture_output=True,
    )
    log = (tmp_path / "qudi.out").open("w")
    qudi = subprocess.Popen(
        [str(Path(sys.executable).with_name("qudi")), "-c", str(path)],  # as demo.sh starts it
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its process group: the qudi command and qudi itself
    )
    try:
        connection = connect(namespace_port, qudi)
        namespace = connection.root.get_namespace_dict
        deadline = time.monotonic() + 60
        while True:
            names = namespace()
            if all(n in names for n in ("time_series_gui1", "time_series_gui2")):
                logics = [names["time_series_logic1"], names["time_series_logic2"]]
                if all(len(logic.trace_data[0]) > 20 for logic in logics):
                    break
            assert time.monotonic() < deadline, "the demo did not come up with live traces"
            time.sleep(0.5)
        assert all(logic.module_state() == "locked" for logic in logics)
        time.sleep(1.0)  # a few frames drawn
        screen = ImageGrab.grab(xdisplay=x_display)
        screen.save(tmp_path / "demo.png")
        colours = screen.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50, "the screen looks blank"
        quit_qudi(connection)
        assert qudi.wait(60) == 0
    finally:
        if qudi.poll() is None:
            os.killpg(qudi.pid, signal.SIGKILL)
            qudi.wait(30)
        log.close()
