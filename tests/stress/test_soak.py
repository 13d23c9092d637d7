"""Runs the soak (soak_qudi.py) in a pytest process of its own and reports its summary.

``pytest tests/stress`` runs the bounded soak (about two minutes); ``--long SECONDS`` runs it
for longer (hours), ``--seed N`` changes its randomness.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.stress import hard_limit
from tests.stress.conftest import SUMMARY, soak_seconds
from tests.stress.report import format_summary

ROOT = Path(__file__).resolve().parents[2]


def test_soak(request, tmp_path):
    seconds = soak_seconds(request.config)
    limit = hard_limit(seconds)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o"]
    command += [f"timeout={limit:.0f}", "tests/stress/soak_qudi.py", "--long", str(seconds)]
    seed = request.config.getoption("--seed")
    if seed is not None:
        command += ["--seed", str(seed)]
    # glibc's malloc gives each new thread an arena of its own (up to 8 per core) and keeps
    # their fragments: with default arenas RSS climbs ~50 MB over the first minutes and then
    # stays flat (measured over 30 minutes); two arenas make RSS track the memory in use, so
    # the RSS check sees leaks, not the allocator's high-water mark
    environment = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "INSTREAM_SOAK_DIR": str(tmp_path),
        "MALLOC_ARENA_MAX": "2",
    }
    run = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=limit + 30
    )
    summary_file = tmp_path / "summary.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        request.config.stash[SUMMARY].append(format_summary(summary))
    stacks = tmp_path / "stacks.txt"
    hung = stacks.read_text() if stacks.exists() else ""
    assert run.returncode == 0, (
        run.stdout[-12000:] + run.stderr[-4000:] + ("\nthread stacks:\n" + hung if hung else "")
    )
    assert "1 passed" in run.stdout
