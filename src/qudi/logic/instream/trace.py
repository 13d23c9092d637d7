"""TraceBuilder: raw samples in, the live trace and its moving average out (no Qt, no qudi).

This is the maths of :class:`~qudi.logic.instream.time_series_reader_logic.TimeSeriesReaderLogic`,
usable and tested on its own:

* **oversampling**: each run of ``oversampling`` raw samples becomes one trace point, their
  mean; samples that do not make a whole run yet are carried to the next :meth:`~TraceBuilder.add`;
* **digital lines**: channels named ``digital`` (0/1 lines) take the highest value of each
  run instead of its mean, so a pulse shorter than a point still shows as a 1 (not 0.3);
* **count scaling**: channels given a scale (counts per sample -> counts per second) are
  multiplied by it;
* **x values**: for ``TIMESTAMP`` streams the mean of the points' timestamps; otherwise the
  point's index divided by the data rate (``CONSTANT``), or the index itself (``RANDOM``: only
  the order is known);
* **moving average**: centred, of odd width ``w``: the average at a point needs ``w // 2``
  points on either side, so it ends ``w // 2`` points before the newest raw point, which is
  never held back;
* **window**: the newest ``round(window_seconds * data_rate)`` points, or for ``TIMESTAMP``
  streams (whose rate is only a hint) the newest ``window_seconds`` of time, with room for
  twice the nominal points.

Views hold only real points, with one exception: a builder made with ``placeholder=True``
returns, before its first point, what qudi-iqo-modules' logic shows before data arrives: a
window of zeros at the x values the points will have (``CONSTANT`` ``0 .. (n-1)/rate``,
``TIMESTAMP`` ``-n/rate .. -1/rate``, ``RANDOM`` ``0 .. n-1``), so GUIs that index ``x[0]``
work from their activation on.

:class:`TraceWindow` (the ring of the newest points, appended at O(new points)) lives in the
core, ``qudi.util.instream.trace``; it is re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from qudi.util.instream.raw_scaling import scale_block
from qudi.util.instream.trace import TraceWindow

__all__ = ["TIMINGS", "TraceBuilder", "TraceViews", "TraceWindow", "trace_bytes_per_point"]

#: Sample timings a trace knows, by name (the interface's ``SampleTiming`` members' names).
TIMINGS = ("CONSTANT", "TIMESTAMP", "RANDOM")


class TraceViews(NamedTuple):
    """Read-only views of the trace window: ``x`` [points], ``raw`` {channel: y [points]},
    and the moving average ``x_avg``, ``averaged`` (both None when averaging is off)."""

    x: np.ndarray
    raw: dict[str, np.ndarray]
    x_avg: np.ndarray | None
    averaged: dict[str, np.ndarray] | None


def trace_bytes_per_point(channels: int, averaged: int, timestamps: bool) -> int:
    """Memory a :class:`TraceBuilder` takes per point of its window, in bytes.

    Parameters
    ----------
    channels : int
        Channels in the trace.
    averaged : int
        Channels with a moving average.
    timestamps : bool
        Whether the stream is a ``TIMESTAMP`` stream (its window holds twice the points).

    Returns
    -------
    int
        Bytes per window point: each :class:`TraceWindow` keeps three windows of float64 x
        values and curves.
    """
    per_window = 3 * 8 * (channels + 1) + 3 * 8 * (averaged + 1)
    return per_window * (2 if timestamps else 1)


class TraceBuilder:
    """Turns blocks of raw samples into a trace window and its moving average.

    Parameters
    ----------
    channels : sequence of str
        Names of the stream's channels, in the order of the samples' columns.
    data_rate : float
        Trace points per second (the stream's sample rate divided by ``oversampling``).
    window_seconds : float
        Length of the trace window in seconds; it holds ``round(window_seconds * data_rate)``
        points, at least 2.
    oversampling : int, optional
        Raw samples averaged into one point (1: none).
    moving_average_width : int, optional
        Odd width of the centred moving average in points (1: off).
    averaged : sequence of str, optional
        The channels that get a moving average (a subset of ``channels``).
    count_scale : mapping of str to float, optional
        Factors for channels whose points are scaled (counts per sample -> counts per
        second: the sample rate); channels not named keep their values.
    timing : str or enum member, optional
        ``"CONSTANT"``, ``"TIMESTAMP"`` or ``"RANDOM"`` (or a ``SampleTiming`` member).
    placeholder : bool, optional
        Before the first point, show a window of zeros (see the module docstring) instead of
        no points.
    raw_scaling : sequence of sequence of float, optional
        Each channel's polynomial from raw codes to volts, if the stream carries codes.
    digital : sequence of str, optional
        The channels that are digital lines (0/1): oversampled by their highest value.

    Raises
    ------
    ValueError
        A parameter out of its range, naming it, its value and what is valid.
    TypeError
        A parameter of the wrong type.
    MemoryError
        The window does not fit in memory (nothing is kept).
    """

    def __init__(
        self,
        channels: Sequence[str],
        data_rate: float,
        window_seconds: float,
        *,
        oversampling: int = 1,
        moving_average_width: int = 1,
        averaged: Sequence[str] = (),
        count_scale: Mapping[str, float] | None = None,
        timing: object = "CONSTANT",
        placeholder: bool = False,
        raw_scaling: Sequence[Sequence[float]] | None = None,
        digital: Sequence[str] = (),
    ):
        self.channels = _checked_names(channels, "channels")
        if raw_scaling is not None and len(raw_scaling) != len(self.channels):
            raise ValueError(
                f"raw_scaling needs one polynomial per channel ({len(self.channels)}), got "
                f"{len(raw_scaling)}"
            )
        self._raw_scaling = None if raw_scaling is None else [tuple(p) for p in raw_scaling]
        self.averaged_channels = _checked_names(averaged, "averaged", allow_empty=True)
        missing = [ch for ch in self.averaged_channels if ch not in self.channels]
        if missing:
            raise ValueError(f"averaged channels {missing} are not among channels {self.channels}")
        self.data_rate = _positive(data_rate, "data_rate")
        self.window_seconds = _positive(window_seconds, "window_seconds")
        self.oversampling = _whole(oversampling, "oversampling", minimum=1)
        self.moving_average_width = _whole(moving_average_width, "moving_average_width", minimum=1)
        if self.moving_average_width % 2 == 0:
            raise ValueError(f"moving_average_width must be odd, got {self.moving_average_width}")
        self.timing = _timing_name(timing)
        self.points = max(2, round(self.window_seconds * self.data_rate))
        self._scale = _scale_row(self.channels, count_scale)
        self._scaled = bool(np.any(self._scale != 1.0))
        self._averaged_rows = [self.channels.index(ch) for ch in self.averaged_channels]
        self.digital_channels = [ch for ch in self.channels if ch in set(digital)]
        self._digital_rows = [self.channels.index(ch) for ch in self.digital_channels]
        self._x_start = 0.0  # x of the first point (CONSTANT): see start_at
        capacity = 2 * self.points if self.timing == "TIMESTAMP" else self.points
        self._trace = TraceWindow(capacity, len(self.channels))
        self._average = TraceWindow(capacity, len(self._averaged_rows))
        self._carry = np.empty((0, len(self.channels)))
        self._carry_stamps = np.empty(0)
        self._count = 0  # points made so far
        self._averaged_done = 0  # points whose centred average is in the average window
        self._show_placeholder = bool(placeholder)
        self._placeholder: TraceViews | None = None

    # ------------------------------------------------------------------------- state
    @property
    def averaging(self) -> bool:
        """Whether a moving average is kept (width above 1 and at least one channel)."""
        return self.moving_average_width > 1 and bool(self.averaged_channels)

    @property
    def count(self) -> int:
        """Points made since this builder was created."""
        return self._count

    @property
    def trace(self) -> TraceWindow:
        """The window of raw points (its ``size`` is the capacity, ``filled`` the real points)."""
        return self._trace

    @property
    def nbytes(self) -> int:
        """Memory of the two windows, in bytes."""
        return (
            trace_bytes_per_point(
                len(self.channels), len(self._averaged_rows), self.timing == "TIMESTAMP"
            )
            * self.points
        )

    # ------------------------------------------------------------------------ the maths
    def add(self, data: np.ndarray, stamps: np.ndarray | None = None) -> int:
        """Add raw samples; returns the number of new trace points.

        Parameters
        ----------
        data : numpy.ndarray
            Samples as ``[samples, channels]``, any numeric dtype; not kept.
        stamps : numpy.ndarray, optional
            The samples' timestamps in seconds ``[samples]`` (``TIMESTAMP`` streams).

        Returns
        -------
        int
            Trace points made from these samples and those carried from before.

        Raises
        ------
        ValueError
            ``data`` or ``stamps`` of the wrong shape, or stamps missing for a ``TIMESTAMP``
            trace (nothing is added then).
        """
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[1] != len(self.channels):
            raise ValueError(
                f"data must be [samples, {len(self.channels)}] (one column per channel), "
                f"got shape {data.shape}"
            )
        if self.timing == "TIMESTAMP":
            if stamps is None or np.shape(stamps) != (len(data),):
                raise ValueError(
                    f"a TIMESTAMP trace needs one timestamp per sample ({len(data)}), got "
                    f"{None if stamps is None else np.shape(stamps)}"
                )
        else:
            stamps = None  # the x values of other timings come from the point index
        if self._raw_scaling is not None:  # raw codes: in volts once, as they arrive
            data = scale_block(data, self._raw_scaling)
        if len(self._carry):
            data = np.concatenate([self._carry, data])
            if stamps is not None:
                stamps = np.concatenate([self._carry_stamps, stamps])
        points = len(data) // self.oversampling
        used = points * self.oversampling
        self._carry = data[used:].copy()  # fewer than `oversampling` samples
        self._carry_stamps = stamps[used:].copy() if stamps is not None else np.empty(0)
        if points == 0:
            return 0
        if self.oversampling > 1:
            runs = data[:used].reshape(points, self.oversampling, -1)
            values = runs.mean(axis=1)
            if self._digital_rows:  # a line is high in a point if it was high at all
                values[:, self._digital_rows] = runs[:, :, self._digital_rows].max(axis=1)
            if self._scaled:
                values *= self._scale
        else:  # no mean of one, no product with ones: the window's append casts and copies
            values = data[:used] * self._scale if self._scaled else data[:used]
        self._trace.append(self._x_values(points, stamps, used), values.T)
        self._count += points
        if self.averaging:
            self._update_average()
        return points

    def views(self) -> TraceViews:
        """Read-only views of the window (see the module docstring for before the first point).

        They stay valid until about one more window of points is added; copy to keep them.
        """
        if self._count == 0 and self._show_placeholder:
            return self._empty_views()
        x, y = self._window(self._trace)
        raw = dict(zip(self.channels, y, strict=True))
        if not self.averaging:
            return TraceViews(x, raw, None, None)
        x_avg, y_avg = self._window(self._average)
        return TraceViews(x, raw, x_avg, dict(zip(self.averaged_channels, y_avg, strict=True)))

    def _x_values(self, points: int, stamps: np.ndarray | None, used: int) -> np.ndarray:
        if stamps is not None:
            return stamps[:used].reshape(points, -1).mean(axis=1)
        index = np.arange(self._count, self._count + points, dtype=np.float64)
        return index if self.timing == "RANDOM" else self._x_start + index / self.data_rate

    def start_at(self, x_start: float) -> None:
        """Give the first point (of a ``CONSTANT`` trace) the x value ``x_start`` instead of 0
        (an event stream's rate trace starts at its first event's time).

        Raises
        ------
        RuntimeError
            Once the trace has points.
        """
        if self._count:
            raise RuntimeError("the trace has points already: its start cannot move")
        self._x_start = float(x_start)

    def _update_average(self) -> None:
        """Centred averages of the new centres: each needs width // 2 points either side."""
        width, half = self.moving_average_width, self.moving_average_width // 2
        centres = max(0, self._count - 2 * half)  # points with a full neighbourhood so far
        new = min(centres - self._averaged_done, self._trace.size - width + 1)
        if new <= 0:
            return
        x, y = self._trace.view(new + width - 1)
        rows = y[self._averaged_rows]
        sums = np.cumsum(rows, axis=1)
        sums = np.concatenate([np.zeros((len(rows), 1)), sums], axis=1)
        self._average.append(x[half : half + new], (sums[:, width:] - sums[:, :-width]) / width)
        self._averaged_done = centres

    def _window(self, trace: TraceWindow) -> tuple[np.ndarray, np.ndarray]:
        """The real points of ``trace`` in the window: by time for TIMESTAMP, by count else."""
        x, y = trace.view(trace.filled)  # CONSTANT, RANDOM: the capacity is the window
        if self.timing == "TIMESTAMP" and len(x):
            first = np.searchsorted(x, x[-1] - self.window_seconds, side="left")
            x, y = x[first:], y[:, first:]
        return x, y

    def _empty_views(self) -> TraceViews:
        """Zeros at the x values the window's points will have, as qudi-iqo-modules shows."""
        if self._placeholder is None:
            n = self.points
            x = np.arange(n, dtype=np.float64)
            if self.timing == "TIMESTAMP":
                x -= n
            if self.timing != "RANDOM":
                x /= self.data_rate
            zeros = np.zeros(n)
            x.flags.writeable = zeros.flags.writeable = False
            raw = dict.fromkeys(self.channels, zeros)
            if not self.averaging:
                self._placeholder = TraceViews(x, raw, None, None)
            else:
                shown = n - self.moving_average_width // 2
                averaged = dict.fromkeys(self.averaged_channels, zeros[:shown])
                self._placeholder = TraceViews(x, raw, x[n - shown :], averaged)
        return self._placeholder


# ----------------------------------------------------------------------------- checks
def _checked_names(names: object, what: str, allow_empty: bool = False) -> list[str]:
    if isinstance(names, (str, bytes)) or not isinstance(names, (Sequence, np.ndarray)):
        raise TypeError(f"{what} must be a list of channel names, got {names!r}")
    names = list(names)
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"{what} must be channel names (str), got {names!r}")
    if not names and not allow_empty:
        raise ValueError(f"{what} must name at least one channel, got an empty list")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} must name each channel at most once, got {names}")
    return names


def _positive(value: object, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return float(value)


def _whole(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return int(value)


def _timing_name(timing: object) -> str:
    name = getattr(timing, "name", timing)
    if name not in TIMINGS:
        raise ValueError(f"timing must be one of {TIMINGS} (or a SampleTiming), got {timing!r}")
    return str(name)


def _scale_row(channels: list[str], count_scale: Mapping[str, float] | None) -> np.ndarray:
    """Per-channel factors as a row that multiplies ``[points, channels]``."""
    scale = np.ones(len(channels))
    if count_scale is None:
        return scale
    if not isinstance(count_scale, Mapping):
        raise TypeError(f"count_scale must map channel names to factors, got {count_scale!r}")
    for channel, factor in count_scale.items():
        if channel not in channels:
            raise ValueError(f"count_scale names {channel!r}, which is not among {channels}")
        scale[channels.index(channel)] = _positive(factor, f"count_scale[{channel!r}]")
    return scale
