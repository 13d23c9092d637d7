"""TimeSeriesGui: the qudi module that wires a time series window to its logic.

Example config (copy into the ``gui:`` section)::

    time_series_gui1:
        module.Class: 'instream.time_series_gui.TimeSeriesGui'
        options:
            use_antialias: True           # optional: smooth curves (costs some drawing time)
        connect:
            _time_series_logic_con: 'time_series_logic1'

Channels are plotted by unit: one plot per unit (in the order the units first appear among the
active channels), stacked, their time axes linked, each with its own y axis and legend; the
toolbar's "Plot per channel" gives each channel a plot of its own instead. Clicking a curve's
line in a legend hides or shows it. Both choices persist from one session to the next, as do
"Freeze y", the readout and the window's geometry. The window is titled by the module's name.

Digital lines (channels the stream declares digital, ``logic.digital_channel_names``) are step
traces stacked in lanes, each named on the axis, on a plot of their own below the analog ones.
The session's markers (``logic.sigMarkersChanged``) are labelled vertical lines on every plot;
the toolbar's marker field and "Add marker" (or Enter) call ``logic.add_marker(text)``, and a
refusal is shown in the status bar and on the field, never raised (``marker_controls``).

The logic lives in its own thread. Start, stop and record go to it through queued signals,
so the GUI never waits for it; a snapshot is saved by a short-lived thread that reports the
file's path back; settings are applied with a direct (locked) call, so a refusal can be shown
at once, and the settings docks show the settings in force whenever the logic reports them.
Frames arrive queued from the logic; the GUI keeps the newest and draws it when the
``FramePacer`` says a draw is due (about 20 new trace points per draw, 33 draws/s at most),
and only if it brings new points.

The parts: ``time_series_window`` (widgets), ``trace_plot`` (curves and ranges),
``settings_panel`` (settings docks), ``stream_status`` (status bar), ``frame_pacer`` (when to
draw), ``pyramid`` (each curve's min/max bins, updated with new points only) and ``decimate``
(points worth drawing), ``formatting`` (numbers with units).
"""

from __future__ import annotations

import math
import threading

from PySide6 import QtCore
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.core.module import GuiBase
from qudi.core.statusvariable import StatusVar

from qudi.gui.instream.formatting import format_value
from qudi.gui.instream.frame_pacer import FramePacer
from qudi.gui.instream.marker_controls import MarkerControls
from qudi.gui.instream.scope_dock import install_scope_view
from qudi.gui.instream.settings_panel import SettingsPanel
from qudi.gui.instream.stream_status import StreamStatus
from qudi.gui.instream.time_series_window import TimeSeriesWindow, show_text
from qudi.gui.instream.trace_plot import TracePlot

__all__ = ["TimeSeriesGui", "format_value"]

