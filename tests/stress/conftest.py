"""The soak's time limit follows ``--long``; its summary is printed at the end of the run."""

from __future__ import annotations

import pytest

from tests.stress import BOUNDED_SECONDS, hard_limit

SUMMARY = pytest.StashKey[list]()


def soak_seconds(config) -> float:
    return config.getoption("--long") or BOUNDED_SECONDS


def pytest_collection_modifyitems(config, items):
    limit = hard_limit(soak_seconds(config))
    for item in items:
        if item.path.name == "test_soak.py":
            item.add_marker(pytest.mark.timeout(limit + 60))


def pytest_configure(config):
    config.stash[SUMMARY] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the soak's summary whatever ``-s`` says (the run's output is captured)."""
    for text in config.stash.get(SUMMARY, []):
        terminalreporter.section("soak summary")
        terminalreporter.write_line(text)
