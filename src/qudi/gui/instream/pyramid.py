"""A min/max pyramid of a live curve: drawing costs O(new points + pixels), not O(window).

The logic's trace window slides: each frame drops its oldest points and brings some new ones.
Reducing the whole window to two points per pixel column on every frame (``decimate.py``)
costs O(window): fine at 10^6 points, not at 10^7. :class:`MinMaxPyramid` keeps, for one
curve, the minimum and maximum of every bin of ``factor``, ``factor**2``, ... points (bins
counted from the curve's first point, so a bin never moves), in rings as long as the window.
A frame updates only the bins its new points fall in (O(new)); a draw of any part of the
window, at any zoom, reads the level whose bins are at most one pixel column wide and merges
a few of them per column (O(pixels)). Minima and maxima are exact, so a spike of one sample
is drawn at every zoom, as with all points drawn.

:class:`PointFollower` tells how many points of a frame are new: frames are views of the
logic's trace ring, so a frame continues the last one if it views the same buffer and still
holds the last frame's newest x value; anything else (new settings, a restart) starts anew.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from qudi.gui.instream.decimate import peak_decimate

__all__ = ["MinMaxPyramid", "PointFollower"]


class PointFollower:
    """How many points at the end of each frame's x values are new since the last frame."""

    def __init__(self):
        # the last frame's buffer, weakly: a trace the logic replaced is not kept alive here
        self._buffer: weakref.ref | None = None
        self._last: float | None = None

    def follow(self, x: np.ndarray) -> int | None:
        """New points at the end of ``x`` since the last call, None if ``x`` does not continue
        the last frame (then every point counts as new).

        Parameters
        ----------
        x : numpy.ndarray
            The frame's increasing x values (a view of the logic's trace window).
        """
        buffer = x.base if isinstance(x, np.ndarray) else None
        last, self._last = self._last, (float(x[-1]) if len(x) else None)
        before, self._buffer = self._buffer, None
        if buffer is not None:
            try:
                self._buffer = weakref.ref(buffer)
            except TypeError:  # a base that takes no weak reference: nothing to follow
                buffer = None
        same = buffer is not None and before is not None and before() is buffer
        if not same or last is None or self._last is None:
            return None
        index = int(np.searchsorted(x, last, side="left"))
        if index >= len(x) or x[index] != last:
            return None
        return len(x) - 1 - index

    def reset(self) -> None:
        """Forget the last frame: the next one starts anew."""
        self._buffer = self._last = None


