"""The time model of a stream: its sample clock, its run's start, and the fit of its clock.

Every stream carries a time base:

* :class:`SampleClock`: what ticks its samples (the card's own clock, an external source,
  or a clock shared with other streams), declared by the source and kept in the stream's
  description.
* :class:`RunStart`: when the current run started, on the wall clock (UTC) and on the host's
  monotonic clock (``time.monotonic()``), and at which index of the ring.
* :class:`TimeTable`: sparse ``(sample index, host time, device time)`` rows that the pump
  writes after each chunk it moves: "by host time ``host``, the samples before ``index``
  had been taken; the last of them at ``device`` seconds on the stream's own clock".

:func:`fit_clock` turns a table into a :class:`ClockFit`: host time = offset + slope x
device time, the slope being 1 + the clock's drift. A sample is seen only after it was taken,
so every row lies on or above the true line, late by the delivery latency (the poll interval,
a driver's transfer); the fit is the line below all rows that passes closest to them (the
lower convex hull's edge over the rows' mean). Its uncertainty comes from how densely the
rows crowd the line: the few smallest latencies seen say how close the closest row came.

:class:`StreamTime` answers "when was sample i taken" and "which samples lie between t0 and
t1" for one run of one stream. Everything here is numpy and arithmetic: no threads, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CLOCK_KINDS",
    "COVERAGE_FACTOR",
    "DEFAULT_WINDOW_S",
    "MAX_DRIFT_PPM",
    "ClockFit",
    "RunStart",
    "SampleClock",
    "StreamTime",
    "TimeTable",
    "fit_clock",
]

#: What can tick a stream's samples.
CLOCK_KINDS = ("internal", "external", "shared")
#: The uncertainty is this many "typical closest approaches" of the rows to the line (see
#: :func:`fit_clock`); tests/core/test_timebase.py checks that it covers >= 95 % of errors.
COVERAGE_FACTOR = 4.0
#: The fastest drift a fit believes (ppm): crystal clocks drift tens of ppm, a host's NTP-slewed
#: clock up to 500. A few rows over a short span can suggest far more (a row late by a poll
#: interval at each end of a second); such a fit takes this bound and says so in its
#: uncertainty.
MAX_DRIFT_PPM = 1000.0
_SMALLEST_RESIDUALS = 6  # the how-many-th closest row measures how close rows come
#: A live reader's fit takes the rows of this many seconds of the stream's clock before its
#: newest row (see ``window`` of :func:`fit_clock`): a real clock's drift changes (with
#: temperature), so old rows would bend the line through the new ones.
DEFAULT_WINDOW_S = 30.0
_BEND_ROWS = 8  # rows each half of a window needs for the bend check


@dataclass(frozen=True)
class SampleClock:
    """What ticks a stream's samples, as a source declares it.

    Attributes
    ----------
    kind
        ``'internal'`` (the device's own oscillator), ``'external'`` (a clock fed in, named by
        ``source``, e.g. ``'/Dev1/PFI0'``) or ``'shared'`` (one clock for several streams,
        named by ``source``).
    source
        The terminal or the shared clock's name; streams whose ``source`` is the same
        non-empty name (kind ``'external'`` or ``'shared'``) run on one clock: no drift between
        them.
    tick_rate
        Ticks per second of that clock, if the sample clock divides it (sample starts fall on
        its ticks); None if unknown.
    start_trigger
        Name of a start trigger this stream starts on (streams with the same name took their
        sample 0 at the same instant); ``''`` for none.
    start_tick
        The tick of the shared clock at which sample 0 of the current run was taken, if the
        source knows it (then two streams on one clock line up exactly); None if unknown.
    """

    kind: str = "internal"
    source: str = ""
    tick_rate: float | None = None
    start_trigger: str = ""
    start_tick: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in CLOCK_KINDS:
            raise ValueError(f"sample_clock kind {self.kind!r}: valid are {list(CLOCK_KINDS)}")
        if not isinstance(self.source, str) or not isinstance(self.start_trigger, str):
            raise TypeError("sample_clock source and start_trigger must be str ('' for none)")
        if self.kind == "shared" and not self.source:
            raise ValueError("a 'shared' sample clock needs the shared clock's name as source")
        rate = self.tick_rate
        if rate is not None and not (
            isinstance(rate, (int, float))
            and not isinstance(rate, bool)
            and math.isfinite(rate)
            and rate > 0
        ):
            raise ValueError(f"sample_clock tick_rate {rate!r}: use a number > 0 (Hz) or None")
        tick = self.start_tick
        if tick is not None and (isinstance(tick, bool) or not isinstance(tick, int)):
            raise TypeError(f"sample_clock start_tick {tick!r}: use a whole number or None")

    @property
    def domain(self) -> str | None:
        """The name of the clock this stream shares with others, None for its own."""
        return self.source if self.kind in ("external", "shared") and self.source else None

    def shares_clock_with(self, other: SampleClock) -> bool:
        """Both streams' samples are ticked by one clock (no drift between them)."""
        return self.domain is not None and self.domain == other.domain

    def as_description(self) -> dict[str, Any]:
        """JSON-ready values (a stream description's ``sample_clock``)."""
        return {
            "kind": self.kind,
            "source": self.source,
            "tick_rate": self.tick_rate,
            "start_trigger": self.start_trigger,
            "start_tick": self.start_tick,
        }

    @classmethod
    def from_description(cls, value: Any) -> SampleClock:
        """The clock a description (or a source's ``sample_clock``) declares.

        ``value`` may be a :class:`SampleClock`, a mapping of its fields (missing ones
        default), a kind's name, or None (internal).

        Raises
        ------
        ValueError, TypeError
            For an unknown key or kind, or a field of the wrong kind; naming it.
        """
        if isinstance(value, SampleClock):
            return value
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(kind=value)
        if not isinstance(value, Mapping):
            raise TypeError(f"sample_clock {value!r}: use a mapping of its fields, or None")
        unknown = sorted(set(value) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"sample_clock has unknown keys {unknown}: valid are "
                f"{list(cls.__dataclass_fields__)}"
            )
        fields = dict(value)
        if isinstance(fields.get("tick_rate"), int) and not isinstance(fields["tick_rate"], bool):
            fields["tick_rate"] = float(fields["tick_rate"])
        return cls(**fields)


