"""Event streams: sparse structured records ``(time, channel, value)`` in an ordinary ring.

An event is one record of :data:`EVENT_DTYPE`: ``time`` in seconds since its stream started
(float64), ``channel`` the index of its channel in the stream's ``event_channels`` (uint32) and
``value`` (float32: 1.0 for a photon, a pulse height, a digital level). Records ride the same
ring, hub, readers, shared memory and recorder as samples do: the ring's "sample" is one record
(a hub's ring holds ``[records, 1]``: see :func:`as_events`), and the records' count plays the
part of the sample count, so ``lost`` counts lost events exactly.

:class:`PoissonEvents` generates photon arrivals on several channels (each a Poisson process
of its own rate) the same whatever the chunks they are read in; :class:`EventSource` paces it
by a clock as a streamer (the shape of ``DataInStreamInterface``) that a
:class:`~qudi.util.instream.hub.StreamHub` can share.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qudi.util.instream.errors import StreamError

__all__ = [
    "EVENT_DTYPE",
    "EventSource",
    "EventSourceOverflowError",
    "PoissonEvents",
    "as_events",
    "bin_rates",
    "event_ring",
]

EVENT_DTYPE = np.dtype([("time", "<f8"), ("channel", "<u4"), ("value", "<f4")])
BLOCK_S = 1e-3  # events are drawn per millisecond, each block from its own seed


def as_events(records: np.ndarray) -> np.ndarray:
    """A flat view of event records as read from a ring (``[n]`` or a hub's ``[n, 1]``).

    Raises
    ------
    TypeError
        If ``records`` are not of :data:`EVENT_DTYPE`.
    """
    if records.dtype != EVENT_DTYPE:
        raise TypeError(f"records have dtype {records.dtype}, not the event dtype {EVENT_DTYPE}")
    return records.reshape(-1)


def event_ring(capacity: int, channels: Sequence[str], rate: float, **ring_options: Any) -> Any:
    """A :class:`~qudi.util.instream.ring.StreamRing` of event records, its channel names in
    ``info.extra['event_channels']`` (``rate``: the mean events per second, all channels)."""
    from qudi.util.instream.ring import StreamInfo, StreamRing

    info = StreamInfo(
        channel_names=("events",),
        sample_rate=float(rate),
        sample_timing="RANDOM",
        extra={"kind": "events", "event_channels": list(channels)},
    )
    return StreamRing(capacity, (), EVENT_DTYPE, info=info, **ring_options)


def bin_rates(
    events: np.ndarray, channels: int, start: float, bin_width: float, bins: int
) -> np.ndarray:
    """Events per second in ``bins`` bins of ``bin_width`` s from ``start``: ``[bins, channels]``
    (a rate trace; events outside the bins are left out)."""
    events = as_events(events)
    index = np.floor((events["time"] - start) / bin_width).astype(np.int64)
    inside = (index >= 0) & (index < bins) & (events["channel"] < channels)
    flat = index[inside] * channels + events["channel"][inside].astype(np.int64)
    counts = np.bincount(flat, minlength=bins * channels)[: bins * channels]
    return counts.reshape(bins, channels) / bin_width


class PoissonEvents:
    """Photon arrivals: one Poisson process per channel, merged in time order.

    The events of each millisecond block ``b`` are drawn from a counter-based generator keyed
    by ``seed`` and counting from ``b``, so the stream is the same however it is read, and a
    test can draw the expected events of any span with :meth:`between`.

    Parameters
    ----------
    rates
        Mean events per second of each channel (each >= 0, their sum > 0).
    seed
        Any int >= 0.
    """

    def __init__(self, rates: Sequence[float], seed: int = 0):
        rates_array = np.asarray(rates, dtype=np.float64)
        if rates_array.ndim != 1 or not len(rates_array):
            raise ValueError(f"rates is {list(rates)!r}: give one rate per channel")
        if not np.isfinite(rates_array).all() or (rates_array < 0).any() or rates_array.sum() <= 0:
            raise ValueError(
                f"rates is {list(rates)!r}: use finite event rates >= 0 (per second), not all 0"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed is {seed!r}: use an integer >= 0")
        self.rates = rates_array
        self.total_rate = float(rates_array.sum())
        self._cdf = np.cumsum(rates_array / self.total_rate)
        self._cdf[-1] = 1.0
        self.seed = seed

    def block(self, b: int) -> np.ndarray:
        """The events of block ``b`` (times ``b * 1 ms`` to ``(b + 1) * 1 ms``), in order."""
        # a counter-based generator per block: cheap to make, and the blocks' numbers never
        # overlap (block b counts from 2**128 * b)
        rng = np.random.Generator(np.random.Philox(key=self.seed, counter=[0, 0, b, 0]))
        count = int(rng.poisson(self.total_rate * BLOCK_S))
        out = np.empty(count, EVENT_DTYPE)
        # sorted uniform times in O(n): partial sums of exponentials over their total
        spacing = np.cumsum(rng.standard_exponential(count + 1))
        out["time"] = (b + spacing[:-1] / spacing[-1]) * BLOCK_S
        out["channel"] = np.searchsorted(self._cdf, rng.random(count), side="right")
        out["value"] = 1.0
        return out

    def between(self, first_block: int, end_block: int) -> np.ndarray:
        """The events of blocks ``first_block .. end_block - 1``, in time order."""
        parts = [self.block(b) for b in range(first_block, end_block)]
        return np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)


class EventSourceOverflowError(StreamError):
    """The source's own buffer filled because it was not read in time; it stopped."""


@dataclass(frozen=True)
class EventConstraints:
    """The part of ``DataInStreamConstraints`` a hub needs of an event source."""

    channel_units: dict[str, str] = field(default_factory=lambda: {"events": ""})
    data_type: np.dtype = EVENT_DTYPE
    sample_timing: str = "RANDOM"


class EventSource:
    """Poisson photon arrivals paced by a clock, read like a streaming card.

    One stream column, ``events``, of :data:`EVENT_DTYPE` records; its ``sample_rate`` is the
    mean events per second of all channels together (what the hub sizes its ring by). Events
    arrive block by block (1 ms) as the clock passes; a device buffer of
    ``channel_buffer_size`` events that is not read in time stops the source (the next read
    raises :class:`EventSourceOverflowError`; nothing is overwritten).

    Parameters
    ----------
    channels
        Names of the event channels (their indices are the records' ``channel``).
    rates
        Mean events per second per channel (default: 1e5 / s each).
    seed
        Seeds the events (see :class:`PoissonEvents`).
    buffer_size
        The device buffer, in events.
    clock
        Seconds, monotonic (default :func:`time.monotonic`); tests pass a clock they move.
    """

    def __init__(
        self,
        channels: Sequence[str],
        rates: Sequence[float] | None = None,
        *,
        seed: int = 0,
        buffer_size: int = 1 << 22,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.event_channels = list(channels)
        rates = [1e5] * len(self.event_channels) if rates is None else list(rates)
        if len(rates) != len(self.event_channels):
            raise ValueError(f"rates: give {len(self.event_channels)} rates, one per channel")
        self.events = PoissonEvents(rates, seed)
        self.constraints = EventConstraints()
        self.active_channels = ["events"]
        self.streaming_mode = "CONTINUOUS"
        self.sample_rate = self.events.total_rate
        self.channel_buffer_size = int(buffer_size)
        self.stream_extra = {"kind": "events", "event_channels": list(self.event_channels)}
        self._clock = clock
        self._lock = threading.Lock()
        self._start: float | None = None
        self._next_block = 0
        self._queue: deque[np.ndarray] = deque()  # drawn, not yet read: blocks of events
        self._taken = 0  # events of the first queued block already read
        self._waiting = 0
        self._fault: BaseException | None = None

    # ------------------------------------------------------------------------ settings
    def configure(self, active_channels, streaming_mode, channel_buffer_size, sample_rate):
        """Only ``['events']``, CONTINUOUS; ``sample_rate`` scales every channel's rate so
        their sum is the new total; ``channel_buffer_size`` is the device buffer in events."""
        if self._start is not None:
            raise RuntimeError("cannot configure a running event source; stop it first")
        if list(active_channels) != ["events"]:
            raise ValueError(f"active_channels is {list(active_channels)!r}: use ['events']")
        if str(getattr(streaming_mode, "name", streaming_mode)) != "CONTINUOUS":
            raise ValueError(f"streaming_mode is {streaming_mode!r}: use CONTINUOUS")
        rate = float(sample_rate)
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"sample_rate is {sample_rate!r}: use events per second > 0")
        scale = rate / self.events.total_rate
        self.events = PoissonEvents(self.events.rates * scale, self.events.seed)
        self.sample_rate = self.events.total_rate
        self.channel_buffer_size = int(channel_buffer_size)

    @property
    def is_running(self) -> bool:
        return self._start is not None

    # ----------------------------------------------------------------------- acquisition
    def start_stream(self) -> None:
        """Start from time 0 (block 0) again."""
        with self._lock:
            self._start = self._clock()
            self._next_block = 0
            self._queue.clear()
            self._taken = self._waiting = 0
            self._fault = None

    def stop_stream(self) -> None:
        with self._lock:
            self._start = None

    @property
    def available_samples(self) -> int:
        """Events waiting to be read; raises once after an overflow."""
        with self._lock:
            return self._arrive()

    def read_available_data_into_buffer(self, data_buffer, timestamp_buffer=None) -> int:
        """Move as many waiting events as fit into ``data_buffer`` (records, flat)."""
        with self._lock:
            count = min(self._arrive(), data_buffer.size)
            return self._take(data_buffer.reshape(-1), count)

    def read_data_into_buffer(
        self, data_buffer, samples_per_channel, timestamp_buffer=None, timeout=None
    ) -> None:
        """Take exactly ``samples_per_channel`` events (the pump asks for what is there)."""
        with self._lock:
            have = self._arrive()
            if have < samples_per_channel:
                raise RuntimeError(
                    f"{samples_per_channel} events asked for, {have} waiting: read what "
                    "available_samples says"
                )
            self._take(data_buffer.reshape(-1), samples_per_channel)

    def events_until(self, end_block: int) -> np.ndarray:
        """The events this source delivers up to block ``end_block`` (a test's reference)."""
        return self.events.between(0, end_block)

    # -------------------------------------------------------------------------- internals
    def _arrive(self) -> int:
        """Draw the blocks the clock has passed; the count of events waiting."""
        if self._fault is not None:
            fault, self._fault = self._fault, None
            raise fault
        if self._start is None:
            return self._waiting
        due = math.floor((self._clock() - self._start) / BLOCK_S + 1e-9)  # float error
        if due > self._next_block:
            fresh = self.events.between(self._next_block, due)
            self._next_block = due
            room = self.channel_buffer_size - self._waiting
            if len(fresh) > room:
                self._start = None
                self._queue.append(fresh[:room])
                self._waiting += room
                raise EventSourceOverflowError(
                    f"the event buffer of {self.channel_buffer_size} events overflowed (it was "
                    "not read fast enough) and the source stopped"
                )
            self._queue.append(fresh)
            self._waiting += len(fresh)
        return self._waiting

    def _take(self, out: np.ndarray, count: int) -> int:
        """Move ``count`` waiting events (the caller checked they wait) into ``out``."""
        done = 0
        queue = self._queue
        while done < count:
            head = queue[0]
            step = min(count - done, len(head) - self._taken)
            out[done : done + step] = head[self._taken : self._taken + step]
            done += step
            self._taken += step
            if self._taken == len(head):
                queue.popleft()
                self._taken = 0
        self._waiting -= count
        return count
