"""Markers on an event stream's rate traces in a real qudi: the trace's x values are event
times (seconds since the stream's run started), and a marker stands at its host time minus the
run's start as the stream's ring says; the GUI draws it on the rate plot too. A logic straight on
the event dummy has no ring to read: its markers are placed by the events' arrival, never
late (how closely: tests/logic/test_marker_axis.py)."""

from __future__ import annotations

import pytest
from tests.qudi.added_modules import add_modules
from tests.qudi.test_kinds_logic import DIGITAL_HW

from qudi.util.instream import attach

LOGIC = """\
    mk_events_logic:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'events_buffer'
            markers: 'kinds_markers'
    mk_events_direct:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'events_dummy'
            markers: 'kinds_markers'
"""
GUI = {
    "module.Class": "instream.time_series_gui.TimeSeriesGui",
    "options": {"use_antialias": False},
    "connect": {"_time_series_logic_con": "mk_events_logic"},
    "allow_remote": False,
}


@pytest.fixture
def events_gui(qudi, tmp_path, module_manager, activate):
    names = add_modules(qudi, tmp_path, DIGITAL_HW, LOGIC)
    if "mk_events_gui" not in module_manager.module_names:
        module_manager.add_module(name="mk_events_gui", base="gui", configuration=GUI)
    logic = activate("mk_events_logic")
    logic.set_trace_settings(
        data_rate=100.0, oversampling_factor=1, trace_window_size=2.0, moving_average_width=1
    )
    yield activate("mk_events_gui"), logic
    module_manager.deactivate_module("mk_events_gui")
    for name in reversed(names):
        module_manager.deactivate_module(name)


def _run_start(stream_name: str) -> float:
    """The host monotonic time the stream's run started, by its ring's time table."""
    ring = attach(stream_name)
    try:
        return ring.time_table.run().monotonic_start
    finally:
        ring.close()


def test_a_marker_stands_at_its_event_time_on_the_rate_plot(events_gui, qtbot):
    gui, logic = events_gui
    assert logic.event_channel_names == ["APD 1", "APD 2", "APD 3"]
    logic.start_reading()
    try:
        qtbot.waitUntil(lambda: len(logic.trace_data[0]) > 50, timeout=10_000)
        newest_before = float(logic.trace_data[0][-1])
        noted = logic.add_marker("pump on")
        qtbot.waitUntil(lambda: [t for _, t in logic.markers_in_view] == ["pump on"])
        x = logic.markers_in_view[0][0]
        # the event time of the marker's host time, by the run's start read independently
        assert x == pytest.approx(noted["time"] - _run_start(logic.stream_name), abs=1e-9)
        # after every bin already shown (those ended before it), within a frame and a bin
        assert newest_before <= x <= newest_before + 0.25
        trace_x = logic.trace_data[0]
        assert trace_x[0] <= x <= trace_x[-1] + 0.25
        # the GUI draws it on the rate plot (every plot it has)
        mw = gui.window
        qtbot.waitUntil(lambda: len(gui.plot.markers.lines) == len(mw.plot_items))
        assert list(mw.plot_items) == ["c/s"]
        assert {line.value() for _, line in gui.plot.markers.lines} == {x}
    finally:
        logic.stop_reading()


def test_without_a_ring_a_marker_is_placed_by_the_events_arrival(events_gui, activate, qtbot):
    logic = activate("mk_events_direct")
    assert logic.stream_name is None  # the dummy shares no ring: nothing to read its start
    logic.set_trace_settings(
        data_rate=100.0, oversampling_factor=1, trace_window_size=2.0, moving_average_width=1
    )
    logic.start_reading()
    try:
        qtbot.waitUntil(lambda: len(logic.trace_data[0]) > 50, timeout=10_000)
        newest_before = float(logic.trace_data[0][-1])
        logic.add_marker("pump on")
        qtbot.waitUntil(lambda: [t for _, t in logic.markers_in_view] == ["pump on"])
        x = logic.markers_in_view[0][0]
        # after the bins already shown (minus a delivery latency), within a frame and a bin
        assert newest_before - 0.05 <= x <= newest_before + 0.25
    finally:
        logic.stop_reading()
