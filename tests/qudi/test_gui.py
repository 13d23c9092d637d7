"""TimeSeriesGui in a real qudi, driven through its own actions and buttons against the dummy."""

from __future__ import annotations

import glob
import os

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from qudi.gui.instream.time_series_gui import format_value

CHANNELS = ["ramp", "sine", "counts", "noise"]


@pytest.fixture
def gui(activate, module_manager, qtbot):
    logic = activate("trace_logic_a")
    logic.set_channel_settings(CHANNELS, ["sine", "noise"])
    logic.set_trace_settings(
        data_rate=500.0, oversampling_factor=2, trace_window_size=2.0, moving_average_width=9
    )
    gui = activate("trace_gui_a")
    qtbot.waitUntil(lambda: gui.window.data_rate_spinbox.value() == 500.0)
    yield gui
    for name in ("trace_gui_a", "trace_logic_a", "buffer_a"):
        module_manager.deactivate_module(name)


@pytest.fixture
def second_gui(gui, activate, module_manager, qtbot):
    """A second window (trace_gui_b, on trace_logic_b and buffer_b) on the same dummy stream,
    as in the demo; registered here because the test config has one window only."""
    if "trace_gui_b" not in module_manager.module_names:
        module_manager.add_module(
            name="trace_gui_b",
            base="gui",
            configuration={
                "module.Class": "instream.time_series_gui.TimeSeriesGui",
                "options": {"use_antialias": False},
                "connect": {"_time_series_logic_con": "trace_logic_b"},
                "allow_remote": False,
            },
        )
    other = activate("trace_gui_b")
    yield other
    for name in ("trace_gui_b", "trace_logic_b", "buffer_b"):
        module_manager.deactivate_module(name)


def panel_settings(gui) -> dict:
    mw = gui.window
    return {
        "data_rate": mw.data_rate_spinbox.value(),
        "oversampling_factor": mw.oversampling_spinbox.value(),
        "moving_average_width": mw.average_width_spinbox.value(),
        "trace_window_size": mw.window_size_spinbox.value(),
    }


def shows_in_force(gui) -> bool:
    """Whether the window's trace settings dock shows what its logic has in force."""
    panel, logic = panel_settings(gui), logic_of(gui).trace_settings
    return all(panel[key] == pytest.approx(logic[key], rel=1e-4) for key in panel)


def logic_of(gui):
    return gui._time_series_logic_con()


def start(gui, qtbot):
    gui.window.action_start.trigger()
    qtbot.waitUntil(lambda: gui.window.action_start.isChecked(), timeout=5_000)
    qtbot.waitUntil(lambda: live_points(gui, "ramp") > 200, timeout=10_000)


def stop(gui, qtbot):
    gui.window.action_start.trigger()
    qtbot.waitUntil(lambda: not gui.window.action_start.isChecked(), timeout=5_000)
    assert logic_of(gui).module_state() == "idle"


def curve_points(gui, channel, averaged=False) -> int:
    curves = gui.plot.averaged_curves if averaged else gui.plot.raw_curves
    if channel not in curves:
        return 0
    x, _ = curves[channel].getData()
    return 0 if x is None else len(x)


def live_points(gui, channel, averaged=False) -> int:
    """Points of a curve that holds measured data: 0 while it shows the logic's window of
    zeros (what the logic shows after a settings change, before its first point)."""
    curves = gui.plot.averaged_curves if averaged else gui.plot.raw_curves
    if channel not in curves:
        return 0
    _, y = curves[channel].getData()
    return 0 if y is None or not np.any(y) else len(y)


def legend_labels(gui) -> dict[str, list[str]]:
    return {
        unit: [label.text for _, label in legend.items]
        for unit, legend in gui.window.legends.items()
    }


def axis_labels(gui) -> list[tuple[str, str]]:
    return [
        (plot.getAxis("left").labelText, plot.getAxis("left").labelUnits)
        for plot in gui.window.plot_items.values()
    ]


