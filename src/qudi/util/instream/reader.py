"""RingReader: one consumer's cursor on a StreamRing, in this process or another.

A reader owns nothing but its position and counters (a few hundred bytes), so adding a
consumer costs no copy of the stream. Reads copy out of the ring into caller-owned arrays
and are checked against the writer afterwards, so torn data is never returned.

The reads are written once, over a few hooks that a reader with more to say about its
samples overrides (:class:`~qudi.util.instream.hub.HubReader` ends a run where the next one
began; :class:`~qudi.util.instream.transport.subscriber.StreamSubscriber` knows of gaps):
:meth:`RingReader._readable`, :meth:`RingReader._copy`, :meth:`RingReader._settle`,
:meth:`RingReader._end`, :meth:`RingReader._missing` and :meth:`RingReader._first_kept`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

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
from qudi.util.instream.stream_clock import StreamClock
from qudi.util.instream.stream_format import RingState

if TYPE_CHECKING:
    from qudi.util.instream.ring import StreamRing

__all__ = ["RingReader", "blocking_read_limit", "check_reader_options", "overrun_error"]

_INF = float("inf")


def blocking_read_limit(capacity: int) -> int:
    """The most samples a blocking read may wait for in a ring of ``capacity`` samples:
    fifteen sixteenths of it.

    While a read waits, its writer goes on: it publishes samples a poll's worth at a time and
    claims the slots of the next ones before it fills them (claimed slots count as
    overwritten). A read that waits for the whole ring finds its oldest samples overwritten
    when the last arrive, every time; the sixteenth left over is the writer's room.
    """
    return max(1, capacity - capacity // 16)


def overrun_error(
    reader_name: str, lost: int, gap_start: int, resume_position: int, delivered: int = 0
) -> StreamOverrunError:
    """A :class:`StreamOverrunError` that also says how many samples the read that raised it
    had already written into its output (``.delivered``, before the gap)."""
    error = StreamOverrunError(reader_name, lost, gap_start, resume_position)
    setattr(error, "delivered", delivered)  # noqa: B010 (not a field of the class yet)
    return error


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
        "_clock",
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
        self._clock: StreamClock | None = None

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
        end = self._end()
        start = max(self._position, ring.oldest_index)
        return max(0, end - start - self._missing(start, end))

    @property
    def fill(self) -> float:
        """Unread part of the ring, 0.0 (caught up) to 1.0 (about to lose samples)."""
        return self.available / self._ring.capacity if not self._ring.closed else 0.0

    # ------------------------------------------------------------------------------ time
    @property
    def clock(self) -> StreamClock:
        """The time base of this reader's stream: ``clock.time_of(i)``,
        ``clock.indices_between(t0, t1)`` (a :class:`StreamClock`; ValueError without a
        time table). It follows a replaced ring."""
        if self._clock is None or self._clock.ring is not self._ring:
            self._clock = StreamClock(self._ring)
        return self._clock

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
            Samples to read; default: what fits in ``out``. At most the ring's capacity, and a
            read that has to wait may wait for at most 15/16 of it (see
            :func:`blocking_read_limit`): read larger blocks in a loop.
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
            For buffers, counts or timeouts that are refused, and for a read that could only
            ever overrun (more than the ring keeps while it waits); nothing is consumed.
        StreamTimeoutError
            If the samples did not arrive in time; nothing is consumed.
        StreamStoppedError
            When the stream or this reader stops with fewer than ``n`` samples left, or the
            reader is closed.
        StreamFaultError
            Once after the writer failed.
        StreamOverrunError
            When samples were lost and overwriting is not allowed (``.delivered`` samples
            before the loss were written into ``out`` and consumed).
        """
        samples, stamps, room = self._checked_buffers(out, timestamps)
        n = room if n is None else check_count(n, room, "n", "the room in the output buffers")
        if timeout is not None and not (type(timeout) is float and 0.0 <= timeout < _INF):
            timeout = check_timeout(timeout)  # the common float is checked inline: hot path
        self._check_wait(n)
        if n == 0:
            return 0
        deadline = None if timeout is None else time.monotonic() + timeout
        done = 0
        while True:
            self._wait_for(n - done, deadline, timeout)
            if self._settle(done) and not self._readable(n - done):
                continue  # settling skipped lost samples: fewer are left than asked for
            if done:
                got = self._copy(
                    samples[done:], None if stamps is None else stamps[done:], n - done
                )
            else:
                got = self._copy(samples, stamps, n)
            if got is None:  # the writer overtook the copy: nothing consumed
                self._settle(done)
                continue
            done += got
            if done == n:
                return n
            self._settle(done)  # a loss stopped the copy short: reported with what came before

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
        overtaken = 0
        while True:
            self._settle()
            got = self._copy(samples, stamps, room)
            if got is not None:
                return got
            # Overtaken while copying from the ring's oldest end: a reader that may lose
            # samples starts again nearer the newest, half as far back each time, so a
            # writer faster than a whole-ring copy cannot keep it retrying for ever.
            overtaken += 1
            self._skip_to_newest(self._ring.capacity >> overtaken)

    def latest(self, n: int, *, with_timestamps: bool = False) -> Any:
        """The newest ``n`` samples (fewer if fewer were written, or if the writer overwrote the
        oldest of them while they were copied), without consuming anything.

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
            start = min(max(write - n, self._first_kept()), write)
            data = np.empty((write - start, *ring.sample_shape), ring.dtype)
            stamps = np.empty(write - start) if with_timestamps else None
            ring.copy_out(start, write - start, data, stamps)
            if start >= ring.oldest_index:  # otherwise overwritten while copying: take again,
                return (data, stamps) if with_timestamps else data
            n = max(1, n // 2)  # fewer, so that a writer faster than the copy cannot win always

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

    def _missing(self, start: int, end: int) -> int:
        """Indices between ``start`` and ``end`` that hold no sample (none in a plain ring)."""
        return 0

    def _first_kept(self) -> int:
        """The oldest index :meth:`latest` may return (the oldest intact sample)."""
        return self._ring.oldest_index

    def _readable(self, n: int) -> bool:
        """Whether a read of ``n`` samples can go ahead now: they are there (or, for a reader
        that knows of gaps, a loss ahead is there to report)."""
        return self._end() - self._position >= n

    def _copy(self, samples: np.ndarray, stamps: np.ndarray | None, n: int) -> int | None:
        """Copy up to ``n`` samples from the position into ``samples`` and consume them.

        Returns
        -------
        int or None
            How many were consumed: fewer than ``n`` only if fewer are there, or (a reader
            that knows of gaps) at a loss that :meth:`_settle` reports next. None if the
            writer overtook the copy: nothing was consumed.
        """
        position = self._position
        count = min(n, self._end() - position)
        if count <= 0:
            return 0
        self._ring.copy_out(position, count, samples, stamps)
        if position < self._ring.oldest_index:  # the writer overtook us while we copied
            return None
        self._position = position + count
        return count

    def _settle(self, delivered: int = 0) -> bool:
        """Move past samples lost at the position: count them, and raise
        :class:`StreamOverrunError` (``delivered`` is what the current read got before them)
        unless overwriting is allowed. Returns whether the position moved."""
        oldest = self._ring.oldest_index
        if self._position >= oldest:
            return False
        self._pass_loss(oldest, delivered)
        return True

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

    def _origin(self) -> str:
        """Where the samples come from, for messages (empty: the ring itself)."""
        return ""

    # -------------------------------------------------------------------------- internals
    def _checked_buffers(self, out, timestamps):
        ring = self._ring
        return check_read_buffers(
            out, timestamps, ring.sample_shape, ring.dtype, ring.has_timestamps
        )

    def _check_wait(self, n: int) -> None:
        """Refuse a blocking read that could only overrun: more than the ring holds, or more
        than it keeps while the read waits (see :func:`blocking_read_limit`)."""
        capacity = self._ring.capacity
        if n > capacity:
            raise ValueError(f"n={n} is more than the ring holds ({capacity} samples)")
        limit = blocking_read_limit(capacity)
        if n <= limit or self.available >= n:
            return
        self._require_open_ring()  # a reader that cannot read at all is told that first
        raise _overlong_wait(self.name, n, capacity)

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
        """Return once a read of ``n`` can go ahead; raise if that cannot or did not happen in
        time."""
        ring = self._ring

        def ready() -> bool:
            return ring.closed or self._readable(n) or self._stop_reason() is not None

        self._raise_pending_fault()
        self._require_open_ring()
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ring.wait(ready, remaining)
        self._raise_pending_fault()
        self._require_open_ring()
        if not self._readable(n):
            have, reason, origin = self.available, self._stop_reason(), self._origin()
            raise _not_ready(self.name, n, have, reason, origin, timeout)

    def _skip_to_newest(self, keep: int) -> None:
        """Lose what lies before the newest ``keep`` samples (a strict reader raises instead)."""
        resume = self._end() - max(1, keep)
        if self.allow_overwrite and self._position < resume:
            self._pass_loss(resume)

    def _pass_loss(self, resume: int, delivered: int = 0) -> None:
        """Count the samples from the position up to ``resume`` as lost and move there; raise
        unless overwriting is allowed."""
        gap_start, lost = self._position, resume - self._position
        self._lost += lost
        self._position = resume
        if not self.allow_overwrite:
            raise overrun_error(self.name, lost, gap_start, resume, delivered)


def _not_ready(
    name: str, n: int, have: int, reason: str | None, origin: str, timeout: float | None
) -> StreamStoppedError | StreamTimeoutError:
    """Why a blocking read of ``n`` cannot go ahead: the stream stopped, or time ran out."""
    if reason is not None:
        return StreamStoppedError(
            f"reader '{name}': {reason}; {format_count(have)} of {format_count(n)} requested "
            "samples are left"
        )
    return StreamTimeoutError(
        f"reader '{name}': {format_count(n)} samples did not arrive{origin} within "
        f"{timeout} s ({format_count(have)} available); nothing was consumed"
    )


def _overlong_wait(name: str, n: int, capacity: int) -> ValueError:
    """The refusal of a blocking read that would wait for more than the ring keeps."""
    limit = blocking_read_limit(capacity)
    return ValueError(
        f"reader '{name}': a blocking read of n={format_count(n)} samples would wait for more "
        f"than this stream's ring keeps while it waits (15/16 of its {format_count(capacity)} "
        "samples: the writer needs the rest), so its oldest samples would be overwritten "
        f"before the last arrive: read at most {format_count(limit)} samples per call (in a "
        f"loop), or give the stream a ring of at least {format_count(-(-16 * n // 15))} "
        "samples (channel_buffer_size); nothing was consumed"
    )


def check_reader_options(name: object, allow_overwrite: object) -> None:
    """Refuse a reader name that is not a non-empty str and an allow_overwrite not a bool."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a reader's name must be a non-empty str, got {name!r}")
    if not isinstance(allow_overwrite, (bool, np.bool_)):
        raise TypeError(f"allow_overwrite must be True or False, got {allow_overwrite!r}")
