"""SessionRecorder and open_session: several streams in one file, gaps, markers, clean ends."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest

from qudi.util.instream import StreamInfo, StreamOverrunError, StreamRing
from qudi.util.instream.recorder import RecordingStatus, StreamRecorder
from qudi.util.instream.session import open_session, stream_indices
from qudi.util.instream.session_recorder import SessionRecorder

from .test_recorder import open_descriptors_to, open_hdf5_files, ramp, wait_until

FAST = StreamInfo(("apd", "ramp"), ("c/s", ""), 1000.0, "CONSTANT")
STAMPED = StreamInfo(("x", "y"), ("V", "A"), 100.0, "TIMESTAMP")
SLOW = StreamInfo(("wavelength",), ("nm",), 10.0, "TIMESTAMP")


@pytest.fixture(autouse=True)
def no_open_files(tmp_path):
    before = open_hdf5_files()
    yield
    assert open_hdf5_files() == before, "an HDF5 file was left open"
    assert not open_descriptors_to(tmp_path), "a file descriptor was left open"


@pytest.fixture
def rings():
    with (
        StreamRing(4096, (2,), info=FAST) as fast,
        StreamRing(4096, (2,), np.float32, timestamps=True, info=STAMPED) as stamped,
        StreamRing(1024, (1,), np.int64, timestamps=True, info=SLOW) as slow,
    ):
        yield fast, stamped, slow


@pytest.fixture
def path(tmp_path):
    return tmp_path / "session.h5"


def stamps_of(first: int, count: int, rate: float) -> np.ndarray:
    return 1000.0 + np.arange(first, first + count) / rate + 1e-5 * np.sin(np.arange(count))


def test_three_streams_every_sample_timestamp_and_marker(path, rings):
    fast, stamped, slow = rings
    readers = {"fast": fast.reader("rec"), "stamped": stamped.reader("rec"), "slow": slow.reader()}
    recorder = SessionRecorder(readers, path, attributes={"operator": "me"}, flush_interval=0.05)
    recorder.start()
    markers, written = [], []
    for k in range(10):
        fast.write(ramp(k * 400, 400))
        written.append(stamps_of(k * 40, 40, 100.0))
        stamped.write(ramp(k * 40, 40, dtype=np.float32), written[-1])
        slow.write(ramp(k * 4, 4, 1, np.int64), stamps_of(k * 4, 4, 10.0))
        if k in (3, 7):
            markers.append(recorder.add_marker(f"step {k} µ"))
    wait_until(lambda: recorder.samples_written == {"fast": 4000, "stamped": 400, "slow": 40})
    summary = recorder.stop()
    assert summary.status is RecordingStatus.STOPPED and summary.error is None
    assert summary.samples == {"fast": 4000, "stamped": 400, "slow": 40}
    assert summary.markers == 2 and summary.lost == {"fast": 0, "stamped": 0, "slow": 0}
    assert [m.sample_index for m in markers] == [1600, 3200]

    with open_session(path) as session:
        assert session.labels == ["fast", "stamped", "slow"] and session.state == "stopped"
        assert session.attributes["operator"] == "me"
        f, s, w = (session.streams[label] for label in session.labels)
        assert f.channel_names == ("apd", "ramp") and f.channel_units == ("c/s", "")
        assert (f.sample_rate, f.sample_timing, f.timestamps) == (1000.0, "CONSTANT", None)
        assert s.dtype == np.float32 and w.dtype == np.int64 and w.sample_shape == (1,)
        np.testing.assert_array_equal(f.read(0, f.rows)[0], ramp(0, 4000))
        data, stamps = s.read(0, s.rows)
        np.testing.assert_array_equal(data, ramp(0, 400, dtype=np.float32))
        np.testing.assert_array_equal(stamps, np.concatenate(written))
        data, stamps = w.read(0, w.rows)
        np.testing.assert_array_equal(data, ramp(0, 40, 1, np.int64))
        assert stamps.dtype == np.float64 and len(stamps) == 40
        assert [(i, t) for _, i, t in session.marker_list()] == [
            (1600, "step 3 µ"),
            (3200, "step 7 µ"),
        ]
        assert session.marker_list()[0][0] == markers[0].time
        with pytest.raises(ValueError, match="complete rows"):
            f.read(0, 4001)
    with h5py.File(path, "r") as plain:  # a finished session needs no SWMR to be read
        assert plain.attrs["status"] == "stopped" and plain.attrs["stop_time"]


def test_an_overwriting_reader_leaves_a_gap_row_with_its_stream_indices(path, rings):
    fast, stamped, slow = rings
    readers = {"fast": fast.reader("lenient", allow_overwrite=True), "slow": slow.reader()}
    recorder = SessionRecorder(readers, path, poll_interval=0.3)
    recorder.start()
    fast.write(ramp(0, 300))
    wait_until(lambda: recorder.samples_written["fast"] == 300)
    time.sleep(0.02)  # into the recorder's (long) poll wait
    fast.write(ramp(300, 5000))  # 5000 samples into 4096 slots: 904 lost
    summary = recorder.stop()
    assert summary.lost["fast"] == 904 and summary.samples["fast"] == 300 + 4096
    with open_session(path) as session:
        stream = session.streams["fast"]
        np.testing.assert_array_equal(stream.gaps, [[300, 904]])
        assert stream.samples_lost == 904
        data, _ = stream.read(0, stream.rows)
        np.testing.assert_array_equal(stream.sample_indices(), data[:, 0].astype(np.int64))


def test_stream_indices_count_every_gap_before_a_row():
    gaps = np.array([[0, 5], [3, 2], [3, 1], [7, 10]])
    np.testing.assert_array_equal(
        stream_indices(np.arange(9), gaps, 100), [105, 106, 107, 111, 112, 113, 114, 125, 126]
    )


def test_a_strict_reader_overrun_fails_the_session_with_a_valid_file(path, rings):
    fast, stamped, slow = rings
    recorder = SessionRecorder(
        {"fast": fast.reader("strict"), "slow": slow.reader()}, path, poll_interval=0.3
    )
    recorder.start()
    fast.write(ramp(0, 300))
    wait_until(lambda: recorder.samples_written["fast"] == 300)
    time.sleep(0.02)
    fast.write(ramp(300, 5000))
    assert recorder.wait(5.0)
    summary = recorder.stop()
    assert (
        isinstance(summary.error, StreamOverrunError) and summary.status is RecordingStatus.FAILED
    )
    with pytest.raises(RuntimeError, match="failed"):
        recorder.add_marker("too late")
    with open_session(path) as session:
        assert session.state == "failed" and "lost 904" in session.attributes["error"]
        np.testing.assert_array_equal(session.streams["fast"].read(0, 300)[0], ramp(0, 300))


def test_ends_by_itself_when_every_stream_has_ended(path, rings):
    fast, _, slow = rings
    recorder = SessionRecorder({"fast": fast.reader(), "slow": slow.reader()}, path)
    recorder.start()
    fast.write(ramp(0, 10))
    fast.mark_stopped()
    wait_until(lambda: recorder.samples_written["fast"] == 10)
    assert recorder.running  # one stream still runs
    slow.write(ramp(0, 3, 1, np.int64), stamps_of(0, 3, 10.0))
    slow.mark_stopped()
    assert recorder.wait(5.0)
    assert recorder.stop().status is RecordingStatus.STREAM_ENDED
    assert recorder.samples_written == {"fast": 10, "slow": 3}


def test_stops_at_max_bytes_summed_over_the_streams(path, rings):
    fast, stamped, _ = rings
    recorder = SessionRecorder(
        {"fast": fast.reader(), "stamped": stamped.reader()}, path, max_bytes=16_000
    )
    recorder.start()
    fast.write(ramp(0, 2000))  # 16 bytes a sample: 32 000 bytes offered
    assert recorder.wait(5.0)
    summary = recorder.stop()
    assert summary.status is RecordingStatus.SIZE_LIMIT and summary.bytes <= 16_000
    assert summary.samples["fast"] == 1000


def test_a_one_stream_recording_opens_as_a_session(tmp_path, rings):
    fast = rings[0]
    path = tmp_path / "single.h5"
    with StreamRecorder(fast.reader(), path, attributes={"streamer": "dummy"}) as recorder:
        fast.write(ramp(0, 50))
        wait_until(lambda: recorder.samples_written == 50)
    with open_session(path) as session:
        assert session.labels == ["dummy"] and session.state == "stopped"
        stream = session.primary
        assert stream.rows == 50 and len(stream.gaps) == 0 and len(session.markers) == 0
        np.testing.assert_array_equal(stream.read(0, 50)[0], ramp(0, 50))


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "text, error, message",
    [
        (5, TypeError, "must be a str"),
        ("", ValueError, "1 to 256 bytes"),
        ("é" * 200, ValueError, "got 400 bytes"),
        ("a\x00b", ValueError, "NUL"),
    ],
)
def test_bad_marker_text_is_refused_and_nothing_is_recorded(path, rings, text, error, message):
    with SessionRecorder({"fast": rings[0].reader()}, path) as recorder:
        with pytest.raises(error, match=message):
            recorder.add_marker(text)
    with open_session(path) as session:
        assert len(session.markers) == 0


@pytest.mark.parametrize(
    "readers, error, message",
    [
        ({}, TypeError, "mapping of labels"),
        ({"a/b": None}, ValueError, "without '/'"),
        ({"a": "reader"}, TypeError, "stream 'a' must be a RingReader"),
    ],
)
def test_bad_streams_are_refused_before_any_file_exists(path, readers, error, message):
    with pytest.raises(error, match=message):
        SessionRecorder(readers, path)
    assert not path.exists()


def test_options_are_checked_with_their_names(path, rings):
    reader = rings[0].reader()
    with pytest.raises(ValueError, match="flush_interval"):
        SessionRecorder({"a": reader}, path, flush_interval=0)
    with pytest.raises(ValueError, match="compression"):
        SessionRecorder({"a": reader}, path, compression="zip")
    with pytest.raises(ValueError, match="one sample of each"):
        SessionRecorder({"a": reader}, path, max_bytes=3)
    path.touch()
    with pytest.raises(FileExistsError, match="never overwrites"):
        SessionRecorder({"a": reader}, path)


def test_not_a_session_is_named(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file["x"] = 1
    with pytest.raises(ValueError, match="no qudi-instream session"):
        open_session(other)
    with pytest.raises(FileNotFoundError):
        open_session(tmp_path / "missing.h5")


def test_a_stream_of_raw_codes_keeps_its_polynomials_beside_its_data(path):
    from qudi.util.instream.raw_scaling import RAW_SCALING_KEY

    extra = {RAW_SCALING_KEY: {"unit": "V", "coefficients": {"ai0": [0.5, 1e-3]}}}
    info = StreamInfo(("ai0",), ("V",), 1000.0, "CONSTANT", extra)
    with StreamRing(1024, (1,), np.int16, info=info) as raw:
        with SessionRecorder({"card": raw.reader()}, path) as recorder:
            raw.write(np.arange(10, dtype=np.int16)[:, None])
            wait_until(lambda: recorder.samples_written["card"] == 10)
    with open_session(path) as session:
        attrs = session.streams["card"].data.attrs
        np.testing.assert_array_equal(attrs["scaling_coefficients"], [[0.5, 1e-3]])
        assert attrs["scaling_unit"] == "V"
