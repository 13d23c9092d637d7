"""EventPlacement: events of one stream placed on the samples of another, as trigger indices.

The time-series logic's triggered view can trigger on an event stream (records of
:data:`~qudi.util.instream.events.EVENT_DTYPE`: ``(time, channel, value)``) while it cuts its
windows from the logic's own stream of samples. This class is the bridge, with no Qt and no
qudi in it:

* it reads the event stream as a consumer like any other (a ``DataInStreamBuffer`` of its own,
  read without waiting); events that buffer lost (it fell behind) are counted in
  ``events_lost`` (the buffer's ``lost_samples``), never skipped silently, and with
  ``allow_overwrite: False`` the overrun the next read raises is counted the same way and the
  reading goes on;
* it keeps the events of the chosen channels (all by default) whose ``value`` is at least the
  threshold (if one is set);
* an event's host time is its ``time`` plus the host monotonic time its stream's current run
  started (the event ring's time table: the event lands at most the start call's duration
  late); that time is placed on the samples by the rule that places markers: a
  :class:`~qudi.logic.instream.marker_view.MarkerAxis` of the sample stream's ring (its time
  table's fitted clock), here counting every sample of the run, lost ones too, so its index is
  the triggered view's (``round``, as a marker's).

So it works where both streams are rings on this host with time tables, and the samples have
``CONSTANT`` timing; :class:`EventPlacement` refuses anything else, saying what is needed.
Events read before the sample stream's clock is known wait (``events_waiting``) and are
placed once it is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from qudi.logic.instream.marker_view import MarkerAxis
from qudi.util.instream.errors import StreamOverrunError
from qudi.util.instream.events import EVENT_DTYPE, as_events
from qudi.util.instream.ring import StreamRing

__all__ = ["MAX_WAITING_EVENTS", "EventPlacement"]

MAX_WAITING_EVENTS = 1 << 20  # events kept while the samples' clock is not known yet
_BLOCK = 4096  # events read at once


class EventPlacement:
    """Sample indices (of the run of ``samples``) of the chosen events of ``events``.

    Parameters
    ----------
    events
        The event stream's buffer (a started ``DataInStreamInterface`` of event records that
        names its shared ring: ``stream_name``).
    samples
        The sample stream's buffer (the logic's streamer, ``CONSTANT`` timing, a shared ring).
    sample_rate
        The sample stream's rate (Hz).
    event_channels
        The event stream's channel names, by the records' ``channel`` index.
    chosen
        Names of the channels whose events trigger (empty: every channel).
    threshold
        Only events whose ``value`` is at least this trigger (None: every event).

    Raises
    ------
    ValueError
        The events cannot be placed on the samples (the message says why and what works).
    """

    def __init__(
        self,
        events: Any,
        samples: Any,
        sample_rate: float,
        event_channels: Sequence[str],
        chosen: Sequence[str] = (),
        threshold: float | None = None,
    ):
        self.rate = float(sample_rate)
        self.threshold = threshold
        self._events = events
        names = list(event_channels)
        self._channels = (
            None if not chosen else np.array([names.index(c) for c in chosen], np.uint32)
        )
        self._block = np.empty(_BLOCK, EVENT_DTYPE)
        self._waiting = np.empty(0, np.float64)  # host times of chosen events, not placed
        self.counts = {
            "events": 0,  # records read
            "events_lost": 0,  # records the event buffer lost since the start
            "event_triggers": 0,  # chosen events placed and handed to the view
            "events_waiting": 0,  # chosen events waiting for the samples' clock
            "events_dropped": 0,  # chosen events given up: the clock never came
        }
        self._lost_at_start = int(events.lost_samples)
        self._axis = MarkerAxis("CONSTANT", self.rate, samples, builder=self)
        self._ring: StreamRing | None = None
        try:
            if not self._axis.uses_time_base:
                raise ValueError(
                    "events trigger the view only where their times can be placed on the "
                    "samples: the logic's streamer must share a ring with a time table on this "
                    "host (a DataInStreamBuffer of a CONSTANT stream); this one does not"
                )
            name = getattr(events, "stream_name", None)
            if not isinstance(name, str):
                raise ValueError(
                    "the trigger event stream shares no ring on this host (its buffer's "
                    "stream_name is None): connect 'trigger_events' to a DataInStreamBuffer of "
                    "an event streamer on this host"
                )
            self._ring = StreamRing.attach(name)
            if self._ring.dtype != EVENT_DTYPE or self._ring.time_table is None:
                raise ValueError(
                    f"stream '{name}' holds no event records with a time table: connect "
                    "'trigger_events' to a buffer of an event streamer"
                )
        except BaseException:
            self.close()
            raise

    def note_samples(self, count: int) -> None:
        """The logic took ``count`` more samples of its run (lost ones included), now."""
        self._axis.note_block(int(count), None, time.monotonic(), self)

    def take(self) -> np.ndarray:
        """Read the events that arrived; return the sample indices of those placed now
        (int64, ascending), including earlier ones that waited for the clock.

        Raises
        ------
        Exception
            What the event buffer's read raises other than an overrun (a stopped stream, a
            failed streamer).
        """
        chosen = [self._waiting]
        while True:
            try:
                got = self._events.read_available_data_into_buffer(self._block)
            except StreamOverrunError:  # counted below (lost_samples); the reader goes on
                continue
            records = as_events(self._block[:got])
            self.counts["events"] += got
            keep = np.ones(got, bool)
            if self._channels is not None:
                keep &= np.isin(records["channel"], self._channels)
            if self.threshold is not None:
                keep &= records["value"] >= self.threshold
            if keep.any():
                chosen.append(records["time"][keep] + self._run_start())
            if got < len(self._block):
                break
        self.counts["events_lost"] = int(self._events.lost_samples) - self._lost_at_start
        host = np.concatenate(chosen)
        where = self._axis.x_of(host, 0.0) if len(host) else host
        if len(host) and not np.isfinite(where).all():  # no clock yet: wait for it
            dropped = max(0, len(host) - MAX_WAITING_EVENTS)
            self.counts["events_dropped"] += dropped
            self._waiting = host[dropped:]
            self.counts["events_waiting"] = len(self._waiting)
            return np.empty(0, np.int64)
        self._waiting = np.empty(0, np.float64)
        self.counts["events_waiting"] = 0
        indices = np.rint(where * self.rate).astype(np.int64)
        self.counts["event_triggers"] += len(indices)
        return np.sort(indices)

    def close(self) -> None:
        """Let go of both rings (idempotent); the event buffer is its owner's to stop."""
        self._axis.close()
        ring, self._ring = self._ring, None
        if ring is not None:
            ring.close()

    def _run_start(self) -> float:
        """Host monotonic time at which the event stream's current run started."""
        table = self._ring.time_table if self._ring is not None else None
        run = table.run() if table is not None else None
        if run is None:
            raise ValueError("the trigger event stream has not started a run yet")
        return float(run.monotonic_start)