def test_start_plots_every_channel_with_a_legend_then_stop(gui, qtbot):
    start(gui, qtbot)
    assert logic_of(gui).module_state() == "locked"
    for channel in CHANNELS:
        assert curve_points(gui, channel) > 0
    qtbot.waitUntil(lambda: live_points(gui, "noise", averaged=True) > 0)
    assert legend_labels(gui) == {
        "samples": ["ramp"],
        "V": ["sine", "noise", "sine (avg)", "noise (avg)"],
        "c/s": ["counts"],
    }
    # the averaged curves are drawn on top of the raw ones
    assert gui.plot.averaged_curves["sine"].zValue() > gui.plot.raw_curves["sine"].zValue()
    # one plot per unit: each left axis has its own unit, the bottom plot says 'time'
    assert axis_labels(gui) == [("ramp", "samples"), ("value", "V"), ("counts", "c/s")]
    assert list(gui.window.plot_items.values())[-1].getAxis("bottom").labelUnits == "s"
    _, ramp = gui.plot.raw_curves["ramp"].getData()
    assert np.all(np.diff(ramp) > 0)
    # the readout shows the newest ramp value with its unit
    gui.window.readout_channel_combo.setCurrentText("ramp")
    qtbot.waitUntil(lambda: "samples" in gui.window.readout_label.text())
    stop(gui, qtbot)


def test_readout_formats_ints_floats_and_numpy_scalars():
    assert format_value(1234, "Hz") == "1.234 kHz"
    assert format_value(np.int64(7), "counts") == "7 counts"
    assert format_value(np.uint16(65000), "") == "65 k"
    assert format_value(np.float32(0.00125), "V") == "1.25 mV"
    assert format_value(-3.5e-9, "A") == "-3.5 nA"
    assert format_value(float("nan"), "V") == "nan V"
    assert format_value(None, "V") == "—"


def test_freeze_y_and_autoscale(gui, qtbot):
    start(gui, qtbot)
    views = [plot.getViewBox() for plot in gui.window.plot_items.values()]
    assert len(views) == 3
    assert gui.plot.follows_x and gui.plot.follows_y
    gui.window.action_freeze_y.trigger()
    assert not gui.plot.follows_y and gui.plot.follows_x
    assert not any(view.state["mouseEnabled"][1] for view in views)
    frozen = [view.viewRange()[1] for view in views]
    changes = plot_changes(gui.plot.raw_curves["noise"])
    qtbot.waitUntil(lambda: changes[0] >= 3, timeout=5_000)
    assert [view.viewRange()[1] for view in views] == frozen
    gui.window.action_autoscale.trigger()
    assert not gui.window.action_freeze_y.isChecked()
    assert gui.plot.follows_x and gui.plot.follows_y
    assert all(view.state["mouseEnabled"][1] for view in views)
    stop(gui, qtbot)


