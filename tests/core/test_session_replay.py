"""SessionReplay: a recorded stream played back paced or lossless, gaps and markers in place."""

from __future__ import annotations

import time

import numpy as np
import pytest

from qudi.util.instream import StreamHub, StreamInfo, StreamRing
from qudi.util.instream.replay_source import ReplayStreamSource, SessionReplay, checked_speed
from qudi.util.instream.session import open_session
from qudi.util.instream.session_recorder import SessionRecorder

from .test_recorder import open_hdf5_files, ramp, wait_until

FAST = StreamInfo(("ramp", "copy"), ("", "V"), 1000.0, "CONSTANT")
SLOW = StreamInfo(("wavelength",), ("nm",), 10.0, "TIMESTAMP")


@pytest.fixture(autouse=True)
def no_open_files():
    before = open_hdf5_files()
    yield
    assert open_hdf5_files() == before, "an HDF5 file was left open"


@pytest.fixture(scope="module")
def session_path(tmp_path_factory):
    """fast: 300 samples, a gap of 904, 4096 more (ramp = stream index); slow: 40 stamped
    samples; markers at fast's samples 100 and 5300 (row 4396)."""
    path = tmp_path_factory.mktemp("replay") / "session.h5"
    with (
        StreamRing(4096, (2,), info=FAST) as fast,
        StreamRing(256, (1,), timestamps=True, info=SLOW) as slow,
    ):
        readers = {"fast": fast.reader("rec", allow_overwrite=True), "slow": slow.reader("rec")}
        recorder = SessionRecorder(readers, path, poll_interval=0.3)
        recorder.start()
        fast.write(ramp(0, 100))
        recorder.add_marker("first")
        fast.write(ramp(100, 200))
        slow.write(ramp(0, 40, 1), 5.0 + np.arange(40) / 10.0)
        wait_until(lambda: recorder.samples_written == {"fast": 300, "slow": 40})
        time.sleep(0.02)  # into the recorder's (long) poll wait
        fast.write(ramp(300, 5000))  # 904 of these are overwritten unread
        wait_until(lambda: recorder.samples_written["fast"] == 300 + 4096)
        recorder.add_marker("after the gap")
        fast.write(ramp(5300, 10))
        summary = recorder.stop()
    assert summary.lost["fast"] == 904 and summary.markers == 2
    return path


def test_speed_is_checked_with_what_is_valid():
    assert checked_speed(10) == 10.0 and checked_speed("max") == "max"
    for bad in (0, -1, float("inf"), "fast", True, None):
        with pytest.raises(ValueError, match="no replay speed"):
            checked_speed(bad)


def test_lossless_replay_hands_out_every_sample_and_timestamp_in_order(session_path):
    room = {"n": 100}
    with open_session(session_path) as session:
        expected = {label: s.read(0, s.rows) for label, s in session.streams.items()}
    for label in ("fast", "slow"):
        replay = SessionReplay(session_path, label, speed="max", room=lambda: room["n"])
        try:
            assert replay.available_samples == 0  # not started
            replay.start()
            data = np.empty((replay.rows, *replay.stream.sample_shape), replay.stream.dtype)
            stamps = np.empty(replay.rows) if replay.has_timestamps else None
            done = 0
            while not replay.finished:
                assert replay.available_samples == min(100, replay.rows - done)  # room caps it
                got = replay.read_into(data[done:], None if stamps is None else stamps[done:], 4096)
                done += got
            np.testing.assert_array_equal(data, expected[label][0])
            if stamps is not None:
                np.testing.assert_array_equal(stamps, expected[label][1])
        finally:
            replay.close()


def test_gaps_and_markers_come_back_where_they_were(session_path):
    replay = SessionReplay(session_path, speed="max")
    try:
        assert replay.label == "fast"
        replay.start()
        out = np.empty((400, 2))
        replay.read_into(out, None, 100)
        assert [text for _, _, text in replay.played_markers()] == ["first"]
        assert replay.lost_samples == 0
        replay.read_into(out, None, 200)  # rows up to the gap
        assert replay.lost_samples == 0 and len(replay.played_gaps()) == 0
        replay.read_into(out, None, 1)  # the first row after the gap
        assert out[0, 0] == 300 + 904 and replay.lost_samples == 904
        np.testing.assert_array_equal(replay.played_gaps(), [[300, 904]])
        assert len(replay.played_markers()) == 1
        replay.read_into(np.empty((4096, 2)), None, 4096 - 2)  # the row before the marker
        assert len(replay.played_markers()) == 1
        replay.read_into(out, None, 1)
        markers = replay.played_markers()
        assert [(index, text) for _, index, text in markers] == [
            (100, "first"),
            (5300, "after the gap"),
        ]
    finally:
        replay.close()


def test_paced_replay_waits_for_the_recorded_time(session_path):
    # at real time, fast's 300 rows take 0.3 s, then the gap is a silence of 0.9 s
    # (times are measured from before the start: the replay's own clock is never ahead)
    replay = SessionReplay(session_path, speed=1.0)
    try:
        before = time.monotonic()
        replay.start()
        early = replay.available_samples
        assert early <= (time.monotonic() - before) * 1000 + 1  # what is due, not everything
        wait_until(lambda: replay.available_samples >= 300, timeout=5.0)
        # then silence: the next row (after the 904 lost) is due 1.204 s after the start
        while True:
            count, elapsed = replay.available_samples, time.monotonic() - before
            if elapsed >= 1.2:
                break  # a loaded machine came back after the silence: nothing to check
            assert count == 300, f"{count} rows due {elapsed:.3f} s after the start"
            if elapsed >= 0.6:
                break
            time.sleep(0.01)
    finally:
        replay.close()


def test_stamped_replay_at_x10_follows_the_timestamps(session_path):
    replay = SessionReplay(session_path, "slow", speed=10.0)
    try:
        replay.start()  # 40 samples 0.1 s apart: 0.39 s of recording, 39 ms at x10
        assert replay.available_samples < 40
        wait_until(lambda: replay.available_samples == 40, timeout=5.0)
    finally:
        replay.close()


def test_a_hub_reads_a_replay_as_any_source(session_path):
    """ReplayStreamSource: a replay as a hub's source, without qudi."""
    with open_session(session_path) as session:
        expected = session.streams["fast"].read(0, session.streams["fast"].rows)[0]
    held = {}

    def room() -> int:  # lossless for the one strict reader, as the qudi replay does it
        ring, reader = held["hub"].ring, held["reader"]
        return ring.capacity - (ring.write_index - reader.position)

    replay = SessionReplay(session_path, speed="max", room=room)

    try:
        with StreamHub(ReplayStreamSource(replay), name="replay_hub_test", shared=False) as hub:
            held["hub"] = hub
            held["reader"] = reader = hub.open_reader("check")
            reader.start()
            out = np.empty((len(expected), 2))
            for start in range(0, len(out), 100):
                block = out[start : start + 100]
                reader.read_into(block, len(block), timeout=10.0)
            np.testing.assert_array_equal(out, expected)
            assert reader.lost == 0
    finally:
        replay.close()


def test_unknown_stream_and_channels_are_named(session_path):
    with pytest.raises(ValueError, match=r"no stream 'nope'; its streams are \['fast', 'slow'\]"):
        SessionReplay(session_path, "nope")
    replay = SessionReplay(session_path)
    try:
        with pytest.raises(ValueError, match="unknown channels"):
            replay.configure(["x"], None)
        replay.configure(["copy"], 50)
        replay.start()
        out = np.empty((50, 1))
        assert replay.read_into(out, None, 100) <= 50
    finally:
        replay.close()
