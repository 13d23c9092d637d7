"""A running session is followed from another process (SWMR), then its process is SIGKILLed:
the file opens with h5py and lacks at most one flush interval of samples."""

from __future__ import annotations

import os
import signal
import time

import h5py
import numpy as np

from qudi.util.instream import StreamHub
from qudi.util.instream.session import open_session
from qudi.util.instream.session_recorder import SessionRecorder
from qudi.util.instream.simulated import SimulatedSource

RATE = 20e3  # S/s of the ramp stream
FLUSH_S = 0.5
POLL_S = 0.03  # the recorder's poll interval
PUMP_RATE = 50.0  # the hubs' polls per second


def _record_until_killed(path: str, started) -> None:
    """Child: a ramp and a timestamped slow stream through real hubs into a session."""
    fast = SimulatedSource(("ramp", "copy"), sample_rate=RATE)
    slow = SimulatedSource(("wavelength",), sample_rate=10.0, sample_timing="TIMESTAMP")
    with (
        StreamHub(fast, name="kill_fast", shared=False, max_poll_rate=PUMP_RATE) as fast_hub,
        StreamHub(slow, name="kill_slow", shared=False, max_poll_rate=PUMP_RATE) as slow_hub,
    ):
        readers = {"fast": fast_hub.open_reader("rec"), "slow": slow_hub.open_reader("rec")}
        for reader in readers.values():
            reader.start()
        started.value = time.monotonic()  # the ramp's sample 0 came just before
        recorder = SessionRecorder(readers, path, flush_interval=FLUSH_S, poll_interval=POLL_S)
        recorder.start()
        while True:  # a marker a second, until killed
            time.sleep(1.0)
            recorder.add_marker(f"second {time.monotonic() - started.value:.0f}")


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.01)


def test_follow_a_running_session_then_kill_it(tmp_path, spawn_process):
    import multiprocessing

    path = tmp_path / "killed.h5"
    started = multiprocessing.get_context("spawn").Value("d", 0.0)
    child = spawn_process(_record_until_killed, str(path), started)
    wait_for(lambda: path.exists() and started.value > 0, 30, "the child's session start")

    # follow it while it is written (SWMR), as a notebook would
    session = wait_for(lambda: _opened(path), 10, "opening the running session")
    try:
        assert session.state == "recording" and session.labels == ["fast", "slow"]
        first = wait_for(lambda: _refreshed_rows(session), 10, "a first flush")
        later = wait_for(
            lambda: (_refreshed_rows(session) or 0) > first + RATE * FLUSH_S / 2, 10, "growth"
        )
        assert later
        stream = session.streams["fast"]
        np.testing.assert_array_equal(stream.read(0, first)[0][:, 0], np.arange(first))
        wait_for(lambda: (session.refresh() or len(session.markers)) >= 1, 10, "a marker")
        # kill late in a flush interval, where the most is unflushed: just after a flush
        # showed up here, wait most of an interval (a chosen moment, not a wait for a result)
        seen = _refreshed_rows(session)
        wait_for(lambda: _refreshed_rows(session) > seen, 10, "the next flush")
        time.sleep(0.9 * FLUSH_S)
    finally:
        session.close()

    killed_at = time.monotonic()
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    assert child.exitcode == -signal.SIGKILL

    with h5py.File(path, "r", swmr=True) as file:  # plain h5py opens the killed file
        rows = int(file["streams/fast/counts"][0])
        data = file["streams/fast/data"][:rows]
        assert file["state"][()] == b"recording"
    np.testing.assert_array_equal(data[:, 0], np.arange(rows))  # complete and in order
    produced = RATE * (killed_at - started.value)  # samples the source had made at the kill
    missing_s = (produced - rows) / RATE
    # at most one flush interval, plus the latency before a sample reaches the file: one
    # pump period and one recorder poll (and 0.1 s for a loaded machine's scheduling)
    print(f"missing {missing_s:.3f} s of {FLUSH_S} s flush interval")
    assert missing_s <= FLUSH_S + 1 / PUMP_RATE + POLL_S + 0.1, f"lost {missing_s:.3f} s"
    with open_session(path) as session:
        assert session.streams["fast"].rows == rows
        slow = session.streams["slow"]
        data, stamps = slow.read(0, slow.rows)
        assert len(stamps) == slow.rows and np.all(np.diff(stamps) > 0)
        texts = [text for _, _, text in session.marker_list()]
        assert texts and all(text.startswith("second ") for text in texts)


def _opened(path):
    try:
        return open_session(path)
    except (OSError, KeyError):  # not yet in SWMR mode: the child is still creating it
        return None


def _refreshed_rows(session) -> int:
    session.refresh()
    return session.streams["fast"].rows