@dataclass(frozen=True)
class RunStart:
    """When a run of a stream started.

    ``monotonic_start`` and ``utc_start`` are read together just before the source was asked
    to start (``time.monotonic()`` and ``time.time()``); ``start_call`` is how long that call
    took (its first sample was taken at or after ``monotonic_start``). ``first_index`` is the
    ring index of the run's first sample.

    ``host_uncertainty`` (s) is how far this run's host times (its start and its table's
    rows) may be from this host's monotonic clock: 0 where the stream's writer runs on this
    host; for a stream received from another host, the bound of the estimated offset between
    the two hosts' clocks (see :mod:`~qudi.util.instream.transport.clock_sync`).
    """

    run_epoch: int
    first_index: int
    monotonic_start: float
    utc_start: float
    start_call: float = 0.0
    start_tick: int | None = None
    host_uncertainty: float = 0.0

    def utc_of(self, host_time: npt.ArrayLike) -> np.ndarray:
        """Host monotonic times as UTC seconds since 1970 (by this run's pair of clocks)."""
        return np.asarray(host_time, np.float64) - self.monotonic_start + self.utc_start


@dataclass(frozen=True)
class TimeTable:
    """Rows of one run: ``index`` (samples before it were taken by ``host``), ``host``
    (host monotonic seconds), ``device`` (the last of them on the stream's clock, seconds
    since the run's first sample; NaN if the stream has no clock of its own)."""

    index: np.ndarray
    host: np.ndarray
    device: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def empty(cls) -> TimeTable:
        return cls(np.empty(0, np.int64), np.empty(0), np.empty(0))

    @classmethod
    def of(cls, index: npt.ArrayLike, host: npt.ArrayLike, device: npt.ArrayLike) -> TimeTable:
        """A table of the given columns (one entry per row each)."""
        table = cls(
            np.asarray(index, np.int64).reshape(-1),
            np.asarray(host, np.float64).reshape(-1),
            np.asarray(device, np.float64).reshape(-1),
        )
        if not len(table.index) == len(table.host) == len(table.device):
            raise ValueError("a time table needs one index, host and device time per row")
        return table

    def joined(self, newer: TimeTable) -> TimeTable:
        """This table followed by the rows of ``newer`` past its last index."""
        if len(self) and len(newer):
            newer = newer.since(int(self.index[-1]) + 1)
        return TimeTable(
            np.concatenate([self.index, newer.index]),
            np.concatenate([self.host, newer.host]),
            np.concatenate([self.device, newer.device]),
        )

    def since(self, index: int) -> TimeTable:
        """The rows whose index is ``index`` or later."""
        keep = self.index >= index
        return TimeTable(self.index[keep], self.host[keep], self.device[keep])

    def fit(self, window: float | None = None) -> ClockFit:
        """The clock fit of these rows (see :func:`fit_clock`; ``window``: of the rows of
        the last ``window`` seconds only)."""
        good = np.isfinite(self.device)
        return fit_clock(self.device[good], self.host[good], window=window)


