"""StreamSubscriber: a reader of a published stream, with the API of a ring reader, across gaps.

It starts a :class:`~qudi.util.instream.transport.receiver.StreamReceiver`, waits for the
publisher's description (which builds the local ring), and is then a
:class:`~qudi.util.instream.reader.RingReader` of that ring. What it adds to a ring reader is
the gaps: samples that never arrived, logged by the receiver, which a read reports (or skips
and counts) like samples the writer overwrote. It does so through the reader's hooks, so its
reads are the ring reader's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qudi.util.instream.reader import RingReader, check_reader_options
from qudi.util.instream.transport.curve import ClientKeys
from qudi.util.instream.transport.gaps import Gap
from qudi.util.instream.transport.receiver import DEFAULT_MAX_RING_BYTES, StreamReceiver

__all__ = ["StreamSubscriber", "SubscriberStats"]


@dataclass(frozen=True)
class SubscriberStats:
    """A snapshot of a subscriber's counters."""

    endpoint: str
    samples_received: int
    messages_received: int
    gaps: int
    samples_missed: int  # in gaps (not yet necessarily read past)
    rejected: int  # malformed or foreign messages
    resyncs: int  # publisher restarts / new stream descriptions followed
    lost: int  # samples this reader lost: gaps read past plus local overruns
    available: int


