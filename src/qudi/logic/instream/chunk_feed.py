"""ChunkFeed: chunks handed in by their owner, read back as a ring reader reads a stream.

The time-series logic already reads its stream once per frame; the triggered view cuts its
windows out of those same chunks instead of opening a second reader. A
:class:`~qudi.util.instream.triggered.TriggeredReader` consumes a reader (``ring``,
``position``, ``lost``, ``running``, ``read_available_into``): this is one, fed with
:meth:`ChunkFeed.push`. Samples the owner knows it lost (a buffer that skipped ahead) are
pushed as a gap, so the triggered reader counts the windows they tear as missed and the
sample indices stay those of the stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["ChunkFeed", "FeedRing"]


@dataclass(frozen=True)
class FeedRing:
    """What a triggered reader asks of a reader's ring: the sample's shape and dtype, a
    capacity (the longest window it may cut is half of it) and a name for messages."""

    name: str
    sample_shape: tuple[int, ...]
    dtype: np.dtype
    capacity: int

    def wait(self, predicate, timeout: float | None = None) -> bool:
        """Nothing arrives while a caller waits (the owner pushes from the same thread)."""
        return bool(predicate())


class ChunkFeed:
    """A reader of the chunks ``[samples, channels]`` its owner pushes (float64).

    Parameters
    ----------
    name : str
        Named in messages (the logic's module name).
    channels : int
        Channels per sample.
    capacity : int
        Samples a triggered reader may treat as the ring's size (its windows are at most half).
    """

    def __init__(self, name: str, channels: int, capacity: int):
        self.ring = FeedRing(str(name), (int(channels),), np.dtype(np.float64), int(capacity))
        self._chunks: deque[np.ndarray] = deque()
        self._gaps: deque[int] = deque()  # samples lost before the chunk of the same place
        self._offset = 0  # rows of the first chunk already read
        self._position = 0
        self._lost = 0
        # samples come only by push, from the owner's thread, never while a reader waits: a
        # triggered reader's blocking read returns at once with what is complete
        self.running = False

    @property
    def position(self) -> int:
        """Index of the next sample to read (samples since the feed began, lost ones too)."""
        return self._position

    @property
    def lost(self) -> int:
        """Samples lost so far (pushed as gaps and reached by reading)."""
        return self._lost

    @property
    def available(self) -> int:
        return sum(len(c) for c in self._chunks) - self._offset

    def push(self, chunk: np.ndarray, lost_before: int = 0) -> None:
        """Queue ``chunk`` (copied as float64), after ``lost_before`` samples that were lost."""
        if lost_before < 0:
            raise ValueError(f"lost_before is {lost_before!r}: use a count >= 0")
        data = np.asarray(chunk, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.ring.sample_shape[0]:
            raise ValueError(
                f"a chunk of shape {data.shape} does not fit {self.ring.sample_shape[0]} channels"
            )
        if not len(data) and not lost_before:
            return
        self._chunks.append(data)  # an empty chunk keeps its gap for what comes next
        self._gaps.append(int(lost_before))

    def read_available_into(self, out: np.ndarray) -> int:
        """Copy queued samples into ``out`` (at most ``len(out)``); a gap ends a read, so the
        samples after it start the next one (the reader sees the loss with them)."""
        got = 0
        while self._chunks and got < len(out):
            if self._offset == 0 and self._gaps[0]:
                if got:  # the gap comes after what this read returns
                    break
                self._lost += self._gaps[0]
                self._position += self._gaps[0]
                self._gaps[0] = 0
            chunk = self._chunks[0]
            take = min(len(chunk) - self._offset, len(out) - got)
            out[got : got + take] = chunk[self._offset : self._offset + take]
            got += take
            self._offset += take
            self._position += take
            if self._offset == len(chunk):
                self._chunks.popleft()
                self._gaps.popleft()
                self._offset = 0
        return got
