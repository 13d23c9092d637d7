"""The demo at rest: CPU of the qudi process running cfg/instream_dummy.cfg with both windows.

    python benchmarks/gui_idle.py              # 20 s measured after 10 s of settling
    python benchmarks/gui_idle.py --quick      # 10 s measured after 6 s
    python benchmarks/gui_idle.py --seconds 60 # longer
    python benchmarks/gui_idle.py --screenshot docs/time_series_gui.png   # and a picture

The demo exactly as a user starts it (``qudi -c cfg/instream_dummy.cfg``: a dummy with 2 channels
at 50 S/s, two buffers, two logics reading, both time-series windows and qudi's manager window
open), but on free ports and with HOME in a temporary folder. It runs on a real X screen under
Xvfb when Xvfb is installed (``QT_QPA_PLATFORM=xcb``), offscreen otherwise; the first line says
which. Xvfb has no window manager, so the two windows would both open at the top left, one
hiding the other: the benchmark places them side by side (it writes their saved geometry into
the temporary HOME before qudi starts, as qudi would have saved it), so both are on screen.
Once both logics have live traces the benchmark waits, then reads the qudi process's CPU time
(utime + stime of ``/proc/<pid>/stat``, all threads) at the start and the end of the measuring
window and prints the share of one core, with the biggest threads by name
(``/proc/<pid>/task/*/stat``), and the X server's share (it draws what qudi sends). During the
window nothing talks to qudi. Linux threads inherit the name of the thread that starts them:
the stream hub's pump, started from a logic's thread, is listed as ``mod-logic-time_`` too
(py-spy dump shows which: its Python name is ``instream-pump-<streamer>_<pid>``).

Last line: ``gui idle: <X> % of one core at 50 S/s, 2 windows``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rpyc

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
SCREEN = (2300, 1300)
WINDOWS = {  # (class, module): (x, y, width, height) on SCREEN; qudi's manager below
    ("TimeSeriesGui", "time_series_gui1"): (0, 0, 1130, 780),
    ("TimeSeriesGui", "time_series_gui2"): (1150, 0, 1130, 780),
    ("QudiMainGui", "qudi_main_gui"): (0, 840, 1100, 420),
}
# run on the X screen: the geometry a window at that place would save (QMainWindow.saveGeometry)
_GEOMETRY = """
import sys
from PySide6 import QtWidgets
app = QtWidgets.QApplication([])
for x, y, width, height in eval(sys.argv[1]):
    window = QtWidgets.QMainWindow()
    window.setGeometry(x, y, width, height)
    print(window.saveGeometry().toHex().data().decode())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def cpu_ticks(stat_path: Path) -> tuple[str, int]:
    """(name, utime + stime in clock ticks) of a process or thread from its stat file."""
    text = stat_path.read_text()
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            threads[int(task.name)] = cpu_ticks(task / "stat")
    return threads


