"""A session of three streams, recorded, then replayed at x10 by RecordingReplayStreamer into
two buffers and a logic that records it again: every sample and timestamp as in the file,
gaps and markers where they were.

The session is recorded for ``QUDI_INSTREAM_SESSION_SECONDS`` (3 s by default, to keep CI
short; the issue's 60 s run: ``QUDI_INSTREAM_SESSION_SECONDS=60 pytest tests/qudi/test_replay.py``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from tests.qudi.conftest import qudi_with_modules

from qudi.util.instream import StreamHub, StreamInfo, StreamRing
from qudi.util.instream.session import open_session
from qudi.util.instream.session_recorder import SessionRecorder
from qudi.util.instream.simulated import SimulatedSource

RECORD_S = float(os.environ.get("QUDI_INSTREAM_SESSION_SECONDS", "3"))
SPEED = 10.0
WAVEMETER = StreamInfo(("wavelength",), ("nm",), 10.0, "TIMESTAMP")


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def session_path(tmp_path_factory) -> Path:
    """counter (1 kS/s, CONSTANT, ramp = index) and analog (100 S/s, TIMESTAMP) from simulated
    cards through real hubs, a 10 S/s 'wavemeter' fed by hand with one gap of 14 samples;
    a marker at the start and one halfway."""
    path = tmp_path_factory.mktemp("replay_session") / "session.h5"
    counter = SimulatedSource(("ramp", "apd"), ("ramp", "counts"), channel_units=("", "c/s"))
    analog = SimulatedSource(("ramp", "sine"), sample_rate=100.0, sample_timing="TIMESTAMP")
    with (
        StreamHub(counter, name="replay_rec_counter", shared=False) as counter_hub,
        StreamHub(analog, name="replay_rec_analog", shared=False) as analog_hub,
        StreamRing(16, (1,), timestamps=True, info=WAVEMETER) as wavemeter,
    ):
        readers = {
            "counter": counter_hub.open_reader("rec"),
            "analog": analog_hub.open_reader("rec"),
            "wavemeter": wavemeter.reader("rec", allow_overwrite=True),
        }
        readers["counter"].start()
        readers["analog"].start()
        recorder = SessionRecorder(readers, path, poll_interval=0.3)
        recorder.start()
        recorder.add_marker("start")
        stamps = np.arange(35) * 0.1
        wavemeter.write(np.arange(5.0)[:, None], stamps[:5])
        _wait(lambda: recorder.samples_written["wavemeter"] == 5, 5, "the first wavemeter rows")
        time.sleep(0.02)  # into the recorder's (long) poll wait
        wavemeter.write(np.arange(5.0, 35.0)[:, None], stamps[5:])  # 14 overwritten unread
        _wait(lambda: recorder.samples_written["wavemeter"] == 21, 5, "the last wavemeter rows")
        time.sleep(RECORD_S / 2)  # the session's length: a chosen duration, not a wait
        recorder.add_marker("halfway")
        time.sleep(RECORD_S / 2)
        summary = recorder.stop()
    assert summary.error is None and summary.lost["wavemeter"] == 14
    assert summary.lost["counter"] == summary.lost["analog"] == 0
    return path


@pytest.fixture(scope="module")
def original(session_path):
    with open_session(session_path) as session:
        streams = {label: s.read(0, s.rows) for label, s in session.streams.items()}
        gaps = {label: s.gaps.tolist() for label, s in session.streams.items()}
        return streams, gaps, session.marker_list()


@pytest.fixture(scope="module")
def replay_qudi(qudi, qudi_home, tmp_path_factory, session_path):
    config = tmp_path_factory.mktemp("replay_cfg") / "replay.cfg"
    replays = "".join(
        f"""
    replay_{label}:
        module.Class: 'instream.replay.RecordingReplayStreamer'
        options:
            file_path: '{session_path}'
            stream: '{label}'
            speed: {SPEED}
"""
        for label in ("counter", "analog", "wavemeter")
    )
    replays += f"""
    replay_direct:
        module.Class: 'instream.replay.RecordingReplayStreamer'
        options:
            file_path: '{session_path}'
            stream: 'analog'
            speed: {SPEED}
    replay_max:
        module.Class: 'instream.replay.RecordingReplayStreamer'
        options:
            file_path: '{session_path}'
            speed: 'max'
"""
    buffers = "".join(
        f"""
    {name}:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        connect:
            streamer: '{streamer}'
