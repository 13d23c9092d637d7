"""Ask a running qudi to quit cleanly, as its manager window's Quit does, and wait until it has.

    python scripts/stop_qudi.py           # the qudi of the config qudi loaded last
    python scripts/stop_qudi.py 18861     # the qudi whose namespace_server_port is 18861

qudi deactivates its modules (they save their status variables), stops its streams and exits.
Without a port, the port is the ``namespace_server_port`` of the config qudi loaded last for
this user, found as qudi's own Jupyter kernel finds it. Exit status: 0 once qudi has exited,
1 if no qudi answers on the port or it does not exit within a minute.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import rpyc


def last_config_port() -> int:
    """``namespace_server_port`` of the config qudi loaded last (qudi's kernel does the same)."""
    from qudi.core.config import Configuration

    config = Configuration()
    with contextlib.suppress(ValueError):  # no config loaded yet: qudi's default port
        config.load()
    return int(config["namespace_server_port"])


def process_exists(pid: int) -> bool:
    """The process runs (an exited one its parent has not reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    with contextlib.suppress(OSError):  # Linux: a zombie has exited
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def stop_qudi(port: int, timeout: float = 60.0) -> int:
    try:
        connection = rpyc.connect("localhost", port, config={"allow_all_attrs": True})
    except OSError as error:
        print(f"stop_qudi: no qudi answers on localhost:{port} ({error})", file=sys.stderr)
        return 1
    qudi = connection.root.get_namespace_dict()["qudi"]
    remote_globals = qudi.quit.__func__.__globals__  # qudi's own modules, on its side
    pid = int(remote_globals["os"].getpid())
    qt_core = remote_globals["QtCore"]
    # queued into qudi's main thread: a direct call would run in the rpyc server's thread
    with contextlib.suppress(EOFError):  # qudi may close the connection before replying
        qt_core.QMetaObject.invokeMethod(qudi, "quit", qt_core.Qt.ConnectionType.QueuedConnection)
    with contextlib.suppress(Exception):
        connection.close()
    deadline = time.monotonic() + timeout
    while process_exists(pid):
        if time.monotonic() > deadline:
            print(
                f"stop_qudi: qudi (pid {pid}) is still running after {timeout:.0f} s",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.1)
    print(f"stop_qudi: qudi on port {port} (pid {pid}) has quit")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and not argv[0].isdigit()):
        print(__doc__, file=sys.stderr)
        return 2
    return stop_qudi(int(argv[0]) if argv else last_config_port())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
