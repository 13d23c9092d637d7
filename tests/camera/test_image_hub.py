"""The camera stream core: an ImageHub on a simulated camera, read by several cursors.

Every frame carries its index (its first 8 bytes), so each test proves what a reader got:
every frame once, or an exact, contiguous gap of ``lost`` frames.
"""

from __future__ import annotations

import multiprocessing
import threading
import time

import numpy as np
import pytest

from qudi.util.instream import (
    StreamBusyError,
    StreamFaultError,
    StreamOverrunError,
    StreamRing,
    StreamStoppedError,
    StreamTimeoutError,
)
from qudi.util.instream.camera_source import CameraOverflowError, SimulatedCameraSource
from qudi.util.instream.image_frames import (
    SimulatedCamera,
    frame_indices,
    stamp_frame_indices,
)
from qudi.util.instream.image_hub import IMAGE_KIND, ImageHub

SPAWN = multiprocessing.get_context("spawn")
SHAPE = (128, 160)


def _wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def _hub(stream_name, rate=200.0, shape=SHAPE, **options):
    camera = SimulatedCameraSource(
        shape, np.uint16, seed=3, frame_rate=rate, frame_buffer_size=1024
    )  # slack on a loaded machine
    return camera, ImageHub(camera, name=stream_name, **options)


def _read(reader, count, shape=SHAPE):
    frames = np.empty((count, *shape), np.uint16)
    times = np.empty(count)
    reader.read_into(frames, timeout=10.0, timestamps=times)
    return frame_indices(frames), times


def test_frame_counter_round_trips_in_any_pixel_type():
    for dtype in (np.uint8, np.uint16, np.int32, np.float32, np.float64):
        frames = np.zeros((5, 4, 4), dtype)
        stamp_frame_indices(frames, 2**40 + 7)
        assert list(frame_indices(frames)) == [2**40 + 7 + k for k in range(5)]
    with pytest.raises(ValueError, match="cannot hold an 8-byte frame counter"):
        stamp_frame_indices(np.zeros((1, 1, 2), np.uint16), 0)


def test_simulated_images_show_a_moving_spot_over_the_offset_and_are_seeded():
    camera = SimulatedCamera((256, 256), np.uint16, seed=5)
    frames = np.empty((3, 256, 256), np.uint16)
    camera.render(frames, 50)
    again = np.empty_like(frames)
    SimulatedCamera((256, 256), np.uint16, seed=5).render(again, 50)
    assert np.array_equal(frames, again)  # same seed, same frames
    row, column = camera.spot_position(50)
    assert frames[0, row, column] > 100 + 20 + 1000  # the spot's centre (peak 2000 counts)
    background = frames[0, 200:, :50] if row < 128 else frames[0, :50, :50]
    assert 100 < background.mean() < 140  # offset 100 + 20 background photons
    assert background.std() > 3  # shot and read noise
    assert camera.spot_position(50) != camera.spot_position(60)  # it moves