"""
        for name, streamer in (
            ("replay_buffer1", "replay_counter"),
            ("replay_buffer2", "replay_counter"),
            ("replay_analog_buffer", "replay_analog"),
            ("replay_wavemeter_buffer", "replay_wavemeter"),
            ("replay_slow_buffer", "replay_max"),
        )
    )
    bad = f"""
    replay_bad_path:
        module.Class: 'instream.replay.RecordingReplayStreamer'
        options:
            file_path: '{session_path}.missing'
    replay_bad_speed:
        module.Class: 'instream.replay.RecordingReplayStreamer'
        options:
            file_path: '{session_path}'
            speed: 0
    replay_bad_stream:
        module.Class: 'instream.replay.RecordingReplayStreamer'
        options:
            file_path: '{session_path}'
            stream: 'camera'
"""
    bad_logic = """
    replay_logic_direct:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        options:
            recording_format: 'session'
        connect:
            streamer: 'replay_direct'

    replay_logic_bad_format:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        options:
            recording_format: 'zip'
        connect:
            streamer: 'replay_buffer2'
    replay_logic_streams_without_session:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        options:
            recording_streams: ['replay_counter']
        connect:
            streamer: 'replay_buffer2'
    replay_logic_single:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'replay_buffer2'
"""
    config.write_text(
        f"""global:
    startup_modules: []
