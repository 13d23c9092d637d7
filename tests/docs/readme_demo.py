"""Run the README's commands as a user types them, in a directory laid out like the clone.

The clone's ``.venv`` and ``scripts`` are the repository's (symbolic links); its ``cfg/`` holds
the repository's configs with their fixed ports replaced by free ones, so that the commands run
exactly as printed while other qudi processes on the host keep theirs. HOME is a directory of
its own: qudi writes its status variables, logs and the Jupyter kernelspec below it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.docs.markdown import ROOT, Block, block_containing
from tests.qudi.qudi_process import connect, free_port

README = ROOT / "README.md"


def headless_block() -> Block:
    """The README's block that starts qudi without a screen."""
    return block_containing(README, 'qudi --no-gui -c "$PWD/cfg/', "bash")


def stop_block() -> Block:
    """The README's block that stops qudi cleanly."""
    return block_containing(README, "scripts/stop_qudi.py", "bash")


def terminal_environment(home: Path) -> dict[str, str]:
    """A user's terminal on a host without a screen, with HOME of its own and no virtual
    environment active (the README's commands activate it)."""
    environment = {**os.environ, "HOME": str(home)}
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "VIRTUAL_ENV"):
        environment.pop(name, None)
    environment["PATH"] = os.pathsep.join(
        p for p in environment["PATH"].split(os.pathsep) if not p.startswith(sys.prefix)
    )
    return environment


class ReadmeClone:
    """A clone-like directory, its own HOME and free ports; runs the README's bash blocks."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "clone"
        self.home = tmp_path / "home"
        self.root.mkdir()
        self.home.mkdir()
        self.namespace_port, self.remote_port = free_port(), free_port()
        (self.root / ".venv").symlink_to(Path(sys.prefix))  # the venv running these tests
        (self.root / "scripts").symlink_to(ROOT / "scripts")
        (self.root / "cfg").mkdir()
        for config in (ROOT / "cfg").glob("*.cfg"):
            text = config.read_text()
            ports = {
                "namespace_server_port: 18861": f"namespace_server_port: {self.namespace_port}",
                "port: 12345": f"port: {self.remote_port}",
            }
            for fixed, free in ports.items():
                text = text.replace(fixed, free)
            (self.root / "cfg" / config.name).write_text(text)
        self.process: subprocess.Popen | None = None
        self._log_path = tmp_path / "qudi.out"

    def environment(self) -> dict[str, str]:
        return terminal_environment(self.home)

    def start(self, block: Block) -> subprocess.Popen:
        """Run ``block`` as a terminal runs it, in a session of its own (Ctrl+C goes to its
        process group); its output goes to a log."""
        assert self.process is None
        with self._log_path.open("w") as log:
            self.process = subprocess.Popen(
                ["bash", "-e", "-c", block.code],
                cwd=self.root,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def run(self, block: Block, timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-e", "-c", block.code],
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log(self) -> str:
        return self._log_path.read_text() if self._log_path.exists() else ""

    def connect(self, timeout: float = 90):
        """rpyc to qudi's namespace server, as a plain Jupyter kernel connects."""
        try:
            return connect(self.namespace_port, self.process, timeout)
        except OSError as error:
            raise AssertionError(f"qudi did not come up: {error}\n{self.log()[-4000:]}") from None

    def ctrl_c(self) -> None:
        """What Ctrl+C in the terminal does: SIGINT to the foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"qudi did not exit:\n{self.log()[-4000:]}") from None

    def close(self) -> None:
        """End whatever of the started commands still runs (a failed test's leftovers): ask
        qudi to quit, and kill the process group only if it does not. (Killing it at once
        would also kill Python's resource tracker, which removes qudi's shared memory.)"""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "stop_qudi.py"), str(self.namespace_port)],
                capture_output=True,
                timeout=60,
            )
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def active_modules(connection, names, timeout: float = 60):
    """The namespace of qudi with ``names`` active: qudi's namespace server answers before
    its startup modules have all been activated."""
    namespace = connection.root.get_namespace_dict
    wait_until(lambda: set(names) <= set(namespace()), timeout, f"modules {names} to be active")
    return namespace()


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    return False
