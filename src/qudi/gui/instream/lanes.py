"""Digital lanes: where 0/1 lines sit on their plot, stacked one above the other.

The digital lines of a stream (``logic.digital_channel_names``) share one plot below the
analog plots. Each line is drawn as a step trace (a sample's value holds until the next
sample) in a lane of its own: lane ``i`` of ``n`` (the first line at the top) is the line's
values plus ``(n - 1 - i) * LANE_PITCH``, and the plot's left axis names each lane at its
middle instead of showing numbers. The lanes plot's y range is fixed to the lanes, and every
plot's left axis gets the same width, so that the time axes of lanes and analog plots line up.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtGui

__all__ = [
    "LANES_KEY",
    "LANE_PITCH",
    "align_left_axes",
    "label_lanes",
    "lane_offsets",
    "lanes_extent",
]

#: key of the lanes plot among the window's plots (no unit is spelled so)
LANES_KEY = "\x00digital lanes"
LANE_PITCH = 1.5  # a lane's height: the line's 0..1 plus a gap of half of it
_MARGIN = 0.25


def lane_offsets(lines: list[str]) -> dict[str, float]:
    """The offset added to each line's 0/1 values: the first line in the top lane."""
    count = len(lines)
    return {line: (count - 1 - index) * LANE_PITCH for index, line in enumerate(lines)}


def lanes_extent(lines: list[str]) -> tuple[float, float]:
    """The y range that shows every lane, with a small margin."""
    return -_MARGIN, (max(len(lines), 1) - 1) * LANE_PITCH + 1 + _MARGIN


def label_lanes(plot: pg.PlotItem, lines: list[str]) -> None:
    """Name each lane on the plot's left axis, fix its y range, keep the mouse off y."""
    offsets = lane_offsets(lines)
    axis = plot.getAxis("left")
    axis.setTicks([[(offsets[line] + 0.5, line) for line in lines], []])
    plot.setLabel("left", "digital lines")
    plot.getViewBox().setMouseEnabled(x=True, y=False)
    plot.setYRange(*lanes_extent(lines), padding=0)


def align_left_axes(plots: list[pg.PlotItem], lines: list[str]) -> None:
    """One left-axis width for all plots (wide enough for the lanes' names): their linked
    time axes then start at the same pixel."""
    axis = plots[-1].getAxis("left")
    metrics = QtGui.QFontMetrics(axis.style.get("tickFont") or axis.font())
    width = max(70, max((metrics.horizontalAdvance(line) for line in lines), default=0) + 40)
    for plot in plots:
        plot.getAxis("left").setWidth(width)