hardware:{replays}{buffers}{bad}
logic:
    replay_logic:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        options:
            recording_format: 'session'
            recording_streams: ['replay_counter', 'replay_wavemeter']
        connect:
            streamer: 'replay_analog_buffer'
{bad_logic}"""
    )
    with qudi_with_modules(None, qudi_home, config) as app:
        yield app


def drain(buffer, channels: int, stamped: bool, out: list, stamps_out: list) -> None:
    data = np.empty((4096, channels))
    stamps = np.empty(4096) if stamped else None
    got = buffer.read_available_data_into_buffer(data, stamps)
    if got:
        out.append(data[:got].copy())
        if stamped:
            stamps_out.append(stamps[:got].copy())


def test_replayed_at_x10_into_two_buffers_and_a_logic_as_recorded(
    replay_qudi, activate, original, qtbot
):
    streams, gaps, markers = original
    buffer1, buffer2 = activate("replay_buffer1"), activate("replay_buffer2")
    wave_buffer = activate("replay_wavemeter_buffer")
    logic = activate("replay_logic")
    counter, wavemeter = activate("replay_counter"), activate("replay_wavemeter")
    assert counter.active_channels == ["ramp", "apd"] and counter.sample_rate == 1000.0
    assert counter.constraints.channel_units == {"ramp": "", "apd": "c/s"}
    assert wavemeter.constraints.sample_timing.name == "TIMESTAMP"
    logic.set_trace_settings(data_rate=100.0, oversampling_factor=1)

    # the hub sizes its ring by the recorded rate: at x10 a ring of 10 times the seconds
    buffer1.configure(["ramp", "apd"], "CONTINUOUS", 1 << 16, 1000.0)
    got = {"b1": ([], []), "b2": ([], []), "wave": ([], [])}
    # (how long the joins took, measured from before each replay's start: its rows due by
    # then bound where the joiner may begin, however slow a loaded machine made them)
    before_counter = time.monotonic()
    buffer1.start_stream()
    buffer2.start_stream()
    buffer2_joined_by = time.monotonic() - before_counter
    wave_buffer.start_stream()
    before_analog = time.monotonic()
    logic.start_recording()  # starts reading the analog replay, records all three
    recording_joined_by = time.monotonic() - before_analog
    assert logic.recording_info["running"]
    noted = logic.add_marker("replayed")  # as from Jupyter: plain values back
    assert noted["text"] == "replayed" and isinstance(noted["sample_index"], int)
    with pytest.raises(ValueError, match="NUL"):
        logic.add_marker("bad\x00text")
    replays = [counter, wavemeter, activate("replay_analog")]

    def drained() -> bool:
        drain(buffer1, 2, False, *got["b1"])
        drain(buffer2, 2, False, *got["b2"])
        drain(wave_buffer, 1, True, *got["wave"])
        return all(r.replay_finished for r in replays) and not any(
            b.available_samples for b in (buffer1, buffer2, wave_buffer)
        )

    qtbot.waitUntil(drained, timeout=int(30_000 + 1000 * RECORD_S / SPEED * 3))
    # the recording joined the analog stream just after the logic started it: follow the
    # running file (SWMR) for its first sample, then wait for the last
    with open_session(logic.recording_info["path"]) as running:
        analog_first = running.streams["replay_analog_buffer"].first_sample_index
    rows = len(streams["analog"][0]) - analog_first
    qtbot.waitUntil(lambda: logic.recording_info["samples"] >= rows, timeout=10_000)
    path = logic.stop_recording()
    assert len(logic.trace_data[0]) > 0  # the logic's trace got the replay too

    # every sample of each buffer, in order, as in the file: buffer 1 started the replay and
    # has it from the first sample, buffer 2 joined the running stream a moment later
    counter_data = streams["counter"][0]
    counter_due = int(buffer2_joined_by * counter.sample_rate * SPEED) + 1
    for name, joined in (("b1", False), ("b2", True)):
        data = np.concatenate(got[name][0])
        first = int(data[0, 0])  # the ramp channel is the sample's index
        assert first <= counter_due if joined else first == 0
        np.testing.assert_array_equal(data, counter_data[first:])
    data, stamps = np.concatenate(got["wave"][0]), np.concatenate(got["wave"][1])
    np.testing.assert_array_equal(data, streams["wavemeter"][0])
    np.testing.assert_array_equal(stamps, streams["wavemeter"][1])

    # the logic's own session file: each stream from the sample the recording joined it at
    # (its first_sample_index), every sample and timestamp as in the original file
    with open_session(path) as again:
        assert again.labels == ["replay_analog_buffer", "replay_counter", "replay_wavemeter"]
        labels = ("replay_analog_buffer", "replay_counter", "replay_wavemeter")
        final = again.streams["replay_analog_buffer"]
        analog_stamps = streams["analog"][1]
        analog_due = int(
            np.searchsorted(analog_stamps - analog_stamps[0], recording_joined_by * SPEED, "right")
        )
        assert final.first_sample_index == analog_first <= analog_due
        for label, name in zip(labels, ("analog", "counter", "wavemeter"), strict=True):
            stream = again.streams[label]
            data, stamps = stream.read(0, stream.rows)
            offset = stream.first_sample_index
            np.testing.assert_array_equal(data, streams[name][0][offset : offset + len(data)])
            if stamps is not None:
                np.testing.assert_array_equal(stamps, streams[name][1][offset : offset + len(data)])

        assert again.marker_list() == [(noted["time"], noted["sample_index"], "replayed")]
        assert logic.recording_info["markers"] == 1
        assert (
            logic.recording_info["streams"]["replay_counter"]
            == again.streams["replay_counter"].rows
        )

    # gaps and markers where they were
    assert gaps["wavemeter"] == [[5, 14]] and wavemeter.played_gaps() == [(5, 14)]
    assert wavemeter.lost_samples == 14 and counter.lost_samples == 0
    assert counter.played_markers() == markers and [m[2] for m in markers] == ["start", "halfway"]
    for buffer in (buffer1, buffer2, wave_buffer):
        buffer.stop_stream()


@pytest.mark.parametrize(
    "module, message",
    [
        ("replay_bad_path", "option 'file_path'"),
        ("replay_bad_speed", "no replay speed: use a number > 0"),
        (
            "replay_bad_stream",
            "no stream 'camera'; its streams are ['counter', 'analog', 'wavemeter']",
        ),
    ],
)
def test_bad_options_fail_activation_naming_the_option(
    replay_qudi, activate, expected_qudi_errors, module, message
):
    with pytest.raises(RuntimeError):
        activate(module)
    assert any(message in error for error in expected_qudi_errors())


def test_configure_accepts_a_channel_subset_and_only_the_recorded_rate(replay_qudi, activate):
    counter = activate("replay_counter")
    with pytest.raises(ValueError, match="sample_rate"):
        counter.configure(["apd"], "CONTINUOUS", 4096, 500.0)
    assert counter.active_channels == ["ramp", "apd"]  # a refused call changes nothing
    counter.configure(["apd"], "FINITE", 200, 1000.0)
    assert counter.active_channels == ["apd"] and counter.channel_buffer_size == 200
    counter.start_stream()
    try:
        data = np.empty((200, 1))
        counter.read_data_into_buffer(data, 200, timeout=10.0)  # FINITE: the first 200
        assert counter.replay_finished and counter.available_samples == 0
    finally:
        counter.stop_stream()
        counter.configure(["ramp", "apd"], "CONTINUOUS", 1024**2, 1000.0)


@pytest.mark.parametrize(
    "module, message",
    [
        ("replay_logic_bad_format", "option 'recording_format' is 'zip'"),
        ("replay_logic_streams_without_session", "several streams go into one file with 'session'"),
    ],
)
# a logic's failed activation also raises in the Qt event loop (fysom.Canceled): qudi's way
@pytest.mark.qt_no_exception_capture
def test_bad_recording_options_fail_the_logic_naming_them(
    replay_qudi, activate, expected_qudi_errors, module, message
):
    with pytest.raises(RuntimeError):
        activate(module)
    assert any(message in error for error in expected_qudi_errors())


def test_a_marker_needs_a_session_recording(replay_qudi, activate):
    logic = activate("replay_logic_single")
    with pytest.raises(RuntimeError, match="set recording_format: 'session' first"):
        logic.add_marker("nowhere to go")
    session_logic = activate("replay_logic")
    with pytest.raises(RuntimeError, match="start a recording first"):
        session_logic.add_marker("not yet")


def test_the_shipped_replay_config_plays_a_session(
    replay_qudi, qudi_home, activate, session_path, tmp_path, qtbot
):
    """cfg/instream_replay.cfg as shipped, its file_path set to a session and no window."""
    from qudi.util.yaml import yaml_dump, yaml_load

    config = yaml_load(str(Path(__file__).parents[2] / "cfg" / "instream_replay.cfg"))
    config["hardware"]["session_replay"]["options"]["file_path"] = str(session_path)
    config["global"]["startup_modules"] = []
    del config["gui"]
    path = tmp_path / "instream_replay.cfg"
    yaml_dump(str(path), config)
    with qudi_with_modules(None, qudi_home, path):
        logic = activate("session_replay_logic")
        assert logic.active_channel_names == ["ramp", "apd"]
        logic.start_reading()
        qtbot.waitUntil(lambda: len(logic.trace_data[0]) > 10, timeout=10_000)
        x, y = logic.trace_data
        assert np.all(np.diff(y["ramp"]) == 1)  # the recorded ramp, sample after sample
        logic.stop_reading()


def test_docstring_example_is_a_valid_config_of_the_class():
    import io
    import re

    from qudi.core.config.validator import validate_config
    from qudi.core.configoption import ConfigOption
    from qudi.util.yaml import yaml_load
    from ruamel.yaml import YAML

    import qudi.hardware.instream.replay as replay

    example = re.search(r"::\n\n((?:    .*\n|\n)+)", replay.__doc__).group(1)
    config = {"hardware": YAML(typ="safe").load(io.StringIO(example))}
    validate_config(config)
    (entry,) = config["hardware"].values()
    assert entry["module.Class"] == "instream.replay.RecordingReplayStreamer"
    options = {
        value.name
        for value in vars(replay.RecordingReplayStreamer).values()
        if isinstance(value, ConfigOption)
    }
    assert set(entry["options"]) <= options
    del yaml_load


def test_max_speed_waits_for_a_slow_strict_reader_and_loses_nothing(
    replay_qudi, activate, original
):
    streams, _, _ = original
    expected = streams["counter"][0]
    buffer = activate("replay_slow_buffer")
    replay = activate("replay_max")
    buffer.configure(["ramp", "apd"], "CONTINUOUS", 1024, 1000.0)  # a small ring
    capacity = buffer.channel_buffer_size
    assert capacity < len(expected) // 2  # the whole recording would overrun it twice
    buffer.start_stream()
    try:
        data, done = np.empty_like(expected), 0
        while done < len(expected):
            count = min(256, len(expected) - done)
            buffer.read_data_into_buffer(data[done : done + count], count, timeout=10.0)
            done += count
            time.sleep(0.005)  # a consumer slower than the file: the replay waits for it
        np.testing.assert_array_equal(data, expected)
        assert buffer.lost_samples == 0 and replay.replay_finished
    finally:
        buffer.stop_stream()


def test_deactivation_closes_the_file(replay_qudi, activate, module_manager):
    import h5py

    def open_files() -> int:
        return h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)

    before = open_files()
    activate("replay_counter")
    assert open_files() == before + 1
    module_manager.deactivate_module("replay_counter")
    assert open_files() == before


def test_a_logic_on_a_streamer_without_a_shared_stream_records_its_time_table(
    replay_qudi, activate, original, qtbot
):
    """No buffer between: the logic's frames feed the recording, and note its time table."""
    from qudi.util.instream.session_align import realign_stream

    streams, _, _ = original
    logic = activate("replay_logic_direct")
    replay = activate("replay_direct")
    logic.set_trace_settings(data_rate=100.0, oversampling_factor=1)
    logic.start_recording()
    rows = len(streams["analog"][0])
    qtbot.waitUntil(lambda: replay.replay_finished, timeout=20_000)
    qtbot.waitUntil(lambda: logic.recording_info["samples"] >= rows, timeout=20_000)
    path = logic.stop_recording()
    logic.stop_reading()
    with open_session(path) as session:
        stream = session.streams["replay_direct"]
        data, stamps = stream.read(0, stream.rows)
        np.testing.assert_array_equal(data, streams["analog"][0])  # the logic started it
        np.testing.assert_array_equal(stamps, streams["analog"][1])
        assert len(stream.time_table) >= 2
        times = realign_stream(stream)
        assert np.all(np.diff(times.times) > 0) and np.all(np.isfinite(times.uncertainty))
