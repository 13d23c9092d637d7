"""TimeSeriesGui in a real qudi (Qt offscreen) on a dummy with digital lines: the lines are step
traces stacked in lanes on a plot of their own, below the analog plots; the marker field calls
the logic's add_marker, shows a refusal without raising, and markers are lines on every plot."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore
from tests.qudi.added_modules import add_modules
from tests.qudi.test_kinds_logic import DIGITAL_HW, LOGICS

from qudi.gui.instream.lanes import LANE_PITCH, LANES_KEY

CHANNELS = ["APD", "sine", "ttl 1", "ttl 2"]


@pytest.fixture
def kinds_gui(qudi, tmp_path, module_manager, activate, qtbot):
    names = add_modules(qudi, tmp_path, DIGITAL_HW, LOGICS)
    if "kinds_gui" not in module_manager.module_names:
        module_manager.add_module(
            name="kinds_gui",
            base="gui",
            configuration={
                "module.Class": "instream.time_series_gui.TimeSeriesGui",
                "options": {"use_antialias": False},
                "connect": {"_time_series_logic_con": "kinds_logic"},
                "allow_remote": False,
            },
        )
    logic = activate("kinds_logic")
    logic.set_channel_settings(CHANNELS, ["sine"])
    logic.set_trace_settings(
        data_rate=200.0, oversampling_factor=1, trace_window_size=2.0, moving_average_width=5
    )
    gui = activate("kinds_gui")
    yield gui
    module_manager.deactivate_module("kinds_gui")
    for name in reversed(names):
        module_manager.deactivate_module(name)


def lane_points(gui, line) -> np.ndarray:
    """The y values a raw curve draws now."""
    _, y = gui.plot.raw_curves[line].getData()
    return np.array([]) if y is None else y


def test_digital_lines_are_step_traces_in_lanes_below_the_analog_plots(kinds_gui, qtbot):
    gui, mw = kinds_gui, kinds_gui.window
    assert list(mw.plot_items) == ["c/s", "V", LANES_KEY]  # the lanes at the bottom
    assert LANES_KEY not in mw.legends  # the axis names the lanes
    assert gui.plot.lanes == {"ttl 1": LANE_PITCH, "ttl 2": 0.0}  # the first line on top
    lanes_plot = mw.plot_items[LANES_KEY]
    ticks = lanes_plot.getAxis("left")._tickLevels[0]
    assert ticks == [(LANE_PITCH + 0.5, "ttl 1"), (0.5, "ttl 2")]
    for line in ("ttl 1", "ttl 2"):
        curve = gui.plot.raw_curves[line]
        assert curve.opts["stepMode"] == "left" and curve in lanes_plot.items
    assert gui.plot.raw_curves["sine"] in mw.plot_items["V"].items
    assert mw.digital_rows() == ["ttl 1", "ttl 2"]  # their "averaged" box greyed
    assert "never averaged" in mw.channel_table.item(2, 1).toolTip()
    assert mw.channel_table.item(0, 1).flags() & QtCore.Qt.ItemFlag.ItemIsUserCheckable
    widths = {plot.getAxis("left").width() for plot in mw.plot_items.values()}
    assert len(widths) == 1  # one left-axis width: the time axes line up
    mw.action_start.trigger()
    qtbot.waitUntil(lambda: len(lane_points(gui, "ttl 2")) > 200, timeout=10_000)
    qtbot.waitUntil(lambda: len(np.unique(lane_points(gui, "ttl 1"))) == 2, timeout=10_000)
    mw.action_start.trigger()
    qtbot.waitUntil(lambda: not mw.action_start.isChecked(), timeout=5_000)
    # each line keeps to its lane: its 0/1 values lifted by the lane's offset
    assert set(np.unique(lane_points(gui, "ttl 1"))) == {LANE_PITCH, LANE_PITCH + 1}
    assert set(np.unique(lane_points(gui, "ttl 2"))) <= {0.0, 1.0}
    low, high = lanes_plot.getViewBox().viewRange()[1]
    assert low < 0 and LANE_PITCH + 1 < high < 2 * LANE_PITCH + 1  # both lanes, fixed
    # per-channel plots: analog channels each get one, the lines stay in the lanes
    mw.action_plot_per_channel.setChecked(True)
    assert list(mw.plot_items) == ["APD", "sine", LANES_KEY]
    mw.action_plot_per_channel.setChecked(False)


def test_a_marker_from_the_field_is_a_labelled_line_on_every_plot(kinds_gui, qtbot):
    gui, mw = kinds_gui, kinds_gui.window
    logic = gui._time_series_logic_con()
    assert mw.marker_text_edit.isEnabled() and mw.action_add_marker.isEnabled()
    mw.action_start.trigger()
    qtbot.waitUntil(lambda: len(lane_points(gui, "ttl 1")) > 100, timeout=10_000)
    mw.marker_text_edit.setText("pump on")
    qtbot.keyClick(mw.marker_text_edit, QtCore.Qt.Key.Key_Return)  # Enter adds it
    assert "marker 'pump on' added" in mw.statusBar().currentMessage()
    assert mw.marker_text_edit.text() == ""
    qtbot.waitUntil(lambda: len(gui.plot.markers.lines) == len(mw.plot_items), timeout=10_000)
    mw.marker_text_edit.setText("probe off")
    mw.action_add_marker.trigger()  # the button too
    qtbot.waitUntil(lambda: len(gui.plot.markers.lines) == 2 * len(mw.plot_items), timeout=10_000)
    lines = gui.plot.markers.lines
    assert {plot for plot, _ in lines} == set(mw.plot_items.values())  # analog and lanes
    assert {line.label.toPlainText() for _, line in lines} == {"pump on", "probe off"}
    assert [text for _, text in logic.markers_in_view] == ["pump on", "probe off"]
    # each line stands where the logic places its marker, inside the trace window
    qtbot.waitUntil(
        lambda: (
            {line.value() for _, line in gui.plot.markers.lines}
            == {x for x, _ in logic.markers_in_view}
        ),
        timeout=5_000,
    )
    x, _ = logic.trace_data
    assert all(x[0] <= where <= x[-1] for where, _ in logic.markers_in_view)
    # a bad text is refused and shown, not raised; nothing is written
    mw.marker_text_edit.setText("x" * 300)
    qtbot.keyClick(mw.marker_text_edit, QtCore.Qt.Key.Key_Return)
    assert "marker not added: ValueError" in mw.statusBar().currentMessage()
    assert "256" in mw.marker_text_edit.toolTip()
    assert mw.marker_text_edit.text() == "x" * 300  # kept, to mend and try again
    assert len(logic.markers_in_view) == 2
    mw.action_start.trigger()
    qtbot.waitUntil(lambda: not mw.action_start.isChecked(), timeout=5_000)


def test_markers_are_labelled_lines_on_every_plot(kinds_gui, qtbot):
    gui, mw = kinds_gui, kinds_gui.window
    gui.plot.markers.set_markers([(0.5, "pump on"), (1.0, "{odd} text")])
    lines = gui.plot.markers.lines
    assert len(lines) == 2 * len(mw.plot_items)  # analog plots and lanes alike
    assert {plot for plot, _ in lines} == set(mw.plot_items.values())
    assert sorted({line.label.toPlainText() for _, line in lines}) == ["pump on", "{odd} text"]
    mw.action_plot_per_channel.setChecked(True)  # plots made anew: the lines with them
    assert len(gui.plot.markers.lines) == 2 * len(mw.plot_items)
    assert all(line in plot.items for plot, line in gui.plot.markers.lines)
    gui.plot.markers.set_markers([])
    assert gui.plot.markers.lines == []
    mw.action_plot_per_channel.setChecked(False)


def test_an_event_stream_shows_a_rate_curve_per_event_channel(
    qudi, tmp_path, module_manager, activate, qtbot
):
    names = add_modules(qudi, tmp_path, DIGITAL_HW, LOGICS)
    if "events_gui" not in module_manager.module_names:
        module_manager.add_module(
            name="events_gui",
            base="gui",
            configuration={
                "module.Class": "instream.time_series_gui.TimeSeriesGui",
                "options": {"use_antialias": False},
                "connect": {"_time_series_logic_con": "events_logic"},
                "allow_remote": False,
            },
        )
    try:
        logic = activate("events_logic")
        logic.set_trace_settings(
            data_rate=100.0, oversampling_factor=1, trace_window_size=1.0, moving_average_width=5
        )
        gui = activate("events_gui")
        channels = ["APD 1", "APD 2", "APD 3"]
        assert sorted(gui.plot.raw_curves) == channels  # before any event
        assert list(gui.window.plot_items) == ["c/s"]
        combo = gui.window.readout_channel_combo  # the readout offers the rate curves
        assert [combo.itemText(i) for i in range(combo.count())] == channels
        gui.window.action_start.trigger()
        qtbot.waitUntil(lambda: len(lane_points(gui, "APD 3")) > 50, timeout=10_000)
        gui.window.marker_text_edit.setText("pump on")  # no marker stream: refused, shown
        gui.window.action_add_marker.trigger()
        assert "RuntimeError" in gui.window.marker_text_edit.toolTip()
        assert "marker not added" in gui.window.statusBar().currentMessage()
        gui.window.action_start.trigger()
        qtbot.waitUntil(lambda: logic.module_state() == "idle", timeout=5_000)
        _, y = gui.plot.raw_curves["APD 1"].getData()
        assert 1.0e4 < np.mean(y) < 3.0e4  # 2e4 events/s in 10 ms bins
        assert sorted(gui.plot.averaged_curves) == channels
        assert gui.plot.newest("APD 2", "raw")[1] == "c/s"
    finally:
        module_manager.deactivate_module("events_gui")
        for name in reversed(names):
            module_manager.deactivate_module(name)
