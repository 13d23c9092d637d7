"""The session's marker stream in a real qudi: a MarkerStream (from its docstring's example)
shared by two time-series logics on one dummy. A marker written through either logic or the
stream itself reaches both logics' sigMarkersChanged / markers_in_view at the x of its time,
and a running session recording stores every marker with its sample index; bad text is refused
naming it, and nothing is written anywhere."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from tests.qudi.added_modules import add_modules

import qudi.hardware.instream.markers as markers_module
from qudi.util.instream import attach
from qudi.util.instream.markers import MARKER_DTYPE
from qudi.util.instream.session import open_session
from qudi.util.instream.stream_clock import StreamClock

RATE = 1000.0  # the dummy's samples per second (its default)
HARDWARE = """\
    mk_dummy:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['APD', 'index']
            channel_units: ['Hz', '']
            channel_signals: ['counts', 'ramp']
    mk_buffer1:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        connect:
            streamer: 'mk_dummy'
    mk_buffer2:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        connect:
            streamer: 'mk_dummy'
"""
LOGICS = (
    "".join(
        f"""\
    mk_logic{i}:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        options:
            recording_format: 'session'
        connect:
            streamer: 'mk_buffer{i}'
            markers: 'marker_stream'
"""
        for i in (1, 2)
    )
    + """\
    mk_logic_single:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'mk_buffer1'
            markers: 'marker_stream'