def wheel_over(graphics_view, view_box) -> None:
    """One notch of the mouse wheel (zoom in) over the middle of ``view_box``."""
    centre = view_box.sceneBoundingRect().center()
    position = QtCore.QPointF(graphics_view.mapFromScene(centre))
    event = QtGui.QWheelEvent(
        position,
        QtCore.QPointF(graphics_view.viewport().mapToGlobal(position.toPoint())),
        QtCore.QPoint(0, 0),
        QtCore.QPoint(0, 120),
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
        QtCore.Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QtWidgets.QApplication.sendEvent(graphics_view.viewport(), event)


def test_the_time_axis_follows_the_data_until_the_user_zooms(gui, qtbot):
    start(gui, qtbot)
    top = gui.window.plot_item.getViewBox()
    x, _ = gui.plot.raw_curves["ramp"].getData()
    assert top.viewRange()[0] == pytest.approx([x[0], x[-1]])
    wheel_over(gui.window.plot_widget, top)  # the user zooms in with the mouse wheel
    assert not gui.plot.follows_x
    zoomed = top.viewRange()[0]
    changes = plot_changes(gui.plot.raw_curves["ramp"])
    qtbot.waitUntil(lambda: changes[0] >= 3, timeout=5_000)
    assert top.viewRange()[0] == pytest.approx(zoomed)  # the zoom stays
    x, _ = gui.plot.raw_curves["ramp"].getData()
    spacing = 1 / logic_of(gui).data_rate  # one point beyond each edge is drawn
    assert x[0] >= zoomed[0] - 2 * spacing and x[-1] <= zoomed[1] + 2 * spacing
    gui.window.action_autoscale.trigger()
    assert gui.plot.follows_x
    qtbot.waitUntil(lambda: top.viewRange()[0][1] > zoomed[1], timeout=5_000)
    stop(gui, qtbot)


def test_record_toggles_and_writes_a_file(gui, qtbot):
    mw = gui.window
    mw.action_record.trigger()
    qtbot.waitUntil(lambda: mw.action_record.isChecked(), timeout=5_000)
    assert mw.action_start.isChecked()  # recording starts reading
    assert not mw.trace_settings_dock.widget().isEnabled()
    assert not mw.channel_dock.widget().isEnabled()
    qtbot.waitUntil(lambda: mw.recording_label.text().startswith("REC"), timeout=5_000)
    qtbot.waitUntil(lambda: logic_of(gui).recording_info["samples"] > 0, timeout=5_000)
    mw.action_record.trigger()
    qtbot.waitUntil(lambda: not mw.action_record.isChecked(), timeout=5_000)
    info = logic_of(gui).recording_info
    assert os.path.isfile(info["path"]) and info["samples"] > 0
    assert info["path"] in mw.statusBar().currentMessage()
    assert mw.trace_settings_dock.widget().isEnabled()
    stop(gui, qtbot)


def test_snapshot_writes_a_file_with_the_name_tag(gui, qtbot):
    start(gui, qtbot)
    gui.window.name_tag_edit.setText("guishot")
    pattern = os.path.join(logic_of(gui).module_default_data_dir, "**", "*guishot*.dat")
    before = set(glob.glob(pattern, recursive=True))
    gui.window.action_snapshot.trigger()
    qtbot.waitUntil(
        lambda: len(set(glob.glob(pattern, recursive=True)) - before) == 1, timeout=10_000
    )
    (path,) = set(glob.glob(pattern, recursive=True)) - before
    qtbot.waitUntil(lambda: path in gui.window.statusBar().currentMessage(), timeout=5_000)
    stop(gui, qtbot)


def test_apply_trace_settings_changes_the_logic(gui, qtbot):
    mw = gui.window
    mw.data_rate_spinbox.setValue(200.0)
    mw.oversampling_spinbox.setValue(3)
    mw.average_width_spinbox.setValue(5)
    mw.window_size_spinbox.setValue(1.5)
    mw.trace_apply_button.click()
    assert logic_of(gui).trace_settings == {
        "oversampling_factor": 3,
        "moving_average_width": 5,
        "trace_window_size": 1.5,
        "data_rate": 200.0,
    }
    start(gui, qtbot)
    stop(gui, qtbot)


def test_refused_trace_settings_leave_the_real_values_shown(gui, qtbot):
    mw = gui.window
    before = logic_of(gui).trace_settings
    mw.data_rate_spinbox.setValue(mw.data_rate_spinbox.maximum())
    mw.oversampling_spinbox.setValue(10)  # rate x oversampling beyond the streamer's limit
    mw.average_width_spinbox.setValue(4)
    mw.trace_apply_button.click()
    assert "refused" in mw.statusBar().currentMessage()
    assert logic_of(gui).trace_settings == before
    qtbot.wait(50)  # the logic's sigTraceSettingsChanged arrives queued: it must agree
    assert mw.data_rate_spinbox.value() == before["data_rate"]
    assert mw.oversampling_spinbox.value() == before["oversampling_factor"]
    assert mw.average_width_spinbox.value() == before["moving_average_width"]
    assert mw.window_size_spinbox.value() == pytest.approx(before["trace_window_size"])


def test_channel_settings_apply_and_refusal(gui, qtbot):
    mw = gui.window
    mw.set_channels(CHANNELS, ["ramp", "sine"], ["sine"])
    mw.channel_apply_button.click()
    assert logic_of(gui).channel_settings == (["ramp", "sine"], ["sine"])
    start(gui, qtbot)
    assert set(gui.plot.raw_curves) == {"ramp", "sine"}
    assert legend_labels(gui) == {"samples": ["ramp"], "V": ["sine", "sine (avg)"]}
    assert axis_labels(gui) == [("ramp", "samples"), ("sine", "V")]
    stop(gui, qtbot)
    mw.set_channels(CHANNELS, [], [])  # no channel at all is refused
    mw.channel_apply_button.click()
    assert "refused" in mw.statusBar().currentMessage()
    assert mw.channel_refusal_label.isVisibleTo(mw)
    assert "ValueError" in mw.channel_refusal_label.text()
    assert mw.checked_channels() == (["ramp", "sine"], ["sine"])
    assert set(gui.plot.raw_curves) == {"ramp", "sine"}  # the plots stay as they were
    mw.set_channels(CHANNELS, CHANNELS, ["sine", "noise"])
    mw.channel_apply_button.click()
    assert not mw.channel_refusal_label.isVisibleTo(mw)


def test_stream_health_in_the_status_bar(gui, qtbot):
    start(gui, qtbot)
    qtbot.waitUntil(lambda: "kHz" in gui.window.health_label.text(), timeout=5_000)
    assert "locked" in gui.window.health_label.text()
    assert gui.window.lost_label.text() == "lost 0"
    stop(gui, qtbot)


def test_ctrl_q_closes_and_show_raises_the_window(gui, qtbot):
    mw = gui.window
    assert mw.isVisible()
    assert mw.action_close.shortcut() == QtGui.QKeySequence("Ctrl+Q")
    mw.action_close.trigger()
    assert not mw.isVisible()
    gui.show()
    assert mw.isVisible()


def test_a_closed_window_draws_nothing_until_shown_again(gui, qtbot):
    logic = logic_of(gui)
    x = np.arange(10.0)
    logic.sigDataChanged.emit(x, {name: x for name in CHANNELS}, None, None)
    qtbot.waitUntil(lambda: curve_points(gui, "ramp") == 10)
    changes = plot_changes(gui.plot.raw_curves["ramp"])
    gui.window.action_close.trigger()
    x = np.arange(20.0)
    logic.sigDataChanged.emit(x, {name: x for name in CHANNELS}, None, None)
    qtbot.wait(200)  # a draw would be due after 1/30 s at most
    assert changes[0] == 0
    gui.show()
    qtbot.waitUntil(lambda: curve_points(gui, "ramp") == 20)
    assert changes[0] == 1


def test_window_geometry_persists(gui, activate, module_manager, qtbot):
    # the offscreen screen is 800 x 800 and restoreGeometry keeps windows on it: test the height
    gui.window.resize(gui.window.width(), 612)
    gui.window.channel_dock.hide()
    module_manager.deactivate_module("trace_gui_a")
    gui = activate("trace_gui_a")
    assert gui.window.height() == 612
    assert not gui.window.channel_dock.isVisible()
    gui.window.channel_dock.show()


def test_view_choices_persist(gui, activate, module_manager, qtbot):
    window = gui.window
    window.action_freeze_y.setChecked(True)
    window.readout_channel_combo.setCurrentText("noise")
    window.readout_kind_combo.setCurrentText("averaged")
    module_manager.deactivate_module("trace_gui_a")
    window = activate("trace_gui_a").window
    assert window.action_freeze_y.isChecked()
    assert window.readout_channel_combo.currentText() == "noise"
    assert window.readout_kind_combo.currentText() == "averaged"
    window.action_freeze_y.setChecked(False)


def test_two_units_make_two_linked_plots(gui, qtbot):
    gui.window.set_channels(CHANNELS, ["sine", "counts"], [])
    gui.window.channel_apply_button.click()
    # the plots follow the channel settings at once, before any frame
    assert axis_labels(gui) == [("sine", "V"), ("counts", "c/s")]
    start_plots = dict(gui.window.plot_items)
    gui.window.action_start.trigger()
    qtbot.waitUntil(lambda: live_points(gui, "counts") > 200, timeout=10_000)
    volts, rates = gui.window.plot_items.values()
    assert gui.window.plot_items == start_plots  # no rebuild on frames
    assert gui.plot.raw_curves["sine"] in volts.listDataItems()
    assert gui.plot.raw_curves["counts"] in rates.listDataItems()
    assert rates.getViewBox().linkedView(pg.ViewBox.XAxis) is volts.getViewBox()
    # each plot scales to its own data: the sine's ±1 V is not flattened by the counts
    _, sine = gui.plot.raw_curves["sine"].getData()
    low, high = volts.getViewBox().viewRange()[1]
    assert high - low < 10 * (np.max(sine) - np.min(sine) + 1e-9)
    stop(gui, qtbot)


def test_screenshot_shows_curves(gui, qtbot, tmp_path):
    # volts and counts: two stacked plots, each left axis with its own unit and SI prefix
    gui.window.set_channels(CHANNELS, ["sine", "counts", "noise"], ["sine", "noise"])
    gui.window.channel_apply_button.click()
    gui.window.action_start.trigger()
    qtbot.waitUntil(lambda: live_points(gui, "sine") > 200, timeout=10_000)
    assert axis_labels(gui) == [("value", "V"), ("counts", "c/s")]
    qtbot.waitUntil(lambda: live_points(gui, "noise", averaged=True) > 200, timeout=10_000)
    gui.window.readout_channel_combo.setCurrentText("sine")
    gui.window.readout_kind_combo.setCurrentText("averaged")
    gui.window.resize(1100, 700)
    qtbot.wait(300)
    path = tmp_path / "time_series_gui.png"
    assert gui.window.grab().save(str(path))
    image = QtGui.QImage(str(path))
    assert not image.isNull() and image.width() > 400
    plot = gui.window.plot_widget
    origin = plot.mapTo(gui.window, plot.rect().topLeft())
    colours = {
        image.pixel(origin.x() + x, origin.y() + y)
        for x in range(0, plot.width(), 3)
        for y in range(0, plot.height(), 3)
    }
    assert len(colours) > 20, "the plot area looks blank"
    # docs/time_series_gui.png is the demo's two windows on a real X screen:
    # python benchmarks/gui_idle.py --screenshot docs/time_series_gui.png
    stop(gui, qtbot)


def plot_changes(curve) -> list[int]:
    """A counter of the curve's data changes (pyqtgraph's sigPlotChanged, one per setData)."""
    counter = [0]
    curve.sigPlotChanged.connect(lambda *_: counter.__setitem__(0, counter[0] + 1))
    return counter


def test_only_the_newest_of_queued_frames_is_drawn(gui, qtbot):
    logic = logic_of(gui)
    x = np.arange(10.0)
    logic.sigDataChanged.emit(x, {name: x for name in CHANNELS}, None, None)
    qtbot.waitUntil(lambda: curve_points(gui, "ramp") == 10)
    changes = plot_changes(gui.plot.raw_curves["ramp"])
    for offset in range(1, 6):  # five frames queue up before the GUI thread runs again
        logic.sigDataChanged.emit(x + offset, {name: x + offset for name in CHANNELS}, None, None)
    qtbot.waitUntil(lambda: gui.plot.raw_curves["ramp"].getData()[1][-1] == x[-1] + 5)
    _, ramp = gui.plot.raw_curves["ramp"].getData()
    np.testing.assert_array_equal(ramp, x + 5)
    assert changes[0] == 1  # drawn once, not once per frame


def test_a_frame_without_new_points_is_not_drawn_again(gui, qtbot):
    logic = logic_of(gui)
    x = np.arange(10.0)
    logic.sigDataChanged.emit(x, {name: x for name in CHANNELS}, None, None)
    qtbot.waitUntil(lambda: curve_points(gui, "ramp") == 10)
    changes = plot_changes(gui.plot.raw_curves["ramp"])
    logic.sigDataChanged.emit(x, {name: x for name in CHANNELS}, None, None)  # nothing new
    qtbot.wait(200)  # a draw would be due after 1/30 s at most
    assert changes[0] == 0
    x = np.arange(1.0, 11.0)  # one new point
    logic.sigDataChanged.emit(x, {name: x for name in CHANNELS}, None, None)
    qtbot.waitUntil(lambda: changes[0] == 1)


def test_each_window_is_titled_by_its_module_name(gui, second_gui):
    assert gui.window.windowTitle() == "qudi: trace_gui_a"
    assert second_gui.window.windowTitle() == "qudi: trace_gui_b"


def test_the_panel_shows_the_rate_another_window_set_while_this_one_was_stopped(
    gui, second_gui, qtbot
):
    # the steps: stop window 1, set window 2 to another rate, start window 1
    assert logic_of(gui).module_state() == "idle"
    other = second_gui.window
    other.data_rate_spinbox.setValue(700.0)
    other.oversampling_spinbox.setValue(1)
    other.trace_apply_button.click()
    assert logic_of(second_gui).sampling_rate == 700.0
    start(gui, qtbot)
    logic = logic_of(gui)
    assert logic.sampling_rate == 700.0  # the shared stream runs at window 2's rate
    qtbot.waitUntil(lambda: shows_in_force(gui), timeout=5_000)
    rate = gui.window.data_rate_spinbox.value() * gui.window.oversampling_spinbox.value()
    assert rate == pytest.approx(700.0)
    stop(gui, qtbot)


def test_a_refused_apply_changes_nothing_on_screen_and_says_why(gui, second_gui, qtbot):
    start(gui, qtbot)
    logic_of(second_gui).start_reading()  # the other consumer of the stream runs
    qtbot.waitUntil(lambda: logic_of(second_gui).module_state() == "locked", timeout=5_000)
    mw = gui.window
    before = logic_of(gui).trace_settings
    x_before, _ = gui.plot.raw_curves["ramp"].getData()
    mw.data_rate_spinbox.setValue(before["data_rate"] / 2)  # needs the stream reconfigured
    mw.trace_apply_button.click()
    assert "refused" in mw.statusBar().currentMessage()
    assert mw.trace_refusal_label.isVisibleTo(mw)
    assert "StreamBusyError" in mw.trace_refusal_label.text()
    assert logic_of(gui).trace_settings == before
    assert shows_in_force(gui)
    # the trace goes on where it was: not cleared, its time axis not restarted
    changes = plot_changes(gui.plot.raw_curves["ramp"])
    qtbot.waitUntil(lambda: changes[0] >= 3, timeout=5_000)
    x_after, _ = gui.plot.raw_curves["ramp"].getData()
    assert x_after[-1] > x_before[-1]
    assert x_after[0] >= x_before[0]
    assert len(x_after) >= len(x_before)
    # the logic's queued reply agrees, and the reason stays until an Apply succeeds
    qtbot.wait(50)
    assert shows_in_force(gui) and mw.trace_refusal_label.isVisibleTo(mw)
    logic_of(second_gui).stop_reading()
    stop(gui, qtbot)
    mw.trace_apply_button.click()
    assert not mw.trace_refusal_label.isVisibleTo(mw)


def test_deactivation_disconnects_everything(gui, module_manager, qtbot):
    logic = logic_of(gui)
    signal = "sigDataChanged(PyObject,PyObject,PyObject,PyObject)"
    connected = logic.receivers(QtCore.SIGNAL(signal))
    assert connected >= 1
    window = gui.window
    # frames and status already queued when the GUI goes must not reach the closed window
    logic.sigDataChanged.emit(np.arange(3.0), {"ramp": np.arange(3.0)}, None, None)
    logic.sigStatusChanged.emit(False, False)
    module_manager.deactivate_module("trace_gui_a")
    assert logic.receivers(QtCore.SIGNAL(signal)) == connected - 1
    assert not window.isVisible()
    # the logic runs on without a GUI: nothing may call into the closed one
    logic.start_reading()
    qtbot.wait(300)
    logic.set_trace_settings(logic.trace_settings)
    logic.stop_reading()
    qtbot.wait(100)


def click_legend_line(gui, qtbot, name: str) -> None:
    """A real left click on the line of ``name`` in its plot's legend (as a user hides it)."""
    view = gui.window.plot_widget
    for legend in gui.window.legends.values():
        for sample, label in legend.items:
            if label.text == name:
                point = view.mapFromScene(sample.sceneBoundingRect().center())
                qtbot.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=point)
                return
    raise AssertionError(f"no legend entry {name!r}")


