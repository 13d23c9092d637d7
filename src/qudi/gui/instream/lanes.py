"""Digital lanes: where 0/1 lines sit on their plot, stacked one above the other.

The digital lines of a stream (``logic.digital_channel_names``) share one plot below the
analog plots. Each line is drawn as a step trace (a sample's value holds until the next
sample) in a lane of its own: lane ``i`` of ``n`` (the first line at the top) is the line's
values plus ``(n - 1 - i) * LANE_PITCH``, and the plot's left axis names each lane at its
middle instead of showing numbers. The lanes plot's y range is fixed to the lanes.
"""

from __future__ import annotations

import pyqtgraph as pg

__all__ = ["LANES_KEY", "LANE_PITCH", "lane_offsets", "lanes_extent", "label_lanes"]

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