@contextlib.contextmanager
def display():
    """A fresh Xvfb screen if Xvfb is installed, else offscreen.

    Yields the environment to add, a description and the X server's pid (None offscreen)."""
    if shutil.which("Xvfb") is None:
        yield {"QT_QPA_PLATFORM": "offscreen"}, "offscreen (no Xvfb)", None
        return
    number = next(n for n in range(120, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    size = f"{SCREEN[0]}x{SCREEN[1]}x24"
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", size, "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Xvfb did not start")
            time.sleep(0.05)
        screen = {"QT_QPA_PLATFORM": "xcb", "DISPLAY": f":{number}"}
        yield screen, f"Xvfb :{number} {size} (xcb)", server.pid
    finally:
        server.terminate()
        server.wait(10)


def demo_config(home: Path) -> Path:
    """cfg/instream_dummy.cfg on free ports, written into ``home``."""
    text = (ROOT / "cfg" / "instream_dummy.cfg").read_text()
    for old, new in (
        ("namespace_server_port: 18861", f"namespace_server_port: {free_port()}"),
        ("port: 12345", f"port: {free_port()}"),
    ):
        if old not in text:
            raise RuntimeError(f"cfg/instream_dummy.cfg: {old!r} not found")
        text = text.replace(old, new)
    path = home / "instream_dummy.cfg"
    path.write_text(text)
    return path


def place_windows(home: Path, env: dict) -> None:
    """Save the windows' geometry (side by side, the manager below), as qudi keeps it."""
    places = list(WINDOWS.values())
    result = subprocess.run(
        [sys.executable, "-c", _GEOMETRY, repr(places)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    appdata = home / ".local" / "qudi"
    appdata.mkdir(parents=True, exist_ok=True)
    for (cls, module), geometry in zip(WINDOWS, result.stdout.split(), strict=True):
        path = appdata / f"status-{cls}_gui_{module}.cfg"
        path.write_text(f"_GuiBase__window_geometry: '{geometry}'\n")


def namespace_port(config: Path) -> int:
    for line in config.read_text().splitlines():
        if "namespace_server_port:" in line:
            return int(line.split(":")[1])
    raise RuntimeError("no namespace_server_port in the config")


def connect(port: int, qudi: subprocess.Popen, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return rpyc.connect("localhost", port, config={"allow_all_attrs": True})
        except OSError:
            if qudi.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_for_live_traces(connection, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        names = connection.root.get_namespace_dict()
        if all(f"time_series_gui{i}" in names for i in (1, 2)):
            logics = [names["time_series_logic1"], names["time_series_logic2"]]
            if all(len(logic.trace_data[0]) > 20 for logic in logics):
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the demo did not come up with live traces in time")
        time.sleep(0.5)


def quit_qudi(connection) -> None:
    """Queue qudi's quit into its main thread (never call it over rpyc directly)."""
    qudi = connection.root.get_namespace_dict()["qudi"]
    qt_core = qudi.quit.__func__.__globals__["QtCore"]
    with contextlib.suppress(EOFError):
        qt_core.QMetaObject.invokeMethod(qudi, "quit", qt_core.Qt.ConnectionType.QueuedConnection)


def measure(
    pid: int, seconds: float, server: int | None
) -> tuple[float, list[tuple[str, float]], float | None]:
    """% of one core of the process, of each of its threads and of the X server."""
    _, before = cpu_ticks(Path(f"/proc/{pid}/stat"))
    server_before = None if server is None else cpu_ticks(Path(f"/proc/{server}/stat"))[1]
    threads_before = thread_ticks(pid)
    start = time.monotonic()
    time.sleep(seconds)
    _, after = cpu_ticks(Path(f"/proc/{pid}/stat"))
    server_after = None if server is None else cpu_ticks(Path(f"/proc/{server}/stat"))[1]
    wall = time.monotonic() - start
    threads_after = thread_ticks(pid)
    per_thread = []
    for tid, (name, ticks) in threads_after.items():
        used = ticks - threads_before.get(tid, (name, 0))[1]
        per_thread.append((f"{name} [{tid}]", 100 * used / TICKS / wall))
    per_thread.sort(key=lambda item: -item[1])
    x_server = None
    if server is not None:
        x_server = 100 * (server_after - server_before) / TICKS / wall
    return 100 * (after - before) / TICKS / wall, per_thread, x_server


def screenshot(display: str, path: Path) -> None:
    """The two time-series windows: what is drawn above the manager (the screen is black)."""
    from PIL import ImageGrab

    above = min(y for _, y, _, _ in WINDOWS.values() if y > 0)
    top = ImageGrab.grab(xdisplay=display).crop((0, 0, SCREEN[0], above))
    top.crop(top.getbbox()).save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s measured after 6 s")
    parser.add_argument("--seconds", type=float, help="length of the measuring window")
    parser.add_argument("--settle", type=float, help="seconds to wait once traces are live")
    parser.add_argument("--screenshot", type=Path, help="also save the two windows as a PNG")
    args = parser.parse_args(argv)
    seconds = args.seconds or (10.0 if args.quick else 20.0)
    settle = args.settle if args.settle is not None else (6.0 if args.quick else 10.0)

    home = Path(tempfile.mkdtemp(prefix="qudi-instream-idle-"))
    config = demo_config(home)
    with display() as (screen, description, server):
        env = {**os.environ, "HOME": str(home), **screen}
        if server is not None:
            place_windows(home, env)
        # without qudi's kernelspec the manager window shows an error popup that blocks quitting
        subprocess.run(
            [sys.executable, "-m", "qudi.core.qudikernel", "install"],
            env=env,
            check=True,
            capture_output=True,
        )
        with (home / "qudi.out").open("w") as log:
            qudi = subprocess.Popen(
                [sys.executable, "-m", "qudi.core", "-c", str(config)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                connection = connect(namespace_port(config), qudi)
                wait_for_live_traces(connection)
                time.sleep(settle)
                total, threads, x_server = measure(qudi.pid, seconds, server)
                if args.screenshot is not None and server is not None:
                    screenshot(screen["DISPLAY"], args.screenshot)
                quit_qudi(connection)
                code = qudi.wait(60)
            finally:
                if qudi.poll() is None:
                    qudi.kill()
                    qudi.wait(30)
    print(f"demo cfg/instream_dummy.cfg, screen {description}, {seconds:g} s after {settle:g} s")
    print(f"{'thread':<40} {'% of one core':>14}")
    for name, share in threads[:8]:
        print(f"{name:<40} {share:>14.1f}")
    print(f"{'qudi process':<40} {total:>14.1f}")
    if x_server is not None:
        print(f"{'X server (Xvfb, another process)':<40} {x_server:>14.1f}")
    if code != 0:
        print(f"qudi exited with {code}; its output is in {home / 'qudi.out'}")
        return 1
    shutil.rmtree(home, ignore_errors=True)
    print(f"gui idle: {total:.1f} % of one core at 50 S/s, 2 windows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