@dataclass(frozen=True)
class ClockFit:
    """host time = ``offset`` + ``slope`` x device time, with an uncertainty.

    ``slope`` is 1 + the drift of the device clock against the host's (``drift_ppm``).
    ``scale`` says how close the closest rows come to the line (seconds); the
    uncertainty at device time ``x`` is ``COVERAGE_FACTOR * scale`` at the rows' centre
    ``x_centre``, growing linearly to twice that at the ends of the span ``x_span`` of the
    rows (and on beyond them). ``points`` is how many rows were fitted. ``slope_error`` is
    non-zero when the rows suggested a drift beyond :data:`MAX_DRIFT_PPM` and the fit took
    the bound instead: the slope may then be off by that much, and the uncertainty grows by
    it away from ``x_centre`` (the row the line touches). ``bend`` is how much the slopes of the
    older and the newer half of a windowed fit's rows differ (a drift that changed within the
    window; 0 when not checked): the uncertainty grows by it, away from the centre and by half
    the span.
    """

    offset: float
    slope: float
    scale: float
    x_centre: float
    x_span: float
    points: int
    support: tuple[float, ...] = field(default=())
    slope_error: float = 0.0
    bend: float = 0.0

    @property
    def drift_ppm(self) -> float:
        """How much faster the host clock runs than the device clock, in parts per million
        (positive: the device clock runs slow)."""
        return (self.slope - 1.0) * 1e6

    def host_time(self, device_time: npt.ArrayLike) -> np.ndarray:
        """Host monotonic time (s) of device times (s since the run's first sample)."""
        return self.offset + self.slope * np.asarray(device_time, np.float64)

    def device_time(self, host_time: npt.ArrayLike) -> np.ndarray:
        """Device time (s since the run's first sample) of host monotonic times."""
        return (np.asarray(host_time, np.float64) - self.offset) / self.slope

    def uncertainty(self, device_time: npt.ArrayLike) -> np.ndarray:
        """How far (s) the fitted host time of ``device_time`` may be from the true one
        (covering the true error in about 95 % of cases; inf with fewer than two rows)."""
        x = np.asarray(device_time, np.float64)
        if self.points < 2 or not self.x_span > 0:
            return np.full(x.shape, np.inf)
        distance = np.abs(x - self.x_centre)
        reach = distance / (0.5 * self.x_span)
        # a bend within the rows: the line is off by up to the slopes' difference over half
        # the span (the sagitta, with margin), and by that difference further out
        straight = COVERAGE_FACTOR * self.scale + 0.5 * self.bend * self.x_span
        return straight * (1.0 + reach) + (self.slope_error + self.bend) * distance


