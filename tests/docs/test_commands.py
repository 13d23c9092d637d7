"""The README's commands, run as printed: qudi without a screen, how to stop it, the demo's
port check, and where a pip install puts the example configs."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from qudi.util.instream import attach, list_streams
from tests.docs.markdown import ROOT, block_containing
from tests.docs.readme_demo import (
    README,
    ReadmeClone,
    active_modules,
    headless_block,
    process_gone,
    stop_block,
    terminal_environment,
    wait_until,
)
from tests.qudi.qudi_process import connect, free_port


def check_streaming(connection) -> tuple[int, str]:
    """Both logics of the headless config read the stream, which another process can read
    too; returns qudi's process id and the stream's name."""
    namespace = active_modules(connection, ["time_series_logic1", "time_series_logic2"])
    logics = [namespace["time_series_logic1"], namespace["time_series_logic2"]]
    assert [logic.module_state() for logic in logics] == ["locked", "locked"]
    wait_until(lambda: min(len(lg.trace_data[0]) for lg in logics) >= 20, 30, "trace points")
    name = str(logics[0].stream_name)
    ring = attach(name)
    try:
        data = np.empty((20, len(ring.info.channel_names)))
        ring.reader("test").read_into(data, timeout=10)  # the stream runs
        assert np.all(data[:, 0] >= 0) and np.all(np.abs(data[:, 1]) <= 1.0)
    finally:
        ring.close()
    pid = int(namespace["qudi"].quit.__func__.__globals__["os"].getpid())
    return pid, name


@pytest.fixture
def clone(tmp_path):
    clone = ReadmeClone(tmp_path)
    yield clone
    clone.close()


def test_readme_headless_qudi_streams_and_stop_qudi_ends_it_cleanly(clone):
    assert "instream_dummy_headless.cfg" in headless_block().code
    clone.start(headless_block())
    connection = clone.connect()
    pid, name = check_streaming(connection)
    connection.close()

    stopped = clone.run(stop_block())
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "has quit" in stopped.stdout
    assert process_gone(pid)
    assert clone.wait() == 0, clone.log()[-4000:]
    assert name not in list_streams()
    assert "Shutdown complete" in clone.log()
    # a clean shutdown deactivates the modules, which save their status variables
    saved = [path.name for path in (clone.home / ".local" / "qudi").glob("status-*.cfg")]
    assert any("time_series_logic1" in path for path in saved), saved


def test_ctrl_c_ends_the_readme_headless_qudi_and_leaves_no_stream_behind(clone):
    clone.start(headless_block())
    connection = clone.connect()
    pid, name = check_streaming(connection)
    connection.close()
    clone.ctrl_c()
    clone.wait()
    wait_until(lambda: process_gone(pid), 30, "qudi's process to end")
    wait_until(lambda: name not in list_streams(), 10, "qudi's shared memory to go")


def test_stop_qudi_says_when_no_qudi_answers(tmp_path):
    stopped = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stop_qudi.py"), str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stopped.returncode == 1
    assert "no qudi answers on localhost:" in stopped.stderr


def run_demo(tmp_path: Path, *arguments: str, **variables: str) -> subprocess.CompletedProcess:
    environment = {**terminal_environment(tmp_path / "home"), "QUDI_HOME": str(tmp_path / "home")}
    environment.update(variables)
    return subprocess.run(
        [str(ROOT / "scripts" / "demo.sh"), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,  # scripts/setup.sh first: quick once the venv is up to date
    )


@pytest.fixture
def busy_port():
    """A port of this host that something (as another qudi would) listens on."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_demo_names_a_taken_port_and_starts_on_the_free_ports_it_suggests(tmp_path, busy_port):
    refused = run_demo(tmp_path, "--no-gui", DEMO_NAMESPACE_PORT=str(busy_port))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"port {busy_port} is already in use" in refused.stderr
    assert "this qudi's Jupyter kernel would talk to the other qudi" in refused.stderr
    suggested = re.search(r"on ports that are free now: (.*)$", refused.stderr, re.MULTILINE)
    assert suggested, refused.stderr
    *settings, command, option = shlex.split(suggested[1])
    assert (command, option) == ("./scripts/demo.sh", "--no-gui")
    variables = dict(setting.split("=") for setting in settings)
    port = int(variables["DEMO_NAMESPACE_PORT"])
    assert port != busy_port

    # the suggestion as a user types it: qudi comes up there, and scripts/stop_qudi.py, which
    # finds the port as qudi's Jupyter kernel does (the config qudi loaded last), stops it
    home = tmp_path / "home"
    environment = {**terminal_environment(home), "QUDI_HOME": str(home)}
    demo = subprocess.Popen(
        ["bash", "-c", suggested[1]],
        cwd=ROOT,
        env={**environment, **variables},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        connection = connect(port, demo)
        pid, _ = check_streaming(connection)
        connection.close()
        stopped = subprocess.run(
            [sys.executable, "scripts/stop_qudi.py"],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert f"port {port}" in stopped.stdout
        assert demo.wait(60) == 0
        assert process_gone(pid)
    finally:
        if demo.poll() is None:  # a failed test's leftover: stop it, kill it if need be
            subprocess.run(
                [sys.executable, "scripts/stop_qudi.py", str(port)], cwd=ROOT, timeout=90
            )
            try:
                demo.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait(30)


def test_demo_with_windows_checks_the_remote_modules_port_too(tmp_path, busy_port):
    refused = run_demo(
        tmp_path,
        DISPLAY=":99",  # it refuses before it opens a window
        DEMO_NAMESPACE_PORT=str(free_port()),
        DEMO_REMOTE_PORT=str(busy_port),
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"port {busy_port} is already in use" in refused.stderr
    assert "remote modules server" in refused.stderr
    suggested = re.search(r"DEMO_REMOTE_PORT=(\d+) \./scripts/demo\.sh$", refused.stderr, re.M)
    assert suggested and int(suggested[1]) != busy_port, refused.stderr


def test_wheel_puts_the_example_configs_where_the_readme_says(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = tmp_path.glob("qudi_instream-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT / "src")) for p in (ROOT / "src").rglob("*.py")}
    assert modules <= names, f"modules missing in the wheel: {sorted(modules - names)}"

    # installed into an environment of its own (pip install --prefix would uninstall the
    # editable install of the environment running these tests)
    prefix = tmp_path / "environment"
    subprocess.run([sys.executable, "-m", "venv", str(prefix)], check=True, timeout=120)
    installed = subprocess.run(
        [str(prefix / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    configs = {p.name for p in (ROOT / "cfg").glob("*.cfg")}
    shipped = prefix / "share" / "qudi-instream"
    assert {p.name for p in (shipped / "cfg").glob("*.cfg")} == configs
    assert (shipped / "stop_qudi.py").read_text() == (ROOT / "scripts" / "stop_qudi.py").read_text()
    # the README's example command for a pip install names that place
    pip_block = block_containing(README, "share/qudi-instream/cfg/", "bash")
    assert "sys.prefix" in pip_block.code and "instream_dummy_headless.cfg" in pip_block.code


def test_readme_links_point_to_files_of_the_repository():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [t for t in targets if "://" not in t]
    assert relative, "no relative links found: is the pattern out of date?"
    missing = [t for t in relative if not (ROOT / t).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
