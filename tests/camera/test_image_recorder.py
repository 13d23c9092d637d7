"""Image recordings: one chunk per frame, lossless compression, frame times, gaps, crash-safe."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import h5py
import numpy as np
import pytest

from qudi.util.instream.camera_source import SimulatedCameraSource
from qudi.util.instream.image_frames import SimulatedCamera, frame_indices
from qudi.util.instream.image_hub import ImageHub
from qudi.util.instream.image_recorder import ImageRecorder

SPAWN = multiprocessing.get_context("spawn")
SHAPE = (96, 128)


def _hub(name, rate=200.0, shared=True):
    camera = SimulatedCameraSource(
        SHAPE, np.uint16, seed=9, frame_rate=rate, frame_buffer_size=1024
    )  # slack on a loaded machine
    return ImageHub(camera, name=name, shared=shared)


@pytest.mark.parametrize("compression", [None, "gzip", "lzf"])
def test_frames_are_recorded_losslessly_one_chunk_each_with_their_times(
    stream_name, tmp_path, compression
):
    path = tmp_path / "frames.h5"
    with _hub(stream_name) as hub:
        reader = hub.open_reader("recorder")
        reader.start()
        options = {"shuffle": True} if compression else {}
        recorder = ImageRecorder(reader, path, compression=compression, max_frames=60, **options)
        with recorder:
            assert recorder.wait(30)
    summary = recorder.summary()
    assert (summary.frames, summary.lost, summary.status) == (60, 0, "frame limit")
    with h5py.File(path, "r") as file:
        frames = file["frames"]
        assert frames.chunks == (1, *SHAPE) and frames.compression == compression
        indices = file["frame_indices"][:]
        assert np.array_equal(frame_indices(frames[:]), indices)
        assert np.array_equal(np.diff(indices), np.ones(59))
        expected = np.empty((60, *SHAPE), np.uint16)
        SimulatedCamera(SHAPE, np.uint16, seed=9).render(expected, int(indices[0]))
        assert np.array_equal(frames[:], expected)  # bit for bit: lossless
        assert np.allclose(np.diff(file["frame_times"][:]), 1 / 200.0)
        assert file.attrs["status"] == "frame limit" and file.attrs["frames_recorded"] == 60
        assert list(file.attrs["frame_shape"]) == list(SHAPE)
        assert len(file["gaps"]) == 0


def test_a_lossy_reader_records_on_with_every_gap_counted(stream_name, tmp_path):
    path = tmp_path / "gaps.h5"
    with _hub(stream_name) as hub:
        reader = hub.open_reader("recorder", allow_overwrite=True)
        reader.start()
        recorder = ImageRecorder(reader, path, poll_interval=0.01)
        # the recorder thread is started only after the ring has overwritten unread frames
        start = reader.position
        deadline = time.monotonic() + 20
        while hub.ring.write_index - start < hub.ring.capacity + 30:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        recorder.start()
        deadline = time.monotonic() + 20
        while recorder.frames_written < 20:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        summary = recorder.stop()
    with h5py.File(path, "r") as file:
        ((row, lost),) = file["gaps"][:]
        indices = file["frame_indices"][:]
        assert row == 0 and lost == summary.lost == file.attrs["frames_lost"] > 0
        assert indices[0] == start + lost  # the gap is exactly the frames missing
        assert np.array_equal(np.diff(indices), np.ones(len(indices) - 1))


def test_a_strict_reader_ends_the_recording_at_the_first_loss(
    stream_name, tmp_path, expected_qudi_errors
):
    path = tmp_path / "strict.h5"
    with _hub(stream_name) as hub:
        reader = hub.open_reader("strict")
        reader.start()
        recorder = ImageRecorder(reader, path)
        start = reader.position
        deadline = time.monotonic() + 20
        while hub.ring.write_index - start < hub.ring.capacity + 5:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        recorder.start()
        assert recorder.wait(20)
    assert recorder.status == "failed" and "lost" in str(recorder.error)
    assert any("strict.h5' stopped: reader 'strict'" in e for e in expected_qudi_errors())
    with h5py.File(path, "r") as file:
        assert file.attrs["status"] == "failed" and "strict" in file.attrs["error"]
        assert file.attrs["frames_lost"] == recorder.frames_lost > 0


def test_bad_arguments_are_refused_naming_them(stream_name, tmp_path):
    with _hub(stream_name) as hub:
        reader = hub.open_reader("r")
        with pytest.raises(ValueError, match="compression must be one of"):
            ImageRecorder(reader, tmp_path / "a.h5", compression="zstd")
        with pytest.raises(ValueError, match="compression_level"):
            ImageRecorder(reader, tmp_path / "a.h5", compression="lzf", compression_level=3)
        with pytest.raises(ValueError, match="shuffle"):
            ImageRecorder(reader, tmp_path / "a.h5", shuffle=True)
        (tmp_path / "exists.h5").write_bytes(b"")
        with pytest.raises(FileExistsError, match="never overwrites"):
            ImageRecorder(reader, tmp_path / "exists.h5")
        assert not (tmp_path / "a.h5").exists()


def _record_until_killed(name, path, ready):
    hub = _hub(name, shared=False)  # a killed process's shared block would outlive it
    reader = hub.open_reader("recorder")
    reader.start()
    recorder = ImageRecorder(reader, path, flush_interval=0.1)
    recorder.start()
    while recorder.frames_written < 100:
        time.sleep(0.01)
    time.sleep(0.3)  # at least two flushes after 100 frames
    ready.set()
    time.sleep(60)


def test_a_killed_recording_opens_and_its_counted_frames_are_complete(
    stream_name, tmp_path, spawn_process
):
    path = tmp_path / "killed.h5"
    ready = SPAWN.Event()
    child = spawn_process(_record_until_killed, stream_name, str(path), ready)
    assert ready.wait(60)
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    with h5py.File(path, "r") as file:
        assert file.attrs["status"] == "recording"  # it never finished
        count = int(file.attrs["frames_recorded"])
        assert count >= 100
        indices = frame_indices(file["frames"][:count])
        assert np.array_equal(indices, file["frame_indices"][:count])
        assert np.array_equal(np.diff(indices), np.ones(count - 1))
