"""TimeSeriesReaderLogic in a real qudi: frames, averaging, settings, recording, snapshots."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

CHANNELS = ["ramp", "sine", "counts", "noise"]


@pytest.fixture
def logic(activate, module_manager):
    logic = activate("trace_logic_a")
    logic.set_channel_settings(CHANNELS, ["ramp", "noise"])
    logic.set_trace_settings(
        data_rate=1000.0, oversampling_factor=4, trace_window_size=2.0, moving_average_width=5
    )
    yield logic
    for name in ("trace_logic_a", "trace_logic_b", "trace_logic_ts"):
        module_manager.deactivate_module(name)
    for name in ("buffer_a", "buffer_b", "timestamp_buffer"):
        module_manager.deactivate_module(name)


def wait_for_points(qtbot, logic, points, timeout=10_000):
    qtbot.waitUntil(lambda: len(logic.trace_data[0]) >= points, timeout=timeout)


def test_trace_is_the_oversampled_ramp_exactly(logic, qtbot):
    logic.start_reading()
    wait_for_points(qtbot, logic, 600)
    x, raw = logic.trace_data
    ramp = raw["ramp"]
    # each point is the mean of 4 consecutive raw samples: 1.5, 5.5, 9.5, ...
    np.testing.assert_array_equal(ramp, 1.5 + 4 * np.round((ramp - 1.5) / 4))
    assert np.all(np.diff(ramp) == 4)
    np.testing.assert_allclose(x, (ramp - 1.5) / 4 / 1000.0)
    assert logic.trace_settings == {
        "oversampling_factor": 4,
        "moving_average_width": 5,
        "trace_window_size": 2.0,
        "data_rate": 1000.0,
    }
    assert logic.sampling_rate == 4000.0


def test_moving_average_is_centred_and_raw_is_not_delayed(logic, qtbot):
    logic.start_reading()
    wait_for_points(qtbot, logic, 600)
    logic.stop_reading()
    x, raw = logic.trace_data
    x_avg, averaged = logic.averaged_trace_data
    assert set(averaged) == {"ramp", "noise"}
    # a centred average of a straight line is the line itself, at the same x
    index = np.searchsorted(x, x_avg)
    np.testing.assert_allclose(averaged["ramp"], raw["ramp"][index])
    # the newest raw point is shown; the average ends width//2 points earlier
    assert x_avg[-1] == x[-3]
    expected = np.convolve(raw["noise"], np.ones(5) / 5, mode="valid")
    np.testing.assert_allclose(averaged["noise"], expected[-len(x_avg) :])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"oversampling_factor": 0}, "oversampling_factor must be an integer >= 1"),
        ({"moving_average_width": 4}, "moving_average_width must be an odd integer"),
        ({"data_rate": 5e6}, "outside the streamer's"),
        ({"trace_window_size": 0.001}, "needs at least 5"),
    ],
)
def test_bad_settings_are_refused_and_nothing_changes(logic, qtbot, change, message):
    before = logic.trace_settings
    with qtbot.waitSignal(logic.sigTraceSettingsChanged) as emitted:
        with pytest.raises(ValueError, match=message):
            logic.set_trace_settings(change)
    assert logic.trace_settings == before
    assert emitted.args == [before]


def test_recording_while_idle_records_every_sample_once(logic, qtbot):
    assert logic.module_state() == "idle"
    logic.start_recording()  # starts reading too, and does not deadlock
    assert logic.module_state() == "locked" and logic.data_recording_active
    wait_for_points(qtbot, logic, 300)
    info = logic.recording_info
    assert info["running"] and info["path"].endswith(".h5")
    path = logic.stop_recording()
    assert not logic.data_recording_active and logic.module_state() == "locked"
    logic.stop_reading()
    with h5py.File(path, "r") as file:
        data = file["data"][...]
        attributes = dict(file.attrs)
    assert data.shape[1] == 4 and len(data) > 1000
    np.testing.assert_array_equal(np.diff(data[:, 0]), 1)  # every raw sample exactly once
    assert list(attributes["channel_names"]) == CHANNELS
    assert attributes["oversampling_factor"] == 4
    assert attributes["streamer"] == "buffer_a"
    assert attributes["samples_lost"] == 0
    assert os.path.dirname(path).endswith("trace_logic_a")


def test_settings_cannot_change_while_recording(logic, qtbot):
    logic.start_recording()
    with pytest.raises(RuntimeError, match="while recording"):
        logic.set_trace_settings(data_rate=500.0)
    assert logic.trace_settings["data_rate"] == 1000.0
    logic.stop_reading()  # also finishes the recording
    assert not logic.data_recording_active


def test_recording_stops_cleanly_at_max_raw_data_bytes(activate, logic, qtbot, caplog):
    other = activate("trace_logic_b")  # max_raw_data_bytes: 400000
    other.set_trace_settings(data_rate=10_000.0, oversampling_factor=1)
    other.start_recording()
    qtbot.waitUntil(lambda: not other.data_recording_active, timeout=20_000)
    info = other.recording_info
    assert info["bytes"] <= 400_000 and not info["running"]
    assert "max_raw_data_bytes" in caplog.text
    assert other.module_state() == "locked"  # reading goes on
    other.stop_reading()


def test_snapshot_writes_text_data_and_a_thumbnail(logic, qtbot):
    logic.start_reading()
    wait_for_points(qtbot, logic, 200)
    logic.stop_reading()
    path = logic.save_trace_snapshot("first try")
    assert path.endswith("_time_series_first_try.dat")
    assert os.path.exists(path[: -len(".dat")] + ".png")
    table = np.loadtxt(path)
    x, raw = logic.trace_data
    np.testing.assert_allclose(table[:, 0], x)
    np.testing.assert_allclose(table[:, 1], raw["ramp"])
    assert table.shape[1] == 1 + 4 + 2  # time, raw channels, averaged channels
    assert np.isnan(table[-1, -1])  # the newest points have no centred average yet
    assert logic.save_trace_snapshot("first try") != path  # never overwrites


def test_counts_become_counts_per_second(logic, qtbot):
    assert logic.channel_units["counts"] == "c/s"
    logic.start_reading()
    wait_for_points(qtbot, logic, 500)
    counts = logic.trace_data[1]["counts"]
    # the dummy's photon flux is 50 kHz: a few hundred thousand counts make the mean tight
    assert 45_000 < counts.mean() < 55_000


def test_streamer_fault_stops_logic_and_stream_and_a_restart_works(
    logic, module_manager, qtbot, expected_qudi_errors
):
    logic.start_reading()
    wait_for_points(qtbot, logic, 50)
    with qtbot.waitSignal(logic.sigStatusChanged, timeout=10_000) as status:
        module_manager["ramp_dummy"].instance.simulate_fault("clock lost")
    assert status.args == [False, False]
    assert logic.module_state() == "idle"
    assert module_manager["buffer_a"].instance.module_state() == "idle"
    errors = [m for m in expected_qudi_errors() if "clock lost" in m]
    assert len(errors) == 1  # logged once, by the logic, with the reason
    logic.start_reading()
    wait_for_points(qtbot, logic, 50)
    assert logic.module_state() == "locked"


def test_two_logics_on_two_buffers_do_not_disturb_each_other(activate, logic, qtbot):
    other = activate("trace_logic_b")
    other.set_channel_settings(CHANNELS, [])
    other.set_trace_settings(data_rate=4000.0, oversampling_factor=1)
    logic.start_reading()
    other.start_reading()
    wait_for_points(qtbot, logic, 600)
    wait_for_points(qtbot, other, 2400)
    logic.stop_reading()
    assert other.module_state() == "locked"
    wait_for_points(qtbot, other, 4000)
    assert np.all(np.diff(other.trace_data[1]["ramp"]) == 1)
    assert np.all(np.diff(logic.trace_data[1]["ramp"]) == 4)
    other.stop_reading()


def test_timestamp_streams_use_real_timestamps_on_the_x_axis(activate, logic, qtbot):
    ts_logic = activate("trace_logic_ts")
    ts_logic.set_trace_settings(data_rate=1000.0, oversampling_factor=1, trace_window_size=1.0)
    ts_logic.start_reading()
    wait_for_points(qtbot, ts_logic, 300)
    x, raw = ts_logic.trace_data
    assert np.all(np.abs(x - raw["ramp"] / 1000.0) <= 0.2 / 1000.0)
    qtbot.waitUntil(lambda: ts_logic.trace_data[0][-1] > 1.5, timeout=10_000)
    x, _ = ts_logic.trace_data
    assert x[-1] - x[0] <= 1.0 < x[-1] - x[0] + 0.01  # the window is a time span of 1 s
    ts_logic.stop_reading()


def test_stream_health_reports_rates_fill_and_loss(logic, qtbot):
    logic.start_reading()
    qtbot.wait(1500)
    health = logic.stream_health
    assert 0.8 * 4000 < health["sample_rate"] < 1.2 * 4000  # 1000 Hz x oversampling 4
    assert 10 < health["frame_rate"] < 36  # max_frame_rate: 30 (a timer of 33 ms)
    assert 0 <= health["buffer_fill"] < 1
    assert health["lost_samples"] == 0 and health["streamer_state"] == "locked"


def test_saved_settings_the_streamer_cannot_do_fall_back_to_defaults(module_manager, caplog):
    name = f"restored_logic_{len(module_manager.module_names)}"
    module_manager.add_module(
        name,
        "logic",
        {
            "module.Class": "instream.time_series_reader_logic.TimeSeriesReaderLogic",
            "connect": {"streamer": "buffer_c"},
        },
    )
    logic_module = module_manager[name]
    # status variables as a former session saved them: a rate the dummy cannot do
    from qudi.util.yaml import yaml_dump

    yaml_dump(logic_module.status_file_path, {"data_rate": 5e7, "oversampling_factor": 1})
    module_manager.activate_module(name)
    logic = logic_module.instance
    assert "saved trace settings not usable" in caplog.text
    assert logic.data_rate == 50.0  # the dummy's default rate
    module_manager.deactivate_module(name)
    module_manager.deactivate_module("buffer_c")


# ------------------------------------------- what qudi-iqo-modules' GUI expects (issue 12)
def test_before_the_first_frame_the_trace_is_a_window_of_zeros_as_in_qudi_iqo_modules(logic):
    # their TimeSeriesGui plots trace_data at activation and indexes x[0]
    x, raw = logic.trace_data
    assert len(x) == 2000 and x[0] == 0.0 and x[-1] == pytest.approx(1999 / 1000.0)
    assert set(raw) == set(CHANNELS) and all(
        np.array_equal(y, np.zeros(2000)) for y in raw.values()
    )
    x_avg, averaged = logic.averaged_trace_data
    assert set(averaged) == {"ramp", "noise"}
    np.testing.assert_array_equal(x_avg, x[2:])  # their average: the last n - width // 2 times
    assert all(np.array_equal(y, np.zeros(1998)) for y in averaged.values())


def test_no_frame_carries_an_empty_trace(logic, qtbot):
    frames = []
    logic.sigDataChanged.connect(lambda x, *_: frames.append(len(x)))
    logic.set_trace_settings(moving_average_width=3)  # a new trace, emitted before any point
    logic.start_reading()
    wait_for_points(qtbot, logic, 300)
    qtbot.wait(100)
    logic.stop_reading()
    assert frames and min(frames) > 0  # their GUI's update_data indexes x[0] of each frame
    x, raw = logic.trace_data  # a run shows its real points only: no zeros before the ramp
    assert raw["ramp"][0] == 1.5 and x[0] == 0.0


def test_a_rate_another_consumer_set_is_reported_emitted_and_saved(
    activate, logic, module_manager, qtbot
):
    from qudi.util.yaml import yaml_load

    logic.set_trace_settings(data_rate=50.0, oversampling_factor=1)  # window 1, stopped
    other = activate("trace_logic_b")  # window 2 on the same dummy
    with qtbot.waitSignal(
        logic.sigTraceSettingsChanged,
        timeout=5_000,
        check_params_cb=lambda settings: settings["data_rate"] == 1000.0,
    ):
        other.set_trace_settings(data_rate=1000.0, oversampling_factor=1)
    assert logic.trace_settings == {
        "oversampling_factor": 1,
        "moving_average_width": 5,
        "trace_window_size": 2.0,
        "data_rate": 1000.0,
    }
    logic.start_reading()
    wait_for_points(qtbot, logic, 300)
    logic.stop_reading()
    x, raw = logic.trace_data
    np.testing.assert_allclose(np.diff(x), 1 / 1000.0)  # the trace runs at the rate in force
    assert np.all(np.diff(raw["ramp"]) == 1)
    module_manager.deactivate_module("trace_logic_a")
    saved = yaml_load(module_manager["trace_logic_a"].status_file_path)
    assert saved["data_rate"] == 1000.0 and saved["oversampling_factor"] == 1


def test_a_refused_change_leaves_the_trace_and_its_time_axis_alone(activate, logic, qtbot):
    from qudi.util.instream import StreamBusyError

    other = activate("trace_logic_b")
    other.set_channel_settings(CHANNELS, [])
    other.set_trace_settings(data_rate=4000.0, oversampling_factor=1)
    logic.start_reading()
    other.start_reading()  # another consumer streams: the stream's settings are fixed now
    wait_for_points(qtbot, logic, 600)
    before = logic.trace_settings
    with qtbot.waitSignal(logic.sigTraceSettingsChanged) as emitted:
        with pytest.raises(StreamBusyError, match="trace_logic_b|buffer_b"):
            logic.set_trace_settings(data_rate=2000.0)
    x_refused, _ = logic.trace_data
    assert emitted.args == [before] and logic.trace_settings == before
    assert logic.module_state() == "locked" and len(x_refused) >= 600  # not cleared
    wait_for_points(qtbot, logic, len(x_refused) + 300)
    x, raw = logic.trace_data
    np.testing.assert_array_equal(x[: len(x_refused)], x_refused)  # the same time axis, on
    assert np.all(np.diff(raw["ramp"]) == 4)  # and no sample lost to a pause of the stream
    np.testing.assert_allclose(x, (raw["ramp"] - 1.5) / 4 / 1000.0)
    other.stop_reading()
    logic.stop_reading()


# --------------------------------------------------------------- hostile input (issue 21)
def test_a_window_too_large_for_memory_is_refused_and_nothing_changes(logic, qtbot):
    # hostile finding D5: 1e12 s passed the checks, was adopted, then raised MemoryError
    before = logic.trace_settings
    with pytest.raises(ValueError) as refused:
        logic.set_trace_settings(trace_window_size=1e12)
    message = str(refused.value)
    assert "trace_window_size 1000000000000.0 s holds" in message
    assert "option max_trace_bytes: 1073741824" in message and "use trace_window_size <=" in message
    assert logic.trace_settings == before
    logic.start_reading()
    wait_for_points(qtbot, logic, 300)
    assert logic.module_state() == "locked"


def test_saved_settings_that_do_not_fit_in_memory_fall_back_to_defaults(module_manager, caplog):
    from qudi.util.yaml import yaml_dump

    name = f"restored_logic_{len(module_manager.module_names)}"
    module_manager.add_module(
        name,
        "logic",
        {
            "module.Class": "instream.time_series_reader_logic.TimeSeriesReaderLogic",
            "options": {"max_trace_bytes": 2**62},  # passes the bound: numpy must refuse
            "connect": {"streamer": "buffer_c"},
        },
    )
    logic_module = module_manager[name]
    yaml_dump(logic_module.status_file_path, {"trace_window_size": 1e12, "data_rate": 50.0})
    module_manager.activate_module(name)  # did not activate before (MemoryError, for good)
    logic = logic_module.instance
    assert "saved trace settings not usable (Unable to allocate" in caplog.text
    assert logic.trace_window_size == 2.0 and logic.data_rate == 50.0  # 100 points at 50 Hz
    module_manager.deactivate_module(name)
    module_manager.deactivate_module("buffer_c")


def test_snapshot_tags_never_leave_the_directory_or_overwrite(logic):
    # hostile finding D9: "../../escape" twice saved escape.dat twice, the second over the first
    paths = [logic.save_trace_snapshot("../../escape", save_figure=False) for _ in range(2)]
    paths += [logic.save_trace_snapshot(tag, False) for tag in ("a\x00b", "x" * 300, "sub/dir")]
    assert len(set(paths)) == len(paths)
    directory = logic.module_default_data_dir
    for path in paths:
        assert os.path.dirname(path) == directory and os.path.getsize(path) > 0
        assert os.path.basename(path)[:8].isdigit()  # qudi's timestamp starts the name
    assert os.path.basename(paths[0]).endswith("_time_series_.._.._escape.dat")


def test_a_snapshot_button_connected_straight_to_the_slot_saves_without_a_tag(logic, qtbot):
    # qudi-iqo-modules' GUI connects QAction.triggered, which passes its checked flag (False)
    from PySide6 import QtCore, QtGui

    directory = logic.module_default_data_dir
    os.makedirs(directory, exist_ok=True)
    before = set(os.listdir(directory))
    action = QtGui.QAction("snapshot")
    action.triggered.connect(logic.save_trace_snapshot, QtCore.Qt.ConnectionType.QueuedConnection)
    action.trigger()

    def saved() -> bool:
        return any(n.endswith("_time_series.dat") for n in set(os.listdir(directory)) - before)

    qtbot.waitUntil(saved, timeout=10_000)
