"""SimulatedSource: a clock-paced signal generator that behaves like a streaming DAQ card.

Samples "arrive" as wall-clock time passes at the configured rate, into a device buffer of
``channel_buffer_size`` samples per channel. No thread runs: what has arrived is computed from
the clock whenever the source is asked. If samples are not read before the buffer would
overflow, the acquisition stops at that moment, like a real card's, and the next call raises
:class:`SourceOverflowError`; nothing is ever overwritten, returned twice or made up.

Signals per channel: ``ramp`` (the sample's absolute index, to prove nothing is lost or
repeated), ``sawtooth`` (the sample index modulo :func:`sawtooth_period`: 32 768 in int16 and
wider types, so that an int16 stream at MHz rates can prove the same for as long as it runs),
``sine`` (0.5 Hz, amplitude 1), ``counts`` (Poisson counts of a 50 kHz photon flux) and
``noise`` (standard normal).

Generating must cost little next to what a benchmark measures, up to 10 MS/s per channel:
``sawtooth``, ``counts`` and ``noise`` come from one table of all channels, drawn when the
acquisition starts (seeded) and repeated: :func:`table_length` samples, a power of two from
2**15 up to 2**20 (about half a second at the sample rate), so noise and counts repeat after
that many samples. A read then copies whole rows of the table (a ``memcpy``); only ``ramp``
and ``sine`` columns are computed per read.

Counts follow the channel's unit: a channel whose unit is a rate (``Hz``, ``c/s``, ``cps``,
``counts/s``, ``1/s`` or ``/s``, optionally with the prefix ``k``, ``M`` or ``G``; see
:func:`rate_unit_scale`) carries counts per second in that unit, whatever the sample rate:
50 000 Hz (or 50 kHz, 50 kc/s) at 50 S/s and at 1 MS/s alike, as qudi-iqo-modules' NI streamer
delivers counting channels. Any other unit (``counts``, ``''``, ...) carries counts per sample:
1000 at 50 S/s, 0.05 on average at 1 MS/s. Timing ``CONSTANT``, ``TIMESTAMP`` (jittered
float64 times) or ``RANDOM``; streaming mode ``CONTINUOUS`` or ``FINITE`` (stops by itself
after ``channel_buffer_size`` samples). The qudi dummy streamer is a thin module around this.

No value wraps or silently loses its exactness in the chosen ``data_type``:

- the ramp holds sample indices exactly from 0 up to :func:`ramp_limit` (127 in int8, 255 in
  uint8, 32 767 in int16, 65 535 in uint16, 2**31 - 1 in int32, 2**32 - 1 in uint32,
  2**63 - 1 in (u)int64, 2048 in float16, 2**24 in float32, 2**53 in float64). A CONTINUOUS run
  stops when its ramp reaches that limit and the next read raises :class:`SourceRangeError`
  (samples up to the limit stay readable); a FINITE run longer than that is refused;
- counts that the data type cannot hold at the configured rate (more than its largest value,
  with Poisson tails up to 8 standard deviations) are refused by :meth:`configure` and
  :meth:`start_stream`; integer types get counts per second rounded to whole numbers, and a
  count beyond the 8-sigma bound (probability below 1e-12) is clipped to the type's range;
- ``sine`` and ``noise`` (values around -1 to 1) need a float type.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from qudi.util.instream.arrays import as_channel_names
from qudi.util.instream.simulated_clock import SimulatedClock
from qudi.util.instream.timebase import SampleClock

__all__ = [
    "SIGNALS",
    "SimulatedSource",
    "SourceConstraints",
    "SourceOverflowError",
    "SourceRangeError",
    "ramp_limit",
    "rate_unit_scale",
    "sawtooth_period",
    "signal_needs_float",
    "table_length",
]

SIGNALS = ("ramp", "sine", "counts", "noise", "sawtooth")
_TABLED = ("counts", "noise", "sawtooth")  # generated once per run, then repeated
_TABLE_SECONDS = 0.5
_TABLE_LENGTHS = (2**15, 2**20)  # shortest, longest (powers of two)
_TABLE_BYTES = 64 * 2**20  # a table larger than this is made shorter (not below 2**15)
TIMINGS = ("CONSTANT", "TIMESTAMP", "RANDOM")
MODES = ("CONTINUOUS", "FINITE")
_PHOTON_FLUX_HZ = 50e3
_SINE_HZ = 0.5
_JITTER = 0.2  # timestamp jitter, in sample periods (keeps timestamps increasing)
_WAIT_STEP_S = 0.05  # blocking reads re-check stop and overflow at least this often
# the prefix is case-sensitive (m is milli, M mega), the base is not ('hz', 'CPS')
_RATE_UNIT = re.compile(r"(?P<prefix>[kKMG]?)(?P<base>(?i:hz|c/s|cps|counts?/s|cts/s|1/s|/s))")
_PREFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def rate_unit_scale(unit: str) -> float | None:
    """How many per-second counts make one of ``unit``, if ``unit`` is a rate.

    Parameters
    ----------
    unit : str
        A channel's unit, e.g. ``'Hz'``, ``'kc/s'``, ``'counts'``.

    Returns
    -------
    float or None
        1 for ``Hz``, ``c/s``, ``cps``, ``counts/s``, ``cts/s``, ``1/s`` and ``/s`` (any case),
        1e3, 1e6 or 1e9 with the prefix ``k`` (or ``K``), ``M`` or ``G``; None if ``unit`` is no
        rate. ``mHz`` is no rate here (a milli prefix is rarely meant for counts).
    """
    match = _RATE_UNIT.fullmatch(unit.strip())
    if match is None or (match["prefix"] and match["base"] in ("1/s", "/s")):
        return None  # 'k1/s' is no unit anyone writes
    return _PREFIX[match["prefix"]]


def ramp_limit(data_type: npt.DTypeLike) -> int:
    """The largest sample index a ramp holds exactly in ``data_type``.

    Parameters
    ----------
    data_type : numpy.typing.DTypeLike
        An integer or float type.

    Returns
    -------
    int
        The type's largest integer for integer types, ``2**(mantissa bits + 1)`` for floats
        (2048 for float16, 2**24 for float32, 2**53 for float64), at most 2**63 - 1.
    """
    dtype = np.dtype(data_type)
    if dtype.kind in "iu":
        return min(int(np.iinfo(dtype).max), 2**63 - 1)
    return min(2 ** (np.finfo(dtype).nmant + 1), 2**63 - 1)


def sawtooth_period(data_type: npt.DTypeLike) -> int:
    """Samples after which the ``sawtooth`` signal starts again from 0 in ``data_type``.

    Parameters
    ----------
    data_type : numpy.typing.DTypeLike
        An integer or float type.

    Returns
    -------
    int
        The largest power of two up to 32 768 whose values ``0 .. period - 1`` the type holds
        exactly: 128 in int8, 256 in uint8, 2048 in float16, 32 768 in all other types.
    """
    return min(2**15, 2 ** int(math.log2(ramp_limit(data_type) + 1)))


def table_length(sample_rate: float, channels: int, itemsize: int) -> int:
    """Samples in the repeated table of ``counts``, ``noise`` and ``sawtooth`` (module doc).

    Parameters
    ----------
    sample_rate : float
        Samples per second.
    channels : int
        Channels per sample (the table holds them all).
    itemsize : int
        Bytes per value.

    Returns
    -------
    int
        The power of two next to half a second of samples, within 2**15 .. 2**20, halved
        while the table would take more than 64 MiB (not below 2**15).
    """
    shortest, longest = _TABLE_LENGTHS
    wanted = max(1, math.ceil(sample_rate * _TABLE_SECONDS))
    length = min(max(2 ** math.ceil(math.log2(wanted)), shortest), longest)
    while length > shortest and length * channels * itemsize > _TABLE_BYTES:
        length //= 2
    return length


def signal_needs_float(signal: str, data_type: npt.DTypeLike) -> bool:
    """Whether ``signal`` (see :data:`SIGNALS`) cannot be held by the integer ``data_type``:
    ``sine`` and ``noise`` take values around -1 to 1."""
    return signal in ("sine", "noise") and np.dtype(data_type).kind in "iu"


def _largest_count(mean: float) -> float:
    """A count that a Poisson variable of this mean exceeds with probability below 1e-12."""
    return mean + 8 * math.sqrt(mean) + 8


class SourceOverflowError(RuntimeError):
    """The device buffer filled up because it was not read in time; the acquisition stopped."""


class SourceRangeError(RuntimeError):
    """The ramp reached the largest index its data type holds exactly; the acquisition stopped."""


@dataclass(frozen=True)
class SourceConstraints:
    """The part of ``DataInStreamConstraints`` a hub needs."""

    channel_units: dict[str, str] = field(default_factory=dict)
    data_type: type = np.float64
    sample_timing: str = "CONSTANT"


class SimulatedSource:
    """Generates one of :data:`SIGNALS` per channel at ``sample_rate`` Hz (see module doc)."""

    def __init__(
        self,
        channel_names: Sequence[str] = ("ramp",),
        signals: Sequence[str] | None = None,
        *,
        channel_units: Sequence[str] | None = None,
        sample_rate: float = 1000.0,
        data_type=np.float64,
        buffer_size: int = 1 << 20,
        sample_timing: str = "CONSTANT",
        timestamps: bool = False,
        seed: int | None = None,
        clock: SimulatedClock | None = None,
    ):
        signals = tuple(signals) if signals is not None else ("ramp",) * len(channel_names)
        units = tuple(channel_units) if channel_units is not None else ("",) * len(channel_names)
        if not (len(signals) == len(units) == len(channel_names)):
            raise ValueError("channel_names, signals and channel_units need one entry per channel")
        unknown = sorted(set(signals) - set(SIGNALS))
        if unknown:
            raise ValueError(f"unknown signals {unknown}; valid are {list(SIGNALS)}")
        timing = "TIMESTAMP" if timestamps else sample_timing
        if timing not in TIMINGS:
            raise ValueError(f"unknown sample timing {timing!r}; valid are {list(TIMINGS)}")
        dtype = np.dtype(data_type)
        pairs = zip(channel_names, signals, strict=True)
        unfit = [(ch, sig) for ch, sig in pairs if signal_needs_float(sig, dtype)]
        if unfit:
            raise ValueError(
                f"data_type {dtype.name} cannot hold the values of {unfit} (around -1 to 1): "
                "use a float type such as 'float32' (integer types suit 'ramp' and 'counts')"
            )
        self._signals = dict(zip(channel_names, signals, strict=True))
        #: when samples are taken and reach the buffer (None: exactly i / rate after the start)
        self.clock = clock
        # counts per second in the channel's unit for rate units, counts per sample otherwise
        self._count_scale = {
            ch: rate_unit_scale(unit) for ch, unit in zip(channel_names, units, strict=True)
        }
        self.constraints = SourceConstraints(
            dict(zip(channel_names, units, strict=True)), np.dtype(data_type).type, timing
        )
        self.active_channels = list(channel_names)
        self.streaming_mode = "CONTINUOUS"
        self.sample_rate = float(sample_rate)
        self.channel_buffer_size = int(buffer_size)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._start_time: float | None = None  # None: not acquiring
        self._end_index: float = 0  # samples acquired when the acquisition ends (or ended)
        self._read = 0
        self._ramp_end: float = math.inf  # samples the ramp holds exactly in this run
        self._injected_fault: BaseException | None = None
        self._table: np.ndarray | None = None  # [samples, channels] of this run (module doc)

    # ------------------------------------------------------------------------ settings
    @property
    def has_timestamps(self) -> bool:
        return self.constraints.sample_timing == "TIMESTAMP"

    @property
    def sample_clock(self) -> SampleClock:
        """What ticks the samples (a hub reads it: see ``contracts.ClockedSource``)."""
        return self.clock.sample_clock if self.clock is not None else SampleClock()

    @property
    def is_running(self) -> bool:
        return self._start_time is not None

    def configure(self, active_channels, streaming_mode, channel_buffer_size, sample_rate):
        """Set what :meth:`start_stream` acquires.

        Parameters
        ----------
        active_channels : list of str
            Channels to acquire, in sample order.
        streaming_mode : str
            ``'CONTINUOUS'`` or ``'FINITE'``.
        channel_buffer_size : int
            Device buffer size (FINITE: the samples to acquire).
        sample_rate : float
            Samples per second.

        Raises
        ------
        RuntimeError
            While acquiring.
        TypeError, ValueError
            If the channels or mode are unknown, the data type cannot hold the counts at
            ``sample_rate``, or a FINITE run is longer than the ramp holds exactly. A refused
            call changes nothing.
        """
        if self.is_running:
            raise RuntimeError("cannot configure a running source; stop it first")
        channels = as_channel_names(active_channels, known=list(self._signals))
        if streaming_mode not in MODES:
            raise ValueError(f"unknown streaming mode {streaming_mode!r}; valid are {list(MODES)}")
        self._check_values_fit(channels, float(sample_rate))
        ramp_end = self._ramp_end_of(channels)
        if streaming_mode == "FINITE" and channel_buffer_size > ramp_end:
            raise ValueError(
                f"a FINITE run of {channel_buffer_size} samples needs a ramp up to "
                f"{channel_buffer_size - 1}, but data_type {self._dtype.name} holds it exactly up "
                f"to {ramp_end - 1}: use a wider data_type or at most {ramp_end} samples"
            )
        self.active_channels = list(channels)
        self._table = None
        self.streaming_mode = streaming_mode
        self.channel_buffer_size = int(channel_buffer_size)
        self.sample_rate = float(sample_rate)

    # ----------------------------------------------------------------------- acquisition
    def start_stream(self) -> None:
        """Start acquiring from sample 0 (a running acquisition is restarted).

        Raises
        ------
        ValueError
            If the data type cannot hold the counts at the configured rate (nothing starts).
        """
        self._check_values_fit(self.active_channels, self.sample_rate)
        with self._lock:
            self._rng = np.random.default_rng(self._seed)
            self._table = None  # drawn anew from the seed, at this run's rate
            self._read = 0
            finite = self.streaming_mode == "FINITE"
            self._end_index = self.channel_buffer_size if finite else math.inf
            self._ramp_end = self._ramp_end_of(self.active_channels)
            self._start_time = time.monotonic()
            if self.clock is not None:  # when samples are taken and arrive (issue 14)
                self.clock.start(self._start_time, self.sample_rate)

    def stop_stream(self) -> None:
        """Stop acquiring; samples already acquired stay readable."""
        with self._lock:
            if self._start_time is not None:
                self._end_index = min(self._end_index, self._arrived())
            self._start_time = None

    @property
    def available_samples(self) -> int:
        """Samples waiting in the device buffer; raises once if it overflowed."""
        with self._lock:
            return self._pending()

    def read_available_data_into_buffer(
        self, data_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        """Move as many waiting samples as fit into the flat, sample-major ``data_buffer``."""
        with self._lock:
            room = data_buffer.size // len(self.active_channels)
            if timestamp_buffer is not None:
                room = min(room, len(timestamp_buffer))
            return self._take(min(self._pending(), room), data_buffer, timestamp_buffer)

    def read_data_into_buffer(
        self,
        data_buffer: np.ndarray,
        samples_per_channel: int,
        timestamp_buffer: np.ndarray | None = None,
        timeout: float | None = None,
    ) -> None:
        """Wait (without holding any lock) until ``samples_per_channel`` samples arrived, take them.

        Parameters
        ----------
        data_buffer : numpy.ndarray
            Flat, sample-major, large enough (the caller checked it).
        samples_per_channel : int
            Samples to take.
        timestamp_buffer : numpy.ndarray, optional
            float64, filled with TIMESTAMP timing.
        timeout : float, optional
            Seconds to wait; None waits as long as the acquisition runs.

        Raises
        ------
        TimeoutError
            If the samples did not arrive in time; nothing was consumed.
        SourceOverflowError, SourceRangeError
            Once, when the acquisition stopped by itself.
        RuntimeError
            If the acquisition ends with fewer samples than asked for.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                pending = self._pending()
                if pending >= samples_per_channel:
                    self._take(samples_per_channel, data_buffer, timestamp_buffer)
                    return
                if self._arrived() >= self._end_index:
                    raise RuntimeError(
                        f"the acquisition has ended with {pending} of {samples_per_channel} "
                        "requested samples left"
                    )
                missing_s = (samples_per_channel - pending) / self.sample_rate
            wait = min(missing_s, _WAIT_STEP_S)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{samples_per_channel} samples did not arrive within {timeout} s "
                        f"({pending} available); nothing was consumed"
                    )
                wait = min(wait, remaining)
            time.sleep(wait)

    def newest_sample(self) -> tuple[np.ndarray, float | None]:
        """The most recently acquired sample (not consumed); zeros before the first one."""
        with self._lock:
            newest = max(0, int(min(self._arrived(), self._ramp_end)) - 1)
            data: np.ndarray = np.zeros((1, len(self.active_channels)), self.constraints.data_type)
            self._generate(data, newest)
            stamp = self._timestamps(newest, 1)[0] if self.has_timestamps else None
        return data[0], stamp

    def simulate_fault(self, error: BaseException) -> None:
        """Make the next read fail with ``error`` and stop, like a card that lost power."""
        with self._lock:
            self._injected_fault = error

    # -------------------------------------------------------------------------- internals
    def _arrived(self) -> int:
        """Samples acquired since the start (all of them once the acquisition ended)."""
        if self._start_time is None:
            return int(self._end_index)
        if self.clock is not None:
            return int(min(self.clock.arrived_by(time.monotonic()), self._end_index))
        elapsed = math.floor((time.monotonic() - self._start_time) * self.sample_rate)
        return int(min(elapsed, self._end_index))

    def _pending(self) -> int:
        if self._injected_fault is not None:
            error, self._injected_fault = self._injected_fault, None
            self._end_index, self._start_time = self._arrived(), None
            raise error
        arrived = self._arrived()
        full_at = self._read + self.channel_buffer_size  # the device buffer is full from here
        ramp_ended = arrived > self._ramp_end and self._ramp_end <= full_at
        if self._start_time is not None and ramp_ended:
            # the ramp reached its data type's exact range before the buffer filled up
            self._end_index, self._start_time = self._ramp_end, None
            raise SourceRangeError(
                f"the ramp reached {int(self._ramp_end) - 1}, the largest index data_type "
                f"{self._dtype.name} holds exactly, so the acquisition stopped there (samples up "
                "to it stay readable): use a wider data_type, such as 'float64', for longer runs"
            )
        if self._start_time is not None and arrived > full_at:
            # the card stopped the moment its buffer was full: nothing was overwritten
            self._end_index = self._read + self.channel_buffer_size
            self._start_time = None
            raise SourceOverflowError(
                f"the device buffer of {self.channel_buffer_size} samples per channel "
                f"overflowed ({arrived - self._read} samples were due): the stream was not read "
                "fast enough and the acquisition stopped"
            )
        return arrived - self._read

    def _take(self, count: int, data_buffer: np.ndarray, timestamp_buffer) -> int:
        channels = len(self.active_channels)
        self._generate(data_buffer[: count * channels].reshape(count, channels), self._read)
        if timestamp_buffer is not None and self.has_timestamps:
            timestamp_buffer[:count] = self._timestamps(self._read, count)
        self._read += count
        return count

    def _timestamps(self, first: int, count: int) -> np.ndarray:
        jitter = self._rng.uniform(-_JITTER, _JITTER, count)
        return (np.arange(first, first + count) + jitter) / self.sample_rate

    @property
    def _dtype(self) -> np.dtype:
        return np.dtype(self.constraints.data_type)

    def _ramp_end_of(self, channels: Sequence[str]) -> float:
        """Samples a run of ``channels`` can take before its ramp leaves the exact range."""
        ramps = any(self._signals[ch] == "ramp" for ch in channels)
        return ramp_limit(self._dtype) + 1 if ramps else math.inf

    def _check_values_fit(self, channels: Sequence[str], rate: float) -> None:
        """Refuse a rate at which the data type cannot hold a channel's counts."""
        dtype = self._dtype
        highest = np.iinfo(dtype).max if dtype.kind in "iu" else np.finfo(dtype).max
        for channel in channels:
            if self._signals[channel] != "counts":
                continue
            scale = self._count_scale[channel]
            largest = _largest_count(_PHOTON_FLUX_HZ / rate)
            if scale is not None:
                largest *= rate / scale
            if largest > highest:
                unit = self.constraints.channel_units[channel] if scale else "counts per sample"
                raise ValueError(
                    f"channel {channel!r} carries counts up to about {largest:.4g} {unit} at "
                    f"{rate} Hz, more than data_type {dtype.name} holds ({highest:.6g}): use a "
                    "wider data_type, or a sample rate at which the counts fit"
                )

    def _generate(self, out: np.ndarray, first: int) -> None:
        """Samples ``first ..`` into ``out`` [samples, channels]: rows of the run's table,
        then the ``ramp`` and ``sine`` columns computed."""
        table = self._table_of_run()
        if table is not None:
            done, position = 0, first % len(table)
            while done < len(out):
                count = min(len(out) - done, len(table) - position)
                out[done : done + count] = table[position : position + count]
                done, position = done + count, 0
        for column, channel in enumerate(self.active_channels):
            signal = self._signals[channel]
            if signal == "ramp":
                kind = np.int64 if out.dtype.kind in "iu" else np.float64
                out[:, column] = np.arange(first, first + len(out), dtype=kind)
            elif signal == "sine":
                index = np.arange(first, first + len(out), dtype=np.float64)
                out[:, column] = np.sin(index * (2 * np.pi * _SINE_HZ / self.sample_rate))

    def _table_of_run(self) -> np.ndarray | None:
        """The repeated table of this run's tabled channels (drawn on first use), None if no
        channel is tabled."""
        if self._table is None:
            columns = [
                (column, channel)
                for column, channel in enumerate(self.active_channels)
                if self._signals[channel] in _TABLED
            ]
            if not columns:
                return None
            dtype = self._dtype
            length = table_length(self.sample_rate, len(self.active_channels), dtype.itemsize)
            table = np.zeros((length, len(self.active_channels)), dtype)
            for column, channel in columns:
                signal = self._signals[channel]
                if signal == "sawtooth":
                    table[:, column] = np.arange(length) % sawtooth_period(dtype)
                elif signal == "counts":
                    table[:, column] = self._counts(channel, length, dtype)
                else:
                    table[:, column] = self._rng.standard_normal(length)
            self._table = table
        return self._table

    def _counts(self, channel: str, count: int, dtype: np.dtype) -> np.ndarray:
        """Photon counts per sample, or per second in the channel's rate unit, within dtype."""
        counts = self._rng.poisson(_PHOTON_FLUX_HZ / self.sample_rate, count)
        scale = self._count_scale[channel]
        values: np.ndarray
        if scale is None:
            values = counts
        else:
            values = counts * (self.sample_rate / scale)
            if dtype.kind in "iu":
                values = np.rint(values)
        if dtype.kind in "iu":  # beyond the 8-sigma bound configure checked: clipped
            values = np.clip(values, 0, np.iinfo(dtype).max)
        return values
