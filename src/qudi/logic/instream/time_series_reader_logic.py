"""TimeSeriesReaderLogic: a live trace of a stream, with averaging, recording and snapshots.

Example config (copy into the ``logic:`` section)::

    time_series_logic1:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        options:
            max_frame_rate: 30            # optional: trace updates per second (20)
            channel_buffer_size: 1048576  # optional: stream buffer asked of the streamer (1 Mi)
            max_raw_data_bytes: 1073741824  # optional: a recording stops at this size (1 GiB)
            calc_digital_freq: True       # optional: counts per sample -> counts per second
            start_reading_on_activation: False  # optional: start the live trace at once
        connect:
            streamer: 'stream_buffer1'

The public API (signals, properties, methods, status variables) is that of the logic of the
same name in qudi-iqo-modules, so its GUI and scripts work with this one. What differs is
under the hood: a frame timer in the logic's thread drains what the streamer has (it never
waits for hardware), traces live in ring buffers (a frame costs O(new samples)), recordings
stream to HDF5 from their own thread (memory stays flat), and errors stop the stream too.

``calc_digital_freq``: channels whose unit is counts-like (``counts``, ``cts``, ``c`` or the
``count_units`` option) carry counts per sample; the trace shows them in counts per second
(``c/s``), using the sample rate the streamer actually set.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from PySide6 import QtCore
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.core.module import LogicBase
from qudi.core.statusvariable import StatusVar
from qudi.util.datastorage import TextDataStorage, get_timestamp_filename

from qudi.interface.instream_interface import SampleTiming, StreamingMode
from qudi.util.instream import StreamBusyError, StreamInfo, StreamRing, attach
from qudi.util.instream.recorder import StreamRecorder
from qudi.util.instream.trace import TraceWindow

__all__ = ["TimeSeriesReaderLogic"]

_MAX_READS_PER_FRAME = 16  # a frame drains at most this many read blocks, then yields


class TimeSeriesReaderLogic(LogicBase):
    """Live time series of a ``DataInStreamInterface`` streamer; see the module docstring."""

    sigDataChanged = QtCore.Signal(object, object, object, object)  # x, {ch: y}, x_avg, {ch: y}
    sigNewRawData = QtCore.Signal(object, object)  # data [samples, channels], timestamps | None
    sigStatusChanged = QtCore.Signal(bool, bool)  # running, recording
    sigTraceSettingsChanged = QtCore.Signal(dict)
    sigChannelSettingsChanged = QtCore.Signal(list, list)  # active, averaged
    _sigStartFrames = QtCore.Signal()
    _sigStopFrames = QtCore.Signal()

    _streamer = Connector(name="streamer", interface="DataInStreamInterface")

    _max_frame_rate = ConfigOption("max_frame_rate", default=20)
    _channel_buffer_size = ConfigOption("channel_buffer_size", default=1024**2)
    _max_raw_data_bytes = ConfigOption("max_raw_data_bytes", default=1024**3)
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
        self._timer: QtCore.QTimer | None = None
        self._trace: TraceWindow | None = None
        self._averaged: TraceWindow | None = None
        self._carry = np.empty((0, 0))
        self._carry_stamps = np.empty(0)
        self._points = 0
        self._raw_block = np.empty(0)
        self._raw_stamps: np.ndarray | None = None
        self._recorder: StreamRecorder | None = None
        self._record_ring: StreamRing | None = None  # private ring fed by frames (no shared one)
        self._recording_ring: StreamRing | None = None  # the ring the recorder reads
        self._last_recording = None
        self._health = _Health()

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        self._check_options()
        streamer = self._streamer()
        available = list(streamer.constraints.channel_units)
        active = self._active_channels
        if not active or any(ch not in available for ch in active):
            active = list(streamer.active_channels) or available
        averaged = self._averaged_channels
        averaged = active if averaged is None else [ch for ch in averaged if ch in active]
        width = int(self._moving_average_width)
        if width < 1 or width % 2 == 0:
            self.log.warning(f"moving_average_width {width} is not odd and positive: using 9")
            width = 9
        self._timer = QtCore.QTimer()
        self._timer.setInterval(max(1, round(1000 / self._max_frame_rate)))
        self._timer.timeout.connect(self._read_frame, QtCore.Qt.ConnectionType.QueuedConnection)
        self._sigStartFrames.connect(self._timer.start, QtCore.Qt.ConnectionType.QueuedConnection)
        self._sigStopFrames.connect(self._timer.stop, QtCore.Qt.ConnectionType.QueuedConnection)
        try:
            try:
                self._apply(active, averaged, self._settings_from_status_variables(width))
            except ValueError as invalid:  # saved settings this streamer cannot do any more
                self.log.warning(f"saved trace settings not usable ({invalid}); using defaults")
                default_rate = float(streamer.constraints.sample_rate.default)
                self._apply(
                    active,
                    averaged,
                    {
                        "oversampling_factor": 1,
                        "data_rate": default_rate,
                        "moving_average_width": 1,
                        "trace_window_size": 100 / default_rate,
                    },
                )
        except StreamBusyError as busy:
            # another consumer streams with other settings: follow the stream as it is
            self.log.warning(f"{busy}; showing the stream with its current settings instead")
            self._oversampling_factor, self._moving_average_width = 1, width
            self._active_channels = list(streamer.active_channels)
            self._averaged_channels = [c for c in averaged if c in self._active_channels]
            self._trace_window_size = float(self._trace_window_size)
            self._reset_trace()
        if self._start_on_activation:  # once activation has finished (the module is idle then)
            QtCore.QTimer.singleShot(0, self.start_reading)

    def on_deactivate(self) -> None:
        try:
            self._stop(reason=None)
        finally:
            self._timer.stop()
            self._sigStartFrames.disconnect()
            self._sigStopFrames.disconnect()
            self._timer.timeout.disconnect()
            self._timer = None

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
        return self.sampling_rate / self._oversampling_factor

    @property
    def trace_window_size(self) -> float:
        return float(self._trace_window_size)

    @property
    def moving_average_width(self) -> int:
        return int(self._moving_average_width)

    @property
    def oversampling_factor(self) -> int:
        return int(self._oversampling_factor)

    @property
    def active_channel_names(self) -> list[str]:
        return list(self._streamer().active_channels)

    @property
    def averaged_channel_names(self) -> list[str]:
        return list(self._averaged_channels)

    @property
    def channel_units(self) -> dict[str, str]:
        """Units of the active channels as the trace shows them (counts become ``c/s``)."""
        units = self.streamer_constraints.channel_units
        return {ch: self._display_unit(units[ch]) for ch in self.active_channel_names}

    @property
    def trace_settings(self) -> dict:
        return {
            "oversampling_factor": self.oversampling_factor,
            "moving_average_width": self.moving_average_width,
            "trace_window_size": self.trace_window_size,
            "data_rate": self.data_rate,
        }

    @property
    def channel_settings(self) -> tuple[list[str], list[str]]:
        return self.active_channel_names, self.averaged_channel_names

    @property
    def data_recording_active(self) -> bool:
        return self._recorder is not None

    @property
    def recording_info(self) -> dict | None:
        """Path, samples, bytes and seconds of the running (or else the last) recording."""
        recorder = self._recorder
        if recorder is not None:
            return {
                "path": str(recorder.path),
                "samples": recorder.samples_written,
                "bytes": recorder.bytes_written,
                "seconds": recorder.elapsed_seconds,
                "running": True,
            }
        last = self._last_recording
        if last is None:
            return None
        return {
            "path": str(last.path),
            "samples": last.samples,
            "bytes": last.bytes,
            "seconds": last.seconds,
            "running": False,
        }

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
        """How the stream fares: measured sample rate (Hz, last second), frame rate (Hz),
        unread part of the streamer's buffer at the last frame (0..1), samples the streamer
        reports lost, and the streamer's state."""
        streamer = self._streamer()
        return {
            "sample_rate": self._health.sample_rate,
            "frame_rate": self._health.frame_rate,
            "buffer_fill": self._health.buffer_fill,
            "lost_samples": int(getattr(streamer, "lost_samples", 0)),
            "streamer_state": streamer.module_state(),
        }

    @property
    def trace_data(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Copies ``(x, {channel: y})`` of the trace window (plain arrays, safe to keep)."""
        with self._lock:
            x, y = self._window(self._trace)
            return x.copy(), dict(zip(self.active_channel_names, y.copy(), strict=True))

    @property
    def averaged_trace_data(self) -> tuple[np.ndarray | None, dict[str, np.ndarray] | None]:
        """Copies ``(x, {channel: y})`` of the moving average, ``(None, None)`` if off."""
        with self._lock:
            if not self._averaging_on:
                return None, None
            x, y = self._window(self._averaged)
            return x.copy(), dict(zip(self._averaged_channels, y.copy(), strict=True))

    # ------------------------------------------------------------------------- settings
    @QtCore.Slot(dict)
    def set_trace_settings(self, settings_dict: Mapping | None = None, **kwargs) -> None:
        """Change data_rate, oversampling_factor, moving_average_width, trace_window_size.

        Everything is checked before anything changes; refused settings (bad values, a
        recording running, another consumer of the stream running) raise and leave the
        settings as they were. ``sigTraceSettingsChanged`` always carries the real settings.
        """
        with self._lock:
            try:
                if self.data_recording_active:
                    raise RuntimeError("trace settings cannot change while recording")
                if settings_dict is not None and not isinstance(settings_dict, Mapping):
                    raise TypeError(
                        f"settings_dict must be a dict of trace settings, got {settings_dict!r}"
                    )
                changes = {**(settings_dict or {}), **kwargs}
                unknown = sorted(str(key) for key in set(changes) - set(self.trace_settings))
                if unknown:
                    raise ValueError(
                        f"unknown trace settings {unknown}; valid are {sorted(self.trace_settings)}"
                    )
                settings = {**self.trace_settings, **changes}
                self._apply(self.active_channel_names, self.averaged_channel_names, settings)
            finally:
                self.sigTraceSettingsChanged.emit(self.trace_settings)

    @QtCore.Slot(object, object)
    def set_channel_settings(self, enabled: Iterable[str], averaged: Iterable[str]) -> None:
        """Choose the active channels and which of them get a moving average."""
        with self._lock:
            try:
                if self.data_recording_active:
                    raise RuntimeError("channel settings cannot change while recording")
                for name, channels in (("enabled", enabled), ("averaged", averaged)):
                    if isinstance(channels, str) or not isinstance(channels, Iterable):
                        raise TypeError(f"{name} must be a list of channel names, got {channels!r}")
                enabled = list(enabled)
                available = list(self.streamer_constraints.channel_units)
                unknown = [ch for ch in enabled if ch not in available]
                if not enabled or unknown or len(set(enabled)) != len(enabled):
                    raise ValueError(
                        f"active channels {enabled} must be a non-empty selection of {available}, "
                        "each at most once"
                    )
                averaged = [ch for ch in averaged if ch in enabled]
                self._apply(enabled, averaged, self.trace_settings)
            finally:
                self.sigChannelSettingsChanged.emit(*self.channel_settings)

    # ------------------------------------------------------------------------ acquisition
    @QtCore.Slot()
    def start_reading(self) -> None:
        """Start the stream and the live trace (harmless while running)."""
        with self._lock:
            if self.module_state() == "locked":
                self.sigStatusChanged.emit(True, self.data_recording_active)
                return
            self._reset_trace()
            self._health = _Health()
            self._streamer().start_stream()
            self.module_state.lock()
            self._sigStartFrames.emit()
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
            reader = self._recording_reader()
            path = self._new_recording_path()
            try:
                recorder = StreamRecorder(
                    reader,
                    path,
                    max_bytes=int(self._max_raw_data_bytes),
                    attributes=self._recording_attributes(),
                )
                recorder.start()
            except BaseException:
                self._recording_ring.close()
                self._recording_ring = self._record_ring = None
                raise
            self._recorder = recorder
            self.log.info(f"recording to {path}")
            self.sigStatusChanged.emit(True, True)

    @QtCore.Slot()
    def stop_recording(self) -> str | None:
        """Finish the recording; returns the file's path (None if none was running)."""
        with self._lock:
            path = self._finish_recording()
            self.sigStatusChanged.emit(self.module_state() == "locked", False)
            return path

    @QtCore.Slot(str, bool)
    def save_trace_snapshot(self, name_tag: str = "", save_figure: bool = True) -> str:
        """Save the trace window (raw and averaged) as qudi text data, plus a PNG thumbnail."""
        if not isinstance(name_tag, str):
            raise TypeError(f"name_tag must be a string (may be empty), got {name_tag!r}")
        with self._lock:
            x, raw = self.trace_data
            x_avg, averaged = self.averaged_trace_data
            units = self.channel_units
        columns = [x] + list(raw.values())
        headers = ["time (s)"] + [f"{ch} ({units[ch]})" for ch in raw]
        if averaged:
            # each averaged point sits in the row of its centre (its x is that raw point's x)
            rows = np.searchsorted(x, x_avg)
            inside = rows < len(x)
            for channel, values in averaged.items():
                column = np.full(len(x), np.nan)
                column[rows[inside]] = values[inside]
                columns.append(column)
                headers.append(f"{channel} averaged ({units[channel]})")
        storage = TextDataStorage(root_dir=self.module_default_data_dir)
        timestamp = datetime.datetime.now()
        metadata = {**self.trace_settings, "sampling_rate": self.sampling_rate}
        filename = os.path.basename(
            _unused_path(self.module_default_data_dir, timestamp, _nametag(name_tag), ".dat")
        )
        path, _, _ = storage.save_data(
            np.column_stack(columns) if len(x) else np.empty((0, len(columns))),
            metadata=metadata,
            timestamp=timestamp,
            column_headers=headers,
            filename=filename,
        )
        if save_figure:
            storage.save_thumbnail(
                self._snapshot_figure(x, raw, x_avg, averaged, units), os.path.splitext(path)[0]
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
            streamer = self._streamer()
            channels = len(self.active_channel_names)
            blocks = []
            try:
                self._health.buffer_fill = streamer.available_samples / max(
                    1, streamer.channel_buffer_size
                )
                for _ in range(_MAX_READS_PER_FRAME):
                    count = streamer.read_available_data_into_buffer(
                        self._raw_block, self._raw_stamps
                    )
                    if count == 0:
                        break
                    data = self._raw_block[: count * channels].reshape(count, channels).copy()
                    stamps = None if self._raw_stamps is None else self._raw_stamps[:count].copy()
                    blocks.append((data, stamps))
                    if count * channels < len(self._raw_block):
                        break
            except Exception as error:
                self._stop(reason=error)
                return
            for data, stamps in blocks:
                if self._record_ring is not None:
                    self._record_ring.write(data, stamps)
                self._add_samples(data, stamps)
                self.sigNewRawData.emit(data, stamps)
            self._health.frame(sum(len(data) for data, _ in blocks))
            self._check_recording()
            self._emit_data()

    def _add_samples(self, data: np.ndarray, stamps: np.ndarray | None) -> None:
        """Oversample raw samples into trace points and update the moving average."""
        oversampling = self.oversampling_factor
        if len(self._carry):
            data = np.concatenate([self._carry, data])
            if stamps is not None:
                stamps = np.concatenate([self._carry_stamps, stamps])
        points = len(data) // oversampling
        used = points * oversampling
        self._carry = data[used:]
        self._carry_stamps = stamps[used:] if stamps is not None else np.empty(0)
        if points == 0:
            return
        values = data[:used].reshape(points, oversampling, -1).mean(axis=1)
        values *= self._count_scale  # counts per sample -> counts per second, where asked
        self._trace.append(self._x_values(points, stamps, used), values.T)
        self._points += points
        if self._averaging_on:
            self._update_average()

    def _x_values(self, points: int, stamps: np.ndarray | None, used: int) -> np.ndarray:
        if stamps is not None:
            return stamps[:used].reshape(points, -1).mean(axis=1)
        index = np.arange(self._points, self._points + points, dtype=np.float64)
        if self._timing == SampleTiming.RANDOM:
            return index
        return index / self.data_rate

    def _update_average(self) -> None:
        """Centred moving average of the new centres: each needs width//2 points either side."""
        width, half = self.moving_average_width, self.moving_average_width // 2
        centres = max(0, self._points - 2 * half)  # points with a full neighbourhood so far
        new = min(centres - self._averaged_done, self._trace.size - width + 1)
        if new <= 0:
            return
        x, y = self._trace.view(new + width - 1)
        rows = y[self._averaged_rows]
        sums = np.cumsum(rows, axis=1)
        sums = np.concatenate([np.zeros((len(rows), 1)), sums], axis=1)
        self._averaged.append(x[half : half + new], (sums[:, width:] - sums[:, :-width]) / width)
        self._averaged_done = centres

    def _window(self, trace: TraceWindow) -> tuple[np.ndarray, np.ndarray]:
        """Views of the points in the window: the newest ``trace_window_size`` seconds for
        TIMESTAMP streams (whose rate is only a hint), the newest points otherwise."""
        x, y = trace.view(trace.filled)
        if self._timing == SampleTiming.TIMESTAMP and len(x):
            first = np.searchsorted(x, x[-1] - self.trace_window_size, side="left")
            x, y = x[first:], y[:, first:]
        return x, y

    def _emit_data(self) -> None:
        x, y = self._window(self._trace)
        raw = dict(zip(self.active_channel_names, y, strict=True))
        if self._averaging_on:
            x_avg, y_avg = self._window(self._averaged)
            self.sigDataChanged.emit(
                x, raw, x_avg, dict(zip(self._averaged_channels, y_avg, strict=True))
            )
        else:
            self.sigDataChanged.emit(x, raw, None, None)

    # ------------------------------------------------------------------------ internals
    @property
    def _averaging_on(self) -> bool:
        return self.moving_average_width > 1 and bool(self._averaged_channels)

    def _check_options(self) -> None:
        rate = self._max_frame_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 200:
            raise ValueError(f"option 'max_frame_rate' is {rate!r}: use 0 < Hz <= 200")
        for key in ("channel_buffer_size", "max_raw_data_bytes"):
            value = getattr(self, f"_{key}")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"option '{key}' is {value!r}: use a positive integer")
        for key, value in (
            ("calc_digital_freq", self._calc_digital_freq),
            ("start_reading_on_activation", self._start_on_activation),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"option '{key}' is {value!r}: use True or False")
        units = self._count_units
        if not isinstance(units, list) or not all(isinstance(u, str) for u in units):
            raise ValueError(
                f"option 'count_units' is {units!r}: use a list of unit names such as ['counts']"
            )

    def _settings_from_status_variables(self, width: int) -> dict:
        return {
            "oversampling_factor": self._oversampling_factor,
            "moving_average_width": width,
            "trace_window_size": self._trace_window_size,
            "data_rate": self._data_rate,
        }

    def _checked_settings(self, settings: Mapping) -> dict:
        """Validated copies of trace settings, or ValueError naming the bad one."""
        oversampling = _setting_number(settings, "oversampling_factor", integer=True)
        width = _setting_number(settings, "moving_average_width", integer=True)
        rate = _setting_number(settings, "data_rate")
        window = _setting_number(settings, "trace_window_size")
        if oversampling < 1:
            raise ValueError(f"oversampling_factor must be an integer >= 1, got {oversampling}")
        if width < 1 or width % 2 == 0:
            raise ValueError(f"moving_average_width must be an odd integer >= 1, got {width}")
        low, high = self.streamer_constraints.sample_rate.bounds
        if not (rate > 0 and low <= rate * oversampling <= high):
            raise ValueError(
                f"data_rate {rate} Hz x oversampling_factor {oversampling} = "
                f"{rate * oversampling} Hz is outside the streamer's {low} to {high} Hz"
            )
        points = round(window * rate)
        if points < max(width, 2):
            raise ValueError(
                f"trace_window_size {window} s holds {points} points at {rate} Hz; it needs at "
                f"least {max(width, 2)} (the moving average width)"
            )
        return {
            "oversampling_factor": oversampling,
            "moving_average_width": width,
            "data_rate": rate,
            "trace_window_size": points / rate,
        }

    def _apply(self, active: Sequence[str], averaged: Sequence[str], settings: Mapping) -> None:
        """Check, configure the streamer, then adopt: all or nothing."""
        checked = self._checked_settings(settings)
        restart = self.module_state() == "locked"
        if restart:
            self._stop(reason=None)
        try:
            self._streamer().configure(
                active_channels=list(active),
                streaming_mode=StreamingMode.CONTINUOUS,
                channel_buffer_size=int(self._channel_buffer_size),
                sample_rate=checked["data_rate"] * checked["oversampling_factor"],
            )
            self._oversampling_factor = checked["oversampling_factor"]
            self._moving_average_width = checked["moving_average_width"]
            self._trace_window_size = checked["trace_window_size"]
            self._data_rate = self.data_rate
            self._active_channels = list(active)
            self._averaged_channels = list(averaged)
            self._reset_trace()
        finally:
            if restart:
                self.start_reading()
            else:
                self._emit_data_if_ready()

    def _emit_data_if_ready(self) -> None:
        if self._trace is not None:
            self._emit_data()

    def _reset_trace(self) -> None:
        streamer = self._streamer()
        channels = list(streamer.active_channels)
        constraints = streamer.constraints
        self._timing = SampleTiming.coerce(constraints.sample_timing)
        units = constraints.channel_units
        counts = {u.lower() for u in self._count_units}
        scale = [
            self.sampling_rate if self._calc_digital_freq and units[ch].lower() in counts else 1.0
            for ch in channels
        ]
        self._count_scale = np.array(scale)
        points = max(2, round(self.trace_window_size * self.data_rate))
        if self._timing == SampleTiming.TIMESTAMP:
            points *= 2  # room for bursts: the window is cut by time (see _window)
        self._trace = TraceWindow(points, len(channels))
        self._averaged_rows = [channels.index(ch) for ch in self._averaged_channels]
        self._averaged = TraceWindow(points, len(self._averaged_rows))
        self._averaged_done = 0
        self._points = 0
        self._carry = np.empty((0, len(channels)))
        self._carry_stamps = np.empty(0)
        block = max(1024, int(4 * self.sampling_rate / self._max_frame_rate))
        self._raw_block = np.empty(block * len(channels), np.dtype(constraints.data_type))
        has_stamps = self._timing == SampleTiming.TIMESTAMP
        self._raw_stamps = np.empty(block) if has_stamps else None

    def _display_unit(self, unit: str) -> str:
        counts = {u.lower() for u in self._count_units}
        return "c/s" if self._calc_digital_freq and unit.lower() in counts else unit

    def _stop(self, reason: BaseException | None) -> None:
        """Stop frames, recording and stream; a reason is a failure, logged once."""
        if self.module_state() != "locked":
            return
        self._sigStopFrames.emit()
        try:
            self._finish_recording()
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

    def _recording_reader(self):
        """A reader of its own for the recorder: on the shared stream, or on a private ring."""
        name = self.stream_name
        if name is not None:
            self._recording_ring = attach(name)
            return self._recording_ring.reader(f"{self.module_name} recording")
        channels = self.active_channel_names
        info = StreamInfo(
            tuple(channels),
            tuple(self.streamer_constraints.channel_units[c] for c in channels),
            self.sampling_rate,
            self._timing.name,
        )
        capacity = max(1024, int(4 * self.sampling_rate))
        self._record_ring = StreamRing(
            capacity,
            (len(channels),),
            np.dtype(self.streamer_constraints.data_type),
            timestamps=self._raw_stamps is not None,
            info=info,
        )
        self._recording_ring = self._record_ring
        return self._record_ring.reader(f"{self.module_name} recording")

    def _new_recording_path(self) -> str:
        directory = self.module_default_data_dir
        os.makedirs(directory, exist_ok=True)
        return _unused_path(directory, datetime.datetime.now(), _nametag(""), ".h5")

    def _recording_attributes(self) -> dict:
        return {
            **{k: v for k, v in self.trace_settings.items()},
            "averaged_channels": list(self._averaged_channels) or [""],
            "streamer": self._streamer().module_name,
            "logic": self.module_name,
        }

    def _check_recording(self) -> None:
        """A recording that stopped itself (size limit or error) is finished here."""
        recorder = self._recorder
        if recorder is not None and not recorder.running:
            self._finish_recording()
            self.sigStatusChanged.emit(self.module_state() == "locked", False)

    def _finish_recording(self) -> str | None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        try:
            summary = recorder.stop()
        finally:
            self._recording_ring.close()
            self._recording_ring = self._record_ring = None
        self._last_recording = summary
        if summary.error is not None:
            self.log.error(f"recording to {summary.path} stopped: {summary.error}")
        elif summary.stopped_by_size_limit:
            self.log.info(
                f"recording reached max_raw_data_bytes ({self._max_raw_data_bytes} bytes) and "
                f"stopped; saved to {summary.path}"
            )
        else:
            self.log.info(f"recording saved to {summary.path} ({summary.samples} samples)")
        return str(summary.path)

    @staticmethod
    def _snapshot_figure(x, raw, x_avg, averaged, units):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(8, 4))
        axes = figure.add_subplot()
        origin = x[0] if len(x) else 0.0
        for channel, values in raw.items():
            axes.plot(x - origin, values, linewidth=0.8, label=f"{channel} ({units[channel]})")
        for channel, values in (averaged or {}).items():
            axes.plot(x_avg - origin, values, linewidth=1.5, label=f"{channel} averaged")
        axes.set_xlabel("time (s)")
        axes.legend(loc="upper right", fontsize="small")
        return figure