class MinMaxPyramid:
    """Min/max of one curve at bin sizes ``factor``, ``factor**2``, ... (see module doc).

    Parameters
    ----------
    factor : int
        Bins of one level per bin of the next (>= 2).
    """

    def __init__(self, factor: int = 8):
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise ValueError(f"factor must be an integer >= 2, got {factor!r}")
        self.factor = factor
        self._y: np.ndarray | None = None  # the last frame's values
        self._total = 0  # points seen: one past the newest point's index
        self._capacity = 0  # points the rings hold
        self._levels: list[tuple[int, np.ndarray, np.ndarray]] = []  # (bin size, mins, maxs)

    @property
    def levels(self) -> list[int]:
        """The bin sizes kept, smallest first (none for short windows)."""
        return [size for size, _, _ in self._levels]

    def invalidate(self) -> None:
        """Forget everything: the next :meth:`update` builds the pyramid anew."""
        self._y = None

    def update(self, y: np.ndarray, new: int | None) -> None:
        """Take a frame: ``y`` is the whole window, of which the last ``new`` points are new.

        Parameters
        ----------
        y : numpy.ndarray
            The window's values (kept by reference until the next frame: the logic's views
            stay unchanged for a window of new points).
        new : int or None
            Points at the end of ``y`` not in the last frame; None: the window is new.
        """
        n = len(y)
        if self._y is None or new is None or new > n // 2 or n > self._capacity:
            self._build(y)
            return
        self._y = y
        if new <= 0:
            return
        self._total += new
        base = self._total - n  # index of y[0]
        first_new = self._total - new
        child_values: tuple[np.ndarray, np.ndarray] | None = None
        child_first = child_size = 0
        for size, mins, maxs in self._levels:
            first_bin, last_bin = first_new // size, (self._total - 1) // size
            bins = np.arange(first_bin, last_bin + 1)
            if child_values is None:  # from the points
                start = max(first_bin * size, base)
                offsets = np.maximum(bins * size, start) - start
                segment = y[start - base :]
                low = np.minimum.reduceat(segment, offsets)
                high = np.maximum.reduceat(segment, offsets)
            else:  # from the level below
                child_mins, child_maxs = child_values
                offsets = np.maximum(bins * (size // child_size), child_first) - child_first
                low = np.minimum.reduceat(child_mins, offsets)
                high = np.maximum.reduceat(child_maxs, offsets)
            slots = bins % len(mins)
            mins[slots], maxs[slots] = low, high
            # the next level needs every bin of this one in its touched bins
            parent = size * self.factor
            child_first = max((first_new // parent) * self.factor, base // size)
            child_slots = np.arange(child_first, last_bin + 1) % len(mins)
            child_values, child_size = (mins[child_slots], maxs[child_slots]), size

    def decimate(
        self, x: np.ndarray, start: int, stop: int, columns: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """About two points per column drawing the envelope of ``y[start:stop]``.

        Parameters
        ----------
        x : numpy.ndarray
            The x values of the last frame (same length as its ``y``).
        start, stop : int
            The part of the last frame to draw (indices into it).
        columns : int
            Pixel columns it is drawn into.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            x and y to draw: the points themselves if few, else each column's minimum at its
            first x and maximum at its last x (plus one pair per partial bin at the edges).
        """
        y = self._y
        if y is None:
            raise RuntimeError("no frame yet: call update() first")
        count = stop - start
        if columns < 1 or count <= 2 * columns:
            return x[start:stop], y[start:stop]
        per_column = count / columns
        usable = [level for level in self._levels if level[0] <= per_column]
        if not usable:  # few points per column: the points themselves are cheap
            return peak_decimate(x[start:stop], y[start:stop], columns)
        size, mins, maxs = usable[-1]
        base = self._total - len(y)
        first_bin = math.ceil((base + start) / size)
        end_bin = (base + stop) // size  # bins [first_bin, end_bin) lie inside
        bins = end_bin - first_bin
        if bins < 1:
            return peak_decimate(x[start:stop], y[start:stop], columns)
        slots = np.arange(first_bin, end_bin) % len(mins)
        groups = min(columns, bins)
        offsets = (np.arange(groups) * bins) // groups
        low = np.minimum.reduceat(mins[slots], offsets)
        high = np.maximum.reduceat(maxs[slots], offsets)
        first = (first_bin + offsets) * size - base
        last = np.append(first[1:], end_bin * size - base) - 1
        xs = [_edge(x, y, start, first_bin * size - base)]
        xs.append((np.column_stack([x[first], x[last]]).ravel(), np.column_stack([low, high])))
        xs.append(_edge(x, y, end_bin * size - base, stop))
        return (
            np.concatenate([part[0] for part in xs]),
            np.concatenate([part[1].ravel() for part in xs]),
        )

    # ------------------------------------------------------------------------ internals
    def _build(self, y: np.ndarray) -> None:
        """The pyramid of a new window, with rings for twice its length (O(window), once)."""
        n = len(y)
        self._y, self._total = y, n
        self._capacity = max(2 * n, 1024)
        self._levels = []
        size, values = self.factor, (y, y)
        while size <= self._capacity // 64:
            ring = self._capacity // size + 2
            mins, maxs = np.zeros(ring), np.zeros(ring)
            offsets = np.arange(0, len(values[0]), self.factor)
            low = np.minimum.reduceat(values[0], offsets) if len(offsets) else np.empty(0)
            high = np.maximum.reduceat(values[1], offsets) if len(offsets) else np.empty(0)
            mins[: len(low)], maxs[: len(high)] = low, high  # bin j in slot j: total <= ring
            self._levels.append((size, mins, maxs))
            size, values = size * self.factor, (low, high)


def _edge(x: np.ndarray, y: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """The points of a partial bin at an edge of the drawn range, as one min/max pair."""
    if stop <= start:
        return np.empty(0), np.empty((0, 2))
    if stop - start == 1:
        return x[start : start + 1], y[start : start + 1].reshape(1, 1)
    part = y[start:stop]
    return np.array([x[start], x[stop - 1]]), np.array([[part.min(), part.max()]])
