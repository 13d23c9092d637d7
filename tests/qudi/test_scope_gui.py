"""The triggered view of a real qudi's TimeSeriesGui (Qt offscreen), driven through its menu
action and its settings dock: it draws the logic's windows overlaid and their average, shows
the counts, and shows a refused setting in the dock instead of raising."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore
from tests.qudi.added_modules import add_modules
from tests.qudi.test_scope_qudi import HARDWARE, LOGIC, RATE


@pytest.fixture
def scope_gui(qudi, tmp_path, module_manager, activate):
    names = add_modules(qudi, tmp_path, HARDWARE, LOGIC)
    if "scope_gui" not in module_manager.module_names:
        module_manager.add_module(
            name="scope_gui",
            base="gui",
            configuration={
                "module.Class": "instream.time_series_gui.TimeSeriesGui",
                "options": {"use_antialias": False},
                "connect": {"_time_series_logic_con": "scope_logic"},
                "allow_remote": False,
            },
        )
    logic = activate("scope_logic")
    logic.set_channel_settings(["ramp", "noise", "ttl"], [])
    logic.set_trace_settings(
        data_rate=RATE, oversampling_factor=1, trace_window_size=1.0, moving_average_width=1
    )
    gui = activate("scope_gui")
    yield gui, logic
    logic.set_scope_settings(enabled=False)
    for name in ["scope_gui", *reversed(names)]:
        module_manager.deactivate_module(name)


def test_the_triggered_view_draws_overlaid_windows_and_their_average(scope_gui, qtbot):
    gui, logic = scope_gui
    scope = gui.scope_view
    assert not scope.isVisible()
    scope.action.trigger()  # View > Triggered view
    assert scope.isVisible()
    scope.source_combo.setCurrentText("digital")
    scope.channel_combo.setCurrentText("ttl")
    scope.unit_combo.setCurrentText("samples")
    scope.pre_spinbox.setValue(50)
    scope.post_spinbox.setValue(200)
    scope.windows_spinbox.setValue(20)
    scope.display_combo.setCurrentText("both")
    scope.enabled_checkbox.setChecked(True)
    scope.apply_button.click()
    assert scope.error_label.text() == ""
    assert logic.scope_settings["source"] == "digital" and logic.scope_settings["post"] == 200
    scope.show_combo.setCurrentText("ttl")
    gui.window.action_start.trigger()
    qtbot.waitUntil(lambda: logic.scope_windows.stats.get("kept") == 20, timeout=20_000)
    overlay = lambda: scope.shown_curves["overlay"][1]  # noqa: E731
    qtbot.waitUntil(lambda: overlay() is not None and len(overlay()) == 20 * 251, timeout=10_000)
    gui.window.action_start.trigger()
    qtbot.waitUntil(lambda: logic.module_state() == "idle", timeout=5_000)
    final = logic.scope_windows.stats["windows"]
    qtbot.waitUntil(lambda: scope.view.stats["windows"] == final, timeout=5_000)  # queued
    x, y = scope.shown_curves["overlay"]
    windows = y.reshape(20, 251)[:, :250]
    assert np.all(windows[:, 50] == 1) and np.all(windows[:, 49] == 0)  # edges at t = 0
    assert x[50] == 0.0 and np.isnan(x[250])
    t, average = scope.shown_curves["average"]
    np.testing.assert_allclose(average, windows.mean(axis=0))
    np.testing.assert_allclose(average, logic.scope_windows.average["ttl"])
    assert "windows" in scope.stats_label.text() and "missed 0" in scope.stats_label.text()
    scope.display_combo.setCurrentText("average")
    x, _ = scope.shown_curves["overlay"]
    assert x is None or len(x) == 0


def test_a_refused_setting_is_shown_in_the_dock_and_nothing_changes(scope_gui, qtbot):
    gui, logic = scope_gui
    scope = gui.scope_view
    before = logic.scope_settings
    scope.post_spinbox.setValue(5_000_000)  # pre + post beyond the longest window
    scope.apply_button.click()
    assert "'pre' + 'post'" in scope.error_label.text()
    assert logic.scope_settings == before
    assert scope.post_spinbox.value() == before["post"]  # the dock shows what is in force


def test_the_view_goes_with_its_window(scope_gui, module_manager, qtbot):
    gui, logic = scope_gui
    scope = gui.scope_view
    scope.action.trigger()
    signature = QtCore.SIGNAL("sigScopeChanged(PyObject)")
    assert logic.receivers(signature) >= 1  # the window's (and those of windows closed
    # before whose deletion Qt has not processed yet)
    shown = []
    scope.destroyed.connect(lambda: shown.append("destroyed"))
    module_manager.deactivate_module("scope_gui")
    qtbot.waitUntil(lambda: shown == ["destroyed"], timeout=5_000)
    # nothing stays connected to a deleted window
    qtbot.waitUntil(lambda: logic.receivers(signature) == 0, timeout=5_000)
    logic.set_scope_settings(level=0.25)  # emits to nobody
