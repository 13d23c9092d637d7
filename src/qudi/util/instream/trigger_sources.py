"""Triggers from another stream: events (and, the same way, markers) as sample indices.

:class:`EventTrigger` reads an event stream (records of
:data:`~qudi.util.instream.events.EVENT_DTYPE`) and turns each event of the chosen channels into
a trigger at the sample of the triggered stream taken at that time: ``index = round((time -
time_offset) * sample_rate)``. The two streams' clocks are related by ``time_offset`` (seconds of
the event stream at the triggered stream's sample 0; 0 when both started together on one clock).

Markers plug in the same way: :class:`MarkerTrigger` takes marker records (a sample index and
a text, as a session recorder's ``Marker``), and anything else that can say at which sample
index something happened feeds an :class:`~qudi.util.instream.triggered.IndexTrigger` (see
:class:`IndexSource` for the shape of such a source).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from qudi.util.instream.events import EVENT_DTYPE, as_events
from qudi.util.instream.triggered import IndexTrigger

__all__ = ["EventTrigger", "IndexSource", "MarkerTrigger", "SourcedTrigger"]


class IndexSource(Protocol):
    """Something that knows at which sample indices of a stream triggers fall (new ones at
    each call, ascending or not)."""

    def new_indices(self) -> np.ndarray: ...


class SourcedTrigger(IndexTrigger):
    """An :class:`IndexTrigger` fed by an :class:`IndexSource` whenever the reader looks."""

    def __init__(self, source: IndexSource):
        super().__init__()
        self.source = source

    def find(self, chunk: np.ndarray, first_index: int) -> np.ndarray:
        self.add(self.source.new_indices())
        return super().find(chunk, first_index)


class EventTrigger(SourcedTrigger):
    """Triggers at events of ``channels`` (indices into the event stream's channels; None:
    all) read from ``events`` (a reader of an event stream, consumed by this trigger).

    Parameters
    ----------
    events
        A started reader of event records (a ring or hub reader).
    sample_rate
        Samples per second of the triggered stream.
    channels
        Event channels that trigger (None: every event).
    time_offset
        Seconds of the event stream at the triggered stream's first sample.
    """

    def __init__(
        self,
        events: Any,
        sample_rate: float,
        *,
        channels: Sequence[int] | None = None,
        time_offset: float = 0.0,
    ):
        if not (isinstance(sample_rate, (int, float)) and sample_rate > 0):
            raise ValueError(f"sample_rate is {sample_rate!r}: use samples per second > 0")
        if events.ring.dtype != EVENT_DTYPE:
            raise TypeError(
                f"stream '{events.ring.name}' holds {events.ring.dtype}, not event records"
            )
        self._events = events
        self._rate = float(sample_rate)
        self._channels = None if channels is None else np.asarray(channels, dtype=np.uint32)
        self._offset = float(time_offset)
        self._scratch = np.empty((4096, *events.ring.sample_shape), EVENT_DTYPE)
        super().__init__(self)

    def new_indices(self) -> np.ndarray:
        """Indices of the events that arrived since the last call."""
        found = []
        while True:
            got = self._events.read_available_into(self._scratch)
            records = as_events(self._scratch[:got])
            if self._channels is not None:
                records = records[np.isin(records["channel"], self._channels)]
            found.append(np.rint((records["time"] - self._offset) * self._rate).astype(np.int64))
            if got < len(self._scratch):
                break
        return np.concatenate(found)


class MarkerTrigger(IndexTrigger):
    """Triggers at markers: anything with a ``sample_index`` (of the triggered stream) and a
    ``text``, such as a session recorder's ``Marker``. Hand each one to :meth:`add_marker` (from
    any thread that calls this reader's owner); ``match`` keeps only markers whose text holds it.
    """

    def __init__(self, match: str | None = None):
        super().__init__()
        self.match = match

    def add_marker(self, marker: Any) -> bool:
        """Trigger at ``marker.sample_index`` if its text matches; returns whether it will."""
        if self.match is not None and self.match not in str(marker.text):
            return False
        self.add([int(marker.sample_index)])
        return True
