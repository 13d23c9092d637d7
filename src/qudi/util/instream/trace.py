"""TraceWindow: the newest N points of a multi-channel trace, appended at O(new points).

Points are appended to a buffer three windows long. While the write position is in the last
third, each point is written a second time two windows further left, so that when the end is
reached the newest window is already in place at the start and writing goes on from there:
no append ever copies the whole window (a frame of the logic costs O(new points) every time,
without a spike when the buffer wraps; ``benchmarks/logic_frame.py`` prints the p99).
:meth:`view` returns read-only views of the newest window without copying. A view stays
unchanged until one more window of points has been appended, so a plot can hold on to the
arrays of the last frame while the next one is prepared. Callers that keep data longer take
a copy (:meth:`copy`). The time series logic's trace maths
(``qudi.logic.instream.trace.TraceBuilder``) keeps its points in two of these.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TraceWindow"]


class TraceWindow:
    """The newest ``size`` points of ``channels`` float64 curves with a float64 x value each."""

    def __init__(self, size: int, channels: int):
        if size < 1 or channels < 0:
            raise ValueError(
                f"a trace window needs size >= 1 and channels >= 0, got {size}, {channels}"
            )
        self.size = int(size)
        self.channels = int(channels)
        self._x = np.zeros(3 * self.size)
        self._y = np.zeros((self.channels, 3 * self.size))
        self._end = self.size  # one past the newest point; the first window reads as zeros
        self.count = 0  # points appended so far (they fill the window from the right)

    def append(self, x: np.ndarray, y: np.ndarray) -> None:
        """Append points: ``x`` of shape [n] and ``y`` of shape [channels, n]."""
        n = len(x)
        if n == 0:
            return
        self.count += n
        if n >= self.size:  # only the newest window survives
            x, y = x[-self.size :], y[:, -self.size :]
            n = self.size
        size, done = self.size, 0
        while done < n:
            # the end runs from one window to three; in the last third every point also goes
            # two windows to the left, where the window goes on once the end reaches three
            end = self._end
            mirrored = end >= 2 * size
            stop = 3 * size if mirrored else 2 * size
            chunk = min(n - done, stop - end)
            part = slice(done, done + chunk)
            self._x[end : end + chunk] = x[part]
            self._y[:, end : end + chunk] = y[:, part]
            if mirrored:
                self._x[end - 2 * size : end - 2 * size + chunk] = x[part]
                self._y[:, end - 2 * size : end - 2 * size + chunk] = y[:, part]
            done += chunk
            self._end = size if end + chunk == 3 * size else end + chunk

    def view(self, points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Read-only views ``(x[points], y[channels, points])`` of the newest points.

        ``points`` defaults to the whole window; before the window has filled, the leading
        points are zeros (use :attr:`filled` to show only real data).
        """
        points = self.size if points is None else min(points, self.size)
        start = self._end - points
        x, y = self._x[start : self._end], self._y[:, start : self._end]
        x.flags.writeable = False
        y.flags.writeable = False
        return x, y

    @property
    def filled(self) -> int:
        """How many points of the window hold real data."""
        return min(self.count, self.size)

    def copy(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the real data in the window (for callers that keep it)."""
        x, y = self.view(self.filled)
        return x.copy(), y.copy()
