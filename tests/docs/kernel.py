"""Jupyter kernels as a notebook user has them: qudi's own (``qudi-install-kernel``) or a plain
Python one, executing cells in order through nbclient against a qudi of the given HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def install_qudi_kernel(environment: dict[str, str]) -> None:
    """Install qudi's kernel into the jupyter folders of ``environment``'s HOME."""
    subprocess.run(
        [str(Path(sys.prefix) / "bin" / "qudi-install-kernel")],
        env=environment,
        check=True,
        capture_output=True,
        timeout=60,
    )


def kernel_of_qudi_at(home: Path) -> dict[str, str]:
    """Install qudi's kernel for the qudi whose HOME is ``home`` (headless); returns the
    environment :func:`run_in_kernel` starts it with."""
    environment = {"HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    install_qudi_kernel({**os.environ, **environment})
    return environment


def logic_streaming_cell(logic: str) -> str:
    """A cell that activates the time-series logic ``logic`` (as its GUI would) and waits up
    to 30 s for its trace: the module's name is in the kernel's namespace from the next cell."""
    return (
        f"qudi.module_manager.activate_module({logic!r})\n"
        "import time\n"
        f"logic = qudi.module_manager[{logic!r}].instance\n"
        "deadline = time.monotonic() + 30\n"
        "while len(logic.trace_data[0]) < 20:  # the stream runs\n"
        "    assert time.monotonic() < deadline, 'no trace in 30 s'\n"
        "    time.sleep(0.05)\n"
    )


def run_in_kernel(
    cells: list[str], kernel: str, environment: dict[str, str], cwd: Path, monkeypatch
):
    """Execute ``cells`` in order in a new ``kernel`` started with ``environment`` in ``cwd``,
    as Jupyter does; raises (with the cell and its traceback) at the first cell that fails.
    Returns the executed notebook."""
    for name, value in environment.items():  # HOME: kernelspecs, qudi's last config
        monkeypatch.setenv(name, value)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        if name not in environment:
            monkeypatch.delenv(name, raising=False)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(
        notebook,
        kernel_name=kernel,
        timeout=60,
        startup_timeout=60,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return notebook


def printed(cell) -> str:
    """What a cell printed (its stream outputs)."""
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