class StreamSubscriber(RingReader):
    """Receive a published stream into a private local ring and read it like a ring reader.

    Blocks until the publisher's description arrives (``timeout`` seconds), then a thread
    ``instream-subscriber-<name>`` refills the local ring. Reads, ``available``, ``position``,
    ``lost``, ``latest`` behave as for :class:`RingReader`; positions are the publisher's
    sample indices until the publisher restarts (then they continue without a jump).

    Samples lost on the way (ZeroMQ dropped them, or the publisher fell behind) form a *gap*:
    with ``allow_overwrite=False`` a read stops at the gap, delivers the samples before it and
    raises :class:`StreamOverrunError` (``.lost``, ``.gap_start``, ``.resume_position``, and
    ``.delivered`` samples written into ``out`` before the gap); the next read continues after
    it. With ``allow_overwrite=True`` reads go across gaps and :attr:`lost` counts them.

    Parameters
    ----------
    endpoint
        The publisher's address (its ``endpoint``), e.g. ``tcp://daq-pc.lab:5555``.
    name, allow_overwrite
        As for :class:`RingReader`.
    capacity
        Samples of the local ring; default: the publisher's ring or ``seconds`` of data at the
        stream's rate, whichever is larger (up to ``max_ring_bytes``).
    seconds
        See ``capacity``.
    receive_hwm
        Messages ZeroMQ queues here before it drops them (a drop shows as a gap).
    timeout
        Seconds to wait for the publisher's description.
    silence_timeout
        Seconds without a message after which the stream counts as stopped.
    max_ring_bytes
        The most memory the local ring may take (default 512 MiB): a ``capacity`` that needs
        more is refused, a default that needs more is clipped (and logged).
    max_message_bytes
        ZeroMQ refuses bigger frames from the publisher (default: 64 MiB or
        ``max_ring_bytes``, whichever is less, at least 1 MiB).
    keys
        CURVE keys (:class:`~qudi.util.instream.transport.curve.ClientKeys`): this
        subscriber's key pair and the publisher's public key; None for a plain publisher.

    Raises
    ------
    ValueError, TypeError
        For an option out of range or of the wrong type (nothing is started).
    StreamTimeoutError
        If no description arrived in time (saying what arrived instead, if anything did, or
        why the publisher refused the connection).
    StreamFormatError, StreamCapacityError
        If the stream cannot be followed here (a format refused, a ring beyond
        ``max_ring_bytes``).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        name: str = "subscriber",
        allow_overwrite: bool = False,
        capacity: int | None = None,
        seconds: float = 2.0,
        receive_hwm: int = 1000,
        timeout: float = 5.0,
        silence_timeout: float = 5.0,
        max_ring_bytes: int = DEFAULT_MAX_RING_BYTES,
        max_message_bytes: int | None = None,
        keys: ClientKeys | None = None,
    ):
        check_reader_options(name, allow_overwrite)  # before a thread or socket exists
        receiver = StreamReceiver(
            endpoint,
            name=name,
            capacity=capacity,
            seconds=seconds,
            receive_hwm=receive_hwm,
            silence_timeout=silence_timeout,
            max_ring_bytes=max_ring_bytes,
            max_message_bytes=max_message_bytes,
            keys=keys,
        )
        receiver.wait_described(timeout)  # closes the receiver if it raises
        try:
            super().__init__(receiver.ring, name=name, allow_overwrite=allow_overwrite)
        except BaseException:
            receiver.close()
            raise
        self._receiver = receiver
        self._gaps = receiver.gaps
        self._position = receiver.start_index  # samples received meanwhile are ours too

    # ------------------------------------------------------------------------- public API
    @property
    def endpoint(self) -> str:
        return self._receiver.endpoint

    @property
    def receiver(self) -> StreamReceiver:
        """The receive side: socket, thread, decoding and the gap log."""
        return self._receiver

    @property
    def description(self) -> dict[str, Any]:
        """The publisher's description of the stream (JSON values, see
        :meth:`~qudi.util.instream.ring.StreamRing.description`)."""
        return self._receiver.description

    @property
    def gaps(self) -> tuple[Gap, ...]:
        """Every gap detected so far (the last 10 000), oldest first."""
        return tuple(self._gaps.history)

    @property
    def rejected(self) -> int:
        """Messages rejected as malformed or not of this stream (logged: the first ten, then
        every thousandth)."""
        return self._receiver.rejected

    def stats(self) -> SubscriberStats:
        """The subscriber's counters now."""
        receiver = self._receiver
        return SubscriberStats(
            receiver.endpoint,
            receiver.received,
            receiver.messages,
            self._gaps.count,
            self._gaps.missed,
            receiver.rejected,
            receiver.resyncs,
            self._lost,
            self.available,
        )

    def close(self) -> None:
        """Stop the receive thread, close the socket and context, end blocked reads."""
        super().close()
        self._receiver.close()

    def __enter__(self) -> StreamSubscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------- hooks of RingReader
    def _missing(self, start: int, end: int) -> int:
        """The samples of gaps between the two indices (O(log gaps))."""
        return self._gaps.missing(start, end)

    def _first_kept(self) -> int:
        """:meth:`latest` returns only samples received since the last gap."""
        return max(self._ring.oldest_index, self._gaps.last_end, self._receiver.start_index)

    def _origin(self) -> str:
        return f" from {self._receiver.endpoint}"

    def _readable(self, n: int) -> bool:
        """``n`` samples outside gaps are there; or, if overwriting is not allowed, a gap or
        an overrun ahead is there to report."""
        ring = self._ring
        write = ring.write_index
        oldest = ring.oldest_index
        if not self.allow_overwrite:
            gap = self._gaps.first_start()
            return (
                (gap is not None and gap < write)
                or self._position < oldest
                or (write - self._position >= n)
            )
        start = max(self._position, oldest)
        return write - start - self._missing(start, write) >= n

    def _settle(self, delivered: int = 0) -> bool:
        """Move past a gap at the position and past local overruns: count, or raise."""
        target = self._gaps.pass_through(max(self._position, self._ring.oldest_index))
        if target <= self._position:
            return False
        self._pass_loss(target, delivered)
        return True

    def _copy(self, samples: np.ndarray, stamps: np.ndarray | None, n: int) -> int | None:
        """Copy up to ``n`` samples from the position; across gaps only if overwrite is
        allowed (counting them as lost), else up to the next gap."""
        ring = self._ring
        write = ring.write_index  # before the gaps: a gap is logged before the writer skips it
        start = position = self._position
        gaps = self._gaps.ahead(position, write)
        done = crossed = index = 0
        while done < n:
            if index < len(gaps) and gaps[index][0] <= position:
                if not self.allow_overwrite:
                    break
                crossed += gaps[index][1] - position
                position = gaps[index][1]
                index += 1
                continue
            end = min(gaps[index][0], write) if index < len(gaps) else write
            count = min(n - done, end - position)
            if count <= 0:
                break
            ring.copy_out(
                position, count, samples[done:], None if stamps is None else stamps[done:]
            )
            done += count
            position += count
        if start < ring.oldest_index:
            return None  # the local writer overtook the copy: nothing consumed
        self._gaps.drop(index)
        self._lost += crossed
        self._position = position
        return done