def fit_clock(
    device_time: npt.ArrayLike,
    host_time: npt.ArrayLike,
    *,
    max_drift_ppm: float = MAX_DRIFT_PPM,
    window: float | None = None,
) -> ClockFit:
    """Fit host time = offset + slope x device time to rows that are late, never early.

    Parameters
    ----------
    device_time, host_time
        One entry per row (seconds): the device time of a sample and a host time by which
        it had been seen. Device times must not decrease.
    max_drift_ppm
        The fastest drift believed (see :data:`MAX_DRIFT_PPM`): a steeper or shallower hull
        edge gives way to the line of that slope below every row.
    window
        Fit only the rows of the last ``window`` seconds of device time (None: all). A clock
        whose drift changes (temperature) is then fitted by its recent drift.

    The rows are checked for a bend: the older and the newer half are fitted on their own
    (with at least 8 rows each), and the difference of their slopes (:attr:`ClockFit.bend`)
    widens the uncertainty, so it says how straight the rows were
    (tests/core/test_timebase.py: >= 95 % of 200 simulated runs whose drift jumps or ramps).

    Returns
    -------
    ClockFit
        The edge of the rows' lower convex hull that spans their mean device time (the line
        below every row with the least total distance to them). With one row: slope 1,
        through it, infinite uncertainty. ``scale`` is the 6th smallest distance of a row
        above the line (or the largest, with fewer rows above it): the denser the rows crowd
        the true line, the closer the closest came, and the smaller both are. Four times it
        (:data:`COVERAGE_FACTOR`) covered the true error in at least 97 % of simulated runs
        (1 kHz and 10 Hz streams polled at 30 Hz for 5 to 30 s, with and without delivery
        jitter); tests/core/test_timebase.py keeps that true.

    Raises
    ------
    ValueError
        For no rows, columns of different lengths, values that are not finite, or device
        times that decrease.
    """
    if not (isinstance(max_drift_ppm, (int, float)) and 0 < max_drift_ppm < 1e6):
        raise ValueError(f"max_drift_ppm={max_drift_ppm!r}: use a number of ppm from 0 to 1e6")
    x = np.asarray(device_time, np.float64).reshape(-1)
    y = np.asarray(host_time, np.float64).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} device times for {len(y)} host times: give one each per row")
    if not len(x):
        raise ValueError("fit_clock needs at least one row (device time, host time)")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("fit_clock needs finite times (drop rows without a device time first)")
    if np.any(np.diff(x) < 0):
        raise ValueError("fit_clock needs device times in order (they decrease somewhere)")
    if window is not None:
        if not (isinstance(window, (int, float)) and math.isfinite(window) and window > 0):
            raise ValueError(f"window={window!r}: use a number of seconds > 0, or None")
        recent = x >= x[-1] - window
        x, y = x[recent], y[recent]
    return _bend_checked(x, y, max_drift_ppm)


def _bend_checked(x: np.ndarray, y: np.ndarray, max_drift_ppm: float) -> ClockFit:
    """The line fit of the rows, with the difference of its halves' slopes as its bend."""
    fit = _fit_line(x, y, max_drift_ppm)
    older = x < 0.5 * (x[0] + x[-1])
    if min(np.count_nonzero(older), np.count_nonzero(~older)) < _BEND_ROWS:
        return fit
    first = _fit_line(x[older], y[older], max_drift_ppm)
    second = _fit_line(x[~older], y[~older], max_drift_ppm)
    if not (first.x_span > 0 and second.x_span > 0):
        return fit
    return replace(fit, bend=abs(second.slope - first.slope))


def _fit_line(x: np.ndarray, y: np.ndarray, max_drift_ppm: float) -> ClockFit:
    """:func:`fit_clock` of checked rows, all of them."""
    if x[-1] == x[0]:
        offset = float(y.min() - x[0])
        return ClockFit(offset, 1.0, math.inf, float(x[0]), 0.0, len(x), (float(x[0]),))
    origin_x, origin_y = float(x[0]), float(y[0])
    hx, hy = _lower_hull(x - origin_x, y - origin_y)
    centre = float(np.mean(x)) - origin_x
    edge = int(np.searchsorted(hx, centre, side="right")) - 1
    edge = min(max(edge, 0), len(hx) - 2)
    slope = float((hy[edge + 1] - hy[edge]) / (hx[edge + 1] - hx[edge]))
    local_offset = float(hy[edge] - slope * hx[edge])
    support: tuple[float, ...] = (float(hx[edge] + origin_x), float(hx[edge + 1] + origin_x))
    bound = max_drift_ppm * 1e-6
    slope_error = 0.0
    if abs(slope - 1.0) > bound:  # the bound instead: the line of that slope under every row
        slope = 1.0 + math.copysign(bound, slope - 1.0)
        lifted = (y - origin_y) - slope * (x - origin_x)
        touch = int(np.argmin(lifted))
        local_offset = float(lifted[touch])
        centre = float(x[touch]) - origin_x
        support, slope_error = (float(x[touch]),), 2 * bound
    residuals = (y - origin_y) - (local_offset + slope * (x - origin_x))
    scale = _closest_approach(residuals)
    return ClockFit(
        offset=origin_y + local_offset - slope * origin_x,
        slope=slope,
        scale=scale,
        x_centre=centre + origin_x,
        x_span=float(x[-1] - x[0]),
        points=len(x),
        support=support,
        slope_error=slope_error,
    )