def test_a_click_on_a_legend_line_hides_the_curve_and_it_persists(
    gui, activate, module_manager, qtbot
):
    start(gui, qtbot)
    volts = gui.window.plot_items["V"]
    sine = gui.plot.raw_curves["sine"]
    click_legend_line(gui, qtbot, "sine")
    qtbot.waitUntil(lambda: not sine.isVisible())
    assert gui.plot.hidden == ["sine"]
    try:
        # hidden: no longer drawn, and the y range follows the other curves of its plot only
        changes = plot_changes(sine)
        qtbot.waitUntil(lambda: live_points(gui, "noise") > 500, timeout=5_000)
        qtbot.wait(300)
        assert changes[0] == 0
        gui.window.action_autoscale.trigger()
        qtbot.wait(300)
        shown = np.concatenate(
            [
                gui.plot.raw_curves["noise"].getData()[1],
                *(c.getData()[1] for c in gui.plot.averaged_curves.values()),
            ]
        )
        low, high = volts.getViewBox().viewRange()[1]
        assert low <= shown.min() and shown.max() <= high
        stop(gui, qtbot)
        module_manager.deactivate_module("trace_gui_a")
        gui = activate("trace_gui_a")
        assert gui.plot.hidden == ["sine"]
        assert not gui.plot.raw_curves["sine"].isVisible()
        click_legend_line(gui, qtbot, "sine")  # shown again, with the last frame drawn
        qtbot.waitUntil(lambda: gui.plot.raw_curves["sine"].isVisible())
        assert gui.plot.hidden == []
    finally:
        gui.plot.set_hidden([])


