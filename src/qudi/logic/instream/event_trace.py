"""EventRateTrace: the live trace of an event stream, one rate (c/s) per event channel.

An event stream (``stream_extra`` ``{"kind": "events", "event_channels": [...]}``, records of
:data:`~qudi.util.instream.events.EVENT_DTYPE`) has no samples to average: its records are
binned by their ``time`` into bins of ``1 / (data_rate * oversampling)`` s with
:func:`~qudi.util.instream.events.bin_rates`, and each bin's rates (events per second per
channel) are one "sample" of a :class:`~qudi.logic.instream.trace.TraceBuilder`, which does the
oversampling, moving average and window as for any stream. The trace's x values are the event
times (s since the stream started), starting at the first event's bin.

A bin is complete once an event later than it has arrived: the trace ends at the newest event's
bin, so on a sparse stream it lags by up to the time between two events.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from qudi.logic.instream.trace import TraceBuilder, TraceViews, TraceWindow
from qudi.util.instream.events import EVENT_DTYPE, as_events, bin_rates

__all__ = ["MAX_BINS_PER_STEP", "EventRateTrace", "event_channels_of"]

MAX_BINS_PER_STEP = 1 << 16  # bins binned at once: a long quiet gap costs bounded memory


def event_channels_of(extra: dict) -> list[str] | None:
    """The event channels a stream's description declares, or None if it is no event stream."""
    if extra.get("kind") != "events":
        return None
    return [str(name) for name in extra.get("event_channels", [])]


class EventRateTrace:
    """Rate traces of event channels, with the face of a ``TraceBuilder``.

    Parameters
    ----------
    channels : sequence of str
        The event channels, by the records' ``channel`` index.
    data_rate : float
        Trace points per second.
    window_seconds : float
        Length of the trace window in seconds.
    oversampling : int, optional
        Bins per trace point.
    moving_average_width : int, optional
        Odd width of the centred moving average in points (1: off).
    averaged : sequence of str, optional
        Event channels with a moving average.
    placeholder : bool, optional
        Show a window of zeros before the first point (see ``TraceBuilder``).

    Raises
    ------
    ValueError, TypeError, MemoryError
        As ``TraceBuilder``.
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
        placeholder: bool = False,
    ):
        self._rates = TraceBuilder(
            channels,
            data_rate,
            window_seconds,
            oversampling=oversampling,
            moving_average_width=moving_average_width,
            averaged=averaged,
            timing="CONSTANT",
            placeholder=placeholder,
        )
        self.bin_width = 1.0 / (self._rates.data_rate * self._rates.oversampling)
        self._pending = np.empty(0, EVENT_DTYPE)  # events of the bin not yet complete
        self._next_bin: int | None = None  # index of the first bin not made yet
        self.events = 0  # events taken since this trace was made

    # ------------------------------------------------------------------- TraceBuilder's face
    @property
    def channels(self) -> list[str]:
        return self._rates.channels

    @property
    def averaged_channels(self) -> list[str]:
        return self._rates.averaged_channels

    @property
    def averaging(self) -> bool:
        return self._rates.averaging

    @property
    def data_rate(self) -> float:
        """Trace points per second."""
        return self._rates.data_rate

    @property
    def oversampling(self) -> int:
        """Bins per trace point."""
        return self._rates.oversampling

    @property
    def count(self) -> int:
        """Trace points made so far."""
        return self._rates.count

    @property
    def trace(self) -> TraceWindow:
        return self._rates.trace

    @property
    def nbytes(self) -> int:
        return self._rates.nbytes

    def views(self) -> TraceViews:
        """Read-only views of the rate trace (see ``TraceBuilder.views``)."""
        return self._rates.views()

    # --------------------------------------------------------------------------- the maths
    def add(self, data: np.ndarray, stamps: np.ndarray | None = None) -> int:
        """Add event records (``[records]`` or ``[records, 1]``, in time order); returns the
        number of new trace points.

        Raises
        ------
        TypeError
            The records are not of the event dtype (nothing is added).
        """
        events = as_events(np.asarray(data))
        if not len(events):
            return 0
        self.events += len(events)
        width = self.bin_width
        if self._next_bin is None:  # the trace starts at the first event's bin
            self._next_bin = math.floor(float(events["time"][0]) / width)
            self._rates.start_at(self._next_bin * width)
        if len(self._pending):
            events = np.concatenate([self._pending, events])
        points = 0
        while True:
            start = self._next_bin * width
            index = np.floor((events["time"] - start) / width)  # as bin_rates bins them
            complete = int(min(index[-1], MAX_BINS_PER_STEP))  # bins before the newest's
            if complete <= 0:
                break
            rates = bin_rates(events, len(self.channels), start, width, complete)
            points += self._rates.add(rates)
            self._next_bin += complete
            events = events[index >= complete]
        self._pending = events[index >= 0].copy()  # earlier ones: none after a restart
        return points