def _lower_hull(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lower convex hull of points sorted by x (the lowest y of equal x's only)."""
    last = np.r_[x[1:] != x[:-1], True]
    first = np.r_[True, x[1:] != x[:-1]]
    groups = np.cumsum(first) - 1
    lowest = np.full(int(groups[-1]) + 1, np.inf)
    np.minimum.at(lowest, groups, y)
    xs = x[last]
    hull: list[int] = []
    for i in range(len(xs)):  # monotone chain: each point enters and leaves at most once
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (xs[b] - xs[a]) * (lowest[i] - lowest[a]) - (lowest[b] - lowest[a]) * (
                xs[i] - xs[a]
            )
            if cross > 0:
                break
            hull.pop()
        hull.append(i)
    return xs[hull], lowest[hull]


def _closest_approach(residuals: np.ndarray) -> float:
    """How close the rows come to the line: the 6th smallest positive residual (see
    :func:`fit_clock`); inf if no row lies above the line."""
    positive = np.sort(residuals[residuals > 1e-12])
    if not len(positive):
        return math.inf
    return float(positive[min(_SMALLEST_RESIDUALS, len(positive)) - 1])


@dataclass(frozen=True)
class StreamTime:
    """When each sample of one run of one stream was taken, in host monotonic seconds.

    ``rate`` is the nominal sample rate (None or 0 for a stream without one). For a
    CONSTANT stream sample ``i`` is at device time ``(i - first_index) / rate``; a TIMESTAMP
    stream gives its device times (its stamps) itself. The fit maps device to host time.
    """

    run: RunStart
    rate: float | None
    fit: ClockFit
    clock: SampleClock = SampleClock()

    def device_time_of(self, index: npt.ArrayLike) -> np.ndarray:
        """Device time (s since the run's first sample) of sample indices (CONSTANT)."""
        if not self.rate:
            raise ValueError("a stream without a sample rate has no device time by index")
        return (np.asarray(index, np.float64) - self.run.first_index) / self.rate

    def time_of(self, index: npt.ArrayLike, stamps: npt.ArrayLike | None = None) -> np.ndarray:
        """Host monotonic time (s) at which samples ``index`` were taken; give the samples'
        ``stamps`` (device seconds since the run's start) for a TIMESTAMP stream."""
        device = self.device_time_of(index) if stamps is None else np.asarray(stamps, float)
        return self.fit.host_time(device)

    def uncertainty_of(self, index: npt.ArrayLike) -> np.ndarray:
        """The uncertainty (s) of :meth:`time_of` for samples ``index``: the fit's, plus the
        run's :attr:`~RunStart.host_uncertainty` (a stream from another host)."""
        return self.fit.uncertainty(self.device_time_of(index)) + self.run.host_uncertainty

    def utc_of(self, index: npt.ArrayLike) -> np.ndarray:
        """UTC seconds since 1970 at which samples ``index`` were taken."""
        return self.run.utc_of(self.time_of(index))

    def index_at(self, host_time: npt.ArrayLike) -> np.ndarray:
        """The (fractional) sample index taken at host times (CONSTANT streams)."""
        if not self.rate:
            raise ValueError("a stream without a sample rate has no index by time")
        return self.run.first_index + self.fit.device_time(host_time) * self.rate

    def indices_between(self, t0: float, t1: float) -> tuple[int, int]:
        """``(start, stop)``: the samples taken at host times ``t0 <= t < t1``, as a range of
        ring indices (``stop <= start`` if none; never before the run's first sample)."""
        # a sample at t0 exactly is in, one at t1 out, whatever the last bits of the fit say
        lo, hi = np.ceil(self.index_at(np.array([t0, t1])) - 1e-6).astype(np.int64)
        first = self.run.first_index
        return max(int(lo), first), max(int(hi), first)
