"""The view ranges of the time series plots: following the data, or where the user put them.

pyqtgraph's own auto-range fits every view to its data on every frame, during the paint: the
y axes then change (and are laid out and drawn anew) each frame even for noise around a
steady level, and fitting while painting asks Qt for a second paint. Here the GUI fits the
ranges itself, before the paint, from the points it hands to the curves: the time axis spans
the newest points; a y range is kept while the data stay inside it and fill at least
``STICKY_FILL`` of it (``sticky_range``). pyqtgraph's auto-range stays off; a zoom or pan by
the user (``sigRangeChangedManually``) stops the following of that axis until Autoscale.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

__all__ = ["FollowedRanges", "STICKY_FILL", "PADDING", "data_extent", "sticky_range"]

STICKY_FILL = 0.6  # a y range is kept while the data fill at least this part of it
PADDING = 0.05  # of the data's span, above and below


def data_extent(values: np.ndarray) -> tuple[float, float] | None:
    """(lowest, highest) finite value, or None if there is none."""
    if not len(values):
        return None
    low, high = float(np.min(values)), float(np.max(values))
    if not (math.isfinite(low) and math.isfinite(high)):
        finite = values[np.isfinite(values)]
        if not len(finite):
            return None
        low, high = float(np.min(finite)), float(np.max(finite))
    return low, high


def sticky_range(
    current: tuple[float, float] | None,
    extent: tuple[float, float],
    padding: float = PADDING,
    fill: float = STICKY_FILL,
) -> tuple[float, float] | None:
    """The y range that shows ``extent``: None to keep ``current``, else the new range.

    Parameters
    ----------
    current : (float, float) or None
        The range shown now (None: none yet).
    extent : (float, float)
        Lowest and highest value to show.
    padding : float
        Room above and below a new range, as a fraction of the data's span.
    fill : float
        The current range is kept while it holds the data and they span at least this
        fraction of it.

    Returns
    -------
    (float, float) or None
        The new range, or None if the current one still serves.
    """
    low, high = extent
    span = high - low
    if current is not None:
        shown_low, shown_high = current
        shown = shown_high - shown_low
        if shown_low <= low and high <= shown_high and span >= fill * shown:
            return None
    room = padding * span if span > 0 else max(abs(high) * padding, 0.5)
    return low - room, high + room


class FollowedRanges:
    """Whether the time axis and the y axes follow the data, and fitting them to it."""

    def __init__(self):
        self._views: list[pg.ViewBox] = []
        self._fitted: set[int] = set()  # views (by index) given a y range from data
        self._follow_x = True
        self._follow_y = True
        self._frozen = False

    def attach(self, views: list[pg.ViewBox]) -> None:
        """Take over the ranges of new views (the first one carries the linked time axis)."""
        self._views = list(views)
        self._fitted.clear()
        for view in self._views:
            view.disableAutoRange()
            view.sigRangeChangedManually.connect(self._moved_by_user)
        self._apply_mouse()

    @property
    def follows_x(self) -> bool:
        """Whether the time axis follows the newest data."""
        return self._follow_x

    @property
    def follows_y(self) -> bool:
        """Whether the y axes follow the data."""
        return self._follow_y

    @property
    def frozen(self) -> bool:
        """Whether the y ranges are frozen (kept, and locked against the mouse)."""
        return self._frozen

    def freeze_y(self, frozen: bool) -> None:
        """Keep the y ranges as they are and lock them against the mouse (or follow again)."""
        self._frozen = bool(frozen)
        self._follow_y = not self._frozen
        self._apply_mouse()

    def follow_all(self) -> None:
        """Both axes follow the data again (Autoscale); unfreezes y."""
        self._follow_x = self._follow_y = True
        self._frozen = False
        self._fitted.clear()  # fit anew, not only when the data leave the range
        self._apply_mouse()

    def fit(self, x_extent: tuple[float, float] | None, y_extents: list) -> None:
        """Fit the followed axes to the data, before the paint.

        Parameters
        ----------
        x_extent : (float, float) or None
            First and last time drawn.
        y_extents : list
            Per view (in the order of ``attach``), the (lowest, highest) value drawn, or None.
        """
        if self._follow_x and x_extent is not None and self._views:
            low, high = x_extent
            if high > low and self._views[0].viewRange()[0] != [low, high]:
                self._views[0].setXRange(low, high, padding=0)
        if self._follow_y:
            for index, (view, extent) in enumerate(zip(self._views, y_extents, strict=False)):
                if extent is None:
                    continue
                shown = tuple(view.viewRange()[1]) if index in self._fitted else None
                new = sticky_range(shown, extent)
                if new is not None:
                    view.setYRange(*new, padding=0)
                    self._fitted.add(index)
        for view in self._views:
            view.prepareForPaint()  # the views' transforms move now, not during the paint

    def _moved_by_user(self, mask) -> None:
        x_moved, y_moved = (bool(axis) for axis in mask)
        if x_moved:
            self._follow_x = False
        if y_moved:
            self._follow_y = False

    def _apply_mouse(self) -> None:
        for view in self._views:
            view.setMouseEnabled(x=True, y=not self._frozen)
