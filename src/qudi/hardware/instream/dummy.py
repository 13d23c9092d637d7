"""InStreamDummy: a simulated streaming card for demos and tests, with no thread of its own.

Example config (copy into the ``hardware:`` section)::

    instream_dummy:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['APD', 'analog 1']
            channel_units: ['Hz', 'V']             # a rate unit makes 'counts' counts per second
            channel_signals: ['counts', 'sine']   # 'counts', 'sine', 'ramp', 'sawtooth', 'noise'
                                                  # or 'digital' (0/1 like a TTL line;
                                                  # declared in stream_extra: drawn as lanes)
            data_type: 'float64'                   # optional, any numpy number dtype (see below)
            sample_timing: 'CONSTANT'              # optional: 'CONSTANT', 'TIMESTAMP' or 'RANDOM'
            seed: null                             # optional: an integer for reproducible data
            digital_edge_rate: 100.0               # optional: mean edges/s of 'digital' lines
            pre_filters: []                        # optional: scale, iir, notch applied once
                                                   # for every consumer (docs/processing.md)
            sample_rate: 50.0                      # optional: the rate until a consumer sets one
            # optional, to simulate real clocks (docs/time.md):
            start_offset: 0.0        # s from start_stream to the first sample
            clock_drift_ppm: 0.0     # how fast the card's clock runs against the host's
            clock_jitter: 0.0        # s: samples reach the buffer up to this late
            shared_clock: null       # a name: dummies naming one clock share it (one drift)
            clock_tick_rate: 1e6     # ticks/s of the shared clock (sample starts on ticks)

Samples arrive as wall-clock time passes at the configured rate into a device buffer of
``channel_buffer_size`` samples per channel. Not read in time, the buffer overflows: the
acquisition stops at that moment (nothing is overwritten) and the next read raises. The
``ramp`` signal counts samples, so a consumer can prove that nothing was lost or repeated.

``counts`` are photon counts of a 50 kHz flux, in the channel's unit: a rate unit (``Hz``,
``c/s``, ``cps``, ``counts/s``, optionally ``k``/``M``/``G``-prefixed) gives counts per second in
that unit whatever the sample rate (the seed's ``Hz`` channel reads about 50 000 at 50 S/s and at
1 kS/s), as qudi-iqo-modules' NI streamer delivers counting channels; any other unit (``counts``)
gives counts per sample, which a time-series logic with ``calc_digital_freq`` turns into c/s.

``data_type`` may be any numpy integer or float type, and no value wraps or silently stops
being exact in it. The ramp holds sample indices exactly up to 127 in int8, 255 in uint8,
32 767 in int16, 65 535 in uint16, 2**31 - 1 in int32, 2**32 - 1 in uint32, 2**63 - 1 in
(u)int64, 2048 in float16, 2**24 (16 777 216) in float32 and 2**53 in float64: a CONTINUOUS run
stops there and the next read raises (what was acquired stays readable), a longer FINITE run is
refused. Counts the type cannot hold at a sample rate are refused by ``configure`` (e.g. 1000
counts per sample at 50 S/s in int8). ``sine`` and ``noise`` need a float type.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.util.constraints import ScalarConstraint

from qudi.hardware.instream.source_streamer import SourceStreamer
from qudi.hardware.instream.stream_sharing import SharedStreamer
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    SampleTiming,
    StreamingMode,
)
from qudi.util.instream.arrays import option_error
from qudi.util.instream.prefilter import check_pre_filters, source_format
from qudi.util.instream.simulated import SIGNALS, SimulatedSource, signal_needs_float
from qudi.util.instream.simulated_clock import SimulatedClock, shared_clock
from qudi.util.instream.simulated_kinds import KIND_SIGNALS, KindsSource, check_edge_rate
from qudi.util.instream.timebase import SampleClock

__all__ = ["InStreamDummy"]

SAMPLE_RATE_LIMITS = (0.1, 1e7)  # Hz: up to 10 MS/s per channel (sawtooth, counts, noise are cheap)
BUFFER_SIZE_LIMITS = (128, 2**30)  # samples per channel


class InStreamDummy(SourceStreamer, SharedStreamer, DataInStreamInterface):
    """A simulated streaming card; see the module docstring for its example config."""

    _channel_names = ConfigOption("channel_names", missing="error")
    _channel_units = ConfigOption("channel_units", missing="error")
    _channel_signals = ConfigOption("channel_signals", missing="error")
    _data_type = ConfigOption("data_type", default="float64")
    _sample_timing = ConfigOption("sample_timing", default="CONSTANT")
    _seed = ConfigOption("seed", default=None)
    _digital_edge_rate = ConfigOption("digital_edge_rate", default=100.0)
    _pre_filters = ConfigOption("pre_filters", default=None)
    _initial_rate = ConfigOption("sample_rate", default=50.0)
    _start_offset = ConfigOption("start_offset", default=0.0)
    _clock_drift_ppm = ConfigOption("clock_drift_ppm", default=0.0)
    _clock_jitter = ConfigOption("clock_jitter", default=0.0)
    _shared_clock = ConfigOption("shared_clock", default=None)
    _clock_tick_rate = ConfigOption("clock_tick_rate", default=1e6)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._source: SimulatedSource | None = None
        self._constraints: DataInStreamConstraints | None = None

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        names, units, signals = self._checked_channels()
        dtype = self._checked_dtype(signals)
        timing = self._checked_timing()
        seed = self._seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise option_error("seed", seed, "use an integer >= 0, or null for fresh data each run")
        self.check_publish_address()
        self._constraints = DataInStreamConstraints(
            channel_units=dict(zip(names, units, strict=True)),
            sample_timing=timing,
            streaming_modes=[StreamingMode.CONTINUOUS, StreamingMode.FINITE],
            data_type=dtype,
            channel_buffer_size=ScalarConstraint(
                default=1024**2, bounds=BUFFER_SIZE_LIMITS, increment=1, enforce_int=True
            ),
            sample_rate=ScalarConstraint(
                default=self._checked_initial_rate(), bounds=SAMPLE_RATE_LIMITS, increment=1.0
            ),
        )
        kinds = {"edge_rate": check_edge_rate(self._digital_edge_rate)}  # 'digital' lines
        kind = KindsSource if "digital" in signals else SimulatedSource
        self._source = kind(
            names,
            signals,
            channel_units=units,
            sample_rate=self._constraints.sample_rate.default,
            data_type=dtype,
            buffer_size=self._constraints.channel_buffer_size.default,
            sample_timing=timing.name,
            seed=seed,
            clock=self._checked_clock(seed),
            **(kinds if "digital" in signals else {}),
        )
        check_pre_filters(self._pre_filters, source_format(self))  # refused: named

    def on_deactivate(self) -> None:
        if self._source is not None:
            self._source.stop_stream()
        self._source = None

    # --------------------------------------------------------------------------- settings
    @property
    def pre_filters(self) -> list | None:
        """The option ``pre_filters``: the hub's pump applies them once for everyone."""
        return self._pre_filters

    @property
    def stream_extra(self) -> dict:
        """What the stream's description carries beyond its format: the names of the
        channels whose signal is ``digital`` (``digital_channels``; none: empty)."""
        if self._source is None:
            return {}
        pairs = zip(self._channel_names, self._channel_signals, strict=True)
        digital = [name for name, signal in pairs if signal == "digital"]
        return {"digital_channels": digital} if digital else {}

    # (the rest of the settings, configure, start/stop and the reads: SourceStreamer)
    _configure_refusal = "cannot configure the dummy while it streams; stop it first"

    def _start_source(self, source: SimulatedSource) -> None:
        """Start streaming from sample 0 (``start_stream``; harmless while already streaming).

        Raises
        ------
        ValueError
            If the data type cannot hold the counts at the configured rate; nothing starts.
        """
        source.start_stream()

    def _read_samples(self, data, stamps, count: int, timeout: float | None) -> None:
        """``read_data_into_buffer``: block until ``count`` samples are copied (``timeout``
        s, None waits as long as the stream runs; with ``sample_timing: 'TIMESTAMP'`` a
        float64 ``timestamp_buffer`` is required).

        Raises
        ------
        TimeoutError
            If the samples did not arrive in time; nothing was consumed.
        RuntimeError
            If the stream is not running (or ends) with fewer samples left, if the device buffer
            overflowed, or if the ramp reached its data type's exact range (the acquisition
            stopped; what it took stays readable).
        """
        if self.module_state() != "locked" and self._source.available_samples < count:
            raise RuntimeError(
                f"cannot wait for {count} samples: '{self.module_name}' is not streaming and "
                f"holds {self._source.available_samples}; call start_stream() first"
            )
        try:  # waits without holding the module's lock
            super()._read_samples(data, stamps, count, timeout)
        except Exception:
            self._unlock_if_stopped()
            raise

    def _read_available(self, data, stamps, room: int) -> int:
        """``read_available_data_into_buffer``: raises RuntimeError once, when the
        acquisition stopped by itself (device buffer overflow, the ramp's exact range
        reached); reads after that drain what it took."""
        try:
            return super()._read_available(data, stamps, room)
        except Exception:
            self._unlock_if_stopped()
            raise

    def read_single_point(self) -> tuple[np.ndarray, np.float64 | None]:
        """The newest sample of each active channel (nothing is consumed)."""
        data, stamp = self._active_source().newest_sample()
        return data, None if stamp is None else np.float64(stamp)

    @property
    def sample_clock(self) -> SampleClock:
        """What ticks the samples: internal, or the shared clock named by ``shared_clock``
        with this run's start tick (see ``contracts.ClockedSource``)."""
        return self._active_source().sample_clock

    def true_sample_times(self, indices) -> np.ndarray:
        """Host monotonic times at which samples ``indices`` of the current run were really
        taken (what a real card cannot say: for tests and benchmarks of alignment).

        Raises
        ------
        RuntimeError
            Without a clock option (start_offset, clock_drift_ppm, clock_jitter,
            shared_clock), or before the first start.
        """
        clock = self._active_source().clock
        if clock is None:
            raise RuntimeError(
                f"'{self.module_name}' simulates no clock: set one of its clock options"
            )
        return clock.true_time(np.asarray(indices, np.float64))

    def simulate_fault(self, message: str = "simulated device failure") -> None:
        """Make the next read fail and stop the acquisition, to try out error handling."""
        self._source.simulate_fault(RuntimeError(message))

    # -------------------------------------------------------------------------- internals
    def _unlock_if_stopped(self) -> None:
        """After an overflow the card has stopped: so does the module."""
        with self._state_lock:
            if not self._source.is_running:
                self._show_streaming(False)

    def _checked_channels(self) -> tuple[list[str], list[str], list[str]]:
        names, units, signals = self._channel_names, self._channel_units, self._channel_signals
        for key, values in (
            ("channel_names", names),
            ("channel_units", units),
            ("channel_signals", signals),
        ):
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise option_error(key, values, "use a list of strings, one per channel")
        if not names:
            raise option_error("channel_names", names, "name at least one channel")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise option_error("channel_names", names, f"names must be unique ({duplicates})")
        for key, values in (("channel_units", units), ("channel_signals", signals)):
            if len(values) != len(names):
                raise option_error(
                    key, values, f"give {len(names)} entries, one per channel in channel_names"
                )
        for signal in signals:
            if signal not in SIGNALS + KIND_SIGNALS:
                raise option_error(
                    "channel_signals", signal, f"valid are {list(SIGNALS + KIND_SIGNALS)}"
                )
        return names, units, signals

    def _checked_dtype(self, signals: list[str]) -> type:
        """The option ``data_type``: a numpy number type that can hold every signal."""
        dtype = None
        if isinstance(self._data_type, str):  # a dict or null would make some dtype too
            with contextlib.suppress(TypeError, ValueError, SyntaxError):  # '01': SyntaxError
                dtype = np.dtype(self._data_type)
        if dtype is None or dtype.kind not in "iuf":
            raise option_error(
                "data_type", self._data_type, "use a numpy number type such as 'float64' or 'int32'"
            )
        unfit = sorted({signal for signal in signals if signal_needs_float(signal, dtype)})
        if unfit:
            raise option_error(
                "data_type",
                self._data_type,
                f"the signals {unfit} (values around -1 to 1) need a float type such as "
                "'float32'; integer types suit 'ramp' and 'counts'",
            )
        return dtype.type

    def _checked_initial_rate(self) -> float:
        rate = self._initial_rate
        low, high = SAMPLE_RATE_LIMITS
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not low <= rate <= high:
            raise option_error("sample_rate", rate, f"use a number of Hz from {low} to {high:g}")
        return float(rate)

    def _checked_clock(self, seed: int | None) -> SimulatedClock | None:
        """The options that make the dummy's clock behave like a real one (None: ideal)."""
        values = {}
        for key, value, low in (
            ("start_offset", self._start_offset, 0.0),
            ("clock_drift_ppm", self._clock_drift_ppm, -1e5),
            ("clock_jitter", self._clock_jitter, 0.0),
            ("clock_tick_rate", self._clock_tick_rate, 1e-3),
        ):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value < low:
                raise option_error(key, value, f"use a finite number >= {low:g}")
            values[key] = float(value)
        name = self._shared_clock
        if name is not None and (not isinstance(name, str) or not name):
            raise option_error("shared_clock", name, "use a name (str), or null for its own clock")
        shared = None
        if name is not None:
            try:
                shared = shared_clock(
                    name, drift_ppm=values["clock_drift_ppm"], tick_rate=values["clock_tick_rate"]
                )
            except ValueError as exc:
                raise option_error("clock_drift_ppm", values["clock_drift_ppm"], str(exc)) from None
        clock = SimulatedClock(
            start_offset=values["start_offset"],
            drift_ppm=values["clock_drift_ppm"],
            jitter=values["clock_jitter"],
            shared=shared,
            seed=seed,
        )
        return None if clock.is_simple else clock

    def _checked_timing(self) -> SampleTiming:
        try:
            timing = SampleTiming.coerce(self._sample_timing)
        except ValueError:
            timing = SampleTiming.INVALID
        if timing == SampleTiming.INVALID:
            raise option_error(
                "sample_timing", self._sample_timing, "valid are 'CONSTANT', 'TIMESTAMP', 'RANDOM'"
            )
        return timing