def test_plot_per_channel_puts_same_unit_channels_on_plots_of_their_own(
    gui, activate, module_manager, qtbot
):
    window = gui.window
    start(gui, qtbot)
    assert list(window.plot_items) == ["samples", "V", "c/s"]  # per unit: sine, noise share
    try:
        window.action_plot_per_channel.trigger()
        assert list(window.plot_items) == CHANNELS
        assert axis_labels(gui) == [
            ("ramp", "samples"),
            ("sine", "V"),
            ("counts", "c/s"),
            ("noise", "V"),
        ]
        qtbot.waitUntil(lambda: live_points(gui, "noise") > 200, timeout=5_000)
        noise_plot = window.plot_items["noise"]
        assert gui.plot.raw_curves["noise"] in noise_plot.listDataItems()
        assert gui.plot.averaged_curves["noise"] in noise_plot.listDataItems()
        assert gui.plot.raw_curves["sine"] not in noise_plot.listDataItems()
        top = window.plot_items["ramp"].getViewBox()
        assert noise_plot.getViewBox().linkedView(pg.ViewBox.XAxis) is top
        stop(gui, qtbot)
        module_manager.deactivate_module("trace_gui_a")
        window = activate("trace_gui_a").window
        assert window.action_plot_per_channel.isChecked()
        assert list(window.plot_items) == CHANNELS
        window.action_plot_per_channel.trigger()  # back to one plot per unit
        assert list(window.plot_items) == ["samples", "V", "c/s"]
    finally:
        window.action_plot_per_channel.setChecked(False)


