"""When the time series GUI draws: paced to the rate at which new trace points arrive.

A redraw of the plots costs the same few milliseconds whether it shows one new point or a
thousand, so drawing every frame the logic sends makes a slow stream (50 points/s) cost as
much as a fast one. The pacer spaces draws so that each shows about ``points_per_draw`` new
points, never more often than ``max_rate`` per second and, while data arrive, never less
often than once per ``longest_wait`` seconds. It keeps no Qt objects: the GUI asks it how
long to wait and tells it when a draw began.

Draws are due on a grid: the next one an interval after the last one was due, not after it
ended. Counted from its end, every draw's own cost and the timer's latency would lengthen the
interval (30 draws/s asked, 1 / (33.3 ms + cost) given: 27 at a 3 ms draw, 23 at 10 ms), and a
logic sending 30 frames/s would lose frames to the pacer. A draw more than half an interval
late (no frame came in time, or after a pause) starts the grid anew, so draws never come
closer than half an interval and never more than ``max_rate`` per second on average.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["FramePacer"]


class FramePacer:
    """Spacing of draws for a given trace point rate.

    Parameters
    ----------
    max_rate : float
        Draws per second at most (> 0).
    points_per_draw : float
        New trace points each draw should show at least (> 0), as long as that does not
        leave more than ``longest_wait`` seconds between draws.
    longest_wait : float
        Seconds between draws at most while new data arrive (>= 1 / max_rate).
    clock : callable
        Seconds, monotonic (``time.monotonic``; tests pass a fake clock).
    """

    def __init__(
        self,
        max_rate: float = 30.0,
        points_per_draw: float = 10.0,
        longest_wait: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ):
        for name, value in (("max_rate", max_rate), ("points_per_draw", points_per_draw)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (isinstance(longest_wait, (int, float)) and longest_wait >= 1 / max_rate):
            raise ValueError(
                f"longest_wait must be at least 1 / max_rate = {1 / max_rate} s, "
                f"got {longest_wait!r}"
            )
        self._shortest = 1.0 / max_rate
        self._points_per_draw = float(points_per_draw)
        self._longest = float(longest_wait)
        self._clock = clock
        self._interval = self._shortest
        self._last_draw = -math.inf

    @property
    def interval(self) -> float:
        """Seconds between two draws at the current point rate."""
        return self._interval

    def set_point_rate(self, points_per_second: float) -> None:
        """The rate at which new trace points arrive (Hz); unknown or zero: draw at max_rate.

        Parameters
        ----------
        points_per_second : float
            Trace points per second (the logic's data rate).
        """
        try:
            rate = float(points_per_second)
        except (TypeError, ValueError):
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            self._interval = self._shortest
            return
        wanted = self._points_per_draw / rate
        self._interval = min(max(wanted, self._shortest), self._longest)

    def now(self) -> float:
        """The pacer's clock (seconds): what :meth:`drawn` takes as a draw's start."""
        return self._clock()

    def delay(self) -> float:
        """Seconds to wait from now until the next draw is due (0.0: draw now)."""
        return max(0.0, self._last_draw + self._interval - self._clock())

    def drawn(self, started: float | None = None) -> None:
        """A draw happened.

        Parameters
        ----------
        started : float, optional
            When it began (:meth:`now` before drawing); default: now. Up to half an interval
            after it was due, the draw counts as on time (the grid keeps its step).
        """
        started = self._clock() if started is None else float(started)
        due = self._last_draw + self._interval
        self._last_draw = due if 0.0 <= started - due <= self._interval / 2 else started