class _Health:
    """Sample and frame rates over the last second, from what each frame brought."""

    def __init__(self):
        self._frames: deque[tuple[float, int]] = deque()
        self.buffer_fill = 0.0

    def frame(self, samples: int) -> None:
        now = time.monotonic()
        self._frames.append((now, samples))
        while self._frames and self._frames[0][0] < now - 1.0:
            self._frames.popleft()

    def _span(self) -> float:
        return self._frames[-1][0] - self._frames[0][0] if len(self._frames) > 1 else 0.0

    @property
    def sample_rate(self) -> float:
        span = self._span()
        return sum(n for _, n in list(self._frames)[1:]) / span if span else 0.0

    @property
    def frame_rate(self) -> float:
        span = self._span()
        return (len(self._frames) - 1) / span if span else 0.0


def _setting_number(settings: Mapping, key: str, integer: bool = False) -> float | int:
    """One trace setting as a finite number (a whole one if ``integer``), else ValueError."""
    if key not in settings:
        raise ValueError(f"trace setting '{key}' is missing")
    value = settings[key]
    kind = "a whole number" if integer else "a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{key} must be {kind}, got {value!r}")
    if not np.isfinite(value) or (integer and value != int(value)):
        raise ValueError(f"{key} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


def _nametag(tag: str) -> str:
    tag = tag.strip()
    return f"time_series_{tag}" if tag else "time_series"


def _unused_path(directory: str, timestamp: datetime.datetime, nametag: str, ext: str) -> str:
    """qudi's file name for this time and tag, numbered if that name is taken already."""
    stem = os.path.join(directory, get_timestamp_filename(timestamp, nametag))
    path, number = stem + ext, 1
    while os.path.exists(path):
        path, number = f"{stem}_{number}{ext}", number + 1
    return path
