"""Markers in the core: MarkerSource (any thread writes, lookers see, a hub shares the stream
of records with every reader once, in order), the text rule, and a session recorder placing a
late marker at the sample of its time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from qudi.util.instream import StreamHub, StreamInfo, StreamRing
from qudi.util.instream.markers import (
    MARKER_DTYPE,
    MarkerSource,
    as_markers,
    checked_marker_text,
    marker_list,
)
from qudi.util.instream.session import open_session
from qudi.util.instream.session_recorder import SessionRecorder
from qudi.util.instream.timebase import RunStart

from .test_recorder import wait_until


def test_the_dtype_is_the_contract():
    assert np.dtype([("time", "<f8"), ("text", "S256")]) == MARKER_DTYPE


@pytest.mark.parametrize(
    "text, error",
    [("", ValueError), ("a" * 257, ValueError), ("a\x00b", ValueError), (b"bytes", TypeError)],
)
def test_bad_text_is_refused_naming_it_and_nothing_is_noted(text, error):
    source = MarkerSource()
    source.start_stream()
    with pytest.raises(error, match=repr(text)[:12].replace("\\", "\\\\")):
        source.add(text)
    assert source.count == 0 and source.available_samples == 0 and source.since(0) == ([], 0)


def test_256_bytes_of_utf8_fit_and_decode_back():
    text = "ü" * 128
    assert len(checked_marker_text(text)) == 256
    source = MarkerSource()
    source.start_stream()
    when, _ = source.add(text)
    out, stamps = np.empty(1, MARKER_DTYPE), np.empty(1)
    assert source.read_available_data_into_buffer(out, stamps) == 1
    assert marker_list(out) == [(when, text)] and stamps[0] == when


def test_lookers_see_the_newest_history_and_count_on():
    source = MarkerSource(history=3)
    for i in range(5):
        source.add(f"m{i}", at=float(i))
    assert source.since(0) == ([(2.0, "m2"), (3.0, "m3"), (4.0, "m4")], 5)
    assert source.since(4) == ([(4.0, "m4")], 5) and source.since(5) == ([], 5)
    with pytest.raises(ValueError, match="finite"):
        source.add("late", at=float("nan"))
    assert source.count == 5


def test_a_full_unread_queue_refuses_the_marker_and_keeps_the_rest():
    source = MarkerSource(buffer_size=2)
    source.add("before the stream")  # not queued: nobody streams yet
    source.start_stream()
    source.add("a")
    source.add("b")
    with pytest.raises(RuntimeError, match="buffer of 2 markers is full"):
        source.add("c")
    assert source.count == 3 and source.available_samples == 2
    out = np.empty(4, MARKER_DTYPE)
    assert source.read_available_data_into_buffer(out) == 2
    assert [t for _, t in marker_list(out[:2])] == ["a", "b"]


def test_a_hub_gives_every_marker_from_many_threads_to_each_reader_once_in_order():
    source = MarkerSource()
    with StreamHub(source, name="markers_hub", shared=False, max_poll_rate=500) as hub:
        assert hub.ring.dtype == MARKER_DTYPE and hub.ring.has_timestamps
        assert hub.ring.info.extra["kind"] == "markers"
        readers = [hub.open_reader(f"reader{i}") for i in range(2)]
        for reader in readers:
            reader.start()

        def write(k: int) -> None:
            for i in range(200):
                source.add(f"thread {k} marker {i}")

        threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        noted, _ = source.since(0)
        assert len(noted) == 800
        for reader in readers:
            wait_until(lambda r=reader: r.available == 800)
            out, stamps = np.empty((800, 1), MARKER_DTYPE), np.empty(800)
            assert reader.read_available_into(out, timestamps=stamps) == 800
            assert marker_list(out) == noted  # in the order they were noted
            np.testing.assert_array_equal(stamps, as_markers(out)["time"])
            assert reader.lost == 0


def test_a_late_marker_gets_the_index_of_the_sample_taken_at_its_time(tmp_path):
    rate = 1000.0
    info = StreamInfo(("apd",), ("c/s",), rate, "CONSTANT")
    with StreamRing(8192, (1,), info=info) as ring:
        assert ring.time_table is not None
        start = time.monotonic() - 2.0
        ring.time_table.write_run(RunStart(ring.run_epoch, 0, start, time.time() - 2.0))
        recorder = SessionRecorder({"apd": ring.reader("rec")}, tmp_path / "s.h5")
        recorder.start()
        for block in range(4):  # samples taken exactly at start + index / rate
            ring.write(np.arange(block * 500, (block + 1) * 500, dtype=np.float64)[:, None])
            index = (block + 1) * 500
            ring.time_table.append(index, start + (index - 1) / rate, (index - 1) / rate)
        late = recorder.add_marker("late", at=start + 0.4005)
        now = recorder.add_marker("now")
        # a marker of a time whose samples the writer has not written yet (it is behind by its
        # latency) gets the index they will have
        ahead = recorder.add_marker("ahead", at=start + 2.0105)
        recorder.stop()
    assert late.sample_index == 401  # the first sample taken at or after its time
    assert now.sample_index == 2000  # no time given: the next sample
    assert ahead.sample_index == 2011
    with open_session(tmp_path / "s.h5") as session:
        assert [(i, text) for _, i, text in session.marker_list()] == [
            (401, "late"),
            (2000, "now"),
            (2011, "ahead"),
        ]


def test_a_blocking_read_waits_for_markers_from_another_thread_and_times_out_saying_so():
    source = MarkerSource()
    source.start_stream()
    out, stamps = np.empty(2, MARKER_DTYPE), np.empty(2)
    writer = threading.Timer(0.05, lambda: [source.add("one"), source.add("two")])
    writer.start()
    source.read_data_into_buffer(out, 2, stamps, timeout=10.0)
    writer.join()
    assert [t for _, t in marker_list(out)] == ["one", "two"]
    with pytest.raises(TimeoutError, match="1 markers did not come within 0.05 s"):
        source.read_data_into_buffer(out, 1, stamps, timeout=0.05)
    source.stop_stream()
    with pytest.raises(RuntimeError, match="not running"):
        source.read_data_into_buffer(out, 1, stamps, timeout=1.0)