_QUEUED = QtCore.Qt.ConnectionType.QueuedConnection
_POLL_INTERVAL_MS = 1000  # status bar refresh (stream health, recording progress)
# Draws: one per 20 new trace points, at most 33 per second (from 660 points/s on) and at
# least every 0.5 s while data arrive. A draw of the demo's window costs ~10 ms of CPU under
# Xvfb whatever it shows, so at the demo's 50 points/s this is 2.5 draws/s per window;
# benchmarks/gui_idle.py measured the demo at 15.1 / 11.3 % of a core with 15 / 20 points.
# 33, not 30: a logic at max_frame_rate 30 frames every round(1000 / 30) = 33 ms on a coarse
# Qt timer (up to 5 % early), 30.3-31.3 frames/s; a cap of 30 merged about one a second.
_MAX_DRAW_RATE = 33.0
_POINTS_PER_DRAW = 20.0
_LONGEST_WAIT_S = 0.5


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
    _saved_plot_per_channel = StatusVar("plot_per_channel", default=False)
    _saved_hidden = StatusVar("hidden_curves", default=[])  # legend names

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._mw: TimeSeriesWindow | None = None
        self._plot: TracePlot | None = None
        self._panel: SettingsPanel | None = None
        self._status: StreamStatus | None = None
        self._markers: MarkerControls | None = None
        self._pacer = FramePacer(_MAX_DRAW_RATE, _POINTS_PER_DRAW, _LONGEST_WAIT_S)
        self._connections: list[tuple[object, object]] = []
        self._pending_frame: tuple | None = None
        self._redraw_wanted = False  # the last frame again, e.g. after a zoom
        self._draw_timer: QtCore.QTimer | None = None
        self._poll_timer: QtCore.QTimer | None = None
        self._running = False
        self._recording = False
        self._snapshot_thread: threading.Thread | None = None

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        if not isinstance(self._use_antialias, bool):  # before any window exists
            raise ValueError(
                f"option 'use_antialias' is {self._use_antialias!r}: use True or False"
            )
        logic = self._time_series_logic_con()
        mw = self._mw = TimeSeriesWindow(title=f"qudi: {self.module_name}")
        mw.plot_widget.setAntialiasing(self._use_antialias)
        self._restore_window_geometry(mw)
        self._plot = TracePlot(
            mw, self._channel_units, self._redraw_after_zoom, self._redraw, self._digital_lines
        )
        self._panel = SettingsPanel(mw)
        self._status = StreamStatus(mw)
        self.scope_view = install_scope_view(mw, logic)  # View > Triggered view (scope_dock)
        self._connect(self.sigStartReading, logic.start_reading, _QUEUED)
        self._connect(self.sigStopReading, logic.stop_reading, _QUEUED)
        self._connect(self.sigStartRecording, logic.start_recording, _QUEUED)
        self._connect(self.sigStopRecording, logic.stop_recording, _QUEUED)
        self._connect(self._sigSnapshotDone, self._snapshot_done, _QUEUED)
        self._draw_timer = QtCore.QTimer()
        self._draw_timer.setSingleShot(True)
        self._connect(self._draw_timer.timeout, self._draw_frame)
        self._connect(logic.sigDataChanged, self._keep_frame, _QUEUED)
        self._connect(logic.sigStatusChanged, self._update_status, _QUEUED)
        self._connect(logic.sigTraceSettingsChanged, self._show_trace_settings, _QUEUED)
        self._connect(logic.sigChannelSettingsChanged, self._show_channel_settings, _QUEUED)
        self._connect(mw.action_start.triggered, self._start_stop_clicked)
        self._connect(mw.action_record.triggered, self._record_clicked)
        self._connect(mw.action_snapshot.triggered, self._snapshot_clicked)
        self._connect(mw.action_freeze_y.toggled, self._plot.freeze_y)
        self._connect(mw.action_autoscale.triggered, self._autoscale)
        self._connect(mw.action_plot_per_channel.toggled, self._plot_per_channel_toggled)
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
        self._markers = MarkerControls(mw, self._plot, logic, self.log)  # digital lanes too

        self._poll_timer = QtCore.QTimer()
        self._poll_timer.setInterval(_POLL_INTERVAL_MS)
        self._connect(self._poll_timer.timeout, self._poll_status)
        self._poll_timer.start()
        self.show()

    def on_deactivate(self) -> None:
        mw = self._mw
        self._saved_freeze_y = mw.action_freeze_y.isChecked()
        self._saved_plot_per_channel = mw.action_plot_per_channel.isChecked()
        self._saved_hidden = self._plot.hidden
        self._saved_readout = [
            mw.readout_channel_combo.currentText(),
            mw.readout_kind_combo.currentText(),
        ]
        if self._snapshot_thread is not None:
            self._snapshot_thread.join(timeout=30)
        self._poll_timer.stop()
        self._draw_timer.stop()
        self._markers.disconnect()
        for signal, slot in reversed(self._connections):
            signal.disconnect(slot)
        self._connections.clear()
        self._poll_timer = self._draw_timer = None
        self._pending_frame = None
        self._save_window_geometry(mw)
        mw.close()
        mw.deleteLater()
        self._mw = self._plot = self._panel = self._status = self._markers = None

    def _restore_view_choices(self) -> None:
        mw = self._mw
        if isinstance(self._saved_readout, (list, tuple)) and len(self._saved_readout) == 2:
            channel, kind = (str(choice) for choice in self._saved_readout)
            if mw.readout_channel_combo.findText(channel) >= 0:
                mw.readout_channel_combo.setCurrentText(channel)
            if mw.readout_kind_combo.findText(kind) >= 0:
                mw.readout_kind_combo.setCurrentText(kind)
        mw.action_freeze_y.setChecked(bool(self._saved_freeze_y))
        if isinstance(self._saved_hidden, (list, tuple)):
            self._plot.set_hidden(str(name) for name in self._saved_hidden)
        mw.action_plot_per_channel.setChecked(bool(self._saved_plot_per_channel))

    def show(self) -> None:
        self._mw.show()
        self._mw.raise_()
        self._mw.activateWindow()
        if self._pending_frame is not None:  # what came while the window was closed
            self._schedule_draw()

    @property
    def window(self) -> TimeSeriesWindow:
        """The main window (for scripts and tests)."""
        return self._mw

    @property
    def plot(self) -> TracePlot:
        """The curves of the window (for scripts and tests)."""
        return self._plot

    def _connect(self, signal, slot, kind=QtCore.Qt.ConnectionType.AutoConnection) -> None:
        signal.connect(slot, kind)
        self._connections.append((signal, slot))

    def _channel_units(self) -> dict[str, str]:
        return dict(self._time_series_logic_con().channel_units)

    def _digital_lines(self) -> list[str]:
        """The channels drawn in lanes (none with a logic that knows no digital lines)."""
        return list(getattr(self._time_series_logic_con(), "digital_channel_names", []))

    # ------------------------------------------------------------------------------ plot
    @QtCore.Slot(object, object, object, object)
    def _keep_frame(self, x, raw: dict, x_avg, averaged: dict | None) -> None:
        """Keep the newest frame; it is drawn when the pacer says a draw is due."""
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        self._pending_frame = (x, raw, x_avg, averaged)
        self._schedule_draw()

    def _schedule_draw(self) -> None:
        if not self._draw_timer.isActive():
            self._draw_timer.start(math.ceil(1000 * self._pacer.delay()))

    @QtCore.Slot()
    def _draw_frame(self) -> None:
        """The newest frame (or the last one again, if a redraw was asked for) to the curves."""
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        if not self._mw.isVisible():  # a closed window costs nothing; show() draws it
            return
        frame, self._pending_frame = self._pending_frame, None
        again, self._redraw_wanted = self._redraw_wanted, False
        started = self._pacer.now()  # the next draw is due an interval after this one began
        if frame is not None:
            drawn = self._plot.draw(frame, force=again)
        else:
            drawn = again and self._plot.redraw()
        if drawn:
            self._pacer.drawn(started)
            self._show_readout()

    def _redraw_after_zoom(self) -> None:
        """Zooming in x shows more detail of the last frame, also while stopped."""
        if self._mw is None or self._plot.follows_x:
            return
        self._redraw_wanted = True
        self._schedule_draw()

    def _redraw(self) -> None:
        """Draw the last frame again soon (a curve was shown or hidden)."""
        if self._mw is None:
            return
        self._redraw_wanted = True
        self._schedule_draw()

    @QtCore.Slot(bool)
    def _plot_per_channel_toggled(self, per_channel: bool) -> None:
        self._plot.set_plot_per_channel(per_channel)
        self._redraw()

    @QtCore.Slot()
    def _autoscale(self) -> None:
        self._mw.action_freeze_y.setChecked(False)
        self._plot.autoscale()

    @QtCore.Slot()
    def _show_readout(self) -> None:
        mw = self._mw
        value, unit = self._plot.newest(
            mw.readout_channel_combo.currentText(), mw.readout_kind_combo.currentText()
        )
        show_text(mw.readout_label, "—" if value is None else format_value(value, unit))

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
        was_running, was_recording = self._running, self._recording
        self._running, self._recording = running, recording
        mw.action_start.setChecked(running)
        mw.action_start.setText("Stop" if running else "Start")
        mw.action_record.setChecked(recording)
        mw.action_record.setText("Stop recording" if recording else "Record")
        self._panel.set_editable(not recording)
        if running and not was_running:  # the settings in force now, whoever changed them
            self._show_trace_settings(self._time_series_logic_con().trace_settings)
        if was_recording and not recording:
            message = self._status.recording_finished(self._time_series_logic_con().recording_info)
            if message is not None:
                self.log.info(message)
        self._poll_status()

    @QtCore.Slot()
    def _poll_status(self) -> None:
        """Stream health and recording progress in the status bar (once a second)."""
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        logic = self._time_series_logic_con()
        self._status.show_health(logic.stream_health)
        if self._recording:
            self._status.show_recording(logic.recording_info)

    # -------------------------------------------------------------------------- settings
    @QtCore.Slot()
    def apply_trace_settings(self) -> None:
        """Ask the logic for the trace settings typed; a refusal changes nothing but says why."""
        logic = self._time_series_logic_con()
        try:
            logic.set_trace_settings(self._panel.requested_trace_settings())
        except Exception as error:
            self.log.warning(self._panel.show_refusal("trace settings", error))
        else:
            self._panel.clear_refusal("trace settings")
        self._show_trace_settings(logic.trace_settings)

    @QtCore.Slot()
    def apply_channel_settings(self) -> None:
        """Ask the logic for the channels ticked; a refusal changes nothing but says why."""
        logic = self._time_series_logic_con()
        try:
            logic.set_channel_settings(*self._panel.requested_channels())
        except Exception as error:
            self.log.warning(self._panel.show_refusal("channel settings", error))
        else:
            self._panel.clear_refusal("channel settings")
        self._show_channel_settings(*logic.channel_settings)

    @QtCore.Slot(dict)
    def _show_trace_settings(self, settings: dict) -> None:
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        self._panel.show_trace_settings(settings)
        self._pacer.set_point_rate(settings["data_rate"])

    @QtCore.Slot(object, object)
    def _show_channel_settings(self, active, averaged) -> None:
        if self._mw is None:  # queued before deactivation, delivered after it
            return
        logic = self._time_series_logic_con()
        available = list(logic.streamer_constraints.channel_units)
        shown = list(getattr(logic, "trace_channel_names", active))  # an event stream's rates
        digital = list(getattr(logic, "digital_channel_names", []))
        self._panel.show_channels(available, list(active), list(averaged), shown, digital)
        # the plots follow the channels now, not only once the next frame arrives; the
        # settings come twice (direct reply, then the logic's queued signal): build them once
        units = self._channel_units()
        averaged = list(getattr(logic, "trace_averaged_names", averaged))
        if not self._plot.matches(shown, averaged, units):
            self._plot.rebuild(shown, averaged, units)
        self._show_readout()
