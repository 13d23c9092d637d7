"""Bad camera configs and calls: errors name the key, the value and what is valid; a refused
call changes nothing; stopping the modules leaves no thread and no shared memory behind."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from qudi.util.instream import list_streams


# a logic module's failed activation raises (fysom.Canceled) inside Qt's event loop too
@pytest.mark.qt_no_exception_capture
@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("cam_bad_shape", "option 'frame_shape' is [512, 3]: use [height, width]"),
        ("cam_roi_outside", "region 'edge' is [500, 500, 64, 64]: use [row, column, height"),
        ("cam_buffer_bad_policy", "option 'allow_overwrite' is 'yes': use True or False"),
        ("cam_recorder_bad", "option 'compression' is 'zip': use one of [None, 'gzip', 'lzf']"),
    ],
)
def test_a_bad_option_fails_activation_naming_it(
    module_manager, expected_qudi_errors, module, message
):
    with pytest.raises(Exception, match=module):
        module_manager.activate_module(module)
    assert any(message in error for error in expected_qudi_errors()), expected_qudi_errors()
    assert module_manager[module].state == "deactivated"


def test_a_refused_configuration_changes_nothing(activate):
    camera = activate("cam_fast")
    buffer = activate("cam_buffer_viewer")
    before = (camera.frame_rate, camera.frame_buffer_size)
    with pytest.raises(
        ValueError, match="frame_rate must be a positive number of frames/s, got -5.0"
    ):
        buffer.configure(-5.0, 64)
    with pytest.raises(ValueError, match="frame_buffer_size"):
        camera.configure(100.0, 1)
    with pytest.raises(ValueError, match="streaming_mode must be one of"):
        camera.configure(100.0, 64, "SOMETIMES")
    assert (camera.frame_rate, camera.frame_buffer_size) == before
    with pytest.raises(ValueError, match="frame_buffer"):
        buffer.read_frames_into_buffer(np.empty((2, 512, 511), np.uint16), 2)
    roi = activate("cam_roi")
    with pytest.raises(ValueError, match="region 'spot' is \\[0, 0, 0, 5\\]"):
        roi.set_roi("spot", [0, 0, 0, 5])
    with pytest.raises(KeyError, match="no region named 'nope'"):
        roi.set_roi("nope", [0, 0, 5, 5])
    assert roi.rois["spot"] == (200, 200, 112, 112)


def test_stopped_camera_modules_leave_no_thread_and_no_shared_memory(activate, module_manager):
    buffer = activate("cam_buffer_viewer")
    iqo = activate("iqo_camera_buffer")
    name = buffer.stream_name
    buffer.start_stream()
    iqo.start_stream()
    assert name in list_streams()
    assert any(t.name.startswith("instream-camera-") for t in threading.enumerate())
    module_manager.stop_all_modules()
    assert name not in list_streams()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("instream-")]
