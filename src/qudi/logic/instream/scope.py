"""Scope: the triggered view's state: windows around each trigger, the newest N kept, averaged.

The time-series logic hands it every chunk it reads (:meth:`Scope.feed`); a
:class:`~qudi.util.instream.triggered.TriggeredReader` on a
:class:`~qudi.logic.instream.chunk_feed.ChunkFeed` cuts the windows (so the stream is read
once), and the scope keeps the newest ``windows`` of them in a preallocated ring
``[N, pre + post, channels]``. Its :meth:`Scope.view` gives the time axis (seconds from the
trigger sample, which sits at index ``pre``), the kept windows per channel (oldest first),
their average and the counts of :class:`~qudi.util.instream.triggered.TriggerStats`:
triggers found, windows delivered, held off, overlapping, missed (torn by lost samples) and
too early (before the run's first ``pre`` samples), plus samples lost.

Sample indices count from the run's first sample (lost samples included), as the trace's x
axis does (``x = index / sample_rate``): a marker at trace x ``x`` triggers at sample
``round(x * sample_rate)`` (:meth:`Scope.add_marker`); with ``source`` ``'event'`` the logic
hands in the sample indices of the events it placed (:meth:`Scope.add_triggers`, see
:mod:`qudi.logic.instream.scope_events`). With markers or events as the source, samples
wait :data:`MARKER_DELAY_S` before they are cut: a marker or an event arrives after the
samples of its time, and its window still needs its ``pre`` samples. ``stats['queued']``
counts indices handed in that no sample has reached yet (they are no trigger yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, NamedTuple

import numpy as np

from qudi.logic.instream.chunk_feed import ChunkFeed
from qudi.logic.instream.scope_settings import window_samples
from qudi.util.instream.raw_scaling import scale_block
from qudi.util.instream.trigger_sources import MarkerTrigger
from qudi.util.instream.triggered import (
    IndexTrigger,
    LevelTrigger,
    TriggeredReader,
    digital_edge,
)

__all__ = ["Scope", "ScopeView", "empty_view"]

_CHUNK = 65536  # most samples the triggered reader takes at once
#: a marker (or an event) reaches the scope after the samples of its time (a frame or so
#: later): with markers or events as the source, samples wait this long before they are cut,
#: so its window is whole
MARKER_DELAY_S = 1.0
_HANDED_IN = ("marker", "event")  # sources whose triggers come as indices from elsewhere


class ScopeView(NamedTuple):
    """``t`` [pre + post] s from the trigger; ``windows`` {channel: [k, pre + post]} oldest
    first; ``average`` {channel: [pre + post]} (empty dict before the first window);
    ``stats`` the counts (see the module docstring) and the settings' ``pre``/``post``."""

    t: np.ndarray
    windows: dict[str, np.ndarray]
    average: dict[str, np.ndarray]
    stats: dict[str, Any]


def empty_view(reason: str = "stopped") -> ScopeView:
    """What a scope that does not run shows: nothing, and why (``stats['state']``)."""
    return ScopeView(np.empty(0), {}, {}, {"state": reason})


class _Marker(NamedTuple):
    sample_index: int
    text: str


