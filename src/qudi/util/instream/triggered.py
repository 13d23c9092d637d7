"""TriggeredReader: windows of ``pre`` + ``post`` samples around each trigger of a stream.

A trigger is a level crossing of a channel (rising, falling or both, with hysteresis), an edge
of a digital line (a crossing of 0.5), or an index handed in from elsewhere (an event stream, a
marker: see :class:`IndexTrigger`). Each trigger at sample ``t`` gives the window of samples
``t - pre .. t + post - 1``, copied whole (never torn: a window is cut only from samples read
intact in one piece of history).

Nothing is dropped silently; :class:`TriggerStats` counts every trigger found and what became
of it: delivered in a window, held off (within ``holdoff`` samples of the trigger before it),
overlapping the window before (delivered too, and flagged), or missed because samples of its
window were lost while the reader was behind (the ring overwrote them). Triggers inside lost
samples cannot be seen: :attr:`TriggerStats.lost` counts those samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from qudi.util.instream.errors import StreamOverrunError

__all__ = [
    "EDGES",
    "IndexTrigger",
    "LevelTrigger",
    "TriggerDetector",
    "TriggerStats",
    "TriggeredReader",
    "TriggeredWindows",
    "digital_edge",
]

EDGES = ("rising", "falling", "both")


class TriggerDetector(Protocol):
    """Finds triggers in consecutive chunks ``[samples, channels]`` of one stream."""

    def find(self, chunk: np.ndarray, first_index: int) -> np.ndarray:
        """Absolute indices (int64, ascending) of the triggers up to the end of ``chunk``,
        whose first sample is ``first_index``."""
        ...

    def reset(self) -> None:
        """Samples were lost before the next chunk: what came before says nothing about it."""
        ...


class LevelTrigger:
    """A crossing of ``level`` by one channel, with hysteresis.

    ``rising``: fires at the first sample ``>= level`` after the channel was below
    ``level - hysteresis``; ``falling``: at the first sample ``<= level`` after it was above
    ``level + hysteresis``; ``both``: either. The state carries across chunks; the first
    sample after the start or a gap arms nothing by itself (no trigger without a crossing).
    """

    def __init__(self, channel: int, level: float, edge: str = "rising", hysteresis: float = 0.0):
        if edge not in EDGES:
            raise ValueError(f"edge is {edge!r}: use one of {list(EDGES)}")
        if isinstance(hysteresis, bool) or not (
            isinstance(hysteresis, (int, float)) and 0 <= hysteresis < math.inf
        ):
            raise ValueError(f"hysteresis is {hysteresis!r}: use a finite number >= 0")
        if isinstance(level, bool) or not (
            isinstance(level, (int, float)) and math.isfinite(level)
        ):
            raise ValueError(f"level is {level!r}: use a finite number")
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or channel < 0:
            raise ValueError(f"channel is {channel!r}: use the channel's index (an int >= 0)")
        self.channel = channel
        self.level = float(level)
        self.edge = edge
        self.hysteresis = float(hysteresis)
        self.reset()

    def reset(self) -> None:
        self._high: int = -1  # -1 unknown, 0 low, 1 high (for a rising / falling view)
        self._low_state: int = -1

    @staticmethod
    def _states(high_at: np.ndarray, low_at: np.ndarray | None, last: int) -> np.ndarray:
        """1 where high, 0 where low, the state before carried where neither (hysteresis)."""
        if low_at is None:  # no hysteresis: every sample is high or low
            return high_at.view(np.int8)
        defined = high_at | low_at
        index = np.where(defined, np.arange(len(high_at), dtype=np.int64), -1)
        np.maximum.accumulate(index, out=index)
        states = high_at.view(np.int8)[np.maximum(index, 0)]
        return np.where(index >= 0, states, np.int8(last))

    def find(self, chunk: np.ndarray, first_index: int) -> np.ndarray:
        x = chunk[:, self.channel]
        if len(x) == 0:
            return np.empty(0, np.int64)
        found = []
        h = self.hysteresis
        if self.edge in ("rising", "both"):
            low = x < self.level - h if h else None
            states = self._states(x >= self.level, low, self._high)
            previous = np.concatenate(([self._high], states[:-1]))
            found.append(np.flatnonzero((states == 1) & (previous == 0)))
            self._high = int(states[-1])
        if self.edge in ("falling", "both"):
            high = x > self.level + h if h else None
            states = self._states(x <= self.level, high, self._low_state)
            previous = np.concatenate(([self._low_state], states[:-1]))
            found.append(np.flatnonzero((states == 1) & (previous == 0)))
            self._low_state = int(states[-1])
        hits = found[0] if len(found) == 1 else np.union1d(found[0], found[1])
        return hits.astype(np.int64) + first_index


def digital_edge(channel: int, edge: str = "rising") -> LevelTrigger:
    """An edge of a digital (0/1) line: a crossing of 0.5 without hysteresis."""
    return LevelTrigger(channel, 0.5, edge, 0.0)


class IndexTrigger:
    """Triggers handed in as sample indices (from an event stream, a marker, any code).

    Call :meth:`add` with absolute sample indices in any order; :meth:`find` hands out those
    up to the end of each chunk. One too old for its window is counted as missed by the
    reader, not dropped silently.
    """

    def __init__(self) -> None:
        self._pending = np.empty(0, np.int64)

    def add(self, indices: Sequence[int] | np.ndarray) -> None:
        more = np.asarray(indices, dtype=np.int64).reshape(-1)
        self._pending = np.sort(np.concatenate((self._pending, more)), kind="stable")

    def find(self, chunk: np.ndarray, first_index: int) -> np.ndarray:
        end = first_index + len(chunk)
        cut = int(np.searchsorted(self._pending, end, side="left"))
        hits, self._pending = self._pending[:cut], self._pending[cut:]
        return hits

    def reset(self) -> None:
        pass  # indices handed in stay valid across a gap


@dataclass(frozen=True)
class TriggeredWindows:
    """Windows read at once: ``data[k, pre + post, channels]``, the trigger index of each,
    and whether each overlaps the window before it."""

    data: np.ndarray
    trigger_index: np.ndarray
    overlapping: np.ndarray

    def __len__(self) -> int:
        return len(self.trigger_index)


@dataclass
class TriggerStats:
    """What became of every trigger found (``triggers`` = ``windows`` + ``held_off`` +
    ``missed`` + ``too_early`` + pending), the windows that overlap the one before, and
    samples lost.

    ``missed``: windows that needed samples lost while the reader was behind, or an index
    handed in after its samples were gone; ``too_early``: triggers less than ``pre`` samples
    after the reader's first sample (their windows would begin before it).
    """

    triggers: int = 0
    windows: int = 0
    held_off: int = 0
    overlapping: int = 0
    missed: int = 0
    too_early: int = 0
    lost: int = 0


class TriggeredReader:
    """Cuts windows around triggers out of what ``reader`` reads (it consumes the reader).

    Parameters
    ----------
    reader
        A started cursor on a stream of ``[channels]`` samples (a ring or hub reader).
    trigger
        A :class:`TriggerDetector` (:class:`LevelTrigger`, :func:`digital_edge`,
        :class:`IndexTrigger`, or your own).
    pre, post
        Samples before the trigger sample and from it on (``post >= 1``).
    holdoff
        Samples after a trigger in which further triggers are held off (counted, no window).
    chunk
        Most samples read from the ring at once.
    """

    def __init__(
        self,
        reader: Any,
        trigger: TriggerDetector,
        *,
        pre: int,
        post: int,
        holdoff: int = 0,
        chunk: int = 65536,
    ):
        for key, value, low in (("pre", pre, 0), ("post", post, 1), ("holdoff", holdoff, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{key} is {value!r}: use a whole number >= {low} of samples")
        ring = reader.ring
        channel = getattr(trigger, "channel", None)
        if channel is not None and not channel < ring.sample_shape[0]:
            raise ValueError(
                f"the trigger's channel is {channel}: stream '{ring.name}' has channels 0 to "
                f"{ring.sample_shape[0] - 1}"
            )
        if pre + post > ring.capacity // 2:
            raise ValueError(
                f"pre + post is {pre + post} samples: use at most half the ring's capacity "
                f"({ring.capacity // 2}), the rest is for reading"
            )
        if pre + post + chunk > ring.capacity:
            chunk = max(1, ring.capacity - pre - post)
        self._reader = reader
        self._trigger = trigger
        self.pre, self.post, self.holdoff = int(pre), int(post), int(holdoff)
        self.stats = TriggerStats()
        channels = ring.sample_shape[0]
        self._chunk = int(chunk)
        self._buf = np.empty((self.pre + self.post + self._chunk, channels), ring.dtype)
        self._buf_start = reader.position  # absolute index of buf[0]
        self._held = 0  # samples of history in buf
        self._pending = np.empty(0, np.int64)  # triggers waiting for their post samples
        self._last_trigger: int | None = None  # the last trigger that was not held off
        self._last_window: int | None = None
        self._lost_seen = reader.lost
        self._fresh = 0  # samples of the last piece read, not yet scanned for triggers
        self._origin: int | None = None  # the first sample read: nothing came before it

    @property
    def reader(self) -> Any:
        return self._reader

    @property
    def pending(self) -> int:
        """Triggers found whose windows wait for samples still to come."""
        return len(self._pending)

    def poll(self) -> TriggeredWindows:
        """Read what the stream has now and return the windows it completes (maybe none)."""
        parts: list[TriggeredWindows] = []
        while True:
            got = self._read_piece()
            if got:
                parts.append(self._cut())
            if not got or got < self._chunk:
                break
        return _joined(parts, self.pre + self.post, self._buf.shape[1], self._buf.dtype)

    def read(self, timeout: float | None = None) -> TriggeredWindows:
        """Wait until at least one window is complete (or ``timeout`` s pass, or the stream
        stops) and return those complete; empty if none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ring = self._reader.ring
        while True:
            windows = self.poll()
            if len(windows) or not self._reader.running:
                return windows
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return windows
            ring.wait(lambda: self._reader.available > 0 or not self._reader.running, remaining)

    # -------------------------------------------------------------------------- internals
    def _read_piece(self) -> int:
        """Append up to a chunk of samples after the history; a gap before them is handled
        first (the history ends there)."""
        keep = self._keep_from()
        if keep > 0:  # move the history still needed to the front
            held = self._held
            self._buf[: held - keep] = self._buf[keep:held]
            self._buf_start += keep
            self._held = held - keep
        room = self._buf[self._held : self._held + self._chunk]
        reader = self._reader
        try:
            got = reader.read_available_into(room)
        except StreamOverrunError:  # counted here: the reader goes on after the gap
            self._gap(reader.position)
            room = self._buf[: self._chunk]
            got = reader.read_available_into(room)
        first = reader.position - got
        loss = reader.lost != self._lost_seen
        moved = got > 0 and first != self._buf_start + self._held and not loss
        if loss or moved:
            # an allowed loss before this piece, or the reader moved on by itself (a hub
            # reader's start puts it at the newest sample of a new run): the history ends
            self._gap(first)
            self._buf[:got] = room[:got]
        if got and (moved or self._origin is None):
            self._origin = first  # nothing came before this sample
        self._held += got
        self._fresh = got
        return got

    def _keep_from(self) -> int:
        """How many samples at the front of the history no window needs any more."""
        end = self._buf_start + self._held
        need = end - self.pre  # a trigger at the next sample needs pre samples before it
        if len(self._pending):
            need = min(need, int(self._pending[0]) - self.pre)
        return max(0, min(need - self._buf_start, self._held))

    def _gap(self, resume: int) -> None:
        """Samples up to ``resume`` were lost: windows that needed them are missed."""
        self.stats.lost += self._reader.lost - self._lost_seen
        self._lost_seen = self._reader.lost
        self.stats.missed += len(self._pending)
        self._pending = np.empty(0, np.int64)
        self._trigger.reset()
        self._buf_start = resume
        self._held = 0

    def _cut(self) -> TriggeredWindows:
        start, held = self._buf_start, self._held
        fresh = held - self._fresh  # the samples just read: each is scanned once
        found = self._trigger.find(self._buf[fresh:held], start + fresh)
        found = self._admit(found)
        self._pending = np.concatenate((self._pending, found)) if len(found) else self._pending
        triggers = self._pending
        early = triggers - self.pre < start  # its pre samples are gone (a late index)
        if early.any():
            before_origin = int((triggers[early] - self.pre < (self._origin or 0)).sum())
            self.stats.too_early += before_origin
            self.stats.missed += int(early.sum()) - before_origin
            triggers = triggers[~early]
        complete = triggers + self.post <= start + held
        ready, self._pending = triggers[complete], triggers[~complete]
        return self._windows(ready)

    def _admit(self, found: np.ndarray) -> np.ndarray:
        """Apply the hold-off, count triggers."""
        self.stats.triggers += len(found)
        if not len(found):
            return found
        if self.holdoff == 0:
            self._last_trigger = int(found[-1])
            return found
        kept = []
        last = self._last_trigger
        for t in found.tolist():
            if last is not None and t - last < self.holdoff:
                self.stats.held_off += 1
                continue
            kept.append(t)
            last = t
        self._last_trigger = last
        return np.array(kept, np.int64)

    def _windows(self, ready: np.ndarray) -> TriggeredWindows:
        width = self.pre + self.post
        offsets = ready - self.pre - self._buf_start
        data = self._buf[offsets[:, None] + np.arange(width)] if len(ready) else None
        previous = np.concatenate(
            ([self._last_window if self._last_window is not None else -(2**62)], ready[:-1])
        )
        overlapping = ready - previous < width
        if len(ready):
            self._last_window = int(ready[-1])
        self.stats.windows += len(ready)
        self.stats.overlapping += int(overlapping.sum())
        if data is None:
            data = np.empty((0, width, self._buf.shape[1]), self._buf.dtype)
        return TriggeredWindows(data, ready, overlapping)


def _joined(
    parts: list[TriggeredWindows], width: int, channels: int, dtype: np.dtype
) -> TriggeredWindows:
    parts = [p for p in parts if len(p)]
    if not parts:
        return TriggeredWindows(
            np.empty((0, width, channels), dtype), np.empty(0, np.int64), np.empty(0, bool)
        )
    if len(parts) == 1:
        return parts[0]
    return TriggeredWindows(
        np.concatenate([p.data for p in parts]),
        np.concatenate([p.trigger_index for p in parts]),
        np.concatenate([p.overlapping for p in parts]),
    )
