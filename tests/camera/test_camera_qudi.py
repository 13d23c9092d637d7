"""Camera streams in a real qudi: 512 x 512 uint16 at 100 fps to a viewer, a recorder, an ROI
streamer and another process at once, a stalled consumer losing an exact count, busy errors,
qudi-iqo-modules' camera dummy through the interfuse, and the demo config's windows."""

from __future__ import annotations

import multiprocessing
import time

import h5py
import numpy as np
import pytest

from qudi.util.instream import StreamBusyError, StreamRing
from qudi.util.instream.image_frames import frame_indices

SPAWN = multiprocessing.get_context("spawn")


def _wait_until(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.01)


def _process_events_until(qapp, condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        qapp.processEvents()
        time.sleep(0.01)


def _attached_reader(name, count, ready, queue):
    """Another process: attach to the frame stream by name and read ``count`` frames."""
    try:
        ring = StreamRing.attach(name)
        reader = ring.reader("jupyter")
        ready.set()
        frames = np.empty((count // 3, *ring.sample_shape), ring.dtype)
        indices = []
        for _ in range(3):
            reader.read_into(frames, timeout=60.0)
            indices.extend(frame_indices(frames))
        queue.put((indices, reader.lost))
        ring.close()
    except Exception as exc:  # reported to the test
        queue.put(repr(exc))


def test_four_consumers_get_every_frame_once_and_a_stalled_one_loses_an_exact_gap(
    activate, qapp, tmp_path, spawn_process
):
    viewer = activate("cam_viewer_logic")
    recorder = activate("cam_recorder_logic")
    roi_buffer = activate("cam_roi_buffer")
    stalled = activate("cam_buffer_stalled")
    camera_buffer = activate("cam_buffer_viewer")
    camera = activate("cam_fast")
    assert camera.frame_shape == (512, 512) and camera.frame_rate == 100.0

    # the stalled consumer takes its first frame as it starts (a spawn can take longer than
    # its ring: it would lose frames before this one), then reads nothing for 1.3 rings
    stalled.start_stream()
    stalled_start_frames = np.empty((1, 512, 512), np.uint16)
    stalled.read_frames_into_buffer(stalled_start_frames, 1, timeout=10.0)
    first_stalled = frame_indices(stalled_start_frames)[0]
    assert stalled.lost_frames == 0
    # the other process attaches to the running stream by the name any buffer tells
    ready, queue = SPAWN.Event(), SPAWN.Queue()
    spawn_process(_attached_reader, camera_buffer.stream_name, 150, ready, queue)
    assert ready.wait(60)
    roi_buffer.start_stream()
    path = recorder.start_recording(tmp_path / "frames.h5")
    viewer.start_viewing()

    roi_samples, roi_times = [], []
    ring_capacity = camera_buffer.frame_buffer_size  # at least this many frames are kept

    def read_roi():
        data, times = roi_buffer.read_data()
        roi_samples.append(data)
        roi_times.append(times)
        qapp.processEvents()  # the viewer logic's timer runs in its own thread; events here
        return sum(len(d) for d in roi_samples) >= 1.3 * ring_capacity

    _wait_until(read_roi, 60, "1.3 rings of frames through the ROI streamer")
    outcome = queue.get(timeout=60)
    assert not isinstance(outcome, str), outcome
    other_indices, other_lost = outcome

    # the stalled consumer, in small reads (a copy of the whole ring would always be
    # overtaken by the camera): it resumes at the ring's oldest frame, just ahead of the
    # camera, and reads on until it has caught up (a read gets fewer than it has room for),
    # then 20 more frames
    rest = np.empty((8, 512, 512), np.uint16)
    after, caught_up = [], None
    deadline = time.monotonic() + 30
    while caught_up is None or len(after) < caught_up + 20:
        assert time.monotonic() < deadline, f"stalled consumer: {len(after)} frames in 30 s"
        got = stalled.read_available_frames_into_buffer(rest)
        if got:
            after.extend(frame_indices(rest[:got]))
        if got < len(rest):
            caught_up = len(after) if caught_up is None else caught_up
            time.sleep(0.005)  # the next frame is due in 10 ms
    # it lost a gap, and every frame since its first was delivered once or counted lost: one
    # gap while it catches up from the oldest frame, or more on a machine too busy to catch up
    # at once (each a whole loss that lost_frames counts)
    assert np.all(np.diff(after) > 0)
    assert stalled.lost_frames == after[-1] - first_stalled - len(after)
    assert after[0] > first_stalled + 1  # frames were lost in the stall
    # once caught up it is a whole ring ahead of the camera: every frame, none lost
    assert np.array_equal(np.diff(after[caught_up:]), np.ones(len(after) - caught_up - 1))

    viewer.stop_viewing()
    summary = recorder.stop_recording()
    roi_buffer.stop_stream()
    stalled.stop_stream()

    # ROI streamer: the counter region's sum is the frame index, one sample per frame
    roi = np.concatenate(roi_samples)
    counter = roi[:, roi_buffer.active_channels.index("counter")]
    assert np.array_equal(np.diff(counter), np.ones(len(counter) - 1)), "ROI samples"
    assert np.allclose(np.diff(np.concatenate(roi_times)), 0.01)
    assert roi_buffer.lost_samples == 0
    # the other process
    assert other_lost == 0 and np.array_equal(np.diff(other_indices), np.ones(149))
    # the recorder
    assert summary.status == "stopped" and summary.lost == 0 and summary.frames > 100
    with h5py.File(path, "r") as file:
        indices = file["frame_indices"][:]
        assert np.array_equal(np.diff(indices), np.ones(len(indices) - 1))
        assert np.array_equal(frame_indices(file["frames"][-5:]), indices[-5:])
    # the viewer took every frame from its first to its newest (by their times) exactly once,
    # lost none, and showed at most 30 a second
    status = viewer.status
    span = round((status["frame_time"] - status["first_frame_time"]) * 100.0) + 1
    assert status["frames_lost"] == 0 and status["frames_seen"] == span > 100
    assert 0 < status["shown_rate"] <= 31


def test_a_frame_rate_change_while_others_stream_is_refused_naming_them(activate):
    viewer_buffer = activate("cam_buffer_viewer")
    roi_buffer = activate("cam_roi_buffer")
    roi = activate("cam_roi")
    viewer_buffer.start_stream()
    try:
        with pytest.raises(StreamBusyError, match="'cam_buffer_viewer'"):
            roi.configure(["counter"], "CONTINUOUS", 1024, 50.0)
        roi_buffer.configure(["counter", "spot"], "CONTINUOUS", 1024, 100.0)  # as it runs: fine
        assert activate("cam_fast").frame_rate == 100.0
    finally:
        viewer_buffer.stop_stream()
    roi.configure(["counter", "spot"], "CONTINUOUS", 1024, 50.0)
    assert activate("cam_fast").frame_rate == 50.0
    roi.configure(["counter", "spot"], "CONTINUOUS", 1024, 100.0)


def test_a_qudi_iqo_camera_becomes_a_frame_stream(activate):
    buffer = activate("iqo_camera_buffer")
    assert buffer.frame_shape == (48, 64)  # get_size() is (width, height)
    buffer.start_stream()
    try:
        frames, times = buffer.read_frames(10)
    finally:
        buffer.stop_stream()
    assert frames.shape == (10, 48, 64) and frames.dtype == np.float64
    assert np.all(np.diff(times) > 0) and len(np.unique(frames[:, 5, 5])) == 10  # new images
    assert buffer.lost_frames == 0


def test_a_bad_frame_shape_fails_activation_naming_the_option(module_manager, expected_qudi_errors):
    with pytest.raises(Exception, match="cam_bad_shape"):
        module_manager.activate_module("cam_bad_shape")
    assert any("option 'frame_shape' is [512, 3]" in e for e in expected_qudi_errors())


def test_the_demo_config_shows_the_camera_and_its_regions_next_to_the_daq(activate, qapp):
    viewer_gui = activate("camera_viewer_gui")
    roi_gui = activate("time_series_gui_roi")
    activate("time_series_gui_daq")
    viewer = activate("camera_viewer_logic")
    roi_logic = activate("time_series_logic_roi")
    daq_logic = activate("time_series_logic_daq")
    _process_events_until(
        qapp, lambda: viewer.status.get("frames_seen", 0) > 20, what="images in the viewer"
    )
    _process_events_until(
        qapp,
        lambda: roi_logic.module_state() == "locked" and daq_logic.module_state() == "locked",
        what="both time series reading",
    )
    x, curves = roi_logic.trace_data
    assert set(curves) == {"centre", "corner"}
    _process_events_until(qapp, lambda: np.any(roi_logic.trace_data[1]["corner"] > 100))
    label = viewer_gui.window.status_label
    _process_events_until(qapp, lambda: "stream" in label.text(), what="the viewer's status line")
    assert " fps · lost 0 · frames " in label.text()
    assert set(viewer_gui.window.rois) == {"centre", "corner"}
    # moving a region in the viewer moves the ROI streamer's region
    viewer_gui.window.set_roi_region("centre", (100, 120, 32, 32))
    viewer_gui.window.rois["centre"].sigRegionChangeFinished.emit(viewer_gui.window.rois["centre"])
    assert activate("camera_roi").rois["centre"] == (100, 120, 32, 32)
    assert roi_gui.window.isVisible()
    # levels: held where the user put them once "Auto levels" is off, following each image on
    window = viewer_gui.window
    window.action_auto_levels.setChecked(False)
    window.image_view.setLevels(0, 500)
    seen = viewer.status["frames_seen"]
    _process_events_until(qapp, lambda: viewer.status["frames_seen"] > seen + 20)
    qapp.processEvents()
    assert tuple(window.image_view.getLevels()) == (0, 500)
    window.action_auto_levels.setChecked(True)
    seen = viewer.status["frames_seen"]
    _process_events_until(qapp, lambda: viewer.status["frames_seen"] > seen + 20)
    _process_events_until(qapp, lambda: window.image_view.getLevels()[1] > 1000)  # the spot