class Scope:
    """Windows of ``channels`` around the triggers that ``settings`` describe.

    Parameters
    ----------
    settings : mapping
        Checked scope settings (see ``scope_settings``).
    channels : sequence of str
        The channels of the chunks, in their order.
    sample_rate : float
        Samples per second (for seconds in the settings and the time axis).
    name : str
        Named in messages.
    raw_scaling : list or None
        Each channel's polynomial if the chunks are raw codes (the scope shows volts).

    Raises
    ------
    ValueError
        The trigger channel is not among ``channels``.
    """

    def __init__(
        self,
        settings: Mapping[str, Any],
        channels: Sequence[str],
        sample_rate: float,
        name: str = "scope",
        raw_scaling: list | None = None,
    ):
        self.channels = list(channels)
        self.sample_rate = float(sample_rate)
        self.settings = dict(settings)
        pre, post, holdoff = window_samples(settings, self.sample_rate)
        self.pre, self.post, self.holdoff = pre, post, holdoff
        self._scaling = raw_scaling
        self._trigger = self._make_trigger(settings)
        width = pre + post
        self._feed = ChunkFeed(name, len(self.channels), max(2 * width, width + _CHUNK))
        self._reader = TriggeredReader(
            self._feed, self._trigger, pre=pre, post=post, holdoff=holdoff, chunk=_CHUNK
        )
        kept = int(settings["windows"])
        self._kept = np.zeros((kept, width, len(self.channels)))
        self._kept_index = np.zeros(kept, np.int64)
        self._count = 0  # windows kept since the start (the ring's write counter)
        self._handed = 0  # indices handed in (markers that matched, events)
        delay = settings["source"] in _HANDED_IN
        self._delay = max(1, round(MARKER_DELAY_S * self.sample_rate)) if delay else 0
        self._held: list[tuple[np.ndarray, int]] = []  # (chunk, lost before it), delayed
        self._held_samples = 0

    def _make_trigger(self, settings: Mapping[str, Any]):
        source = settings["source"]
        if source == "marker":
            return MarkerTrigger(settings["marker_text"] or None)
        if source == "event":
            return IndexTrigger()
        channel = settings["channel"] or self.channels[0]
        if channel not in self.channels:
            raise ValueError(
                f"the scope's trigger channel {channel!r} is not active: active are {self.channels}"
            )
        index = self.channels.index(channel)
        if source == "digital":
            return digital_edge(index, settings["edge"])
        return LevelTrigger(index, settings["level"], settings["edge"], settings["hysteresis"])

    @property
    def trigger_channel(self) -> str | None:
        """The channel that triggers (None for markers and events)."""
        index = getattr(self._trigger, "channel", None)
        return None if index is None else self.channels[index]

    def feed(self, chunk: np.ndarray, lost_before: int = 0) -> int:
        """Hand in the next ``[samples, channels]`` of the stream (after ``lost_before`` lost
        samples); returns how many windows it completed."""
        data = scale_block(chunk, self._scaling) if self._scaling is not None else chunk
        if not self._delay:
            self._feed.push(data, lost_before)
        else:  # markers: what is older than the delay goes on
            self._held.append((np.array(data, dtype=np.float64), lost_before))
            self._held_samples += len(data)
            while self._held and self._held_samples - len(self._held[0][0]) >= self._delay:
                older, lost = self._held.pop(0)
                self._held_samples -= len(older)
                self._feed.push(older, lost)
        windows = self._reader.poll()
        n = len(windows)
        if n:
            kept = len(self._kept)
            take = min(n, kept)  # of many at once, only the newest are kept
            slots = (self._count + n - take + np.arange(take)) % kept
            self._kept[slots] = windows.data[n - take :]
            self._kept_index[slots] = windows.trigger_index[n - take :]
            self._count += n
        return n

    def add_marker(self, sample_index: int, text: str) -> bool:
        """Trigger at ``sample_index`` if this scope triggers on markers and ``text`` matches."""
        if not isinstance(self._trigger, MarkerTrigger):
            return False
        taken = self._trigger.add_marker(_Marker(int(sample_index), str(text)))
        self._handed += int(taken)
        return taken

    def add_triggers(self, sample_indices: np.ndarray) -> int:
        """Trigger at ``sample_indices`` (an event source's, in any order); returns how many
        were taken (none unless this scope's source is ``'event'``)."""
        if self.settings["source"] != "event":
            return 0
        indices = np.asarray(sample_indices, dtype=np.int64).reshape(-1)
        self._trigger.add(indices)
        self._handed += len(indices)
        return len(indices)

    @property
    def stats(self) -> dict[str, Any]:
        """The trigger counts, windows pending and kept, and the window in samples."""
        counts = asdict(self._reader.stats)
        kept = min(self._count, len(self._kept))
        return {
            "state": "running",
            **counts,
            "pending": self._reader.pending,
            "queued": max(0, self._handed - counts["triggers"]) if self._handed else 0,
            "kept": kept,
            "pre": self.pre,
            "post": self.post,
            "holdoff": self.holdoff,
            "trigger_channel": self.trigger_channel,
            "samples": self._feed.position,
        }

    def view(self) -> ScopeView:
        """Copies of the time axis, the kept windows (oldest first), their average, stats."""
        t = (np.arange(self.pre + self.post) - self.pre) / self.sample_rate
        kept = min(self._count, len(self._kept))
        order = (self._count - kept + np.arange(kept)) % len(self._kept)
        data = self._kept[order]  # a copy: [k, width, channels]
        windows = {ch: data[:, :, i] for i, ch in enumerate(self.channels)}
        average = {ch: w.mean(axis=0) for ch, w in windows.items()} if kept else {}
        stats = self.stats
        stats["trigger_index"] = self._kept_index[order].tolist()
        return ScopeView(t, windows, average, stats)
