"""TimeSeriesGui: live plot, value readout, controls and stream health for a time series logic.

Example config (copy into the ``gui:`` section)::

    time_series_gui1:
        module.Class: 'instream.time_series_gui.TimeSeriesGui'
        options:
            use_antialias: True           # optional: smooth curves (costs some drawing time)
        connect:
            _time_series_logic_con: 'time_series_logic1'

Channels are plotted by unit: one plot per unit (in the order the units first appear among the
active channels), stacked, their time axes linked, each with its own y axis and legend.

The logic lives in its own thread. Start, stop and record go to it through queued signals,
so the GUI never waits for it; a snapshot is saved by a short-lived thread that reports the
file's path back; settings are applied with a direct (locked) call, so a refusal can be shown
at once and the widgets reset to the settings the logic really has. Frames arrive queued from
the logic; if several queue up, only the newest is drawn.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.core.module import GuiBase
from qudi.core.statusvariable import StatusVar

from qudi.gui.instream.decimate import peak_decimate, visible_slice
from qudi.gui.instream.time_series_window import TimeSeriesWindow

__all__ = ["TimeSeriesGui", "format_value"]

_QUEUED = QtCore.Qt.ConnectionType.QueuedConnection
_POLL_INTERVAL_MS = 500  # status bar refresh (stream health, recording progress)


def format_value(value, unit: str = "", precision: int = 4) -> str:
    """A number with SI prefix and unit, e.g. ``1.234 kHz``; ints, floats and numpy scalars."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(number):
        return f"{number} {unit}".strip()
    return pg.siFormat(number, precision=precision, suffix=unit)


def format_bytes(size: int) -> str:
    """File sizes as people read them: ``12.3 MB``."""
    return pg.siFormat(float(size), precision=3, suffix="B")


