"""The curves of the time series window: one plot per unit (or per channel), whole arrays.

Each frame of the logic (``x, {channel: y}, x_avg, {channel: y_avg}``) goes to the curves of
its plot; a frame that brings nothing new is not drawn again. Only the points in view are
handed to pyqtgraph, about two per pixel column, from a min/max pyramid of each curve that a
frame updates with its new points only (``qudi.gui.instream.pyramid``): a draw costs
O(new points + pixels) at any window length and zoom, and a spike of one sample stays
visible. The view ranges are fitted to those points before Qt paints
(``qudi.gui.instream.view_ranges``), so one frame costs one paint.

Channels of one unit share a plot and its y axis, or each channel gets a plot of its own
(:meth:`TracePlot.set_plot_per_channel`; qudi-iqo-modules' users asked for the first in their
issue #124). Clicking a curve's line in the legend hides it (its name greys) or shows it
again; a hidden curve costs nothing to draw and does not count for the y range.

Digital lines (the logic's ``digital_channel_names``) are step traces stacked in lanes on one
plot of their own below the analog plots (``qudi.gui.instream.lanes``); the session's markers
are labelled vertical lines on every plot (``qudi.gui.instream.marker_lines``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from qudi.gui.instream.decimate import visible_slice
from qudi.gui.instream.lanes import (
    LANES_KEY,
    align_left_axes,
    label_lanes,
    lane_offsets,
    lanes_extent,
)
from qudi.gui.instream.marker_lines import MarkerLines
from qudi.gui.instream.pyramid import MinMaxPyramid, PointFollower
from qudi.gui.instream.time_series_window import TimeSeriesWindow
from qudi.gui.instream.view_ranges import FollowedRanges, data_extent

__all__ = ["TracePlot"]

_RAW, _AVERAGED = "raw", "averaged"


class TracePlot:
    """Curves, view ranges and newest values of a ``TimeSeriesWindow``'s plots.

    Set the class attribute ``decimating`` to False to hand pyqtgraph the whole arrays
    instead (``benchmarks/gui_fps.py --compare`` measures both ways).

    Parameters
    ----------
    window : TimeSeriesWindow
        The window whose plots it draws into.
    channel_units : callable
        Returns ``{channel: unit}`` as the trace shows it (the logic's ``channel_units``);
        asked when the channels of a frame differ from those plotted.
    x_range_changed : callable
        Called (queued, in the GUI thread) whenever the time range of the plots changes,
        by a zoom or pan of the user or by following the data.
    curves_toggled : callable, optional
        Called when the user hid or showed a curve from the legend (to draw it at once).
    digital_channels : callable, optional
        Returns the channels that are digital lines (drawn in lanes); none if not given.
    """

    decimating = True

    def __init__(
        self,
        window: TimeSeriesWindow,
        channel_units: Callable[[], dict[str, str]],
        x_range_changed: Callable[[], None],
        curves_toggled: Callable[[], None] | None = None,
        digital_channels: Callable[[], list[str]] | None = None,
    ):
        self._window = window
        self._channel_units = channel_units
        self._x_range_changed = x_range_changed
        self._curves_toggled = curves_toggled
        self._per_channel = False  # one plot per unit (False) or per channel (True)
        self._hidden: set[str] = set()  # legend names of the curves the user hid
        self._plot_keys: dict[str, str] = {}  # channel -> key of its plot in the window
        self._pyramids: dict[tuple[str, str], MinMaxPyramid] = {}
        self._followers = {_RAW: PointFollower(), _AVERAGED: PointFollower()}
        self.raw_curves: dict[str, pg.PlotCurveItem] = {}
        self.averaged_curves: dict[str, pg.PlotCurveItem] = {}
        self._newest: dict[tuple[str, str], float] = {}
        self._units: dict[str, str] = {}
        self._channels: tuple[list[str], list[str]] | None = None  # (raw, averaged) plotted
        self._last_frame: tuple | None = None
        self._last_signature: tuple | None = None
        self._ranges = FollowedRanges()
        self._digital_channels = digital_channels or list
        self._lanes: dict[str, float] = {}  # digital line -> its lane's offset
        self.markers = MarkerLines(lambda: self._window.plot_items.values())

    # ---------------------------------------------------------------------------- curves
    def matches(self, channels: list[str], averaged: list[str], units: dict[str, str]) -> bool:
        """Whether the plots already show these channels with these units."""
        return self._channels == (list(channels), list(averaged)) and units == self._units

    def rebuild(self, channels: list[str], averaged: list[str], units: dict[str, str]) -> None:
        """One plot per unit (in the order the units first appear), the curves in the plot
        of their unit, or one plot per channel (:meth:`set_plot_per_channel`); the plots are
        made anew, so units that went away leave no empty plot.

        Parameters
        ----------
        channels : list of str
            Channels with a raw curve.
        averaged : list of str
            Channels with a moving-average curve.
        units : dict
            The unit of each channel, as the trace shows it.
        """
        window = self._window
        self._units = dict(units)
        self.raw_curves.clear()
        self.averaged_curves.clear()
        self._newest.clear()
        self._pyramids.clear()
        for follower in self._followers.values():
            follower.reset()
        self._last_signature = None
        members: dict[str, list[str]] = {}
        self._plot_keys = {}
        declared = set(self._digital_channels())
        lines = [ch for ch in channels if ch in declared]
        self._lanes = lane_offsets(lines)
        for channel in [*channels, *(ch for ch in averaged if ch not in channels)]:
            if channel in self._lanes:
                continue
            unit = self._units.get(channel, "")
            key = channel if self._per_channel else unit
            self._plot_keys[channel] = key
            members.setdefault(key, []).append(channel)
        if lines:  # the lanes plot, below the others
            members[LANES_KEY] = lines
            self._plot_keys.update(dict.fromkeys(lines, LANES_KEY))
        keys = list(members) or [""]
        names = {key: chs[0] if len(chs) == 1 else "value" for key, chs in members.items()}
        plot_units = {key: self._units.get(chs[0], "") for key, chs in members.items()}
        window.set_plot_units(keys, names, plot_units, lanes=[LANES_KEY] if lines else [])
        if lines:
            label_lanes(window.plot_items[LANES_KEY], lines)
            align_left_axes(list(window.plot_items.values()), lines)
        window.plot_item.getViewBox().sigXRangeChanged.connect(
            self._x_range_changed, QtCore.Qt.ConnectionType.QueuedConnection
        )
        self._channels = (list(channels), list(averaged))
        self._ranges.attach([plot.getViewBox() for plot in window.plot_items.values()])
        hues = max(len(channels), 1)
        for index, channel in enumerate(channels):
            colour = pg.mkColor(pg.intColor(index, hues=hues, values=1, maxValue=230))
            colour.setAlpha(110 if channel in averaged else 255)
            self.raw_curves[channel] = self._add_curve(channel, pg.mkPen(colour, width=1), 0)
        for channel in averaged:
            index = channels.index(channel) if channel in channels else len(channels)
            colour = pg.intColor(index, hues=hues, values=1, maxValue=230)
            # averages on top of the raw curves
            self.averaged_curves[channel] = self._add_curve(
                channel, pg.mkPen(colour, width=2), 10, f"{channel} (avg)"
            )
        for legend in window.legends.values():
            for sample, _ in legend.items:
                sample.sigClicked.connect(self._legend_clicked)
        self.markers.redraw()

    @property
    def lanes(self) -> dict[str, float]:
        """Each digital line drawn in a lane, with its lane's offset."""
        return dict(self._lanes)

    # -------------------------------------------------------------------- plot choices
    @property
    def plot_per_channel(self) -> bool:
        """Whether each channel has a plot of its own (else channels of a unit share one)."""
        return self._per_channel

    def set_plot_per_channel(self, per_channel: bool) -> None:
        """Each channel on its own plot (True) or channels of one unit on one plot (False);
        the plots are rebuilt with the channels shown now."""
        per_channel = bool(per_channel)
        if per_channel == self._per_channel:
            return
        self._per_channel = per_channel
        if self._channels is not None:
            self.rebuild(*self._channels, self._units)

    @property
    def hidden(self) -> list[str]:
        """Legend names of the curves hidden by the user (``"sine"``, ``"sine (avg)"``)."""
        return sorted(self._hidden)

    def set_hidden(self, names) -> None:
        """Hide the curves of these legend names and show all others (names of curves not
        plotted now are kept, for when they are)."""
        self._hidden = {str(name) for name in names}
        for curve in [*self.raw_curves.values(), *self.averaged_curves.values()]:
            curve.setVisible(curve.name() not in self._hidden)

    def _legend_clicked(self, curve) -> None:
        """pyqtgraph toggled the curve's visibility: remember it, draw what is shown now."""
        name = curve.name()
        if curve.isVisible():
            self._hidden.discard(name)
        else:
            self._hidden.add(name)
        if self._curves_toggled is not None:
            self._curves_toggled()

    def _add_curve(self, channel: str, pen, z: int, name: str | None = None):
        """A curve in the plot of the channel's unit, named in its legend.

        The decimated points go to a plain ``PlotCurveItem``: ``PlotDataItem`` would wrap it
        in clipping, downsampling and log-mode bookkeeping the GUI does not use (and costs a
        tenth of a frame in Python); without decimation pyqtgraph's needs exactly those.
        """
        kind = pg.PlotCurveItem if self.decimating else pg.PlotDataItem
        step = {"stepMode": "left"} if channel in self._lanes else {}  # holds until the next
        curve = kind(pen=pen, name=name or channel, **step)
        curve.setZValue(z)
        curve.setVisible(curve.name() not in self._hidden)
        self._plot_of(channel).addItem(curve)
        return curve

    def _plot_of(self, channel: str) -> pg.PlotItem:
        return self._window.plot_items[self._plot_keys.get(channel, "")]

    # ----------------------------------------------------------------------------- frames
    def draw(self, frame: tuple, force: bool = False) -> bool:
        """Hand a frame's arrays to the curves, unless it shows what is drawn already.

        Parameters
        ----------
        frame : tuple
            ``(x, {channel: y}, x_avg, {channel: y_avg} or None)`` as the logic sends it.
        force : bool
            Draw even if the frame looks like the last one (after a zoom).

        Returns
        -------
        bool
            Whether the curves changed.
        """
        x, raw, x_avg, averaged = frame
        averaged = averaged or {}
        # new samples always move the end of the time axis: a frame ending where the drawn
        # one ended brings nothing new (the logic sends frames also when no sample came)
        signature = (_ends(x), _ends(x_avg), tuple(raw), tuple(averaged))
        if not force and signature == self._last_signature:
            return False
        if self._channels != (list(raw), list(averaged)):
            self.rebuild(list(raw), list(averaged), dict(self._channel_units()))
        self._last_frame, self._last_signature = frame, signature
        plots = list(self._window.plot_items.values())
        y_extents: list = [None] * len(plots)
        x_extent = None
        for curves, kind, xs, ys in (
            (self.raw_curves, _RAW, x, raw),
            (self.averaged_curves, _AVERAGED, x_avg, averaged),
        ):
            if not ys:
                continue
            new = self._followers[kind].follow(xs)
            for channel, y in ys.items():
                if len(y):
                    self._newest[(channel, kind)] = y[-1]
                if not curves[channel].isVisible():  # costs nothing; built anew when shown
                    self._pyramid(kind, channel).invalidate()
                    continue
                drawn_x, drawn_y = self._drawable(kind, channel, xs, y, new)
                index = plots.index(self._plot_of(channel))
                if channel in self._lanes:  # in its lane; the lanes' range is fixed
                    drawn_y = drawn_y + self._lanes[channel]
                    y_extents[index] = lanes_extent(list(self._lanes))
                else:
                    y_extents[index] = _union(y_extents[index], data_extent(drawn_y))
                curves[channel].setData(drawn_x, drawn_y)
                if len(drawn_x):
                    x_extent = _union(x_extent, (float(drawn_x[0]), float(drawn_x[-1])))
        self._ranges.fit(x_extent, y_extents)
        return True

    def redraw(self) -> bool:
        """Draw the last frame again (a zoom shows more of it); False if there is none."""
        if self._last_frame is None:
            return False
        return self.draw(self._last_frame, force=True)

    def newest(self, channel: str, kind: str) -> tuple[float | None, str]:
        """The newest value of a channel's ``'raw'`` or ``'averaged'`` curve and its unit."""
        return self._newest.get((channel, kind)), self._units.get(channel, "")

    @property
    def follows_x(self) -> bool:
        """Whether the time axis follows the data (the user has not zoomed or panned in x)."""
        return self._ranges.follows_x

    @property
    def follows_y(self) -> bool:
        """Whether the y axes follow the data (not frozen, not zoomed or panned in y)."""
        return self._ranges.follows_y

    @property
    def y_frozen(self) -> bool:
        """Whether the y ranges are frozen (and locked against the mouse)."""
        return self._ranges.frozen

    def _pyramid(self, kind: str, channel: str) -> MinMaxPyramid:
        pyramid = self._pyramids.get((kind, channel))
        if pyramid is None:
            pyramid = self._pyramids[(kind, channel)] = MinMaxPyramid()
        return pyramid

    def _drawable(
        self, kind: str, channel: str, x: np.ndarray, y: np.ndarray, new: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The points worth drawing: those in view (all of them while x follows the data),
        about two per pixel column from the curve's pyramid, which takes the ``new`` points
        (None: all of them) first."""
        if not self.decimating:
            return x, y
        view = self._window.plot_item.getViewBox()
        pyramid = self._pyramid(kind, channel)
        pyramid.update(y, new)
        visible = slice(0, len(x))
        if not self.follows_x:
            x_min, x_max = view.viewRange()[0]
            visible = visible_slice(x, x_min, x_max)
        return pyramid.decimate(x, visible.start, visible.stop, max(200, int(view.width())))

    # ----------------------------------------------------------------------------- views
    def freeze_y(self, frozen: bool) -> None:
        """Keep every plot's y range as it is (True) or follow the data again (False)."""
        self._ranges.freeze_y(frozen)

    def autoscale(self) -> None:
        """Fit both axes of every plot to the data and follow it again."""
        self._ranges.follow_all()
        self.redraw()


def _ends(x) -> tuple:
    """What tells two frames' time axes apart: their length and their last value."""
    if x is None or not len(x):
        return (0, None)
    return (len(x), float(x[-1]))


def _union(extent: tuple | None, other: tuple | None) -> tuple | None:
    if extent is None or other is None:
        return extent if other is None else other
    return min(extent[0], other[0]), max(extent[1], other[1])
