"""A clock fit made of the live readers' windowed fits, for a run whose rows are all known.

A live :class:`~qudi.util.instream.stream_clock.StreamClock` fits the rows of the last
``window`` seconds of the stream's clock (:func:`~qudi.util.instream.timebase.fit_clock` with
``window=``, bend check included), so it follows a drift that changes. A recording has every
row of the run, so :func:`windowed_fit` makes the same fits at *knots* a quarter window apart:
the fit of knot ``k`` is exactly what a live reader said once it had the rows up to the knot's
window end ``ends[k]`` (while it kept every row: a ``StreamClock`` thins its rows beyond
``keep_rows``, a file keeps them all); the window's middle ``centres[k]`` is where that fit
is best.

Why centred windows, not the live reader's causal window ending at each sample: offline, the
rows after a sample are known, and a fit is tightest at the middle of its rows (its
uncertainty doubles towards their ends), so a sample is timed by the windows around it. A
sample between two knots' centres gets the blend of both fits, weighted linearly by its
distance to each centre: the times are continuous (no step at any boundary), and so is the
uncertainty, the same blend of both fits' uncertainties. A blend of two answers each within
its uncertainty of the truth is within the blend of the uncertainties, so it stays as honest
as the live fits (tests/core/test_session_align_windowed.py checks >= 95 % of simulated runs
whose drift jumps or ramps). Before the first centre the first window's fit is used alone,
after the last centre the last window's (the live reader's answer at the end of the run).

:class:`WindowedFit` is a :class:`~qudi.util.instream.timebase.ClockFit` (its fields are the
one line over all rows: the run's average drift, its centre), whose ``host_time``,
``device_time`` and ``uncertainty`` are the windowed ones, so a
:class:`~qudi.util.instream.timebase.StreamTime` and :func:`~qudi.util.instream.alignment.align`
use it as they use one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

from qudi.util.instream.timebase import DEFAULT_WINDOW_S, ClockFit, TimeTable, fit_clock

__all__ = ["KNOT_STEP", "WindowedFit", "checked_window", "windowed_fit"]

#: Knots lie this fraction of the window apart: a sample is never further than a quarter
#: window from a centre (its fit's uncertainty there at most 1.5 times the centre's).
KNOT_STEP = 0.25
_NEWTON_STEPS = 4  # device_time: each step shrinks the error a thousandfold or more


def checked_window(window: object, key: str = "window") -> float | None:
    """``window`` as seconds, or None (one line over the run).

    Raises
    ------
    ValueError
        For anything but None or a finite number > 0, naming ``key``, the value and what is
        valid.
    """
    if window is None:
        return None
    if (
        isinstance(window, bool)
        or not isinstance(window, (int, float, np.integer, np.floating))
        or not math.isfinite(float(window))
        or not float(window) > 0
    ):
        raise ValueError(
            f"{key}={window!r}: use a number of seconds > 0 (the live readers' fit window, "
            f"{DEFAULT_WINDOW_S} by default), or None for one line over the whole run"
        )
    return float(window)


@dataclass(frozen=True)
class WindowedFit(ClockFit):
    """Host time of device time from the windowed fits at ``centres`` (see the module doc).

    The :class:`ClockFit` fields are those of one line over all rows; ``centres`` (device s,
    increasing), ``ends`` (device time of each window's newest row) and ``fits`` (one
    :class:`ClockFit` per knot, as :func:`fit_clock` with ``window=`` gives it) the knots.
    """

    window: float = math.inf
    centres: tuple[float, ...] = field(default=())
    ends: tuple[float, ...] = field(default=())
    fits: tuple[ClockFit, ...] = field(default=())

    def _weights(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each device time: its left knot and the weight of the knot right of it."""
        centres = np.asarray(self.centres)
        if len(centres) == 1:
            return np.zeros(x.shape, np.int64), np.zeros(x.shape)
        left = np.clip(np.searchsorted(centres, x, side="right") - 1, 0, len(centres) - 2)
        span = centres[left + 1] - centres[left]
        weight = np.clip((x - centres[left]) / span, 0.0, 1.0)
        return left, weight

    def _blend(self, x: np.ndarray, of: str) -> np.ndarray:
        """``of`` ('host_time' or 'uncertainty') of every knot fit, blended at ``x``."""
        left, weight = self._weights(x)
        out = np.empty(x.shape)
        order = np.argsort(left, kind="stable")  # each knot's samples once, not a mask each
        bounds = np.searchsorted(left[order], np.arange(len(self.fits) + 1))
        for knot in range(len(self.fits)):
            here = order[bounds[knot] : bounds[knot + 1]]
            if not len(here):
                continue
            own = getattr(self.fits[knot], of)(x[here])
            if len(self.fits) == 1:
                out[here] = own
                continue
            right = getattr(self.fits[knot + 1], of)(x[here])
            w = weight[here]
            with np.errstate(invalid="ignore"):  # an infinite uncertainty stays infinite
                blend = (1.0 - w) * own + w * right
            out[here] = np.where(w <= 0.0, own, np.where(w >= 1.0, right, blend))
        return out

    def host_time(self, device_time: npt.ArrayLike) -> np.ndarray:
        x = np.asarray(device_time, np.float64)
        return self._blend(x.reshape(-1), "host_time").reshape(x.shape)

    def uncertainty(self, device_time: npt.ArrayLike) -> np.ndarray:
        x = np.asarray(device_time, np.float64)
        return self._blend(x.reshape(-1), "uncertainty").reshape(x.shape)

    def device_time(self, host_time: npt.ArrayLike) -> np.ndarray:
        """The device time whose :meth:`host_time` is ``host_time`` (Newton's steps from the
        one line; the windowed map is monotonic, its slope within a per mille of the
        line's, so each step shrinks the error a thousandfold or more)."""
        h = np.asarray(host_time, np.float64)
        x = (h - self.offset) / self.slope
        for _ in range(_NEWTON_STEPS):
            x = x - (self.host_time(x) - h) / self.slope
        return x


def windowed_fit(table: TimeTable, window: float | None, line: ClockFit | None = None) -> ClockFit:
    """The fit of ``table``'s rows window by window (a :class:`WindowedFit`), or the one line
    of all rows (``table.fit()``) when ``window`` is None or the rows span no more than it
    (then every window holds every row: the same fit). ``line``: ``table.fit()`` if the
    caller has it already.

    Raises
    ------
    ValueError
        For a bad ``window`` (see :func:`checked_window`) or rows :func:`fit_clock` refuses.
    """
    window = checked_window(window)
    good = np.isfinite(table.device)
    x, y = table.device[good], table.host[good]
    line = fit_clock(x, y) if line is None else line
    if window is None or not len(x) or x[-1] - x[0] <= window:
        return line
    wanted = np.arange(x[0] + window, x[-1], KNOT_STEP * window)
    last_rows = np.unique(np.r_[np.searchsorted(x, wanted, side="right") - 1, len(x) - 1])
    centres, ends, fits = [], [], []
    for last in last_rows:  # the rows a live reader had when its newest row was x[last]
        first = int(np.searchsorted(x, x[last] - window, side="left"))
        fits.append(fit_clock(x[first : last + 1], y[first : last + 1], window=window))
        ends.append(float(x[last]))
        centres.append(float(x[last]) - 0.5 * window)
    base = {f.name: getattr(line, f.name) for f in fields(ClockFit)}
    return WindowedFit(
        **base, window=window, centres=tuple(centres), ends=tuple(ends), fits=tuple(fits)
    )
