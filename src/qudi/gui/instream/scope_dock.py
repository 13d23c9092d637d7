"""The triggered ("scope") view of a time-series window: overlaid windows, their average, settings.

:func:`install_scope_view` gives a time-series window a "View > Triggered view" action that
opens a window of its own (a child of the time-series window, closed with it): a plot of the
newest windows around each trigger (overlaid, faint) and their average (bold), time in
seconds from the trigger sample; a "Trigger settings" dock (source, channel, edge, level,
hysteresis, pre, post and hold-off in samples or seconds, windows kept, overlay/average, the
channel shown; with an event stream on the logic's ``trigger_events`` connector also the
source ``event``, its event channel and value threshold) whose Apply calls the logic's
``set_scope_settings`` (a refusal is shown in the dock, never raised); and the counts:
windows delivered, held off, overlapping, missed, too early, samples lost (and, with events,
events read, placed and lost).

The logic emits ``sigScopeChanged`` (queued here) at most once per frame; the overlay is one
curve (windows joined, each ended by a gap), so a thousand windows cost one draw.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from qudi.logic.instream.scope_settings import SCOPE_DISPLAYS, SCOPE_SOURCES, SCOPE_UNITS
from qudi.util.instream.triggered import EDGES

__all__ = ["ScopeWindow", "install_scope_view"]

_QUEUED = QtCore.Qt.ConnectionType.QueuedConnection
_COUNTS = ("windows", "held_off", "overlapping", "missed", "too_early", "pending", "lost")
_EVENT_COUNTS = ("events", "event_triggers", "events_lost")  # with the event source


def install_scope_view(main_window: QtWidgets.QMainWindow, logic) -> ScopeWindow:
    """Add "View > Triggered view" to ``main_window``; returns the (hidden) scope window."""
    scope = ScopeWindow(logic, main_window)
    menus = [a.menu() for a in main_window.menuBar().actions() if a.text() == "View"]
    menu = menus[0] if menus and menus[0] is not None else main_window.menuBar().addMenu("View")
    action = QtGui.QAction("Triggered view", main_window)
    action.setToolTip("Windows around each trigger, overlaid and averaged")
    action.triggered.connect(scope.show_window)
    menu.addAction(action)
    scope.action = action
    return scope


class ScopeWindow(QtWidgets.QMainWindow):
    """The scope's plot and settings dock for ``logic`` (a ``TimeSeriesReaderLogic``)."""

    def __init__(self, logic, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setWindowFlag(QtCore.Qt.WindowType.Window, True)
        self.setWindowTitle(f"{parent.windowTitle() if parent else 'qudi'}: triggered view")
        self.setObjectName("scope_window")
        self.resize(1000, 560)
        self._logic = logic
        self._view = None
        self._settings: dict | None = None
        self._units: dict[str, str] = {}
        self._event_channels: list[str] | None = logic.trigger_event_channels
        self.plot_widget = pg.PlotWidget(self)
        self.plot_widget.setLabel("bottom", "time from trigger", units="s")
        self.plot_widget.showGrid(x=True, y=True, alpha=0.3)
        self.plot_widget.addLine(x=0.0, pen=pg.mkPen((200, 200, 200), style=QtCore.Qt.DashLine))
        self.level_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen((200, 200, 200), style=QtCore.Qt.DotLine)
        )
        self.plot_widget.addItem(self.level_line)
        self.overlay_curve = self.plot_widget.plot(pen=pg.mkPen((80, 160, 255, 70), width=1))
        self.average_curve = self.plot_widget.plot(pen=pg.mkPen((255, 170, 0), width=2.5))
        self.setCentralWidget(self.plot_widget)
        self._build_settings_dock()
        logic.sigScopeChanged.connect(self.show_scope, _QUEUED)
        logic.sigScopeSettingsChanged.connect(self.show_settings, _QUEUED)
        logic.sigChannelSettingsChanged.connect(self._channels_changed, _QUEUED)
        self._channels_changed(logic.active_channel_names, [])
        self.show_settings(logic.scope_settings)
        self.show_scope(logic.scope_windows)

    # -------------------------------------------------------------------------- widgets
    def _build_settings_dock(self) -> None:
        dock = QtWidgets.QDockWidget("Trigger settings", self)
        dock.setObjectName("trigger_settings_dock")
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        panel = QtWidgets.QWidget(dock)
        form = QtWidgets.QFormLayout(panel)
        self.enabled_checkbox = QtWidgets.QCheckBox("cut windows while reading", panel)
        events = self._event_channels
        self.source_combo = _combo(
            panel, [s for s in SCOPE_SOURCES if s != "event" or events is not None]
        )
        self.event_channel_combo = QtWidgets.QComboBox(panel)
        self.event_channel_combo.addItem("every channel", [])
        for name in events or []:
            self.event_channel_combo.addItem(name, [name])
        self.event_channel_combo.setToolTip("The event channel whose events trigger")
        self.event_threshold_edit = QtWidgets.QLineEdit(panel)
        self.event_threshold_edit.setPlaceholderText("every value")
        self.event_threshold_edit.setToolTip("Only events whose value is at least this trigger")
        self.channel_combo = QtWidgets.QComboBox(panel)
        self.edge_combo = _combo(panel, EDGES)
        self.level_spinbox = _spinbox(panel, -1e12, 1e12, 6)
        self.hysteresis_spinbox = _spinbox(panel, 0.0, 1e12, 6)
        self.unit_combo = _combo(panel, SCOPE_UNITS)
        self.pre_spinbox = _spinbox(panel, 0.0, 1e7, 0)
        self.post_spinbox = _spinbox(panel, 0.0, 1e7, 0)
        self.holdoff_spinbox = _spinbox(panel, 0.0, 1e9, 0)
        self.windows_spinbox = QtWidgets.QSpinBox(panel)
        self.windows_spinbox.setRange(1, 1000)
        self.display_combo = _combo(panel, SCOPE_DISPLAYS)
        self.marker_edit = QtWidgets.QLineEdit(panel)
        self.marker_edit.setPlaceholderText("text a marker holds ('' = every marker)")
        self.show_combo = QtWidgets.QComboBox(panel)
        self.show_combo.setToolTip("The channel plotted")
        self.apply_button = QtWidgets.QPushButton("Apply", panel)
        self.error_label = QtWidgets.QLabel("", panel)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #e04040")
        self.stats_label = QtWidgets.QLabel("", panel)
        self.stats_label.setWordWrap(True)
        for label, widget in (
            ("Trigger", self.enabled_checkbox),
            ("Source", self.source_combo),
            ("Channel", self.channel_combo),
            ("Edge", self.edge_combo),
            ("Level", self.level_spinbox),
            ("Hysteresis", self.hysteresis_spinbox),
            ("Pre, post in", self.unit_combo),
            ("Pre", self.pre_spinbox),
            ("Post", self.post_spinbox),
            ("Hold-off", self.holdoff_spinbox),
            ("Windows kept", self.windows_spinbox),
            ("Show", self.display_combo),
            ("Marker text", self.marker_edit),
            ("Event channel", self.event_channel_combo),
            ("Event value at least", self.event_threshold_edit),
            ("Plot channel", self.show_combo),
        ):
            form.addRow(label, widget)
            if events is None and widget in (self.event_channel_combo, self.event_threshold_edit):
                form.setRowVisible(widget, False)  # no event stream: no event source
        form.addRow(self.apply_button)
        form.addRow(self.error_label)
        form.addRow(self.stats_label)
        dock.setWidget(panel)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.settings_dock = dock
        self.apply_button.clicked.connect(self.apply_settings)
        self.unit_combo.currentTextChanged.connect(self._unit_changed)
        self.show_combo.currentTextChanged.connect(lambda _: self._draw())
        self.display_combo.currentTextChanged.connect(lambda _: self._draw())

    # -------------------------------------------------------------------------- actions
    @QtCore.Slot()
    def show_window(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()

    def settings_shown(self) -> dict:
        """The settings as the dock shows them (what Apply sends)."""
        samples = self.unit_combo.currentText() == "samples"

        def span(spinbox):
            return int(round(spinbox.value())) if samples else float(spinbox.value())

        channel = self.channel_combo.currentText()
        return {
            "enabled": self.enabled_checkbox.isChecked(),
            "source": self.source_combo.currentText(),
            "channel": channel or None,
            "edge": self.edge_combo.currentText(),
            "level": float(self.level_spinbox.value()),
            "hysteresis": float(self.hysteresis_spinbox.value()),
            "unit": self.unit_combo.currentText(),
            "pre": span(self.pre_spinbox),
            "post": span(self.post_spinbox),
            "holdoff": span(self.holdoff_spinbox),
            "windows": int(self.windows_spinbox.value()),
            "display": self.display_combo.currentText(),
            "marker_text": self.marker_edit.text(),
            **self._event_settings_shown(),
        }

    def _event_settings_shown(self) -> dict:
        """The event keys as shown; a threshold that is no number goes as typed (the logic
        refuses it, naming it)."""
        if self._event_channels is None:
            return {}
        text = self.event_threshold_edit.text().strip()
        try:
            threshold: float | str | None = float(text) if text else None
        except ValueError:
            threshold = text
        chosen = self.event_channel_combo.currentData()
        return {"event_channels": list(chosen or []), "event_threshold": threshold}

    @QtCore.Slot()
    def apply_settings(self) -> None:
        """Send the dock's settings to the logic; a refusal is shown, the dock then shows
        the settings in force again."""
        try:
            self._logic.set_scope_settings(**self.settings_shown())
        except (ValueError, TypeError, RuntimeError) as refused:
            self.error_label.setText(str(refused))
            self.show_settings(self._logic.scope_settings)
            return
        self.error_label.setText("")

    # ----------------------------------------------------------------- from the logic
    @QtCore.Slot(dict)
    def show_settings(self, settings: dict) -> None:
        self._settings = dict(settings)
        widgets = (
            self.source_combo,
            self.channel_combo,
            self.edge_combo,
            self.unit_combo,
            self.display_combo,
        )
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.enabled_checkbox.setChecked(bool(settings["enabled"]))
            self.source_combo.setCurrentText(settings["source"])
            channel = settings["channel"] or ""
            if self.channel_combo.findText(channel) < 0:
                self.channel_combo.addItem(channel)
            self.channel_combo.setCurrentText(channel)
            self.edge_combo.setCurrentText(settings["edge"])
            self.level_spinbox.setValue(settings["level"])
            self.hysteresis_spinbox.setValue(settings["hysteresis"])
            self.unit_combo.setCurrentText(settings["unit"])
            self._unit_changed(settings["unit"])
            self.pre_spinbox.setValue(settings["pre"])
            self.post_spinbox.setValue(settings["post"])
            self.holdoff_spinbox.setValue(settings["holdoff"])
            self.windows_spinbox.setValue(settings["windows"])
            self.display_combo.setCurrentText(settings["display"])
            self.marker_edit.setText(settings["marker_text"])
            self._show_event_settings(settings)
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        if settings["channel"] and self.show_combo.findText(settings["channel"]) >= 0:
            self.show_combo.setCurrentText(settings["channel"])
        self._draw()

    def _show_event_settings(self, settings: dict) -> None:
        chosen = list(settings.get("event_channels") or [])
        combo = self.event_channel_combo
        found = next((i for i in range(combo.count()) if combo.itemData(i) == chosen), -1)
        if found < 0:  # several channels (set from a script): shown as one entry
            combo.addItem(", ".join(chosen), chosen)
            found = combo.count() - 1
        combo.setCurrentIndex(found)
        threshold = settings.get("event_threshold")
        self.event_threshold_edit.setText("" if threshold is None else f"{threshold:g}")

    @QtCore.Slot(object)
    def show_scope(self, view) -> None:
        """Keep the newest view and draw it (if the window is open)."""
        self._view = view
        stats = view.stats
        if stats.get("state") != "running":
            self.stats_label.setText(f"not running: {stats.get('state')}")
        else:
            self.stats_label.setText(
                ", ".join(f"{key.replace('_', ' ')} {stats[key]}" for key in _COUNTS)
                + f" (of {stats['triggers']} triggers; {stats['kept']} kept)"
                + "".join(
                    f", {key.replace('_', ' ')} {stats[key]}"
                    for key in _EVENT_COUNTS
                    if key in stats
                )
            )
            channel = stats.get("trigger_channel")
            if channel and self.show_combo.currentText() == "":
                self.show_combo.setCurrentText(channel)
        if self.isVisible():
            self._draw()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self._draw()

    # ---------------------------------------------------------------------- internals
    @QtCore.Slot(object, object)
    def _channels_changed(self, active, _averaged) -> None:
        self._units = dict(self._logic.channel_units)
        for combo, first in ((self.channel_combo, ""), (self.show_combo, None)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            if first is not None:
                combo.addItem(first)  # '': the first active channel
            combo.addItems([str(ch) for ch in active])
            if combo.findText(current) >= 0:
                combo.setCurrentText(current)
            combo.blockSignals(False)

    def _unit_changed(self, unit: str) -> None:
        decimals = 0 if unit == "samples" else 6
        for spinbox in (self.pre_spinbox, self.post_spinbox, self.holdoff_spinbox):
            spinbox.setDecimals(decimals)
            spinbox.setSuffix("" if unit == "samples" else " s")

    def _draw(self) -> None:
        view = self._view
        channel = self.show_combo.currentText()
        if view is None or channel not in view.windows or not len(view.t):
            self.overlay_curve.setData([], [])
            self.average_curve.setData([], [])
            return
        unit = self._units.get(channel, "")
        self.plot_widget.setLabel("left", channel, units="" if unit == "c/s" else unit)
        settings = self._settings or {}
        triggering = settings.get("source") == "level" and channel == view.stats.get(
            "trigger_channel"
        )
        self.level_line.setVisible(triggering)
        if triggering:
            self.level_line.setValue(settings["level"])
        display = self.display_combo.currentText()
        windows = view.windows[channel]
        if display in ("overlay", "both") and len(windows):
            x = np.tile(np.append(view.t, np.nan), len(windows))
            y = np.hstack([windows, np.full((len(windows), 1), np.nan)]).ravel()
            self.overlay_curve.setData(x, y, connect="finite")
        else:
            self.overlay_curve.setData([], [])
        if display in ("average", "both") and channel in view.average:
            self.average_curve.setData(view.t, view.average[channel])
        else:
            self.average_curve.setData([], [])

    @property
    def view(self):
        """The newest view the logic sent (a ``ScopeView``), None before the first."""
        return self._view

    @property
    def shown_curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The curves drawn now (``overlay``, ``average``), for scripts and tests."""
        return {
            "overlay": self.overlay_curve.getData(),
            "average": self.average_curve.getData(),
        }


def _combo(parent: QtWidgets.QWidget, items) -> QtWidgets.QComboBox:
    combo = QtWidgets.QComboBox(parent)
    combo.addItems(list(items))
    return combo


def _spinbox(parent, low: float, high: float, decimals: int) -> QtWidgets.QDoubleSpinBox:
    spinbox = QtWidgets.QDoubleSpinBox(parent)
    spinbox.setRange(low, high)
    spinbox.setDecimals(decimals)
    return spinbox
