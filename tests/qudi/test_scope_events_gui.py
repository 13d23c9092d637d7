"""The triggered view's dock offers an event stream as the trigger source (Qt offscreen).

cfg/instream_kinds.cfg's TimeSeriesGui, in a real qudi: its logic has an event stream on
``trigger_events``, so the dock's sources include ``event``, with the stream's channels and a
value threshold; Apply triggers windows on the photons of the chosen channel, drawn and
counted in the dock. A logic without an event stream offers no event source, and a threshold
that is no number is refused in the dock, naming the key.
"""

from __future__ import annotations

import pytest
from tests.qudi.added_modules import add_modules
from tests.qudi.test_scope_events_qudi import (
    CFG,
    NO_EVENTS_HARDWARE,
    NO_EVENTS_LOGIC,
    SUFFIX,
    TIMESTAMP_LOGIC,
    load_cfg,
)

from qudi.gui.instream.scope_dock import ScopeWindow


@pytest.fixture
def kinds_gui(qudi, module_manager, activate, qtbot):
    names = load_cfg(qudi, CFG, SUFFIX)
    gui = activate(names["time_series_gui_kinds"])
    logic = module_manager[names["time_series_logic_kinds"]].instance
    yield gui, logic
    logic.stop_reading()
    logic.set_scope_settings(enabled=False, source="level")
    for name in reversed(list(names.values())):
        module_manager.deactivate_module(name)


def test_the_dock_offers_the_event_source_and_its_windows_are_drawn(kinds_gui, qtbot):
    gui, logic = kinds_gui
    scope = gui.scope_view
    scope.action.trigger()  # View > Triggered view
    sources = [scope.source_combo.itemText(i) for i in range(scope.source_combo.count())]
    assert sources == ["level", "digital", "marker", "event"]
    channels = [scope.event_channel_combo.itemText(i) for i in range(3)]
    assert channels == ["every channel", "APD 1", "APD 2"]
    assert scope.event_channel_combo.isVisible() and scope.event_threshold_edit.isVisible()
    scope.source_combo.setCurrentText("event")
    scope.event_channel_combo.setCurrentText("APD 2")
    scope.event_threshold_edit.setText("0.5")
    scope.unit_combo.setCurrentText("samples")
    scope.pre_spinbox.setValue(10)
    scope.post_spinbox.setValue(40)
    scope.windows_spinbox.setValue(3)
    scope.enabled_checkbox.setChecked(True)
    scope.show_combo.setCurrentText("analog 1")
    scope.apply_button.click()
    assert scope.error_label.text() == ""
    settings = logic.scope_settings
    assert settings["source"] == "event" and settings["event_channels"] == ["APD 2"]
    assert settings["event_threshold"] == 0.5
    if logic.module_state() != "locked":  # it starts reading on activation
        gui.window.action_start.trigger()
    qtbot.waitUntil(lambda: logic.scope_windows.stats.get("kept") == 3, timeout=20_000)
    overlay = lambda: scope.shown_curves["overlay"][1]  # noqa: E731
    qtbot.waitUntil(lambda: overlay() is not None and len(overlay()) == 3 * 51, timeout=10_000)
    qtbot.waitUntil(lambda: "event triggers" in scope.stats_label.text(), timeout=10_000)
    assert "events lost 0" in scope.stats_label.text()
    scope.event_threshold_edit.setText("high")
    scope.apply_button.click()
    assert "'event_threshold'" in scope.error_label.text()
    assert logic.scope_settings == settings
    assert scope.event_threshold_edit.text() == "0.5"  # the settings in force again


def test_a_logic_without_an_event_stream_offers_no_event_source(
    qudi, tmp_path, module_manager, activate, qtbot
):
    names = add_modules(qudi, tmp_path, NO_EVENTS_HARDWARE, NO_EVENTS_LOGIC + TIMESTAMP_LOGIC)
    try:
        window = ScopeWindow(activate("scope_no_events_logic"))
        qtbot.addWidget(window)
        window.show()
        sources = [window.source_combo.itemText(i) for i in range(window.source_combo.count())]
        assert sources == ["level", "digital", "marker"]
        assert not window.event_channel_combo.isVisible()
        assert "event_channels" not in window.settings_shown()
    finally:
        for name in reversed(names):
            module_manager.deactivate_module(name)
