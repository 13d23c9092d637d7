"""The gaps of a received stream: indices of a receiver's local ring whose samples never came.

A receiver that learns that samples were lost on the way (ZeroMQ dropped them, or the
publisher fell behind) logs a gap *before* its ring's writer skips over those indices, so that
a reader never takes the slots of a gap for samples. The reader passes gaps as it reads, and
counts what they held as lost. :class:`GapLog` keeps the gaps still ahead of the reader in
index order with running totals, so the samples missing between two indices cost O(log gaps)
to count, however many gaps there are.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from typing import NamedTuple

__all__ = ["Gap", "GapLog"]

_COMPACT_AFTER = 4096  # passed gaps kept at the head of the lists before they are dropped


class Gap(NamedTuple):
    """Samples that never reached this subscriber (dropped by ZeroMQ or by the publisher)."""

    local_index: int  # where the gap sits in this subscriber's positions
    lost: int  # how many samples are missing
    remote_index: int  # the publisher's index of the first missing sample


class GapLog:
    """The gaps ahead of a reader (``[start, end)`` in local indices), and a history of all.

    Thread-safe: one receiver thread adds gaps, one reader passes them.

    Parameters
    ----------
    history
        How many of the latest gaps :attr:`history` keeps.
    """

    def __init__(self, history: int = 10_000):
        self._lock = threading.Lock()
        # pending gaps from _head on, sorted and disjoint; _before[i]: samples in gaps < i
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._before: list[int] = [0]
        self._head = 0
        self.history: deque[Gap] = deque(maxlen=history)
        self.count = 0  # gaps ever logged
        self.missed = 0  # samples in them
        self.last_end = 0  # where the newest gap ends: samples from here on came in one piece

    # ---------------------------------------------------------------- the receiver's side
    def add(self, start: int, end: int, remote_start: int, oldest: int) -> None:
        """Log the gap ``[start, end)`` (local indices; ``remote_start`` is the publisher's
        index of ``start``); forget the gaps the ring has moved past (before ``oldest``):
        a reader that far behind loses them as part of its overrun anyway."""
        with self._lock:
            while self._head < len(self._starts) and self._ends[self._head] <= oldest:
                self._head += 1
            self._compact()
            self._starts.append(start)
            self._ends.append(end)
            self._before.append(self._before[-1] + end - start)
            self.history.append(Gap(start, end - start, remote_start))
            self.count += 1
            self.missed += end - start
            self.last_end = end

    def withdraw_last(self) -> None:
        """Take back the newest gap (its writer could not skip it after all)."""
        with self._lock:
            if len(self._starts) > self._head:
                start, end = self._starts.pop(), self._ends.pop()
                self._before.pop()
                self.history.pop()
                self.count -= 1
                self.missed -= end - start

    # ------------------------------------------------------------------ the reader's side
    def first_start(self) -> int | None:
        """Where the first gap ahead begins, None if there is none."""
        with self._lock:
            return self._starts[self._head] if self._head < len(self._starts) else None

    def missing(self, start: int, end: int) -> int:
        """Samples in gaps between the indices ``start`` and ``end``."""
        if end <= start:
            return 0
        with self._lock:
            first = bisect.bisect_right(self._ends, start, self._head)
            last = bisect.bisect_left(self._starts, end, first)
            if first >= last:
                return 0
            total = self._before[last] - self._before[first]
            total -= max(0, start - self._starts[first])  # of the first gap, what is before
            total -= max(0, self._ends[last - 1] - end)  # of the last gap, what is after
            return total

    def ahead(self, start: int, end: int) -> list[tuple[int, int]]:
        """The gaps that begin before ``end``, in order (those ahead of a reader at ``start``
        and those it is in)."""
        with self._lock:
            last = bisect.bisect_left(self._starts, end, self._head)
            first = bisect.bisect_right(self._ends, start, self._head)
            return list(zip(self._starts[first:last], self._ends[first:last], strict=True))

    def drop(self, count: int) -> None:
        """Drop the first ``count`` gaps ahead (a reader read across them)."""
        with self._lock:
            self._head = min(self._head + count, len(self._starts))

    def pass_through(self, position: int) -> int:
        """Drop the gaps that begin at or before ``position`` (or before the end of one so
        dropped); returns where the reader resumes (``position``, or a gap's end)."""
        with self._lock:
            while self._head < len(self._starts) and self._starts[self._head] <= position:
                position = max(position, self._ends[self._head])
                self._head += 1
            return position

    def _compact(self) -> None:
        """Drop passed gaps from the lists once they are many (amortised O(1) per gap)."""
        head = self._head
        if head < _COMPACT_AFTER or 2 * head < len(self._starts):
            return
        base = self._before[head]
        del self._starts[:head], self._ends[:head]
        self._before = [before - base for before in self._before[head:]]
        self._head = 0

    def __len__(self) -> int:
        """Gaps still ahead of the reader."""
        with self._lock:
            return len(self._starts) - self._head
