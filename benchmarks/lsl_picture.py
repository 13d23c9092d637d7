"""docs/lsl.png: qudi and a plain LSL tool side by side, streaming to each other, under Xvfb.

    python benchmarks/lsl_picture.py docs/lsl.png

Starts Xvfb, the plain pylsl + matplotlib tool ``docs/lsl_tool.py`` (it sends 'pylsl sine'
and plots qudi's 'qudi dummy') and qudi with ``cfg/instream_lsl.cfg`` (free ports, HOME in a
temporary folder): the dummy goes out through ``LslOutlet``, 'pylsl sine' comes in through
``LslInStreamer`` into a ``TimeSeriesGui``. When both windows show live data it grabs the
screen above qudi's manager window, quits qudi and the tool, and checks qudi exited with 0.
liblsl is kept on this host (machine scope, no IPv6).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gui_idle import SCREEN, connect, display, free_port, quit_qudi

ROOT = Path(__file__).resolve().parents[1]
QUDI_WINDOW = ("TimeSeriesGui", "lsl_time_series_gui", (0, 0, 1100, 760))
MANAGER = ("QudiMainGui", "qudi_main_gui", (0, 820, 1000, 420))
TOOL_WINDOW = (1110, 0, 1080, 760)
_GEOMETRY = """
import sys
from PySide6 import QtWidgets
app = QtWidgets.QApplication([])
for x, y, width, height in eval(sys.argv[1]):
    window = QtWidgets.QMainWindow()
    window.setGeometry(x, y, width, height)
    print(window.saveGeometry().toHex().data().decode())
"""
LSL_CONFIG = "[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n"


def place_qudi_windows(home: Path, env: dict) -> None:
    """Save the windows' geometry as qudi keeps it, so they open where the picture wants."""
    windows = [QUDI_WINDOW, MANAGER]
    result = subprocess.run(
        [sys.executable, "-c", _GEOMETRY, repr([w[2] for w in windows])],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    appdata = home / ".local" / "qudi"
    appdata.mkdir(parents=True, exist_ok=True)
    for (cls, module, _), geometry in zip(windows, result.stdout.split(), strict=True):
        path = appdata / f"status-{cls}_gui_{module}.cfg"
        path.write_text(f"_GuiBase__window_geometry: '{geometry}'\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="qudi-instream-lsl-picture-"))
    (home / "lsl_api.cfg").write_text(LSL_CONFIG)
    port = free_port()
    config = home / "instream_lsl.cfg"
    text = (ROOT / "cfg" / "instream_lsl.cfg").read_text()
    config.write_text(
        text.replace("namespace_server_port: 18861", f"namespace_server_port: {port}")
    )
    with display() as (screen, described, _):
        if "DISPLAY" not in screen:
            raise SystemExit("this picture needs Xvfb (apt-get install xvfb)")
        env = {**os.environ, **screen, "HOME": str(home), "LSLAPICFG": str(home / "lsl_api.cfg")}
        subprocess.run(
            [sys.executable, "-m", "qudi.core.qudikernel", "install"],
            env=env,
            check=True,
            capture_output=True,
        )
        place_qudi_windows(home, env)
        geometry = ",".join(map(str, TOOL_WINDOW))
        tool = subprocess.Popen(
            [sys.executable, str(ROOT / "docs" / "lsl_tool.py"), geometry], env=env
        )
        time.sleep(2.0)  # its outlet is up before qudi looks for it
        log = open(home / "qudi.log", "w")  # noqa: SIM115 - open while qudi runs
        qudi = subprocess.Popen(
            [sys.executable, "-m", "qudi.core", "-c", str(config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            connection = connect(port, qudi)
            deadline = time.monotonic() + 90
            shown = False
            while True:
                names = connection.root.get_namespace_dict()
                logic = names.get("lsl_time_series_logic")
                if logic is not None and not shown:
                    logic.set_trace_settings(trace_window_size=5.0)  # as the tool shows
                    shown = True
                x = logic.trace_data[0] if logic is not None else ()
                if "lsl_time_series_gui" in names and len(x) > 1000 and float(x[-1]) > 6.0:
                    break  # the window (5 s) is full of LSL data
                if time.monotonic() > deadline:
                    raise RuntimeError(f"qudi showed no LSL data in time; see {home}/qudi.log")
                time.sleep(0.5)
            from PIL import ImageGrab

            grab = ImageGrab.grab(xdisplay=screen["DISPLAY"])
            top = grab.crop((0, 0, SCREEN[0], MANAGER[2][1] - 10))
            top.crop(top.getbbox()).save(args.out)
            quit_qudi(connection)
            try:
                code = qudi.wait(60)
            except subprocess.TimeoutExpired:
                print("qudi did not exit within 60 s of its quit (killed)")
                code = 1
        finally:
            if qudi.poll() is None:
                qudi.kill()
            tool.terminate()
            tool.wait(10)
            log.close()
    print(f"{args.out} written ({described}); qudi exit code {code}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