def test_a_long_window_draws_a_few_points_per_pixel_and_keeps_a_spike(gui, qtbot):
    """10^6 points in a frame, then frames of new points: what reaches pyqtgraph is about
    two points per pixel column, the one-sample spike among them, also zoomed in."""
    logic = logic_of(gui)
    from qudi.util.instream.trace import TraceWindow

    window = TraceWindow(1_000_000, 1)
    rng = np.random.default_rng(3)
    written = 0

    def frame(count: int, spike: int | None = None):
        nonlocal written
        x = np.arange(written, written + count) / 1000.0
        y = rng.normal(size=count)
        if spike is not None:
            y[spike] = 40.0
        window.append(x, y[None, :])
        written += count
        xv, yv = window.view(window.filled)
        logic.sigDataChanged.emit(xv, {name: yv[0] for name in CHANNELS}, None, None)

    frame(1_000_000)
    qtbot.waitUntil(lambda: gui.plot.raw_curves["ramp"].getData()[0] is not None)
    for _ in range(5):
        frame(20_000)
        qtbot.wait(40)
    frame(20_000, spike=12_345)
    spike_x = (written - 20_000 + 12_345) / 1000.0
    qtbot.waitUntil(lambda: gui.plot.raw_curves["sine"].getData()[1].max() == 40.0)
    drawn_x, drawn_y = gui.plot.raw_curves["sine"].getData()
    columns = gui.window.plot_item.getViewBox().width()
    assert len(drawn_x) <= 4 * max(200, columns) + 8
    assert drawn_x[-1] == (written - 1) / 1000.0
    view = gui.window.plot_item.getViewBox()
    view.setXRange(spike_x - 30.0, spike_x + 2.0, padding=0)  # a zoom, as by the wheel
    view.sigRangeChangedManually.emit([True, False])
    qtbot.waitUntil(lambda: gui.plot.raw_curves["sine"].getData()[0][0] > spike_x - 31)
    drawn_x, drawn_y = gui.plot.raw_curves["sine"].getData()
    assert drawn_y.max() == 40.0 and drawn_x[-1] <= spike_x + 2.01
    gui.window.action_autoscale.trigger()