def test_every_reader_gets_every_frame_once_with_its_time(stream_name):
    camera, hub = _hub(stream_name)
    with hub:
        readers = [hub.open_reader(f"r{k}") for k in range(3)]
        for reader in readers:
            reader.start()
        results = {}

        def consume(reader):
            results[reader.name] = _read(reader, 120)

        threads = [threading.Thread(target=consume, args=(r,)) for r in readers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for reader in readers:
            indices, times = results[reader.name]
            assert np.array_equal(np.diff(indices), np.ones(119)), reader.name
            assert np.allclose(np.diff(times), 1 / camera.frame_rate)
            assert reader.lost == 0
        assert hub.ring.info.extra["kind"] == IMAGE_KIND
        assert hub.ring.sample_shape == SHAPE


def test_a_stalled_reader_loses_an_exact_gap_and_holds_back_nobody(stream_name):
    _, hub = _hub(stream_name)
    with hub:
        stalled = hub.open_reader("stalled", allow_overwrite=True)
        steady = hub.open_reader("steady")
        stalled.start()
        steady.start()
        first, _ = _read(stalled, 5)
        capacity = hub.ring.capacity
        got = []
        # steady reads on while the stalled one sleeps until its frames were overwritten
        while hub.ring.write_index - stalled.position < capacity + 20:
            got.extend(_read(steady, 10)[0])
        lost_before = stalled.lost
        rest = np.empty((stalled.available, *SHAPE), np.uint16)
        count = stalled.read_available_into(rest)
        after = frame_indices(rest[:count])
        gap = after[0] - first[-1] - 1
        assert lost_before == 0 and stalled.lost == gap > 0  # lost counts the gap exactly
        assert np.array_equal(np.diff(after), np.ones(count - 1))  # no frame twice after it
        assert steady.lost == 0 and np.array_equal(np.diff(got), np.ones(len(got) - 1))


def test_a_strict_reader_raises_with_the_count_then_goes_on_after_the_gap(stream_name):
    _, hub = _hub(stream_name)
    with hub:
        strict = hub.open_reader("strict")
        strict.start()
        start = strict.position
        _wait_until(lambda: hub.ring.write_index - start > hub.ring.capacity + 5)
        frames = np.empty((4, *SHAPE), np.uint16)
        with pytest.raises(StreamOverrunError, match="strict") as raised:
            strict.read_into(frames, timeout=5.0)
        assert raised.value.lost == strict.lost > 0
        strict.read_into(frames, timeout=5.0)
        assert frame_indices(frames)[0] == start + strict.lost  # right after the gap


def test_the_camera_runs_while_any_reader_runs(stream_name):
    camera, hub = _hub(stream_name)
    with hub:
        a, b = hub.open_reader("a"), hub.open_reader("b")
        a.start()
        b.start()
        assert camera.running
        a.stop()
        assert camera.running and b.running
        _read(b, 3)
        b.stop()
        assert not camera.running and not hub.running


def test_a_change_while_readers_run_is_refused_naming_them(stream_name):
    camera, hub = _hub(stream_name)
    with hub:
        viewer = hub.open_reader("viewer")
        viewer.start()
        hub.configure(200.0, 10, "CONTINUOUS")  # what runs: a no-op
        with pytest.raises(StreamBusyError, match="'viewer'") as refused:
            hub.configure(50.0, 10, "CONTINUOUS")
        assert "frame_rate from 200.0 to 50.0" in str(refused.value)
        assert camera.frame_rate == 200.0 and viewer.running
        viewer.stop()
        old_ring = hub.ring
        hub.configure(50.0, 10, "CONTINUOUS")
        assert camera.frame_rate == 50.0 and hub.ring is not old_ring
        assert hub.ring.info.sample_rate == 50.0
        assert hub.ring.capacity < old_ring.capacity  # sized in seconds of frames


def test_a_read_that_times_out_consumes_nothing(stream_name):
    _, hub = _hub(stream_name, rate=10.0, ring_seconds=2.0)
    with hub:
        reader = hub.open_reader("r")
        reader.start()
        frames = np.empty((15, *SHAPE), np.uint16)  # 1.5 s of frames
        with pytest.raises(StreamTimeoutError):
            reader.read_into(frames, timeout=0.2)
        position = reader.position
        reader.read_into(frames, timeout=5.0)
        assert frame_indices(frames)[0] == position


def test_a_camera_failure_reaches_every_reader(stream_name):
    camera, hub = _hub(stream_name)
    with hub:
        readers = [hub.open_reader(n) for n in ("a", "b")]
        for reader in readers:
            reader.start()
        camera.simulate_fault(RuntimeError("sensor too hot"))
        for reader in readers:
            with pytest.raises(StreamFaultError, match="sensor too hot"):
                _read(reader, 100)


def test_the_simulated_camera_overflows_like_a_real_one():
    camera = SimulatedCameraSource(SHAPE, np.uint16, frame_rate=500.0, frame_buffer_size=8)
    started = time.monotonic()
    camera.start_stream()
    # nobody reads while 20 frames are due: the buffer of 8 overflows meanwhile
    _wait_until(lambda: (time.monotonic() - started) * 500.0 > 20)
    with pytest.raises(CameraOverflowError, match="buffer of 8 frames overflowed"):
        camera.available_frames  # noqa: B018 (the property raises)
    assert camera.available_frames == 8  # what it held stays readable, nothing more comes
    frames = np.empty((8, *SHAPE), np.uint16)
    camera.read_frames_into_buffer(frames, 8)
    assert list(frame_indices(frames)) == list(range(8))
    assert not camera.running


def _attach_and_read(name, count, ready, queue):
    try:
        ring = StreamRing.attach(name)
        reader = ring.reader("other process")
        ready.set()
        frames = np.empty((count, *ring.sample_shape), ring.dtype)
        times = np.empty(count)
        reader.read_into(frames, timeout=30.0, timestamps=times)
        queue.put((list(frame_indices(frames)), list(times), reader.lost, ring.is_shared))
        ring.close()
    except Exception as exc:  # reported to the test
        queue.put(repr(exc))


def test_another_process_attaches_by_name_and_reads_every_frame(stream_name, spawn_process):
    _, hub = _hub(stream_name)
    with hub:
        local = hub.open_reader("local")
        local.start()  # the camera runs for this reader
        ready, queue = SPAWN.Event(), SPAWN.Queue()
        spawn_process(_attach_and_read, stream_name, 60, ready, queue)
        assert ready.wait(60)
        outcome = queue.get(timeout=60)
        assert not isinstance(outcome, str), outcome
        indices, times, lost, shared = outcome
        assert shared and lost == 0
        assert np.array_equal(np.diff(indices), np.ones(59))
        assert np.allclose(np.diff(times), 1 / 200.0)


def test_a_finite_run_delivers_its_frames_and_ends(stream_name):
    camera, hub = _hub(stream_name)
    with hub:
        hub.configure(200.0, 30, "FINITE")
        reader = hub.open_reader("r")
        reader.start()
        indices, _ = _read(reader, 30)
        assert np.array_equal(np.diff(indices), np.ones(29))
        with pytest.raises(StreamStoppedError, match="0 of 1 requested"):
            _read(reader, 1)
        _wait_until(lambda: not hub.running)
