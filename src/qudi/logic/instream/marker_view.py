"""MarkerAxis: where a marker's host time falls on the live trace's x axis (no Qt, no qudi).

A marker carries a host monotonic time; the trace's x values are the stream's own: for a
``CONSTANT`` stream ``x0 + s / rate`` for the logic's ``s``-th sample of the run, for a
``TIMESTAMP`` stream the samples' stamps. The axis maps the one onto the other:

* when the logic's stream is a shared ring on this host (its buffer names it), by the ring's
  time table (:class:`~qudi.util.instream.stream_clock.StreamClock`): the marker's time gives
  its ring index (``CONSTANT``) or its stamp (``TIMESTAMP``) as the fitted clock says, and the
  ring index of the logic's first sample is found exactly from the buffer's unread count;
* otherwise by the arrival of the blocks the logic read: a sample read at host time ``t``
  was taken before ``t``, so the earliest arrival seen (over the last blocks) bounds the
  clock; markers then land up to the shortest delivery latency of a block early (about a
  pump interval: milliseconds).

An event stream (``RANDOM`` records of ``(time, channel, value)``, ``events=True``) shows rate
traces whose x values are event times, seconds since the stream's run started: a marker's x
is its host time minus the run's start as the ring's time table says
(:attr:`~qudi.util.instream.timebase.RunStart.monotonic_start`, read just before the source
was started: the marker lands at most the start call's duration late); without a ring here,
by the arrivals: the newest event read at host time ``t`` was taken before ``t``, so markers
land up to the shortest delivery latency early, never late.

Other ``RANDOM`` streams have no time axis (x is the sample's index): their markers are not
placed (NaN).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from qudi.util.instream.ring import StreamRing
from qudi.util.instream.stream_clock import StreamClock

__all__ = ["MarkerAxis"]

_KEPT = 32  # latest estimates of the run's start kept (a loss moves it; the newest count)


class MarkerAxis:
    """Host monotonic time to trace x for one run of a trace.

    Parameters
    ----------
    timing : str
        ``"CONSTANT"``, ``"TIMESTAMP"`` or ``"RANDOM"``.
    rate : float
        The stream's sample rate (Hz).
    streamer : object, optional
        The logic's streamer; if it names a shared ring (``stream_name``) with a time table,
        the axis follows that ring's clock.
    builder : object, optional
        The trace the run's samples go into (see :meth:`note_block`).
    events : bool, optional
        The stream is an event stream (``RANDOM``, x the events' times: see the module
        docstring).
    """

    def __init__(
        self,
        timing: str,
        rate: float,
        streamer: Any = None,
        builder: object = None,
        *,
        events: bool = False,
    ):
        self.timing = timing
        self.events = bool(events) and timing == "RANDOM"
        self.rate = float(rate)
        self._streamer = streamer
        self._ring: StreamRing | None = None
        self._clock: StreamClock | None = None
        self._consumed = 0  # samples of the run read so far
        self._builder = builder  # the trace the samples went into (a new one: a new run)
        self._starts: deque[float] = deque(maxlen=_KEPT)
        name = getattr(streamer, "stream_name", None)
        if (timing in ("CONSTANT", "TIMESTAMP") or self.events) and isinstance(name, str):
            try:
                self._ring = StreamRing.attach(name)
                if self.events:
                    if self._ring.time_table is None:
                        raise ValueError(f"stream '{name}' has no time table")
                else:
                    self._clock = StreamClock(self._ring)
            except Exception:  # noqa: BLE001 - no shared ring or table here: use arrivals
                self.close()

    @property
    def builder(self) -> object:
        """The trace the axis counts samples of (as made, or as the last block said)."""
        return self._builder

    @property
    def uses_time_base(self) -> bool:
        """Whether markers are placed by the stream's time table (else by arrivals)."""
        return self._clock is not None or (self.events and self._ring is not None)

    def note_block(
        self, count: int, stamps: np.ndarray | None, now: float, builder: object
    ) -> None:
        """The logic read ``count`` samples (timestamps ``stamps``; an event stream's: the
        events' times) at host time ``now`` into the trace ``builder`` (another builder than
        before starts the count again)."""
        if builder is not self._builder:
            self._builder, self._consumed = builder, 0
            self._starts.clear()
        self._consumed += int(count)
        if self.timing == "CONSTANT":
            if self._clock is not None:
                located = self._next_index()
                if located is not None:  # ring index of the run's first sample
                    self._starts.append(float(located - self._consumed))
            else:  # the newest sample was taken by now
                self._starts.append(now - (self._consumed - 1) / self.rate)
        elif (
            (self.timing == "TIMESTAMP" or self.events)
            and not self.uses_time_base
            and stamps is not None
            and len(stamps)
        ):
            self._starts.append(now - float(stamps[-1]))

    def x_of(self, times: np.ndarray, x_first: float) -> np.ndarray:
        """The x values of host monotonic ``times``; ``x_first`` is the x of the run's first
        sample (``CONSTANT``). NaN where unknown."""
        times = np.asarray(times, dtype=np.float64)
        unknown = np.full(times.shape, np.nan)
        if self.timing == "CONSTANT" and self._starts:
            start = min(self._starts)
            if self._clock is None:
                return x_first + (times - start)
            time_base = self._time_base()
            if time_base is None:
                return unknown
            return x_first + (time_base.index_at(times) - start) / self.rate
        if self.timing == "TIMESTAMP" and self._clock is not None:
            time_base = self._time_base()
            return unknown if time_base is None else time_base.fit.device_time(times)
        if self.events and self._ring is not None:
            start = self._run_start()
            return unknown if start is None else times - start
        if (self.timing == "TIMESTAMP" or self.events) and self._starts:
            return times - min(self._starts)
        return unknown

    def close(self) -> None:
        """Let go of the ring (idempotent)."""
        ring, self._ring, self._clock = self._ring, None, None
        if ring is not None:
            ring.close()

    def _run_start(self) -> float | None:
        """Host monotonic time the ring's current run started (None before it has one)."""
        table = self._ring.time_table if self._ring is not None else None
        run = table.run() if table is not None else None
        return None if run is None else float(run.monotonic_start)

    def _time_base(self):
        try:
            return self._clock.refresh() if self._clock is not None else None
        except ValueError:
            return None

    def _next_index(self) -> int | None:
        """Ring index of the next sample the streamer will give the logic (the pump writes
        between the two looks only rarely: look again then)."""
        ring, streamer = self._ring, self._streamer
        for _ in range(20):
            before = ring.write_index
            waiting = int(streamer.available_samples)
            if ring.write_index == before:
                return before - waiting
        return None