class TimeSeriesGui(GuiBase):
    """Live plot of a ``TimeSeriesReaderLogic``; see the module docstring."""

    sigStartReading = QtCore.Signal()
    sigStopReading = QtCore.Signal()
    sigStartRecording = QtCore.Signal()
    sigStopRecording = QtCore.Signal()
    _sigSnapshotDone = QtCore.Signal(str, str)  # path, error ("" if none)

    _time_series_logic_con = Connector(
        name="_time_series_logic_con", interface="TimeSeriesReaderLogic"
    )

    _use_antialias = ConfigOption("use_antialias", default=True)
    # view choices that persist from one session to the next (the window geometry does too)
    _saved_freeze_y = StatusVar("freeze_y", default=False)
    _saved_readout = StatusVar("readout", default=None)  # [channel, "raw" | "averaged"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._mw: TimeSeriesWindow | None = None
        self._connections: list[tuple[object, object]] = []
        self._raw_curves: dict[str, pg.PlotDataItem] = {}
        self._averaged_curves: dict[str, pg.PlotDataItem] = {}
        self._newest: dict[tuple[str, str], float] = {}
        self._pending_frame: tuple | None = None
        self._draw_timer: QtCore.QTimer | None = None
        self._units: dict[str, str] = {}
        self._plotted: tuple[list[str], list[str]] | None = None  # (raw, averaged) curves
        self._last_frame: tuple | None = None
        self._running = False
        self._recording = False
        self._poll_timer: QtCore.QTimer | None = None
        self._snapshot_thread: threading.Thread | None = None

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        if not isinstance(self._use_antialias, bool):  # before any window exists
            raise ValueError(
                f"option 'use_antialias' is {self._use_antialias!r}: use True or False"
            )
        logic = self._time_series_logic_con()
        self._mw = TimeSeriesWindow()
        self._mw.plot_widget.setAntialiasing(self._use_antialias)
        self._restore_window_geometry(self._mw)
        mw = self._mw
        self._connect(self.sigStartReading, logic.start_reading, _QUEUED)
        self._connect(self.sigStopReading, logic.stop_reading, _QUEUED)
        self._connect(self.sigStartRecording, logic.start_recording, _QUEUED)
        self._connect(self.sigStopRecording, logic.stop_recording, _QUEUED)
        self._connect(self._sigSnapshotDone, self._snapshot_done, _QUEUED)
        # frames queue up if drawing is slower than the logic: draw only the newest of them
        self._draw_timer = QtCore.QTimer()
        self._draw_timer.setSingleShot(True)
        self._draw_timer.setInterval(0)
        self._connect(self._draw_timer.timeout, self._draw_frame)
        self._connect(logic.sigDataChanged, self._keep_frame, _QUEUED)
        self._connect(logic.sigStatusChanged, self._update_status, _QUEUED)
        self._connect(logic.sigTraceSettingsChanged, self._show_trace_settings, _QUEUED)
        self._connect(logic.sigChannelSettingsChanged, self._show_channel_settings, _QUEUED)
        self._connect(mw.action_start.triggered, self._start_stop_clicked)
        self._connect(mw.action_record.triggered, self._record_clicked)
        self._connect(mw.action_snapshot.triggered, self._snapshot_clicked)
        self._connect(mw.action_freeze_y.toggled, self._freeze_y)
        self._connect(mw.action_autoscale.triggered, self._autoscale)
        self._connect(mw.trace_apply_button.clicked, self.apply_trace_settings)
        self._connect(mw.channel_apply_button.clicked, self.apply_channel_settings)
        self._connect(mw.readout_channel_combo.currentIndexChanged, self._show_readout)
        self._connect(mw.readout_kind_combo.currentIndexChanged, self._show_readout)

        # oversampling divides the sample rate: data rates below the streamer's minimum are real
        _, high = logic.streamer_constraints.sample_rate.bounds
        mw.data_rate_spinbox.setRange(1e-4, float(high))
        self._show_trace_settings(logic.trace_settings)
        self._show_channel_settings(*logic.channel_settings)
        self._update_status(logic.module_state() == "locked", logic.data_recording_active)
        self._restore_view_choices()

        self._poll_timer = QtCore.QTimer()
        self._poll_timer.setInterval(_POLL_INTERVAL_MS)
        self._connect(self._poll_timer.timeout, self._poll_status)
        self._poll_timer.start()
        self._poll_status()
        self.show()

    def on_deactivate(self) -> None:
        mw = self._mw
        self._saved_freeze_y = mw.action_freeze_y.isChecked()
        self._saved_readout = [
            mw.readout_channel_combo.currentText(),
            mw.readout_kind_combo.currentText(),
        ]
        if self._snapshot_thread is not None:
            self._snapshot_thread.join(timeout=30)
        self._poll_timer.stop()
        self._draw_timer.stop()
        for signal, slot in reversed(self._connections):
            signal.disconnect(slot)
        self._connections.clear()
        self._poll_timer = self._draw_timer = None
        self._pending_frame = None
        self._save_window_geometry(self._mw)
        self._mw.close()
        self._mw.deleteLater()
        self._mw = None
        self._raw_curves.clear()
        self._averaged_curves.clear()
        self._plotted = None

    def _restore_view_choices(self) -> None:
        mw = self._mw
        if isinstance(self._saved_readout, (list, tuple)) and len(self._saved_readout) == 2:
            channel, kind = (str(choice) for choice in self._saved_readout)
            if mw.readout_channel_combo.findText(channel) >= 0:
                mw.readout_channel_combo.setCurrentText(channel)
            if mw.readout_kind_combo.findText(kind) >= 0:
                mw.readout_kind_combo.setCurrentText(kind)
        mw.action_freeze_y.setChecked(bool(self._saved_freeze_y))

    def show(self) -> None:
        self._mw.show()
        self._mw.raise_()
        self._mw.activateWindow()

    @property
    def window(self) -> TimeSeriesWindow:
        """The main window (for scripts and tests)."""
        return self._mw

    def _connect(self, signal, slot, kind=QtCore.Qt.ConnectionType.AutoConnection) -> None:
        signal.connect(slot, kind)
        self._connections.append((signal, slot))

    # ------------------------------------------------------------------------------ plot
    @QtCore.Slot(object, object, object, object)
    def _keep_frame(self, x, raw: dict, x_avg, averaged: dict | None) -> None:
        """Keep the newest frame; it is drawn once the queued frames are all in."""
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        self._pending_frame = (x, raw, x_avg, averaged)
        if not self._draw_timer.isActive():
            self._draw_timer.start()

    @QtCore.Slot()
    def _draw_frame(self) -> None:
        """The newest frame to the curves: whole arrays, no per-sample work. The arrays are
        read-only views that the logic leaves unchanged for about a window of new points."""
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        frame, self._pending_frame = self._pending_frame, None
        if frame is None:
            return
        self._last_frame = frame
        x, raw, x_avg, averaged = frame
        averaged = averaged or {}
        if (list(raw), list(averaged)) != self._plotted:
            self._rebuild_curves(list(raw), list(averaged))
        for channel, y in raw.items():
            self._raw_curves[channel].setData(*self._drawable(x, y))
            if len(y):
                self._newest[(channel, "raw")] = y[-1]
        for channel, y in averaged.items():
            self._averaged_curves[channel].setData(*self._drawable(x_avg, y))
            if len(y):
                self._newest[(channel, "averaged")] = y[-1]
        # fit the ranges now: left to the paint, the new range would ask for a second paint
        for plot in self._mw.plot_items.values():
            view = plot.getViewBox()
            if getattr(view, "_autoRangeNeedsUpdate", False):  # pyqtgraph 0.13, 0.14
                view.updateAutoRange()
        self._show_readout()

    def _drawable(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The points worth drawing: those in view (all of them while x follows the data),
        min/max-decimated to about two per pixel column."""
        view = self._mw.plot_item.getViewBox()
        if not view.autoRangeEnabled()[0]:  # the user zoomed or panned in x
            x_min, x_max = view.viewRange()[0]
            visible = visible_slice(x, x_min, x_max)
            x, y = x[visible], y[visible]
        return peak_decimate(x, y, max(200, int(view.width())))

    @QtCore.Slot()
    def _redraw_after_zoom(self) -> None:
        """Zooming in x shows more detail of the last frame, also while stopped."""
        if self._mw is None or self._pending_frame is not None or self._last_frame is None:
            return
        if not self._mw.plot_item.getViewBox().autoRangeEnabled()[0]:
            self._pending_frame = self._last_frame
            if not self._draw_timer.isActive():
                self._draw_timer.start()

    def _rebuild_curves(self, channels: list[str], averaged: list[str]) -> None:
        """One plot per unit (in the order the units first appear), the curves in the plot of
        their unit; the plots are made anew, so units that went away leave no empty plot."""
        self._units = dict(self._time_series_logic_con().channel_units)
        self._raw_curves.clear()
        self._averaged_curves.clear()
        self._newest.clear()
        units: list[str] = []
        members: dict[str, list[str]] = {}
        for channel in [*channels, *(ch for ch in averaged if ch not in channels)]:
            unit = self._units.get(channel, "")
            if unit not in members:
                units.append(unit)
                members[unit] = []
            members[unit].append(channel)
        if not units:
            units = [""]
        names = {unit: chs[0] if len(chs) == 1 else "value" for unit, chs in members.items()}
        self._mw.set_plot_units(units, names)
        self._mw.plot_item.getViewBox().sigXRangeChanged.connect(self._redraw_after_zoom, _QUEUED)
        self._plotted = (list(channels), list(averaged))
        frozen = self._mw.action_freeze_y.isChecked()
        for plot in self._mw.plot_items.values():
            self._freeze_view(plot.getViewBox(), frozen)
        hues = max(len(channels), 1)
        for index, channel in enumerate(channels):
            plot = self._mw.plot_items[self._units.get(channel, "")]
            colour = pg.intColor(index, hues=hues, values=1, maxValue=230)
            faint = pg.mkColor(colour)
            faint.setAlpha(110 if channel in averaged else 255)
            curve = plot.plot(pen=pg.mkPen(faint, width=1), name=channel)
            curve.setZValue(0)
            self._raw_curves[channel] = curve
        for channel in averaged:
            plot = self._mw.plot_items[self._units.get(channel, "")]
            index = channels.index(channel) if channel in channels else len(channels)
            colour = pg.intColor(index, hues=hues, values=1, maxValue=230)
            curve = plot.plot(pen=pg.mkPen(colour, width=3), name=f"{channel} (avg)")
            curve.setZValue(10)  # averages on top of the raw curves
            self._averaged_curves[channel] = curve

    @staticmethod
    def _freeze_view(view: pg.ViewBox, frozen: bool) -> None:
        if frozen:
            view.disableAutoRange(axis=pg.ViewBox.YAxis)
        else:
            view.enableAutoRange(axis=pg.ViewBox.YAxis)
        view.setMouseEnabled(x=True, y=not frozen)

    @QtCore.Slot(bool)
    def _freeze_y(self, frozen: bool) -> None:
        for plot in self._mw.plot_items.values():
            self._freeze_view(plot.getViewBox(), frozen)

    @QtCore.Slot()
    def _autoscale(self) -> None:
        self._mw.action_freeze_y.setChecked(False)
        for plot in self._mw.plot_items.values():
            plot.getViewBox().enableAutoRange(axis=pg.ViewBox.XYAxes)

    # --------------------------------------------------------------------------- readout
    @QtCore.Slot()
    def _show_readout(self) -> None:
        mw = self._mw
        channel = mw.readout_channel_combo.currentText()
        kind = mw.readout_kind_combo.currentText()
        value = self._newest.get((channel, kind))
        if value is None:
            mw.readout_label.setText("—")
        else:
            mw.readout_label.setText(format_value(value, self._units.get(channel, "")))

    # -------------------------------------------------------------------------- controls
    @QtCore.Slot(bool)
    def _start_stop_clicked(self, checked: bool) -> None:
        # the action shows the logic's state, which arrives with sigStatusChanged
        self._mw.action_start.setChecked(self._running)
        (self.sigStartReading if checked else self.sigStopReading).emit()

    @QtCore.Slot(bool)
    def _record_clicked(self, checked: bool) -> None:
        self._mw.action_record.setChecked(self._recording)
        (self.sigStartRecording if checked else self.sigStopRecording).emit()

    @QtCore.Slot()
    def _snapshot_clicked(self) -> None:
        # the logic's save_trace_snapshot returns the path but cannot be awaited through a
        # queued signal; it is thread-safe (it copies the trace under its lock), so a short-lived
        # thread calls it and reports back, and neither the GUI nor the logic's frames wait
        if self._snapshot_thread is not None and self._snapshot_thread.is_alive():
            self._mw.statusBar().showMessage("a snapshot is still being saved", 5000)
            return
        tag = self._mw.name_tag_edit.text().strip()
        logic = self._time_series_logic_con()
        self._snapshot_thread = threading.Thread(
            target=self._save_snapshot, args=(logic, tag), name="trace snapshot", daemon=True
        )
        self._snapshot_thread.start()
        self._mw.statusBar().showMessage("saving snapshot ...")

    def _save_snapshot(self, logic, tag: str) -> None:
        """Runs in the snapshot thread."""
        try:
            path = logic.save_trace_snapshot(tag)
        except Exception as error:
            self._sigSnapshotDone.emit("", f"{type(error).__name__}: {error}")
        else:
            self._sigSnapshotDone.emit(str(path), "")

    @QtCore.Slot(str, str)
    def _snapshot_done(self, path: str, error: str) -> None:
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        if error:
            message = f"snapshot failed: {error}"
            self.log.error(message)
        else:
            message = f"snapshot saved to {path}"
        self._mw.statusBar().showMessage(message)

    @QtCore.Slot(bool, bool)
    def _update_status(self, running: bool, recording: bool) -> None:
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        mw = self._mw
        was_recording = self._recording
        self._running, self._recording = running, recording
        mw.action_start.setChecked(running)
        mw.action_start.setText("Stop" if running else "Start")
        mw.action_record.setChecked(recording)
        mw.action_record.setText("Stop recording" if recording else "Record")
        mw.trace_settings_dock.widget().setEnabled(not recording)
        mw.channel_dock.widget().setEnabled(not recording)
        if was_recording and not recording:
            info = self._time_series_logic_con().recording_info
            if info is not None:
                message = f"recording saved to {info['path']}"
                mw.statusBar().showMessage(message)
                self.log.info(message)
            mw.recording_label.setText("")
        self._poll_status()

    @QtCore.Slot()
    def _poll_status(self) -> None:
        """Stream health and recording progress in the status bar (~2 Hz)."""
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        logic = self._time_series_logic_con()
        mw = self._mw
        health = logic.stream_health
        mw.health_label.setText(
            f"rate {format_value(health['sample_rate'], 'Hz', 3)} | "
            f"frames {health['frame_rate']:.1f} Hz | "
            f"buffer {100 * health['buffer_fill']:.1f} % | "
            f"streamer {health['streamer_state']}"
        )
        lost = int(health["lost_samples"])
        mw.lost_label.setText(f"lost {lost}")
        mw.lost_label.setStyleSheet("color: red; font-weight: bold;" if lost > 0 else "")
        if self._recording:
            info = logic.recording_info
            if info is not None and info.get("running"):
                elapsed = time.strftime("%H:%M:%S", time.gmtime(info["seconds"]))
                mw.recording_label.setText(f"REC {elapsed} {format_bytes(info['bytes'])}")

    # -------------------------------------------------------------------------- settings
    @QtCore.Slot()
    def apply_trace_settings(self) -> None:
        """Send the spin boxes' values to the logic; a refusal shows and the real values return."""
        mw = self._mw
        settings = {
            "data_rate": mw.data_rate_spinbox.value(),
            "oversampling_factor": mw.oversampling_spinbox.value(),
            "moving_average_width": mw.average_width_spinbox.value(),
            "trace_window_size": mw.window_size_spinbox.value(),
        }
        logic = self._time_series_logic_con()
        try:
            logic.set_trace_settings(settings)
        except Exception as error:
            self._refused("trace settings", error)
        self._show_trace_settings(logic.trace_settings)

    @QtCore.Slot()
    def apply_channel_settings(self) -> None:
        """Send the ticked channels to the logic; a refusal shows and the real ones return."""
        active, averaged = self._mw.checked_channels()
        logic = self._time_series_logic_con()
        try:
            logic.set_channel_settings(active, averaged)
        except Exception as error:
            self._refused("channel settings", error)
        self._show_channel_settings(*logic.channel_settings)

    def _refused(self, what: str, error: Exception) -> None:
        message = f"{what} refused: {error}"
        self._mw.statusBar().showMessage(message, 15000)
        self.log.warning(message)

    @QtCore.Slot(dict)
    def _show_trace_settings(self, settings: dict) -> None:
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        mw = self._mw
        for spinbox, key in (
            (mw.data_rate_spinbox, "data_rate"),
            (mw.oversampling_spinbox, "oversampling_factor"),
            (mw.average_width_spinbox, "moving_average_width"),
            (mw.window_size_spinbox, "trace_window_size"),
        ):
            spinbox.blockSignals(True)
            spinbox.setValue(settings[key])
            spinbox.blockSignals(False)

    @QtCore.Slot(object, object)
    def _show_channel_settings(self, active, averaged) -> None:
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        mw = self._mw
        logic = self._time_series_logic_con()
        available = list(logic.streamer_constraints.channel_units)
        mw.set_channels(available, list(active), list(averaged))
        combo = mw.readout_channel_combo
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(list(active))
        if current in active:
            combo.setCurrentText(current)
        combo.blockSignals(False)
        # the plots follow the channels now, not only once the next frame arrives; the
        # settings come twice (direct reply, then the logic's queued signal): build them once
        units = dict(logic.channel_units)
        if (list(active), list(averaged)) != self._plotted or units != self._units:
            self._rebuild_curves(list(active), list(averaged))
        self._show_readout()
