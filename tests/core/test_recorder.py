"""StreamRecorder: every sample once and in order, metadata, limits, losses, faults, no leaks."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import threading
import time
from datetime import datetime

import h5py
import numpy as np
import pytest

from qudi.util.instream import (
    StreamFaultError,
    StreamHub,
    StreamInfo,
    StreamOverrunError,
    StreamRing,
    StreamStoppedError,
)
from qudi.util.instream.recorder import RecordingStatus, StreamRecorder
from qudi.util.instream.simulated import SimulatedSource

from .sources import HandFedSource

INFO = StreamInfo(("x", "y"), ("V", "A"), 1000.0, "CONSTANT")


# ----------------------------------------------------------------------------- helpers
def ramp(first: int, count: int, channels: int = 2, dtype=np.float64) -> np.ndarray:
    """Samples whose every channel holds the sample's absolute index."""
    index = np.arange(first, first + count)
    return np.repeat(index[:, None], channels, axis=1).astype(dtype)


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def open_descriptors_to(directory) -> list[str]:
    """Files under ``directory`` this process holds open (Linux: /proc/self/fd)."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor of the listing itself, closed meanwhile
            continue
        if target.startswith(str(directory)):
            paths.append(target)
    return paths


def open_hdf5_files() -> int:
    return h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)


@pytest.fixture(autouse=True)
def no_open_files(tmp_path):
    """Every file a test records is closed afterwards, for HDF5 and for the OS."""
    before = open_hdf5_files()
    yield
    assert open_hdf5_files() == before, "an HDF5 file was left open"
    assert not open_descriptors_to(tmp_path), "a file descriptor was left open"
    for path in tmp_path.glob("*.h5"):  # and others can open it, for reading and writing
        if not h5py.is_hdf5(path):
            continue
        with h5py.File(path, "r"):
            pass
        with h5py.File(path, "a"):
            pass


@pytest.fixture
def ring():
    with StreamRing(4096, (2,), info=INFO) as ring:
        yield ring


@pytest.fixture
def path(tmp_path):
    return tmp_path / "recording.h5"


def read_file(path):
    with h5py.File(path, "r") as file:
        data = file["data"][()]
        stamps = file["timestamps"][()] if "timestamps" in file else None
        return data, stamps, file["gaps"][()], dict(file.attrs)


# ------------------------------------------------------------------- what is recorded
def test_hub_stream_is_recorded_every_sample_once_in_order(path):
    source = SimulatedSource(("a", "b", "c"), sample_rate=200e3)
    with StreamHub(source, name="test_recorder_hub", shared=False) as hub:
        reader = hub.open_reader("recorder")
        reader.start()
        with StreamRecorder(reader, path) as recorder:
            wait_until(lambda: recorder.samples_written > 50_000)
            assert recorder.running and recorder.elapsed_seconds > 0
        summary = recorder.summary()
    data, stamps, gaps, attrs = read_file(path)
    assert summary.status is RecordingStatus.STOPPED and summary.error is None
    assert data.dtype == np.float64 and data.shape == (summary.samples, 3)
    expected = np.arange(len(data), dtype=np.float64)  # the first run starts at sample 0
    for channel in range(3):
        np.testing.assert_array_equal(data[:, channel], expected)
    assert stamps is None and len(gaps) == 0
    assert summary.bytes == data.nbytes == attrs["bytes_recorded"]
    assert attrs["samples_recorded"] == len(data) and attrs["samples_lost"] == 0


def test_timestamps_stay_aligned_with_their_samples(path):
    rate = 100e3
    source = SimulatedSource(("a", "b"), sample_rate=rate, sample_timing="TIMESTAMP", seed=1)
    with StreamHub(source, name="test_recorder_stamps", shared=False) as hub:
        reader = hub.open_reader("recorder")
        reader.start()
        with StreamRecorder(reader, path) as recorder:
            wait_until(lambda: recorder.samples_written > 30_000)
    data, stamps, _, attrs = read_file(path)
    assert stamps.dtype == np.float64 and len(stamps) == len(data) > 30_000
    # SimulatedSource jitters each timestamp by up to 0.2 sample periods around its index
    assert np.max(np.abs(stamps * rate - data[:, 0])) <= 0.2 + 1e-6
    assert np.all(np.diff(stamps) > 0)
    assert attrs["sample_timing"] == "TIMESTAMP"
    assert recorder.summary().bytes == len(data) * (2 * 8 + 8)


def test_attributes_describe_the_recording(path):
    with StreamRing(4096, (2,), np.float32, info=INFO) as ring:
        ring.write(ramp(0, 10, dtype=np.float32))  # before the recording: not recorded
        reader = ring.reader("disk")
        extra = {
            "oversampling_factor": 4,
            "moving_average_width": 1.5,
            "streamer": "instream_dummy",
            "recorded_channels": ["x", "y"],
            "weights": [1, 2.5],
            "settings": {"mode": "CONTINUOUS", "limits": [0, 1]},
            "note": None,
            "calibration": list(range(10_000)),  # too large for a numeric HDF5 attribute
        }
        before = datetime.now().astimezone()
        with StreamRecorder(reader, path, attributes=extra) as recorder:
            ring.write(ramp(10, 300, dtype=np.float32))
        after = datetime.now().astimezone()
    data, _, _, attrs = read_file(path)
    assert data.dtype == np.float32 and data.shape == (300, 2)
    np.testing.assert_array_equal(data, ramp(10, 300, dtype=np.float32))
    assert list(attrs["channel_names"]) == ["x", "y"]
    assert list(attrs["channel_units"]) == ["V", "A"]
    assert attrs["sample_rate"] == 1000.0 and attrs["sample_timing"] == "CONSTANT"
    assert attrs["dtype"] == "float32" and list(attrs["sample_shape"]) == [2]
    assert attrs["first_sample_index"] == 10 and attrs["samples_recorded"] == 300
    assert attrs["samples_lost"] == 0 and attrs["status"] == "stopped" and attrs["error"] == ""
    start, stop = (datetime.fromisoformat(attrs[key]) for key in ("start_time", "stop_time"))
    assert start.tzinfo is not None and stop.tzinfo is not None
    assert before.replace(microsecond=0) <= start <= stop <= after
    assert attrs["oversampling_factor"] == 4 and attrs["moving_average_width"] == 1.5
    assert attrs["streamer"] == "instream_dummy"
    assert list(attrs["recorded_channels"]) == ["x", "y"]
    np.testing.assert_array_equal(attrs["weights"], [1.0, 2.5])
    assert attrs["settings"] == '{"mode": "CONTINUOUS", "limits": [0, 1]}'
    assert attrs["note"] == "null"
    assert json.loads(attrs["calibration"]) == list(range(10_000))
    assert recorder.summary().samples == 300


def test_any_sample_shape_and_dtype_with_compression(path):
    frames = np.arange(500 * 12, dtype=np.int16).reshape(500, 4, 3)
    with StreamRing(1024, (4, 3), np.int16) as ring:
        reader = ring.reader()
        with StreamRecorder(reader, path, compression="gzip"):
            ring.write(frames)
    with h5py.File(path, "r") as file:
        assert file["data"].dtype == np.int16 and file["data"].compression == "gzip"
        np.testing.assert_array_equal(file["data"][()], frames)
        assert "timestamps" not in file
        assert file.attrs["channel_names"].size == 0 and np.isnan(file.attrs["sample_rate"])


def test_structured_event_records(path):
    event = np.dtype([("time", "<u8"), ("channel", "<u2"), ("height", "<f4")])
    records = np.zeros(300, event)
    records["time"] = np.arange(300) * 7
    records["channel"] = np.arange(300) % 4
    with StreamRing(1024, (), event) as ring:
        with StreamRecorder(ring.reader(), path):
            ring.write(records)
    data, _, _, attrs = read_file(path)
    assert data.dtype == event and attrs["sample_shape"].size == 0
    np.testing.assert_array_equal(data, records)


def test_chunks_hold_about_one_mebibyte(path, ring):
    with StreamRecorder(ring.reader(), path):
        ring.write(ramp(0, 10))
    with h5py.File(path, "r") as file:
        chunk_bytes = file["data"].chunks[0] * 2 * 8
        assert (1 << 19) < chunk_bytes <= (1 << 20) and file["data"].compression is None


# ----------------------------------------------------------------------- how it ends
def test_stops_cleanly_at_max_bytes(path, ring):
    finished = []
    reader = ring.reader()
    recorder = StreamRecorder(reader, path, max_bytes=16 * 1000 + 5, on_finished=finished.append)
    recorder.start()
    ring.write(ramp(0, 3000))
    assert recorder.wait(5.0)
    summary = recorder.stop()
    assert summary.stopped_by_size_limit and summary.status is RecordingStatus.SIZE_LIMIT
    assert summary.samples == 1000 and summary.bytes == 16_000 and summary.error is None
    assert reader.available == 2000  # nothing consumed that was not written
    data, _, _, attrs = read_file(path)
    np.testing.assert_array_equal(data, ramp(0, 1000))
    assert attrs["status"] == "size limit" and attrs["stop_time"]
    assert finished == [summary]


def test_ends_by_itself_when_the_stream_ends(path, ring):
    recorder = StreamRecorder(ring.reader(), path)
    recorder.start()
    ring.write(ramp(0, 700))
    ring.mark_stopped()
    assert recorder.wait(5.0) and not recorder.running
    assert recorder.stop().status is RecordingStatus.STREAM_ENDED
    assert read_file(path)[0].shape == (700, 2)


def test_stopping_its_hub_reader_ends_the_recording_after_the_last_sample(path):
    source = HandFedSource()
    with StreamHub(source, name="test_recorder_reader_stop", shared=False) as hub:
        reader = hub.open_reader("recorder")
        reader.start()
        recorder = StreamRecorder(reader, path)
        recorder.start()
        source.feed(1000)  # the ring holds 1024
        wait_until(lambda: reader.ring.write_index == 1000)
        reader.stop()
        assert recorder.wait(5.0)
    assert recorder.status is RecordingStatus.STREAM_ENDED
    np.testing.assert_array_equal(read_file(path)[0], ramp(0, 1000))


def test_stop_is_prompt_and_records_what_was_published_before(path, ring):
    recorder = StreamRecorder(ring.reader(), path, poll_interval=10.0)
    recorder.start()
    time.sleep(0.05)  # the thread sleeps in its 10 s poll wait now
    ring.write(ramp(0, 2000))
    began = time.monotonic()
    summary = recorder.stop()
    assert time.monotonic() - began < 5.0  # not the 10 s poll wait (a loaded machine is slow)
    assert summary.samples == 2000 and not recorder.running
    assert not [t for t in threading.enumerate() if t.name.startswith("instream-recorder")]


def test_on_finished_may_stop_the_recorder_from_its_own_thread(path, ring):
    recorder = None

    def on_finished(summary):
        on_finished.summary = recorder.stop()

    recorder = StreamRecorder(ring.reader(), path, max_bytes=160, on_finished=on_finished)
    recorder.start()
    ring.write(ramp(0, 100))
    assert recorder.wait(5.0)
    assert on_finished.summary.samples == 10


# ------------------------------------------------------------------- losses and faults
def write_past_the_reader(ring, recorder):
    """Record 300 samples, then overwrite the ring while the recorder sleeps."""
    ring.write(ramp(0, 300))
    wait_until(lambda: recorder.samples_written == 300)
    time.sleep(0.02)  # into the recorder's (long) poll wait
    ring.write(ramp(300, 5000))  # 5000 samples into 4096 slots: 904 lost


def test_strict_reader_overrun_ends_the_recording_with_the_error(path, ring):
    reader = ring.reader("strict")
    recorder = StreamRecorder(reader, path, poll_interval=0.3)
    recorder.start()
    write_past_the_reader(ring, recorder)
    assert recorder.wait(5.0)
    summary = recorder.stop()
    assert isinstance(summary.error, StreamOverrunError) and summary.error.lost == 904
    assert summary.status is RecordingStatus.FAILED and summary.lost == 904
    assert summary.samples == 300
    data, _, gaps, attrs = read_file(path)  # valid, complete up to the gap
    np.testing.assert_array_equal(data, ramp(0, 300))
    assert attrs["status"] == "failed" and attrs["samples_lost"] == 904
    assert "lost 904 samples" in attrs["error"] and attrs["stop_time"]
    assert len(gaps) == 0


def test_overwriting_reader_keeps_recording_and_marks_the_gap(path, ring):
    reader = ring.reader("lenient", allow_overwrite=True)
    recorder = StreamRecorder(reader, path, poll_interval=0.3)
    recorder.start()
    write_past_the_reader(ring, recorder)
    wait_until(lambda: recorder.samples_written == 300 + 4096)
    summary = recorder.stop()
    assert summary.error is None and summary.lost == 904
    assert summary.status is RecordingStatus.STOPPED
    data, _, gaps, attrs = read_file(path)
    np.testing.assert_array_equal(data[:300], ramp(0, 300))
    np.testing.assert_array_equal(data[300:], ramp(300 + 904, 4096))
    np.testing.assert_array_equal(gaps, [[300, 904]])
    assert attrs["samples_lost"] == 904 and attrs["status"] == "stopped"


def test_source_fault_ends_the_recording_with_the_error_and_a_valid_file(path):
    source = HandFedSource()
    with StreamHub(source, name="test_recorder_fault", shared=False) as hub:
        reader = hub.open_reader("recorder")
        reader.start()
        recorder = StreamRecorder(reader, path)
        recorder.start()
        source.feed(500)
        wait_until(lambda: recorder.samples_written == 500)
        source.fail_next_read(RuntimeError("card unplugged"))
        assert recorder.wait(5.0)
    summary = recorder.stop()
    assert isinstance(summary.error, StreamFaultError) and "card unplugged" in str(summary.error)
    data, _, _, attrs = read_file(path)
    np.testing.assert_array_equal(data, ramp(0, 500))
    assert attrs["status"] == "failed" and "card unplugged" in attrs["error"]


def test_leaving_the_with_block_raises_the_error_that_ended_the_recording(path, ring):
    with pytest.raises(StreamOverrunError, match="lost 904 samples"):
        with StreamRecorder(ring.reader(), path, poll_interval=0.3) as recorder:
            write_past_the_reader(ring, recorder)
            assert recorder.wait(5.0)
    assert read_file(path)[3]["status"] == "failed"


def test_low_disk_space_ends_the_recording_before_the_disk_is_full(path, ring):
    plenty = shutil.disk_usage(path.parent).free + (1 << 40)
    recorder = StreamRecorder(ring.reader(), path, min_free_bytes=plenty)
    recorder.start()
    assert recorder.wait(5.0)
    error = recorder.stop().error
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert "free" in str(error)
    assert read_file(path)[3]["status"] == "failed"


def _record_then_get_killed(path: str) -> None:
    """Child process: record a ramp with frequent flushes, then die without any clean-up."""
    ring = StreamRing(1 << 16, (2,))
    recorder = StreamRecorder(ring.reader(), path, flush_interval=0.1)
    recorder.start()
    written = 0
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        ring.write(ramp(written, 1000))
        written += 1000
        time.sleep(0.002)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_recording_leaves_a_readable_file(path, spawn_process):
    child = spawn_process(_record_then_get_killed, str(path))
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    data, _, _, attrs = read_file(path)
    complete = int(attrs["samples_recorded"])  # the rows flushed before the last count
    assert 1000 <= complete <= len(data)  # flushed at least once; at most ~0.1 s is missing
    np.testing.assert_array_equal(data[:complete], ramp(0, complete))
    assert attrs["status"] == "recording" and attrs["stop_time"] == ""


# ------------------------------------------------------------------------- bad input
def test_refuses_to_overwrite_an_existing_file(path, ring):
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="recording.h5.*never overwrites"):
        StreamRecorder(ring.reader(), path)
    assert path.read_bytes() == b"precious"


def test_refuses_a_file_that_appears_before_start(path, ring):
    recorder = StreamRecorder(ring.reader(), path)
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="recording.h5"):
        recorder.start()
    assert path.read_bytes() == b"precious" and not recorder.running
    assert recorder.stop().samples == 0  # harmless


def test_missing_directory_is_named(tmp_path, ring):
    with pytest.raises(FileNotFoundError, match="directory '.*nowhere' does not exist"):
        StreamRecorder(ring.reader(), tmp_path / "nowhere" / "file.h5")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"max_bytes": 0}, ValueError, "max_bytes must be positive, got 0"),
        ({"max_bytes": -5}, ValueError, "max_bytes must be positive"),
        ({"max_bytes": 8}, ValueError, "less than one sample \\(16 bytes"),
        ({"max_bytes": 1.5}, TypeError, "max_bytes must be an integer"),
        ({"max_bytes": True}, TypeError, "max_bytes must be an integer"),
        ({"compression": "zip"}, ValueError, "compression must be one of"),
        ({"poll_interval": 0}, ValueError, "poll_interval must be a positive number"),
        ({"flush_interval": float("inf")}, ValueError, "flush_interval must be a positive"),
        ({"block_seconds": -1}, ValueError, "block_seconds must be a positive"),
        ({"min_free_bytes": -1}, ValueError, "min_free_bytes must not be negative"),
        ({"attributes": {"sample_rate": 5}}, ValueError, "'sample_rate' is written by the"),
        ({"attributes": {"when": datetime.now()}}, TypeError, "'when' is not JSON-serialis"),
        ({"attributes": {3: "x"}}, TypeError, "attribute names must be non-empty strings"),
        ({"on_finished": 5}, TypeError, "on_finished must be callable"),
    ],
)
def test_bad_options_are_refused_clearly(path, ring, options, error, message):
    with pytest.raises(error, match=message):
        StreamRecorder(ring.reader(), path, **options)
    assert not path.exists()


def test_needs_a_reader(path, ring):
    with pytest.raises(TypeError, match="reader must be a RingReader or HubReader, got StreamRing"):
        StreamRecorder(ring, path)


def test_a_hub_reader_must_run_before_recording(path):
    with StreamHub(HandFedSource(), name="test_recorder_idle", shared=False) as hub:
        recorder = StreamRecorder(hub.open_reader("idle"), path)
        with pytest.raises(StreamStoppedError, match="reader 'idle'.*not running; start it"):
            recorder.start()
    assert not path.exists()


def test_a_recorder_writes_one_file(path, ring):
    recorder = StreamRecorder(ring.reader(), path)
    recorder.start()
    recorder.stop()
    with pytest.raises(RuntimeError, match="started before; a recorder writes one file"):
        recorder.start()
