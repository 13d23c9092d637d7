"""Run qudi in a separate process with a config from cfg/ and drive it over rpyc."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import rpyc

ROOT = Path(__file__).resolve().parents[2]
STARTUP_LIST = re.compile(r"    startup_modules:\n(?:        - .*\n)+")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def connect(port: int, qudi_process: subprocess.Popen, timeout: float = 90.0):
    """An rpyc connection to qudi's namespace server, as a Jupyter kernel makes it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return rpyc.connect(
                "localhost", port, config={"allow_all_attrs": True, "allow_pickle": True}
            )
        except OSError:
            if qudi_process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def headless_config(name: str, **replacements: str) -> str:
    """cfg/<name> with its startup modules removed (no screen: nothing starts by itself)
    and each ``old=new`` text replacement applied (each must match)."""
    config = (ROOT / "cfg" / name).read_text()
    config, count = re.subn(STARTUP_LIST, "    startup_modules: []\n", config)
    assert count == 1, f"{name}: no startup_modules list found"
    for old, new in replacements.items():
        assert old in config, f"{name}: {old!r} not found"
        config = config.replace(old, new)
    return config


@contextlib.contextmanager
def qudi_process(config: str, tmp_path: Path, tag: str):
    """qudi --no-gui with ``config`` (text) and a private HOME; killed if still running."""
    home = tmp_path / tag
    home.mkdir()
    path = home / f"{tag}.cfg"
    path.write_text(config)
    env = {**os.environ, "HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    with (home / "qudi.out").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "qudi.core", "--no-gui", "-c", str(path)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(30)


def quit_qudi(connection) -> None:
    """Ask qudi to quit from its own main thread (never call qudi.quit() over rpyc)."""
    qudi = connection.root.get_namespace_dict()["qudi"]
    remote_qt_core = qudi.quit.__func__.__globals__["QtCore"]
    # qudi may close this connection on its way out before the call's reply is sent
    with contextlib.suppress(EOFError):
        remote_qt_core.QMetaObject.invokeMethod(
            qudi, "quit", remote_qt_core.Qt.ConnectionType.QueuedConnection
        )
