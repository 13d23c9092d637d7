"""A one-stream recording's markers (PendingMarkers): written by the recorder's thread at each
flush, so a SIGKILLed recording keeps them up to its last flush; a finished one has each once."""

from __future__ import annotations

import os
import signal
import threading
import time

import h5py
import numpy as np
import pytest

from qudi.util.instream import StreamRing
from qudi.util.instream.pending_markers import PendingMarkers
from qudi.util.instream.recorder import StreamRecorder
from qudi.util.instream.session import open_session

FLUSH_S = 0.2
POLL_S = 0.03  # the recorder's default poll interval


def _ramp(first: int, count: int) -> np.ndarray:
    index = np.arange(first, first + count, dtype=np.float64)
    return np.repeat(index[:, None], 2, axis=1)


def _record_markers_then_get_killed(path: str, killed_at, put) -> None:
    """Child: a ramp with a marker every 5 ms into a one-stream recording, then SIGKILL
    itself with no clean-up (noting the time and how many markers it had handed over)."""
    ring = StreamRing(1 << 16, (2,))
    markers = PendingMarkers()
    markers.keep()
    recorder = StreamRecorder(ring.reader(), path, flush_interval=FLUSH_S, markers=markers)
    recorder.start()
    written = 0
    deadline = time.monotonic() + 4 * FLUSH_S
    while time.monotonic() < deadline:
        ring.write(_ramp(written, 100))
        written += 100
        markers.put(time.monotonic(), int(ring.write_index), f"marker {markers.handed}")
        time.sleep(0.005)
    put.value = markers.handed
    killed_at.value = time.monotonic()
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_recording_keeps_its_markers_up_to_the_last_flush(tmp_path, spawn_process):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    killed_at, put = context.Value("d", 0.0), context.Value("i", 0)
    path = tmp_path / "killed.h5"
    child = spawn_process(_record_markers_then_get_killed, str(path), killed_at, put)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL

    with h5py.File(path, "r") as file:  # plain h5py opens the killed file, markers and all
        assert file.attrs["status"] == "recording"
        complete = int(file.attrs["samples_recorded"])
        rows = file["markers"][...]
    texts = [bytes(text).decode() for text in rows["text"]]
    assert 1 <= len(texts) <= put.value
    assert texts == [f"marker {i}" for i in range(len(texts))]  # in order, none twice or torn
    assert np.all(np.diff(rows["time"]) > 0) and np.all(np.diff(rows["sample_index"]) == 100)
    assert rows["sample_index"][0] == 100  # the ring's index after the first write
    lost_s = killed_at.value - float(rows["time"][-1])
    # at most one flush interval, plus a poll of the recorder's thread (and 0.2 s for a
    # loaded machine's scheduling)
    print(f"markers of the last {lost_s:.3f} s lost, flush interval {FLUSH_S} s")
    assert lost_s <= FLUSH_S + POLL_S + 0.2, f"lost {lost_s:.3f} s of markers"
    assert complete >= 100  # the samples were flushed with them


@pytest.mark.parametrize("flush_interval", [0.02, 60.0], ids=["flushes", "finish only"])
def test_every_marker_once_from_several_threads(tmp_path, flush_interval):
    """Markers put while the thread writes (many flushes) or all left for the finish."""
    ring = StreamRing(1 << 14, (2,))
    markers = PendingMarkers()
    markers.keep()
    path = tmp_path / "rec.h5"
    recorder = StreamRecorder(ring.reader(), path, flush_interval=flush_interval, markers=markers)

    def writer(name: str) -> None:
        for i in range(200):
            markers.put(time.monotonic(), i, f"{name} {i}")
            if i % 20 == 0:
                time.sleep(0.002)

    finish_only = flush_interval >= 1
    if finish_only:  # the recorder's first flush comes as it starts, and writes this one
        markers.put(time.monotonic(), 0, "first")
    recorder.start()
    try:
        if finish_only:  # wait for that flush: the next is not due for a minute
            deadline = time.monotonic() + 10
            while markers.written < 1:
                assert time.monotonic() < deadline, "the first flush never came"
                time.sleep(0.005)
        threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(3)]
        for thread in threads:
            thread.start()
        ring.write(_ramp(0, 1000))
        for thread in threads:
            thread.join(10)
        first = int(finish_only)
        if finish_only:  # no flush due yet: all wait for the finish
            assert markers.written == first
        else:  # the thread's flushes write them while it records
            deadline = time.monotonic() + 10
            while markers.written < 600:
                assert time.monotonic() < deadline, f"only {markers.written} markers flushed"
                time.sleep(0.005)
        markers.put(time.monotonic(), 200, "last")  # after the last flush, before the stop
        summary = recorder.stop()
    finally:
        recorder.stop()  # harmless after the first stop; a failed assertion leaves no thread
    assert summary.error is None and summary.samples == 1000
    with pytest.raises(RuntimeError, match="has ended"):  # nothing after the last write
        markers.put(time.monotonic(), 0, "late")
    assert markers.handed == markers.written == first + 601
    with open_session(path) as recorded:
        marks = recorded.marker_list()
    texts = [text for _, _, text in marks]
    expected = ["first"] * first + [f"t{n} {i}" for n in range(3) for i in range(200)] + ["last"]
    assert sorted(texts) == sorted(expected) and texts[-1] == "last"
    for n in range(3):  # each thread's markers in the order it put them
        mine = [(index, text) for _, index, text in marks if text.startswith(f"t{n} ")]
        assert mine == [(i, f"t{n} {i}") for i in range(200)]


def test_markers_not_kept_make_no_table_and_bad_text_is_refused(tmp_path):
    ring = StreamRing(1 << 12, (2,))
    markers = PendingMarkers()
    with pytest.raises(RuntimeError, match="keeps no markers"):
        markers.put(1.0, 0, "not kept")
    path = tmp_path / "plain.h5"
    with StreamRecorder(ring.reader(), path, flush_interval=0.02, markers=markers) as recorder:
        ring.write(_ramp(0, 10))
        time.sleep(0.05)  # a chosen moment: several flushes pass, none may add a table
    assert recorder.summary().samples == 10
    with h5py.File(path, "r") as file:
        assert "markers" not in file

    kept = PendingMarkers()
    kept.keep()
    for bad, error in [("", ValueError), ("x" * 257, ValueError), ("a\x00b", ValueError)]:
        with pytest.raises(error, match="1 to 256 bytes"):
            kept.put(1.0, 0, bad)
    with pytest.raises(TypeError, match="must be a str"):
        kept.put(1.0, 0, b"bytes")  # type: ignore[arg-type]
    assert kept.handed == 0  # nothing queued
    path = tmp_path / "kept.h5"
    with StreamRecorder(ring.reader(), path, markers=kept):
        pass
    with h5py.File(path, "r") as file:
        assert file["markers"].shape == (0,)  # kept: the table is there, empty


def test_markers_option_of_the_wrong_type_is_refused(tmp_path):
    ring = StreamRing(1 << 12, (2,))
    path = tmp_path / "never.h5"
    with pytest.raises(TypeError, match="markers must be a PendingMarkers"):
        StreamRecorder(ring.reader(), path, markers=[])  # type: ignore[arg-type]
    assert not path.exists()
