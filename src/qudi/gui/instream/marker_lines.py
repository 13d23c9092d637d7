"""MarkerLines: the session's markers as labelled vertical lines on every time-series plot.

The logic sends the markers inside its trace window as ``[(x, text), ...]`` (its
``sigMarkersChanged``, x in the trace's own coordinates); each becomes a vertical line, labelled
with its text, on every plot of the window (the analog plots and the digital lanes alike). The
lines are made anew when the markers change or the plots are rebuilt; they never count for the
plots' ranges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pyqtgraph as pg

__all__ = ["MARKER_COLOUR", "MarkerLines"]

MARKER_COLOUR = (255, 200, 40)


class MarkerLines:
    """Vertical marker lines on the plots a callable returns.

    Parameters
    ----------
    plots : callable
        Returns the window's plots now (they change when the plots are rebuilt).
    """

    def __init__(self, plots: Callable[[], Iterable[pg.PlotItem]]):
        self._plots = plots
        self._markers: list[tuple[float, str]] = []
        self._lines: list[tuple[pg.PlotItem, pg.InfiniteLine]] = []

    @property
    def markers(self) -> list[tuple[float, str]]:
        """The markers shown, ``(x, text)``, oldest first."""
        return list(self._markers)

    @property
    def lines(self) -> list[tuple[pg.PlotItem, pg.InfiniteLine]]:
        """Each line with its plot (for tests and scripts)."""
        return list(self._lines)

    def set_markers(self, markers: Iterable) -> None:
        """Show these ``(x, text)`` markers (and no others)."""
        shown = [(float(x), str(text)) for x, text in markers]
        if shown == self._markers and self._lines:
            return
        self._markers = shown
        self.redraw()

    def redraw(self) -> None:
        """Lines for the markers on the plots as they are now (after a rebuild too)."""
        current = set(self._plots())
        for plot, line in self._lines:
            if plot in current:  # plots rebuilt since went away with their lines
                plot.removeItem(line)
        self._lines = []
        pen = pg.mkPen(MARKER_COLOUR, width=1, style=pg.QtCore.Qt.PenStyle.DashLine)
        for plot in self._plots():
            for x, text in self._markers:
                line = pg.InfiniteLine(
                    pos=x,
                    angle=90,
                    movable=False,
                    pen=pen,
                    label=text.replace("{", "{{").replace("}", "}}"),  # a format string
                    labelOpts={"position": 0.92, "color": MARKER_COLOUR, "fill": (30, 30, 30)},
                )
                line.setZValue(20)
                plot.addItem(line, ignoreBounds=True)
                self._lines.append((plot, line))
