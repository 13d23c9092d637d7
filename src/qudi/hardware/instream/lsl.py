"""LslInStreamer: any Lab Streaming Layer stream as a qudi streamer (DataInStreamInterface).

Example config (copy into the ``hardware:`` section; needs ``pip install 'qudi-instream[lsl]'``)::

    lsl_in:
        module.Class: 'instream.lsl.LslInStreamer'
        options:
            stream_name: 'EEG amplifier'   # any of stream_name, stream_type, source_id;
            stream_type: null              # every one given must match, and exactly one
            source_id: null                # stream must match them (source_id is unique)
            resolve_timeout: 5.0           # optional: s to look for the stream at activation
            dejitter: False                # optional: smooth the timestamps onto a line
            gap_tolerance: 0.005           # optional: s of timestamp jitter that is no gap
            irregular_rate_hint: 100.0     # optional: Hz assumed for a stream of irregular
                                           # rate (sizes buffers; no gaps are detected in it)

The stream is resolved at activation; the channels, units (LSL's ``channels/channel/label``
and ``unit`` in the stream's description), nominal rate and sample type become the
constraints. The only rate is the nominal one; a subset of the channels can be streamed.
``channel_buffer_size`` sets LSL's inlet buffer (rounded up to whole seconds).

Timing is TIMESTAMP: each sample's LSL time, corrected to this host's clock (liblsl's
``time_correction``), in seconds since :attr:`LslInStreamer.start_time` (a host monotonic
time, ``time.monotonic()`` / ``pylsl.local_clock()``): add it back to get LSL's time.

**Nothing is lost silently.** LSL drops the oldest samples of a full inlet buffer without a
word, and reconnects by itself when an outlet with the same ``source_id`` comes back after it
went away. Both leave a step in the timestamps; each such gap is logged as a warning, kept in
:attr:`LslInStreamer.gaps` (where, how many samples, how long, why) and counted in
:attr:`~LslInStreamer.lost_samples`, and the stream goes on after it. The count is exact; the
place is exact unless the outlet stamps only some samples (a chunk pushed with one timestamp)
and the outlet's own queue for this inlet dropped samples (a busy outlet host): then the loss
shows at the next stamped sample, and the gap says from which sample on it may lie
(``earliest``; see :class:`~qudi.util.instream.lsl_timing.GapDetector`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.util.constraints import ScalarConstraint

from qudi.hardware.instream.source_streamer import KeptSettingsStreamer
from qudi.hardware.instream.stream_sharing import SharedStreamer
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    SampleTiming,
    StreamingMode,
)
from qudi.util.instream.arrays import option_error
from qudi.util.instream.lsl_inlet import LslInletRun, LslQuery, resolve_stream
from qudi.util.instream.lsl_support import dtype_of_format, load_pylsl, read_channels
from qudi.util.instream.lsl_timing import LslGap

__all__ = ["LslInStreamer"]

MAX_BUFFER_SIZE = 2**30  # samples per channel (LSL's inlet buffer holds whole seconds)


class LslInStreamer(KeptSettingsStreamer, SharedStreamer, DataInStreamInterface):
    """One LSL stream read into qudi; see the module docstring for its example config."""

    _stream_name = ConfigOption("stream_name", default=None)
    _stream_type = ConfigOption("stream_type", default=None)
    _source_id = ConfigOption("source_id", default=None)
    _resolve_timeout = ConfigOption("resolve_timeout", default=5.0)
    _dejitter = ConfigOption("dejitter", default=False)
    _gap_tolerance = ConfigOption("gap_tolerance", default=0.005)
    _irregular_rate_hint = ConfigOption("irregular_rate_hint", default=100.0)
    _configure_refusal = "cannot configure '{name}' while it streams"
    _timestamps_required = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pylsl: Any = None
        self._source: Any = None  # the stream's pylsl StreamInfo while active
        self._constraints: DataInStreamConstraints | None = None
        self._channels: list[str] = []
        self._run: LslInletRun | None = None
        self._lost_before = 0  # samples lost in earlier runs
        self._gaps_before: list[LslGap] = []

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        query = self._checked_query()
        timeout = self._checked_number("resolve_timeout", self._resolve_timeout, 0.0)
        self._checked_number("gap_tolerance", self._gap_tolerance, 0.0)
        hint = self._checked_number("irregular_rate_hint", self._irregular_rate_hint, 1e-9)
        if not isinstance(self._dejitter, bool):
            raise option_error("dejitter", self._dejitter, "use True or False")
        self.check_publish_address()
        pylsl = load_pylsl()
        info = resolve_stream(pylsl, query, timeout)
        full = self._full_info(pylsl, info, timeout)
        dtype = dtype_of_format(full.channel_format(), pylsl)
        channels = read_channels(full)
        nominal = float(full.nominal_srate())
        rate = nominal if nominal > 0 else float(hint)
        per_second = round(rate) if nominal > 0 else 100
        limits = (per_second, max(per_second, MAX_BUFFER_SIZE))
        self._constraints = DataInStreamConstraints(
            channel_units={c.label: c.unit for c in channels},
            sample_timing=SampleTiming.TIMESTAMP,
            streaming_modes=[StreamingMode.CONTINUOUS],
            data_type=dtype,
            channel_buffer_size=ScalarConstraint(
                default=10 * per_second, bounds=limits, increment=1, enforce_int=True
            ),
            sample_rate=ScalarConstraint(default=rate, bounds=(rate, rate), increment=0),
        )
        self._pylsl, self._source = pylsl, info
        self._channels = [c.label for c in channels]
        self._active_names = list(self._channels)
        self._buffer_size = 10 * per_second
        self._lost_before, self._gaps_before = 0, []

    def on_deactivate(self) -> None:
        self._end_run()
        self._source = None

    @staticmethod
    def _full_info(pylsl: Any, info: Any, timeout: float) -> Any:
        """The stream's full description (with ``desc``), from a short-lived inlet."""
        inlet = pylsl.StreamInlet(info, max_buflen=1, recover=False)
        try:
            return inlet.info(max(timeout, 1.0))
        finally:
            del inlet

    # ------------------------------------------------------------------------------ extras
    @property
    def stream_info(self) -> dict[str, Any]:
        """What LSL says of the stream: name, type, source_id, host, rate, channel format."""
        info = self._active_source()
        return {
            "name": info.name(),
            "type": info.type(),
            "source_id": info.source_id(),
            "hostname": info.hostname(),
            "nominal_srate": info.nominal_srate(),
            "channel_format": self._constraints.data_type.__name__,
            "uid": info.uid(),
        }

    @property
    def start_time(self) -> float | None:
        """Host monotonic time (= LSL time) of timestamp 0 of this run; None when stopped."""
        run = self._run
        return None if run is None else run.start_time

    @property
    def clock_offset(self) -> tuple[float, float] | None:
        """LSL's estimate of the outlet's clock offset and its uncertainty (s); None when
        stopped. The timestamps are already corrected by it."""
        run = self._run
        return None if run is None else (run.clock_offset, run.clock_uncertainty)

    @property
    def gaps(self) -> list[LslGap]:
        """Every gap since activation: index of the sample whose time shows it (and the
        earliest index it may precede), samples lost, seconds without samples, cause (inlet
        overflow, or outlet silent/restarted)."""
        run = self._run
        return [*self._gaps_before, *(run.gaps if run is not None else [])]

    @property
    def lost_samples(self) -> int:
        """Samples missing from the stream since activation (overflows and outages)."""
        run = self._run
        return self._lost_before + (run.lost if run is not None else 0)

    # --------------------------------------------------------------------------- settings
    @property
    def available_samples(self) -> int:
        run = self._run
        return 0 if run is None else run.available

    # ----------------------------------------------------------------------- acquisition
    def _start_source(self, source: Any) -> None:
        """``start_stream``: open an inlet on the stream and start reading (harmless while
        streaming).

        Raises
        ------
        StreamTimeoutError
            If the outlet does not answer within ``resolve_timeout``.
        """
        if self._run is not None:
            return
        columns = None
        if self._active_names != self._channels:
            columns = [self._channels.index(name) for name in self._active_names]
        self._run = LslInletRun(
            self._pylsl,
            source,
            columns,
            LslInletRun.buffer_seconds(self._buffer_size, self.sample_rate),
            dejitter=self._dejitter,
            gap_tolerance=float(self._gap_tolerance),
            open_timeout=max(float(self._resolve_timeout), 1.0),
        )

    def stop_stream(self) -> None:
        """Stop reading and destroy the inlet (what it still held is dropped)."""
        self._end_run()

    def _end_run(self) -> None:
        with self._state_lock:
            run, self._run = self._run, None
            if run is not None:
                self._lost_before += run.lost
                self._gaps_before += run.gaps
                run.close()
            if self.module_state() == "locked":
                self._show_streaming(False)

    def _read_samples(self, data, stamps, count: int, timeout: float | None) -> None:
        """``read_data_into_buffer``: block until ``count`` samples are read.

        Raises
        ------
        TimeoutError
            If they did not arrive within ``timeout`` s (nothing consumed).
        RuntimeError
            If the stream is not running, or LSL lost it for good.
        """
        if count:
            self._running_run().read(data, count, stamps, timeout)

    def _read_available(self, data, stamps, room: int) -> int:
        """``read_available_data_into_buffer``: 0 also when stopped."""
        run = self._run
        if run is None:
            return 0
        count = min(run.available, room)
        if count:
            run.read(data, count, stamps, 0.0)
        return count

    def read_single_point(self) -> tuple[np.ndarray, np.float64 | None]:
        """The newest sample read so far (NaN or 0 before the first; nothing consumed)."""
        run = self._run
        if run is None or run.newest is None:
            dtype = self._constraints.data_type
            empty = np.full(
                len(self._active_names), math.nan if issubclass(dtype, np.floating) else 0
            )
            return empty.astype(dtype), None
        data, stamp = run.newest
        return data.copy(), np.float64(stamp)

    # -------------------------------------------------------------------------- internals
    def _running_run(self) -> LslInletRun:
        run = self._run
        if run is None:
            raise RuntimeError(f"'{self.module_name}' is not streaming; call start_stream() first")
        return run

    def _has_timestamps(self, source: Any) -> bool:
        return True

    def _checked_query(self) -> LslQuery:
        given = {}
        for key, value in (
            ("stream_name", self._stream_name),
            ("stream_type", self._stream_type),
            ("source_id", self._source_id),
        ):
            if value is None:
                continue
            if not isinstance(value, str) or not value or "'" in value:
                raise option_error(key, value, "use a non-empty string without ' (or null)")
            given[key] = value
        if not given:
            raise option_error(
                "stream_name", None, "give at least one of stream_name, stream_type, source_id"
            )
        return LslQuery(given.get("stream_name"), given.get("stream_type"), given.get("source_id"))

    @staticmethod
    def _checked_number(key: str, value: object, minimum: float) -> float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < minimum:
            raise option_error(key, value, f"use a number of seconds (or Hz) >= {minimum:g}")
        return float(value)
