"""The headline test: the NI module streams through DataInStreamBuffer and
TimeSeriesReaderLogic in a real qudi over the fake interpreter, and a raw (int16) streamer
is recorded with its scaling polynomials, and clocked digital lines reach a buffer and a
logic as 0/1 lanes (see ``qudi_chain.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ni_streams_through_buffers_and_logics_in_qudi():
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/ni/qudi_chain.py"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "4 passed" in run.stdout