"""
)


def _docstring_example(module) -> str:
    return re.search(r"::\n\n((?:    .*\n|\n)+)", module.__doc__).group(1)


@pytest.fixture
def session(qudi, tmp_path, module_manager):
    names = add_modules(qudi, tmp_path, _docstring_example(markers_module) + HARDWARE, LOGICS)
    yield names
    for name in reversed(names):
        module_manager.deactivate_module(name)


def _ramp_at_time(stream_name: str, when: float) -> float:
    """The ramp value (the source's sample index) of the sample the stream took at host time
    ``when``, by the stream's ring and time table, read here independently."""
    ring = attach(stream_name)
    try:
        index = float(StreamClock(ring).refresh().index_at(when))
        reader = ring.reader("marker check")
        out = np.empty((1, *ring.sample_shape))
        reader.read_into(out, timeout=5.0)
        ramp = out[0, ring.info.channel_names.index("index")]
        ramp_offset = (reader.position - 1) - ramp  # ring index - ramp value
        reader.close()
    finally:
        ring.close()
    return index - ramp_offset


def _read_only_mappings(stream_name: str) -> list[str]:
    """This process's read-only mappings of the stream's shared block (its writer, the hub
    in this process, maps it read-write)."""
    with open("/proc/self/maps") as maps:
        return [line for line in maps if stream_name in line and " r--s " in line]


def _seen(logic) -> list:
    """What the logic's sigMarkersChanged said, newest last (a list that fills)."""
    said: list = []
    logic.sigMarkersChanged.connect(said.append)
    return said


def test_a_marker_from_either_writer_reaches_both_logics_and_the_recording(
    session, activate, qtbot
):
    logic1, logic2 = activate("mk_logic1"), activate("mk_logic2")
    stream = activate("marker_stream")
    said1, said2 = _seen(logic1), _seen(logic2)
    logic1.set_trace_settings(data_rate=RATE, oversampling_factor=1)
    logic2.set_trace_settings(data_rate=RATE, oversampling_factor=1)
    logic1.start_reading()
    logic2.start_reading()
    qtbot.waitUntil(lambda: len(logic1.trace_data[0]) > 500 and len(logic2.trace_data[0]) > 500)

    newest_before = float(logic1.trace_data[0][-1])
    first = logic1.add_marker("pump on")  # through a logic
    assert set(first) >= {"time", "text"} and first["text"] == "pump on"
    for said, logic in ((said1, logic1), (said2, logic2)):
        qtbot.waitUntil(
            lambda s=said: bool(s) and [t for _, t in s[-1]] == ["pump on"], timeout=5000
        )
        assert logic.markers_in_view == said[-1]
    x1 = logic1.markers_in_view[0][0]
    x2 = logic2.markers_in_view[0][0]
    # the marker came after every sample already shown, and within a frame and a pump
    # interval of them (the dummy's samples are paced by the host clock)
    assert newest_before <= x1 <= newest_before + 0.25
    x_window = logic1.trace_data[0]
    assert x_window[0] <= x1 <= x_window[-1]
    x_window2 = logic2.trace_data[0]
    assert x_window2[0] <= x2 <= x_window2[-1]
    # logic2 started a moment after logic1: its x counts from its own first sample
    assert 0 <= x1 - x2 < 1.0
    # each logic's line stands on the sample its stream took at the marker's time: the ramp
    # (each sample's index) there is the index the stream's time table gives for that time
    expected = _ramp_at_time(logic1.stream_name, first["time"])
    for logic, x in ((logic1, x1), (logic2, x2)):
        trace_x, trace_y = logic.trace_data
        assert abs(np.interp(x, trace_x, trace_y["index"]) - expected) <= 2.0

    logic1.start_recording()
    qtbot.waitUntil(lambda: (logic1.recording_info or {}).get("samples", 0) > 100)
    second = stream.add_marker("sample in")  # straight into the stream, as from Jupyter
    third = logic2.add_marker("laser off")  # through the other logic
    qtbot.waitUntil(
        lambda: [t for _, t in logic1.markers_in_view] == ["pump on", "sample in", "laser off"],
        timeout=5000,
    )
    qtbot.waitUntil(lambda: (logic1.recording_info or {}).get("samples", 0) > 300)
    path = logic1.stop_recording()
    with open_session(path) as recorded:
        marks = recorded.marker_list()
        stream_time = recorded.primary.stream_time()
        indices = recorded.primary.sample_indices()
    # every marker written while recording, by any writer, once; not the one before
    assert [(t, text) for t, _, text in marks] == [
        (second["time"], "sample in"),
        (third["time"], "laser off"),
    ]
    for when, index, _ in marks:
        assert indices[0] <= index <= indices[-1]
        # the sample index is that of the sample taken then, by the stream's time table
        assert abs(float(stream_time.time_of(index)) - when) < 3 / RATE + 0.005
    logic1.stop_reading()
    logic2.stop_reading()


def test_bad_marker_text_is_refused_naming_it_and_nothing_is_written(session, activate, qtbot):
    logic1, logic2 = activate("mk_logic1"), activate("mk_logic2")
    stream = activate("marker_stream")
    count = stream.marker_count
    for bad, error in (
        ("", ValueError),
        ("x" * 257, ValueError),
        ("nul\x00here", ValueError),
        (12, TypeError),
    ):
        for writer in (logic1, stream):
            with pytest.raises(error, match=re.escape(repr(bad)[:20])):
                writer.add_marker(bad)
    assert stream.marker_count == count
    assert stream.markers_since(0)[0] == []
    ok = logic1.add_marker("é" * 128)  # 256 bytes of UTF-8: the most there is room for
    assert stream.markers_since(count)[0] == [(ok["time"], "é" * 128)]
    assert logic2.add_marker("fine")["text"] == "fine"


def test_a_logic_without_marker_stream_or_recording_refuses_a_marker(
    qudi, tmp_path, module_manager, activate
):
    names = add_modules(
        qudi,
        tmp_path,
        HARDWARE,
        "    mk_lonely:\n        module.Class: "
        "'instream.time_series_reader_logic.TimeSeriesReaderLogic'\n"
        "        connect:\n            streamer: 'mk_buffer1'\n",
    )
    try:
        logic = activate("mk_lonely")
        with pytest.raises(RuntimeError, match="session recording"):
            logic.add_marker("nowhere")
        assert logic.markers_in_view == []
        logic.start_recording()  # one stream, no marker stream: no markers table
        with pytest.raises(RuntimeError, match="session recording"):
            logic.add_marker("nowhere")
        path = logic.stop_recording()
        logic.stop_reading()
        assert "markers" not in logic.recording_info
        with open_session(path) as recorded:
            assert "markers" not in recorded.file
    finally:
        for name in reversed(names):
            module_manager.deactivate_module(name)


def test_the_marker_stream_is_shared_by_buffers_like_any_stream(session, activate, qtbot):
    stream = activate("marker_stream")
    assert stream.constraints.data_type == MARKER_DTYPE
    assert stream.stream_extra == {"kind": "markers"}
    stream.start_stream()
    try:
        noted = [stream.add_marker(f"m{i}") for i in range(5)]
        out = np.empty(16, MARKER_DTYPE)
        stamps = np.empty(16)
        got = stream.read_available_data_into_buffer(out, stamps)
        assert got == 5
        assert [bytes(t).decode() for t in out["text"][:5]] == [m["text"] for m in noted]
        np.testing.assert_array_equal(stamps[:5], [m["time"] for m in noted])
        np.testing.assert_array_equal(out["time"][:5], stamps[:5])
    finally:
        stream.stop_stream()
    assert time.monotonic() > noted[-1]["time"]


def test_on_a_timestamped_stream_a_marker_lands_at_the_stamp_of_its_time(
    qudi, tmp_path, module_manager, activate, qtbot
):
    names = add_modules(
        qudi,
        tmp_path,
        _docstring_example(markers_module)
        + """\
    mk_ts_dummy:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['index']
            channel_units: ['']
            channel_signals: ['ramp']
            sample_timing: 'TIMESTAMP'
    mk_ts_buffer:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        connect:
            streamer: 'mk_ts_dummy'
""",
        """\
    mk_ts_logic:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'mk_ts_buffer'
            markers: 'marker_stream'
""",
    )
    try:
        logic = activate("mk_ts_logic")
        logic.set_trace_settings(data_rate=RATE, oversampling_factor=1)
        logic.start_reading()
        qtbot.waitUntil(lambda: len(logic.trace_data[0]) > 500)
        noted = logic.add_marker("stamped")
        qtbot.waitUntil(lambda: [t for _, t in logic.markers_in_view] == ["stamped"])
        x = logic.markers_in_view[0][0]
        trace_x, trace_y = logic.trace_data
        # the stamp the stream's time table gives the marker's time, read independently
        ring = attach(logic.stream_name)
        try:
            expected = float(StreamClock(ring).refresh().fit.device_time(noted["time"]))
        finally:
            ring.close()
        assert abs(x - expected) < 1e-6
        assert trace_x[0] <= x <= trace_x[-1]
        assert _read_only_mappings(logic.stream_name)  # the ring the logic's markers follow
        logic.stop_reading()
        assert not _read_only_mappings(logic.stream_name)  # let go of when the run ends
    finally:
        for module in reversed(names):
            module_manager.deactivate_module(module)


def test_markers_stay_in_view_after_the_settings_change_while_reading(session, activate, qtbot):
    """Settings changed while the logic reads (as after start_reading_on_activation): a new
    channel set and a new rate each restart the stream (a new ring under the same name); the
    markers written afterwards stand on the sample taken at their time."""
    logic = activate("mk_logic1")
    activate("marker_stream")
    logic.set_trace_settings(data_rate=RATE / 4, oversampling_factor=1)
    with logic._lock:  # no frame in between: changed before the run's first block
        logic.start_reading()
        logic.set_trace_settings(data_rate=RATE)
    changes = (
        ("first", lambda: None, RATE),
        ("channels", lambda: logic.set_channel_settings(["index"], []), RATE),
        ("rate", lambda: logic.set_trace_settings(data_rate=RATE / 2), RATE / 2),
        ("window", lambda: logic.set_trace_settings(trace_window_size=4.0), RATE / 2),
    )
    try:
        for text, change, rate in changes:
            change()
            assert logic.module_state() == "locked" and logic.sampling_rate == rate
            qtbot.waitUntil(lambda: len(logic.trace_data[0]) > 100)
            noted = logic.add_marker(text)
            qtbot.waitUntil(lambda t=text: [m for _, m in logic.markers_in_view] == [t])
            x = logic.markers_in_view[0][0]
            trace_x, trace_y = logic.trace_data
            assert trace_x[0] <= x <= trace_x[-1]
            expected = _ramp_at_time(logic.stream_name, noted["time"])
            assert abs(np.interp(x, trace_x, trace_y["index"]) - expected) <= 2.0
    finally:
        logic.stop_reading()
    assert not _read_only_mappings(logic.stream_name)  # every run's ring let go of


def test_a_one_stream_recording_stores_the_markers_written_while_it_records(
    session, activate, qtbot
):
    """recording_format 'single' (the default) with a marker stream: the file gets the
    session's markers table, each marker at the index of the sample taken at its time."""
    logic = activate("mk_logic_single")
    stream = activate("marker_stream")
    logic.set_trace_settings(data_rate=RATE, oversampling_factor=1)
    logic.start_reading()
    try:
        qtbot.waitUntil(lambda: len(logic.trace_data[0]) > 100)
        logic.add_marker("before")  # not recorded
        logic.start_recording()
        qtbot.waitUntil(lambda: (logic.recording_info or {}).get("samples", 0) > 100)
        first = stream.add_marker("sample in")  # straight into the stream
        second = logic.add_marker("laser off")
        assert second["sample_index"] >= 0  # the recording noted it
        qtbot.waitUntil(lambda: logic.recording_info.get("markers") == 2)
        expected = [_ramp_at_time(logic.stream_name, m["time"]) for m in (first, second)]
        qtbot.waitUntil(lambda: logic.recording_info["samples"] > 400)
        path = logic.stop_recording()
        assert logic.recording_info["markers"] == 2
        logic.add_marker("after")  # not recorded either
    finally:
        logic.stop_reading()
    with open_session(path) as recorded:
        assert recorded.file.attrs["format"] == "qudi-instream recording"
        marks = recorded.marker_list()
        primary = recorded.primary
        assert not len(primary.group["gaps"])  # no sample lost: row = index - first
        data = primary.read(0, primary.rows)[0]
        first_index = primary.first_sample_index
    assert [(t, text) for t, _, text in marks] == [
        (first["time"], "sample in"),
        (second["time"], "laser off"),
    ]
    assert marks[1][1] == second["sample_index"]
    ramp = data[:, 1]  # the source's own sample index
    for (_, index, _), ramp_then in zip(marks, expected, strict=True):
        assert 0 <= index - first_index < len(data)
        # the recorded sample at the marker's index is the one the stream took at its time
        assert abs(ramp[index - first_index] - ramp_then) <= 1.0
