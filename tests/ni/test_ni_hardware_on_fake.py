"""The first-time-on-a-card checks (``test_ni_hardware.py``) pass on the fake card, its clock
running in real time: they are right before anyone takes them to a card, and the streamer
passes them wherever the fake behaves like the card."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_the_hardware_checks_pass_on_the_fake_card(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("NI_TEST_DEVICE", None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "realtime_fake",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            str(HERE / "test_ni_hardware.py"),
        ],
        cwd=HERE.parents[1],
        env={**env, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "10 passed" in run.stdout and "skipped" not in run.stdout, run.stdout
