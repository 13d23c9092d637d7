"""Shared test fixtures: every test must leave no thread and no shared-memory block behind."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest
from hypothesis import settings

from qudi.util.instream import list_streams

# The fuzz tests draw the same examples on every run (profile "ci", the default), so CI passes
# or fails on the code, not on the draw; HYPOTHESIS_PROFILE=explore searches anew each run
# (for hunting defects: `HYPOTHESIS_PROFILE=explore ./scripts/test.sh -k fuzz`).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _our_streams() -> set[str]:
    """Shared streams this test process made (see ``stream_name``); other processes on this
    host, another test run among them, may have their own."""
    return {name for name in list_streams() if name.startswith(f"test_{os.getpid()}_")}


def _our_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("instream-")}


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves a pump thread or a shared-memory stream behind."""
    streams_before = _our_streams()
    threads_before = _our_threads()
    yield
    deadline = time.monotonic() + 5.0
    while _our_threads() - threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    leaked_threads = _our_threads() - threads_before
    leaked_streams = _our_streams() - streams_before
    assert not leaked_threads, f"threads left running: {sorted(t.name for t in leaked_threads)}"
    assert not leaked_streams, f"shared-memory streams left behind: {sorted(leaked_streams)}"


_counter = iter(range(1_000_000))


@pytest.fixture
def stream_name() -> str:
    """A shared-memory stream name unique to this test run."""
    return f"test_{os.getpid()}_{next(_counter)}"


@pytest.fixture
def spawn_process():
    """Start a child process (spawn, daemon); whatever still runs at teardown is killed.

    A failing assertion must never leave a child behind that keeps pytest from exiting.
    """
    context = multiprocessing.get_context("spawn")
    children = []

    def start(target, *args):
        child = context.Process(target=target, args=args, daemon=True)
        child.start()
        children.append(child)
        return child

    yield start
    for child in children:
        if child.is_alive():
            child.kill()
        child.join(30)


def pytest_addoption(parser):
    """Options of the soak test in tests/stress (registered here: pytest reads them at startup)."""
    group = parser.getgroup("qudi-instream soak")
    group.addoption(
        "--long",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run the soak/chaos test (tests/stress) for SECONDS instead of its bounded CI run",
    )
    group.addoption(
        "--seed", type=int, default=None, help="seed of the soak test's randomness (default: fixed)"
    )
