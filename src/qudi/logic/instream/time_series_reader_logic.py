"""TimeSeriesReaderLogic: a live trace of a stream, with averaging, recording and snapshots.

Example config (copy into the ``logic:`` section)::

    time_series_logic1:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        options:
            max_frame_rate: 30            # optional: trace updates per second (20)
            channel_buffer_size: 1048576  # optional: stream buffer asked of the streamer (1 Mi)
            max_raw_data_bytes: 1073741824  # optional: a recording stops at this size (1 GiB)
            recording_format: 'single'    # optional: 'session' records several streams + markers
            recording_streams: []         # optional, with 'session': other streams, by name
            max_trace_bytes: 1073741824   # optional: memory the trace window may take (1 GiB)
            calc_digital_freq: True       # optional: counts per sample -> counts per second
            start_reading_on_activation: False  # optional: start the live trace at once
        connect:
            streamer: 'stream_buffer1'
            trigger_events: 'event_buffer1'  # optional: an event stream triggers the scope view

The public API (signals, properties, methods, status variables) is that of the logic of the
same name in qudi-iqo-modules, so its GUI and scripts work with this one. What differs is
under the hood: a frame timer in the logic's thread drains what the streamer has (it never
waits for hardware), traces live in ring buffers (a frame costs O(new samples)), recordings
stream to HDF5 from their own thread (memory stays flat), and errors stop the stream too.

This module is the qudi glue; the parts live beside it in ``qudi.logic.instream``: the trace
maths (``trace``), checks of options and settings (``settings``), settings as they meet the
streamer (``trace_setup``, ``stream_setup``), reading frames (``frames``), recording
(``recording``, ``session_options``), snapshots (``snapshot``, ``file_names``) and the frame
rates (``health``).

``calc_digital_freq``: channels whose unit is counts-like (``counts``, ``cts``, ``c`` or the
``count_units`` option) carry counts per sample; the trace shows them in counts per second
(``c/s``), using the sample rate the streamer actually set.

Before the first point after activation or a settings change, ``trace_data`` and
``averaged_trace_data`` are a window of zeros, as qudi-iqo-modules' logic returns (its GUI
indexes ``x[0]``); a run started by ``start_reading`` shows its real points only, and no
frame is emitted before it has one.

The settings shown and saved are always those in force: when another consumer of a shared
stream changes its rate while this logic is idle, the logic follows (its data rate at its
oversampling factor) and emits ``sigTraceSettingsChanged``, within half a second or at the
latest when it starts reading. A refused change (bad values, another consumer streaming,
a window too large for ``max_trace_bytes``) changes nothing, not even the trace.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

import numpy as np
from PySide6 import QtCore
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.core.module import LogicBase
from qudi.core.statusvariable import StatusVar

from qudi.logic.instream.frames import FrameReader, frame_interval_ms
from qudi.logic.instream.health import StreamHealth
from qudi.logic.instream.kinds_options import StreamKindsView
from qudi.logic.instream.recording import TraceRecording
from qudi.logic.instream.scope_options import ScopeOptions
from qudi.logic.instream.session_options import SessionRecordingOptions
from qudi.logic.instream.settings import (
    TRACE_SETTING_KEYS,
    check_options,
    checked_channels,
    merged_trace_settings,
)
from qudi.logic.instream.snapshot import save_snapshot
from qudi.logic.instream.trace import TraceBuilder, TraceWindow
from qudi.logic.instream.trace_setup import SetupOptions, TraceSetup

__all__ = ["TimeSeriesReaderLogic"]

_FOLLOW_INTERVAL_MS = 500  # while idle: how often the settings in force are looked at
_QUEUED = QtCore.Qt.ConnectionType.QueuedConnection
_OPTIONS = {  # config key: attribute
    "max_frame_rate": "_max_frame_rate",
    "channel_buffer_size": "_channel_buffer_size",
    "max_raw_data_bytes": "_max_raw_data_bytes",
    "max_trace_bytes": "_max_trace_bytes",
    "calc_digital_freq": "_calc_digital_freq",
    "start_reading_on_activation": "_start_on_activation",
    "count_units": "_count_units",
}
_STATUS_KEYS = (*TRACE_SETTING_KEYS, "active_channels", "averaged_channels")


class TimeSeriesReaderLogic(ScopeOptions, StreamKindsView, SessionRecordingOptions, LogicBase):
    """Live time series of a ``DataInStreamInterface`` streamer; see the module docstring."""

    sigDataChanged = QtCore.Signal(object, object, object, object)  # x, {ch: y}, x_avg, {ch: y}
    sigNewRawData = QtCore.Signal(object, object)  # data [samples, channels], timestamps | None
    sigStatusChanged = QtCore.Signal(bool, bool)  # running, recording
    sigTraceSettingsChanged = QtCore.Signal(dict)
    sigChannelSettingsChanged = QtCore.Signal(list, list)  # active, averaged
    _sigStartFrames = QtCore.Signal(int)  # the frame interval, ms
    _sigStopFrames = QtCore.Signal()

    _streamer = Connector(name="streamer", interface="DataInStreamInterface")

    _max_frame_rate = ConfigOption("max_frame_rate", default=20)
    _channel_buffer_size = ConfigOption("channel_buffer_size", default=1024**2)
    _max_raw_data_bytes = ConfigOption("max_raw_data_bytes", default=1024**3)
    _max_trace_bytes = ConfigOption("max_trace_bytes", default=1024**3)
    _calc_digital_freq = ConfigOption("calc_digital_freq", default=True)
    _count_units = ConfigOption("count_units", default=["counts", "cts", "c"])
    _start_on_activation = ConfigOption("start_reading_on_activation", default=False)

    _trace_window_size = StatusVar("trace_window_size", default=6.0)
    _moving_average_width = StatusVar("moving_average_width", default=9)
    _oversampling_factor = StatusVar("oversampling_factor", default=1)
    _data_rate = StatusVar("data_rate", default=50.0)
    _active_channels = StatusVar("active_channels", default=None)
    _averaged_channels = StatusVar("averaged_channels", default=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()  # recursive: a public call may call another
        self._timer: QtCore.QTimer  # frames while reading (from on_activate on, as are the
        self._follow_timer: QtCore.QTimer  # settings in force while idle, and the next three)
        self._setup: TraceSetup
        self._builder: TraceBuilder
        self._frames: FrameReader
        self._recording = TraceRecording()
        self._health = StreamHealth()
        self._shown: tuple[dict | None, tuple | None] = (None, None)  # last emitted settings

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        options = {key: getattr(self, attribute) for key, attribute in _OPTIONS.items()}
        check_options(options)
        self.check_recording_options()
        self._setup = TraceSetup(self._streamer, SetupOptions.from_config(options))
        saved = {key: getattr(self, f"_{key}") for key in _STATUS_KEYS}
        self._use(self._setup.restore(saved, self.log))
        self._shown = (self.trace_settings, self.channel_settings)
        self._start_timers()  # only now: a failed activation leaves no timer behind
        if self._start_on_activation:  # once activation has finished (the module is idle then)
            QtCore.QTimer.singleShot(0, self.start_reading)

    def on_deactivate(self) -> None:
        try:
            self._stop(reason=None)
            for key, value in self._setup.status(self.log).items():  # saved: what was in force
                setattr(self, f"_{key}", value)
        finally:
            for timer in (self._timer, self._follow_timer):
                timer.stop()
                timer.timeout.disconnect()
            self._sigStartFrames.disconnect()
            self._sigStopFrames.disconnect()

    # -------------------------------------------------------------------------- properties
    @property
    def streamer_constraints(self):
        return self._streamer().constraints

    @property
    def sampling_rate(self) -> float:
        """The streamer's sample rate in Hz (data_rate x oversampling_factor)."""
        return float(self._streamer().sample_rate)

    @property
    def data_rate(self) -> float:
        """Trace points per second."""
        return self._setup.in_force().data_rate

    @property
    def trace_window_size(self) -> float:
        """Length of the trace window in seconds."""
        return self._setup.in_force().trace_window_size

    @property
    def moving_average_width(self) -> int:
        return self._setup.in_force().moving_average_width

    @property
    def oversampling_factor(self) -> int:
        return self._setup.in_force().oversampling_factor

    @property
    def active_channel_names(self) -> list[str]:
        return self._setup.active

    @property
    def averaged_channel_names(self) -> list[str]:
        return self._setup.averaged

    @property
    def channel_units(self) -> dict[str, str]:
        """Units of the active channels as the trace shows them (counts become ``c/s``)."""
        return self._setup.units(self._setup.shown)  # an event stream's: its event channels

    @property
    def trace_settings(self) -> dict:
        """The trace settings in force (see the module docstring)."""
        return self._setup.in_force().as_dict()

    @property
    def channel_settings(self) -> tuple[list[str], list[str]]:
        return self.active_channel_names, self.averaged_channel_names

    @property
    def data_recording_active(self) -> bool:
        return self._recording.active

    @property
    def recording_info(self) -> dict | None:
        """Path, samples, bytes and seconds of the running (or else the last) recording."""
        return self._recording.info()

    @property
    def stream_name(self) -> str | None:
        """Name of the shared stream this logic reads, or None if its streamer shares none.

        From Jupyter or any process on this host: ``qudi.util.instream.attach(name)`` and read
        the samples from shared memory (see docs/remote.md).
        """
        name = getattr(self._streamer(), "stream_name", None)
        return None if name is None else str(name)

    @property
    def stream_health(self) -> dict:
        """Measured sample and frame rates (Hz, last second), unread part of the streamer's
        buffer at the last frame (0..1), samples it reports lost, and its state."""
        return self._health.report(self._streamer())

    @property
    def trace_data(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Copies ``(x, {channel: y})`` of the trace window (plain arrays, safe to keep); see
        the module docstring for what it holds before the first point."""
        with self._lock:
            x, raw, _, _ = self._builder.views()
            return x.copy(), {ch: y.copy() for ch, y in raw.items()}

    @property
    def averaged_trace_data(self) -> tuple[np.ndarray | None, dict[str, np.ndarray] | None]:
        """Copies ``(x, {channel: y})`` of the moving average, ``(None, None)`` if off."""
        with self._lock:
            _, _, x, averaged = self._builder.views()
            if x is None or averaged is None:
                return None, None
            return x.copy(), {ch: y.copy() for ch, y in averaged.items()}

    @property
    def _trace(self) -> TraceWindow:  # benchmarks/logic_frame.py watches it fill
        return self._builder.trace

    # ------------------------------------------------------------------------- settings
    @QtCore.Slot(dict)
    def set_trace_settings(self, settings_dict: Mapping | None = None, **kwargs) -> None:
        """Change data_rate, oversampling_factor, moving_average_width, trace_window_size.

        Everything is checked before anything changes; a refusal leaves the settings and the
        trace as they were. ``sigTraceSettingsChanged`` always carries the settings in force.

        Parameters
        ----------
        settings_dict : mapping, optional
            Settings to change; keyword arguments may give them too (and win).

        Raises
        ------
        ValueError, TypeError
            A bad or unknown setting (the message names it, its value and what is valid).
        RuntimeError
            A recording runs.
        StreamBusyError
            Another consumer of the stream runs with other settings.
        """
        with self._lock:
            try:
                if self.data_recording_active:
                    raise RuntimeError("trace settings cannot change while recording")
                settings = merged_trace_settings(self.trace_settings, settings_dict, kwargs)
                running = self.module_state() == "locked"  # all or nothing, trace included
                self._use(self._setup.apply(*self.channel_settings, settings, running=running))
            finally:
                self._announce(trace=True)

    @QtCore.Slot(object, object)
    def set_channel_settings(self, enabled: Iterable[str], averaged: Iterable[str]) -> None:
        """Choose the active channels and which of them get a moving average.

        Parameters
        ----------
        enabled : list of str
            Channels to stream, each once; averaged ones not enabled are dropped.
        averaged : list of str
            Channels with a moving average.

        Raises
        ------
        ValueError, TypeError, RuntimeError, StreamBusyError
            As :meth:`set_trace_settings`; nothing changes then.
        """
        with self._lock:
            try:
                if self.data_recording_active:
                    raise RuntimeError("channel settings cannot change while recording")
                available = self.streamer_constraints.channel_units
                channels = checked_channels(enabled, averaged, available)
                running = self.module_state() == "locked"
                self._use(self._setup.apply(*channels, self.trace_settings, running=running))
            finally:
                self._announce(channels=True)

    # ------------------------------------------------------------------------ acquisition
    @QtCore.Slot()
    def start_reading(self) -> None:
        """Start the stream and the live trace (harmless while running)."""
        with self._lock:
            if self.module_state() == "locked":
                self.sigStatusChanged.emit(True, self.data_recording_active)
                return
            self._builder, self._frames = self._setup.new_trace()  # the stream as in force
            self._announce()  # another consumer may have changed the stream meanwhile
            self._health = StreamHealth()
            self._streamer().start_stream()
            self.module_state.lock()
            self._sigStartFrames.emit(frame_interval_ms(self.data_rate, self._max_frame_rate))
            self.sigStatusChanged.emit(True, self.data_recording_active)

    @QtCore.Slot()
    def stop_reading(self) -> None:
        """Stop the live trace, a running recording and (this consumer of) the stream."""
        with self._lock:
            self._stop(reason=None)

    @QtCore.Slot()
    def start_recording(self) -> None:
        """Record every raw sample to HDF5 from now on; starts reading if idle."""
        with self._lock:
            if self.data_recording_active:
                return
            self.start_reading()
            path = self._recording.start(
                self.module_default_data_dir,
                self._streamer(),
                reader_name=f"{self.module_name} recording",
                timing=self._setup.timing,
                timestamps=self._frames.timestamps,
                max_bytes=int(self._max_raw_data_bytes),
                attributes=self.recording_attributes(),
            )
            self.log.info(f"recording to {path}")
            self.sigStatusChanged.emit(True, True)

    @QtCore.Slot()
    def stop_recording(self) -> str | None:
        """Finish the recording.

        Returns
        -------
        str or None
            The file's path (None if no recording was running).
        """
        with self._lock:
            path = self._recording.finish(self.log)
            self.sigStatusChanged.emit(self.module_state() == "locked", False)
            return path

    @QtCore.Slot(str, bool)
    def save_trace_snapshot(self, name_tag: str = "", save_figure: bool = True) -> str:
        """Save the trace window (raw and averaged) as qudi text data, plus a PNG thumbnail.

        Parameters
        ----------
        name_tag : str, optional
            Goes into the file name, made safe for one; a snapshot never replaces another.
        save_figure : bool, optional
            Whether to save the thumbnail too.

        Returns
        -------
        str
            The data file's path.
        """
        if isinstance(name_tag, bool):  # QAction.triggered's flag, as qudi-iqo-modules' GUI
            name_tag = ""  # connects its snapshot button straight to this slot: no tag
        with self._lock:  # a name_tag that is no str is refused before anything is written
            trace = (*self.trace_data, *self.averaged_trace_data)
            units = self._setup.units(trace[1])
            metadata = {**self.trace_settings, "sampling_rate": self.sampling_rate}
        path = save_snapshot(
            self.module_default_data_dir,
            *trace,
            units,
            metadata=metadata,
            name_tag=name_tag,
            save_figure=save_figure,
        )
        self.log.info(f"trace snapshot saved to {path}")
        return path

    # ------------------------------------------------------------------------- the frame
    @QtCore.Slot()
    def _read_frame(self) -> None:
        """One frame: drain what the streamer holds (never wait), update traces, emit."""
        with self._lock:
            if self.module_state() != "locked":
                return
            try:
                streamer = self._streamer()
                self._health.note_fill(streamer)
                blocks = self._frames.drain(streamer)
            except Exception as error:
                self._stop(reason=error)
                return
            points = 0
            for data, stamps in blocks:
                self._recording.feed(data, stamps)
                points += self._builder.add(data, stamps)
                self.sigNewRawData.emit(data, stamps)
            self._health.frame(sum(len(data) for data, _ in blocks))
            self._feed_scope(blocks)  # the triggered view (scope_options)
            if self._recording.ended_by_itself:  # size limit or error: finish it here
                self._recording.finish(self.log)
                self.sigStatusChanged.emit(True, False)
            if points:  # a frame without a new point would only redraw what is shown
                self._emit_data()

    def _emit_data(self) -> None:
        views = self._builder.views()
        if len(views.x):  # GUIs index x[0]; a run's first frames may bring no point yet
            self.sigDataChanged.emit(*views)

    @QtCore.Slot()
    def _follow_idle_stream(self) -> None:
        """While idle: follow a stream that another consumer reconfigured (never blocks)."""
        if self.module_state() != "idle" or not self._lock.acquire(blocking=False):
            return
        try:
            self._setup.follow()
            self._announce()
        except Exception as error:  # the streamer is going away: the next call says why
            self.log.debug(f"could not look at the stream's settings: {error}")
        finally:
            self._lock.release()

    # ------------------------------------------------------------------------ internals
    def _start_timers(self) -> None:
        self._timer = QtCore.QTimer(interval=max(1, round(1000 / self._max_frame_rate)))
        self._timer.timeout.connect(self._read_frame, _QUEUED)
        self._sigStartFrames.connect(self._timer.start, _QUEUED)
        self._sigStopFrames.connect(self._timer.stop, _QUEUED)
        self._follow_timer = QtCore.QTimer(interval=_FOLLOW_INTERVAL_MS)
        self._follow_timer.timeout.connect(self._follow_idle_stream)
        self._follow_timer.start()

    def _use(self, trace: tuple[TraceBuilder, FrameReader]) -> None:
        self._builder, self._frames = trace
        self._emit_data()

    def _announce(self, trace: bool = False, channels: bool = False) -> None:
        """Emit the settings signals that changed since the last (or those asked for)."""
        settings, selection = self.trace_settings, self.channel_settings
        shown_settings, shown_selection = self._shown
        self._shown = (settings, selection)
        if trace or settings != shown_settings:
            self.sigTraceSettingsChanged.emit(settings)
            if self.module_state() == "locked":  # frames paced to the new data rate
                self._sigStartFrames.emit(frame_interval_ms(self.data_rate, self._max_frame_rate))
        if channels or selection != shown_selection:
            self.sigChannelSettingsChanged.emit(*selection)

    def _stop(self, reason: BaseException | None) -> None:
        """Stop frames, recording and stream; a reason is a failure, logged once."""
        if self.module_state() != "locked":
            return
        self._sigStopFrames.emit()
        try:
            self._recording.finish(self.log)
        finally:
            try:
                self._streamer().stop_stream()
            except Exception as stop_error:
                if reason is None:
                    raise
                self.log.warning(f"stopping the streamer after the failure failed: {stop_error}")
            finally:
                self.module_state.unlock()
                if reason is not None:
                    self.log.error(f"reading stopped: {type(reason).__name__}: {reason}")
                self.sigStatusChanged.emit(False, False)
