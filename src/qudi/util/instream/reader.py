"""RingReader: one consumer's cursor on a StreamRing, in this process or another.

A reader owns nothing but its position and counters (a few hundred bytes), so adding a
consumer costs no copy of the stream. Reads copy out of the ring into caller-owned arrays
and are checked against the writer afterwards, so torn data is never returned.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from qudi.util.instream.arrays import (
    check_count,
    check_read_buffers,
    check_timeout,
)
from qudi.util.instream.errors import (
    StreamFaultError,
    StreamOverrunError,
    StreamStoppedError,
    StreamTimeoutError,
    format_count,
)
from qudi.util.instream.stream_format import RingState

if TYPE_CHECKING:
    from qudi.util.instream.ring import StreamRing

__all__ = ["RingReader"]

_INF = float("inf")


class RingReader:
    """A cursor on a :class:`StreamRing` with its own position and loss policy.

    Parameters
    ----------
    ring
        The ring to read (open).
    name
        Names the reader in errors (a non-empty str).
    allow_overwrite
        False (default): if the writer overwrites samples this reader has not read yet, the
        next read raises :class:`StreamOverrunError` with the number lost, then continues
        after the gap. True: the reader skips to the oldest intact sample and only counts the
        loss in :attr:`lost`.
    from_oldest
        Start at the oldest sample the ring still holds instead of the newest.

    Raises
    ------
    TypeError
        For a ``name`` or ``allow_overwrite`` of the wrong kind.
    StreamStoppedError
        If ``ring`` is closed.
    """

    __slots__ = (
        "_ring",
        "name",
        "allow_overwrite",
        "_position",
        "_lost",
        "_closed",
        "_fault_epoch_seen",
    )

    def __init__(
        self,
        ring: StreamRing,
        *,
        name: str = "reader",
        allow_overwrite: bool = False,
        from_oldest: bool = False,
    ):
        check_reader_options(name, allow_overwrite)
        if ring.closed:
            raise StreamStoppedError(
                f"ring '{ring.name}' is closed; a new reader needs an open ring"
            )
        self._ring = ring
        self.name = name
        self.allow_overwrite = bool(allow_overwrite)
        self._position = ring.oldest_index if from_oldest else ring.write_index
        self._lost = 0
        self._closed = False
        # a fault from before this reader existed is not news to it
        self._fault_epoch_seen = ring.run_epoch if ring.state is RingState.FAULTED else -1

    # ------------------------------------------------------------------------ properties
    @property
    def ring(self) -> StreamRing:
        return self._ring

    @property
    def position(self) -> int:
        """Absolute index of the next sample this reader will read."""
        return self._position

    @property
    def lost(self) -> int:
        """Samples this reader has lost so far because the writer overwrote them unread."""
        return self._lost

    @property
    def running(self) -> bool:
        """True while new samples can reach this reader: it is open, its ring is open and the
        writer is running. (A hub's reader also needs to be started.)"""
        ring = self._ring
        return not self._closed and not ring.closed and ring.state is RingState.RUNNING

    @property
    def available(self) -> int:
        """Unread samples that are still intact in the ring (what a read can return now)."""
        ring = self._ring
        if ring.closed:
            return 0
        return max(0, self._end() - max(self._position, ring.oldest_index))

    @property
    def fill(self) -> float:
        """Unread part of the ring, 0.0 (caught up) to 1.0 (about to lose samples)."""
        return self.available / self._ring.capacity if not self._ring.closed else 0.0

    # ----------------------------------------------------------------------------- reads
    def read_into(
        self,
        out: np.ndarray,
        n: int | None = None,
        *,
        timeout: float | None = None,
        timestamps: np.ndarray | None = None,
    ) -> int:
        """Block until ``n`` samples are available, copy them into ``out`` and consume them.

        Parameters
        ----------
        out
            ``[samples, *sample_shape]`` or flat (sample-major, interleaved), of the ring's
            dtype, C-contiguous and writable.
        n
            Samples to read; default: what fits in ``out``. At most the ring's capacity.
        timeout
            Seconds to wait (finite, >= 0); None waits as long as the stream runs.
        timestamps
            float64 ``[samples]``, receives the samples' timestamps (timestamped rings only).

        Returns
        -------
        int
            ``n``.

        Raises
        ------
        TypeError, ValueError
            For buffers, counts or timeouts that are refused; nothing is consumed.
        StreamTimeoutError
            If the samples did not arrive in time; nothing is consumed.
        StreamStoppedError
            When the stream or this reader stops with fewer than ``n`` samples left, or the
            reader is closed.
        StreamFaultError
            Once after the writer failed.
        StreamOverrunError
            When samples were lost and overwriting is not allowed.
        """
        samples, stamps, room = self._checked_buffers(out, timestamps)
        n = room if n is None else check_count(n, room, "n", "the room in the output buffers")
        if n > self._ring.capacity:
            raise ValueError(f"n={n} is more than the ring holds ({self._ring.capacity} samples)")
        if timeout is not None and not (type(timeout) is float and 0.0 <= timeout < _INF):
            timeout = check_timeout(timeout)  # the common float is checked inline: hot path
        if n == 0:
            return 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._wait_for(n, deadline, timeout)
            if self._copy(samples, stamps, n):
                return n

    def read_available_into(self, out: np.ndarray, *, timestamps: np.ndarray | None = None) -> int:
        """Copy the unread samples that are available and fit; never blocks.

        Parameters
        ----------
        out, timestamps
            As for :meth:`read_into`.

        Returns
        -------
        int
            How many samples were copied (and consumed).

        Raises
        ------
        StreamStoppedError, StreamFaultError, StreamOverrunError
            As for :meth:`read_into`.
        """
        samples, stamps, room = self._checked_buffers(out, timestamps)
        self._raise_pending_fault()
        self._require_open_ring()
        while True:
            self._skip_lost_samples()
            count = min(self._end() - self._position, room)
            if count <= 0 or self._copy(samples, stamps, count):
                return max(count, 0)

    def latest(
        self, n: int, *, with_timestamps: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The newest ``n`` samples (fewer if fewer were written), without consuming anything.

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            A new ``[k, *sample_shape]`` array, ``k <= n``; ``(data, timestamps)`` with
            ``with_timestamps=True``.

        Raises
        ------
        TypeError, ValueError
            For an ``n`` that is not a count up to the ring's capacity, or timestamps asked of
            a stream without them.
        StreamStoppedError
            If the ring or this reader is closed.
        """
        ring = self._ring
        n = check_count(n, ring.capacity, "n", "the ring's capacity")
        if with_timestamps and not ring.has_timestamps:
            raise ValueError("this stream carries no timestamps")
        self._require_open_ring()
        while True:
            write = ring.write_index
            start = max(write - n, ring.oldest_index)
            data = np.empty((write - start, *ring.sample_shape), ring.dtype)
            stamps = np.empty(write - start) if with_timestamps else None
            ring.copy_out(start, write - start, data, stamps)
            if start >= ring.oldest_index:  # otherwise overwritten while copying: take again
                return (data, stamps) if with_timestamps else data

    def close(self) -> None:
        """Stop using the ring: later reads, and one blocked in another thread, raise
        :class:`StreamStoppedError`.
        """
        self._closed = True
        self._ring.wake_waiters()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} '{self.name}' at {self._position}, "
            f"available {self.available}, lost {self._lost}>"
        )

    # ------------------------------------------------------------- hooks for subclasses
    def _end(self) -> int:
        """Index after the last sample this reader may read (the ring's write index)."""
        return self._ring.write_index

    def _stop_reason(self) -> str | None:
        """Why no more data will come for this reader, or None while it can."""
        if self._closed:
            return f"reader '{self.name}' is closed"
        state = self._ring.state if not self._ring.closed else RingState.CLOSED
        if state is RingState.RUNNING:
            return None
        if state is RingState.FAULTED:
            return f"the stream stopped after a fault ({self._ring.fault_message})"
        return f"the stream is {state.name.lower()}"

    def _pending_fault(self) -> tuple[str, BaseException | None] | None:
        """A writer fault this reader has not been told about yet (reported once)."""
        ring = self._ring
        if ring.closed or ring.state is not RingState.FAULTED:
            return None
        if ring.run_epoch == self._fault_epoch_seen:
            return None
        self._fault_epoch_seen = ring.run_epoch
        return ring.fault_message, ring.fault_exception

    # -------------------------------------------------------------------------- internals
    def _checked_buffers(self, out, timestamps):
        ring = self._ring
        return check_read_buffers(
            out, timestamps, ring.sample_shape, ring.dtype, ring.has_timestamps
        )

    def _raise_pending_fault(self) -> None:
        if self._closed:  # a closed reader is told that, not news of the stream
            return
        fault = self._pending_fault()
        if fault is not None:
            message, cause = fault
            raise StreamFaultError(
                f"reader '{self.name}': the stream's source failed: {message}"
            ) from cause

    def _require_open_ring(self) -> None:
        if self._ring.closed:
            raise StreamStoppedError(f"reader '{self.name}': the stream was closed")
        if self._closed:
            raise StreamStoppedError(f"reader '{self.name}' is closed")

    def _wait_for(self, n: int, deadline: float | None, timeout: float | None) -> None:
        """Return once ``n`` samples are unread; raise if that cannot or did not happen in time."""
        ring = self._ring

        def ready() -> bool:
            return (
                ring.closed or self._end() - self._position >= n or self._stop_reason() is not None
            )

        self._raise_pending_fault()
        self._require_open_ring()
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ring.wait(ready, remaining)
        self._raise_pending_fault()
        self._require_open_ring()
        unread = self._end() - self._position
        if unread >= n:
            return
        reason = self._stop_reason()
        if reason is not None:
            raise StreamStoppedError(
                f"reader '{self.name}': {reason}; {format_count(max(unread, 0))} of "
                f"{format_count(n)} requested samples are left"
            )
        raise StreamTimeoutError(
            f"reader '{self.name}': {format_count(n)} samples did not arrive within {timeout} s "
            f"({format_count(unread)} available); nothing was consumed"
        )

    def _skip_lost_samples(self) -> None:
        oldest = self._ring.oldest_index
        if self._position < oldest:
            self._skip_to(oldest)

    def _skip_to(self, oldest: int) -> None:
        gap_start, lost = self._position, oldest - self._position
        self._lost += lost
        self._position = oldest
        if not self.allow_overwrite:
            raise StreamOverrunError(self.name, lost, gap_start, oldest)

    def _copy(self, samples: np.ndarray, stamps: np.ndarray | None, count: int) -> bool:
        """Copy ``count`` samples and consume them; False if a gap was skipped (read again)."""
        self._skip_lost_samples()
        if self._end() - self._position < count:
            return False  # skipping a gap left fewer samples than asked for: wait again
        self._ring.copy_out(self._position, count, samples, stamps)
        oldest = self._ring.oldest_index
        if self._position < oldest:  # the writer overtook us while we copied
            self._skip_to(oldest)
            return False
        self._position += count
        return True


def check_reader_options(name: object, allow_overwrite: object) -> None:
    """Refuse a reader name that is not a non-empty str and an allow_overwrite not a bool."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a reader's name must be a non-empty str, got {name!r}")
    if not isinstance(allow_overwrite, (bool, np.bool_)):
        raise TypeError(f"allow_overwrite must be True or False, got {allow_overwrite!r}")
