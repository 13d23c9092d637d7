"""ZeroMQ transport: publish a stream to other hosts, refill a local ring on the receiving side.

:class:`StreamPublisher` reads a stream (a :class:`StreamHub` or a :class:`StreamRing`) through
its own overwrite-allowed reader, so it never holds back the producer, and sends it on a ZeroMQ
PUB socket. :class:`StreamSubscriber` receives it on a SUB socket into a private local ring and
is itself a reader of that ring, with the API and loss policies of :class:`RingReader`.

Wire format (every message is multipart; its first frame is a fixed header, ``HEADER``)::

    magic b"QIZM", version u8, kind u8, flags u16, session u64, generation u32, run epoch u32,
    first u64, count u64                                    (little-endian, 40 bytes)

* ``DATA`` (kind 1): ``[header, samples, timestamps?]``: ``count`` samples whose absolute index
  starts at ``first``, raw C-order bytes of the stream's dtype; flag bit 0 says a float64
  timestamp frame follows. A receiver detects lost samples by the index.
* ``CONTROL`` (kind 2): ``[header, description JSON, fault message]``: ``flags`` is the
  :class:`RingState`, ``first`` the index of the next sample the publisher will send. Sent at
  once when anything changes and every ``heartbeat`` seconds, so a late joiner learns the
  format within a heartbeat and the subscriber can tell a silent publisher from a quiet stream.

``session`` is random per publisher, ``generation`` counts the publisher's rings (a hub builds a
new ring when it is reconfigured): together they say which index space a message belongs to.
Nothing received is ever unpickled or evaluated: a header, raw numbers and JSON.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import struct
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import zmq

from qudi.util.instream.arrays import check_count, check_timeout
from qudi.util.instream.errors import (
    StreamError,
    StreamFormatError,
    StreamOverrunError,
    StreamStoppedError,
    StreamTimeoutError,
    format_count,
)
from qudi.util.instream.hub import StreamHub
from qudi.util.instream.reader import RingReader, check_reader_options
from qudi.util.instream.ring import RingState, StreamRing
from qudi.util.instream.stream_format import parse_description

__all__ = [
    "Gap",
    "PublisherStats",
    "RemoteSourceError",
    "StreamPublisher",
    "StreamSubscriber",
    "SubscriberStats",
    "describe_ring",
    "parse_description",
]

log = logging.getLogger(__name__)

MAGIC = b"QIZM"
VERSION = 1
HEADER = struct.Struct("<4sBBHQIIQQ")
DATA, CONTROL = 1, 2
HAS_TIMESTAMPS = 1

DEFAULT_ADDRESS = "tcp://127.0.0.1:*"
DEFAULT_SEND_HWM = 16  # messages queued per subscriber before PUB drops (x chunk bytes)
DEFAULT_CHUNK_BYTES = 1 << 18  # 256 KiB per data message: far above zmq's copy threshold
DEFAULT_HEARTBEAT_S = 0.25
_JOIN_TIMEOUT_S = 10.0
_POLL_MS = 50  # the receive thread re-checks its stop flag at least this often
_LOG_FIRST_REJECTS = 10  # then every _LOG_EVERY_REJECTS-th, so garbage cannot flood the log
_LOG_EVERY_REJECTS = 1000


class RemoteSourceError(RuntimeError):
    """The source behind a publisher failed; the message is the publisher's."""


class Gap(NamedTuple):
    """Samples that never reached this subscriber (dropped by ZeroMQ or by the publisher)."""

    local_index: int  # where the gap sits in this subscriber's positions
    lost: int  # how many samples are missing
    remote_index: int  # the publisher's index of the first missing sample


@dataclass(frozen=True)
class PublisherStats:
    endpoint: str
    samples_sent: int
    messages_sent: int
    lost: int  # samples the publisher's own reader lost (it was too slow)
    queued_bytes: int  # sample bytes handed to ZeroMQ and not yet released by it
    peak_queued_bytes: int


@dataclass(frozen=True)
class SubscriberStats:
    endpoint: str
    samples_received: int
    messages_received: int
    gaps: int
    samples_missed: int  # in gaps (not yet necessarily read past)
    rejected: int  # malformed or foreign messages
    resyncs: int  # publisher restarts / new stream descriptions followed
    lost: int  # samples this reader lost: gaps read past plus local overruns
    available: int


def _header(kind, flags, session, generation, epoch, first, count) -> bytes:
    return HEADER.pack(MAGIC, VERSION, kind, flags, session, generation, epoch, first, count)


def describe_ring(ring: StreamRing) -> dict[str, Any]:
    """The stream's format and meaning as JSON-ready values (what a subscriber is told); the
    same as :meth:`StreamRing.description`."""
    return ring.description()


def _ring_state(ring: StreamRing) -> RingState:
    return RingState.CLOSED if ring.closed else ring.state


# ====================================================================================== publisher
class StreamPublisher:
    """Publish a stream on a ZeroMQ PUB socket (see the module doc for the messages).

    Parameters
    ----------
    source
        A :class:`StreamHub` (the publisher opens a reader ``name`` on it and starts it, so the
        source runs while it publishes) or a :class:`StreamRing` (e.g. attached by name).
    address
        ZeroMQ address to bind; loopback with a free port by default. Bind another interface
        (``tcp://0.0.0.0:5555``) only on a trusted network: there is no authentication.
    name
        The name of the publisher's reader, and of its thread.
    send_hwm
        Messages ZeroMQ queues per subscriber; beyond that a slow subscriber loses messages
        (and sees the gap) instead of growing this process's memory.
    chunk_samples
        Samples per data message (default: about 256 KiB).
    heartbeat
        Seconds between control messages (description and state) when nothing changes.

    Raises
    ------
    ValueError, TypeError
        For an argument out of range or of the wrong type.
    zmq.ZMQError
        If ``address`` cannot be bound.
    """

    def __init__(
        self,
        source: StreamHub | StreamRing,
        address: str = DEFAULT_ADDRESS,
        *,
        name: str = "publisher",
        send_hwm: int = DEFAULT_SEND_HWM,
        chunk_samples: int | None = None,
        heartbeat: float = DEFAULT_HEARTBEAT_S,
    ):
        if not (isinstance(heartbeat, (int, float)) and 0 < heartbeat <= 60):
            raise ValueError(f"heartbeat must be between 0 and 60 s, got {heartbeat!r}")
        if isinstance(send_hwm, bool) or not isinstance(send_hwm, int) or send_hwm < 1:
            raise ValueError(f"send_hwm must be a positive number of messages, got {send_hwm!r}")
        self.name = name
        if not isinstance(source, (StreamHub, StreamRing)):
            raise TypeError(f"source must be a StreamHub or a StreamRing, got {type(source)}")
        ring = source.ring if isinstance(source, StreamHub) else source
        sample_bytes = math.prod(ring.sample_shape) * ring.dtype.itemsize
        if chunk_samples is None:
            chunk_samples = max(1, DEFAULT_CHUNK_BYTES // sample_bytes)
        if isinstance(chunk_samples, bool) or not isinstance(chunk_samples, int):
            raise TypeError(f"chunk_samples must be an integer, got {chunk_samples!r}")
        if chunk_samples < 1:
            raise ValueError(f"chunk_samples must be positive, got {chunk_samples}")
        self._hub = source if isinstance(source, StreamHub) else None
        if self._hub is not None:
            self._reader: RingReader = self._hub.open_reader(name, allow_overwrite=True)
        else:
            self._reader = source.reader(name, allow_overwrite=True)
        self._chunk_samples = chunk_samples
        # sample bytes zmq may hold zero-copy before sends fall back to copying
        self._queue_limit = 2 * max(send_hwm, 2) * chunk_samples * (sample_bytes + 8)
        self._spare: tuple[np.ndarray, np.ndarray] | None = None
        self._heartbeat = float(heartbeat)
        self._session = int.from_bytes(os.urandom(8), "little")
        self._generation = 0
        self._sent_samples = self._sent_messages = 0
        self._queued = self._peak_queued = 0
        self._queue_lock = threading.Lock()
        self._stop = threading.Event()
        self._context = zmq.Context()
        try:
            self._socket = self._context.socket(zmq.PUB)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.SNDHWM, send_hwm)
            self._socket.bind(address)
            self._endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
            if self._hub is not None:
                self._reader.start()
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"instream-publisher-{name}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------------- public API
    @property
    def endpoint(self) -> str:
        """The bound address with the actual port, e.g. ``tcp://127.0.0.1:40123``."""
        return self._endpoint

    @property
    def lost(self) -> int:
        """Samples the publisher's reader lost because it fell a whole ring behind."""
        return self._reader.lost

    @property
    def queued_bytes(self) -> int:
        """Sample bytes handed to ZeroMQ that it has not released yet (bounded by the HWM)."""
        return self._queued

    def stats(self) -> PublisherStats:
        return PublisherStats(
            self._endpoint,
            self._sent_samples,
            self._sent_messages,
            self._reader.lost,
            self._queued,
            self._peak_queued,
        )

    def close(self) -> None:
        """Stop the thread, leave the hub (the source stops if nobody else reads) and unbind."""
        if self._stop.is_set():
            return
        self._stop.set()
        ring = self._reader.ring
        if not ring.closed:
            ring.wake_waiters()
        self._thread.join(_JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            raise StreamError(f"{self._thread.name} did not stop within {_JOIN_TIMEOUT_S} s")
        self._release()

    def __enter__(self) -> StreamPublisher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<StreamPublisher '{self.name}' on {self._endpoint}, sent {self._sent_samples}>"

    # -------------------------------------------------------------------------- internals
    def _release(self) -> None:
        with contextlib.suppress(StreamError):
            self._reader.close()
        socket = getattr(self, "_socket", None)
        if socket is not None:
            socket.close(linger=0)
        self._context.term()

    def _run(self) -> None:
        ring, reported = None, None
        next_heartbeat = 0.0
        while not self._stop.is_set():
            reader = self._reader
            if reader.ring is not ring:  # a new ring (hub reconfigured): a new index space
                ring = reader.ring
                self._generation += 1
                reported = None
            try:
                self._rejoin_hub()
                state = (_ring_state(ring), 0 if ring.closed else ring.run_epoch)
                if reported is None or (state != reported and state[0] is RingState.RUNNING):
                    # a new stream's description and a start go before their data
                    self._send_control(reader, ring, state)
                    reported = state
                    next_heartbeat = time.monotonic() + self._heartbeat
                self._drain(reader, next_heartbeat)  # a stop or fault goes after its data
                state = (_ring_state(ring), 0 if ring.closed else ring.run_epoch)
                if state != reported or time.monotonic() >= next_heartbeat:
                    self._send_control(reader, ring, state)
                    reported = state
                    next_heartbeat = time.monotonic() + self._heartbeat
                if state[0] is RingState.CLOSED:
                    self._stop.wait(self._heartbeat)
                    continue

                def ready(ring=ring, reported=reported) -> bool:
                    return (
                        self._stop.is_set()
                        or ring.closed
                        or self._reader.available > 0
                        or (ring.state, ring.run_epoch) != reported
                        or self._reader.ring is not ring
                    )

                ring.wait(ready, max(0.0, next_heartbeat - time.monotonic()))
            except Exception as exc:  # never let the thread die silently
                if ring.closed:
                    continue  # the owner closed the stream under us; report CLOSED next round
                log.exception("publisher '%s': unexpected error: %s", self.name, exc)
                self._stop.wait(self._heartbeat)

    def _rejoin_hub(self) -> None:
        """After a fault or a finished run another reader restarts the hub: publish it again."""
        if self._hub is not None and not self._reader.running:
            self._hub.join_if_running(self._reader)  # never starts the source itself

    def _drain(self, reader: RingReader, until: float) -> None:
        """Send what is readable, a chunk per message; return when caught up or at ``until``
        (a publisher that cannot catch up still sends its heartbeats)."""
        ring = reader.ring
        while not self._stop.is_set() and not ring.closed and time.monotonic() < until:
            chunk = min(self._chunk_samples, max(reader.available, 1))
            # Zero-copy while zmq holds little of ours; past the limit (a stalled link, or
            # pyzmq's release thread starved of the GIL) copy from one reused buffer instead,
            # so what zmq holds is its own, bounded by the HWM.
            zero_copy = self._queued < self._queue_limit
            if zero_copy:
                data = np.empty((chunk, *ring.sample_shape), ring.dtype)
                stamps = np.empty(chunk) if ring.has_timestamps else None
            else:
                data, stamps = self._spare_buffers(ring, chunk)
            try:
                count = reader.read_available_into(data, timestamps=stamps)
            except StreamStoppedError:
                return
            except StreamError as exc:  # a fault, reported once: it goes out as CONTROL
                log.info("publisher '%s': %s", self.name, exc)
                continue
            if count == 0:
                return
            first = reader.position - count
            frames = [
                _header(
                    DATA,
                    HAS_TIMESTAMPS if stamps is not None else 0,
                    self._session,
                    self._generation,
                    ring.run_epoch & 0xFFFFFFFF,
                    first,
                    count,
                ),
                data[:count],
            ]
            if stamps is not None:
                frames.append(stamps[:count])
            if zero_copy:
                self._track(data, stamps)
            self._socket.send_multipart(frames, copy=not zero_copy)
            self._sent_samples += count
            self._sent_messages += 1

    def _spare_buffers(self, ring: StreamRing, chunk: int):
        """One buffer per ring format, reused for copied sends."""
        spare = self._spare
        if spare is None or spare[0].shape[1:] != ring.sample_shape or spare[0].dtype != ring.dtype:
            data = np.empty((self._chunk_samples, *ring.sample_shape), ring.dtype)
            spare = self._spare = (data, np.empty(self._chunk_samples))
        return spare[0][:chunk], spare[1][:chunk] if ring.has_timestamps else None

    def _track(self, data: np.ndarray, stamps: np.ndarray | None) -> None:
        """Count bytes zmq holds: it owns the arrays until it has written them (copy=False)."""
        for array in (data, stamps):
            if array is None:
                continue
            with self._queue_lock:
                self._queued += array.nbytes
                self._peak_queued = max(self._peak_queued, self._queued)
            weakref.finalize(array, self._released, array.nbytes)

    def _released(self, nbytes: int) -> None:
        with self._queue_lock:
            self._queued -= nbytes

    def _send_control(self, reader: RingReader, ring: StreamRing, state) -> None:
        ring_state, epoch = state
        description = b"{}" if ring.closed else json.dumps(ring.description()).encode()
        fault = ring.fault_message.encode() if ring_state is RingState.FAULTED else b""
        header = _header(
            CONTROL,
            int(ring_state),
            self._session,
            self._generation,
            epoch & 0xFFFFFFFF,
            reader.position,
            0,
        )
        self._socket.send_multipart([header, description, fault])


# ===================================================================================== subscriber
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

    ``capacity`` (samples) sizes the local ring; default: the publisher's ring or ``seconds``
    of data at the stream's rate, whichever is larger.
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
    ):
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
        ):
            raise ValueError(f"capacity must be a positive number of samples, got {capacity!r}")
        if not (isinstance(seconds, (int, float)) and seconds > 0):
            raise ValueError(f"seconds must be positive, got {seconds!r}")
        if isinstance(receive_hwm, bool) or not isinstance(receive_hwm, int) or receive_hwm < 1:
            raise ValueError(f"receive_hwm must be a positive number of messages: {receive_hwm!r}")
        check_reader_options(name, allow_overwrite)  # before a thread or socket exists
        self._endpoint = endpoint
        self._capacity_request = capacity
        self._seconds = float(seconds)
        self._silence_timeout = float(silence_timeout)
        self._stop = threading.Event()
        self._described = threading.Event()
        self._gap_lock = threading.Lock()
        self._pending: deque[tuple[int, int]] = deque()  # gaps ahead of the reader: start, end
        self._gap_log: deque[Gap] = deque(maxlen=10_000)
        self._gaps = self._missed = 0
        self._last_gap_end = 0
        self._received = self._messages = self._rejected = self._resyncs = 0
        self._local: StreamRing | None = None
        self._format: tuple | None = None
        self._stream: tuple[int, int] | None = None  # (session, generation) followed
        self._offset = 0  # local index = remote index + offset
        self._start_index = 0
        self._remote_epoch: int | None = None
        self._setup_error: BaseException | None = None
        self.description: dict[str, Any] = {}
        self._context = zmq.Context()
        try:
            self._socket = self._context.socket(zmq.SUB)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.RCVHWM, receive_hwm)
            self._socket.setsockopt(zmq.SUBSCRIBE, b"")
            self._socket.connect(endpoint)
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"instream-subscriber-{name}", daemon=True
        )
        self._thread.start()
        if not self._described.wait(timeout) or self._setup_error is not None:
            error = self._setup_error
            self._shutdown()
            if error is not None:
                raise error
            raise StreamTimeoutError(
                f"subscriber '{name}': no stream description from {endpoint} within {timeout} s "
                "(is a publisher running there, and is the address right?)"
            )
        super().__init__(self._local, name=name, allow_overwrite=allow_overwrite)
        self._position = self._start_index  # samples received meanwhile are ours too

    # ------------------------------------------------------------------------- public API
    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def gaps(self) -> tuple[Gap, ...]:
        """Every gap detected so far (the last 10 000), oldest first."""
        return tuple(self._gap_log)

    @property
    def rejected(self) -> int:
        """Messages rejected as malformed or not of this stream (each one is logged)."""
        return self._rejected

    @property
    def available(self) -> int:
        ring = self._ring
        if ring.closed:
            return 0
        write = ring.write_index
        start = max(self._position, ring.oldest_index)
        with self._gap_lock:
            in_gaps = sum(
                max(0, min(end, write) - max(gap_start, start)) for gap_start, end in self._pending
            )
        return max(0, write - start - in_gaps)

    def stats(self) -> SubscriberStats:
        return SubscriberStats(
            self._endpoint,
            self._received,
            self._messages,
            self._gaps,
            self._missed,
            self._rejected,
            self._resyncs,
            self._lost,
            self.available,
        )

    def read_into(
        self,
        out: np.ndarray,
        n: int | None = None,
        *,
        timeout: float | None = None,
        timestamps: np.ndarray | None = None,
    ) -> int:
        """As :meth:`RingReader.read_into`; a gap ends the read early (see the class doc)."""
        samples, stamps, room = self._checked_buffers(out, timestamps)
        n = room if n is None else _check_n(n, room)
        if n > self._ring.capacity:
            raise ValueError(f"n={n} is more than the ring holds ({self._ring.capacity} samples)")
        if n == 0:
            return 0
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._wait_for(n, deadline, timeout)
            self._settle()
            got = self._copy_segments(samples, stamps, n)
            if got is None:  # overtaken by the local writer while copying
                self._settle()
                continue
            if got == n:
                return n
            self._settle(delivered=got)  # stopped at a gap: raises with the count delivered
            if got:
                return got  # not reached: only overwrite=False copies stop short, at a gap

    def read_available_into(self, out: np.ndarray, *, timestamps: np.ndarray | None = None) -> int:
        samples, stamps, room = self._checked_buffers(out, timestamps)
        self._raise_pending_fault()
        self._require_open_ring()
        while True:
            self._settle()
            got = self._copy_segments(samples, stamps, room)
            if got is not None:
                return got
            self._settle()

    def latest(self, n: int, *, with_timestamps: bool = False):
        """The newest ``n`` samples received since the last gap, without consuming anything."""
        ring = self._ring
        n = _check_n(n, ring.capacity, "the ring's capacity")
        if with_timestamps and not ring.has_timestamps:
            raise ValueError("this stream carries no timestamps")
        self._require_open_ring()
        while True:
            write = ring.write_index
            start = max(write - n, ring.oldest_index, self._last_gap_end, self._start_index)
            start = min(start, write)
            data = np.empty((write - start, *ring.sample_shape), ring.dtype)
            stamps = np.empty(write - start) if with_timestamps else None
            ring.copy_out(start, write - start, data, stamps)
            if start >= ring.oldest_index:
                return (data, stamps) if with_timestamps else data

    def close(self) -> None:
        """Stop the receive thread, close the socket and context, end blocked reads."""
        super().close()
        self._shutdown()

    def __enter__(self) -> StreamSubscriber:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ reading with gaps
    def _readable(self, n: int) -> bool:
        """Whether a read of ``n`` can proceed now (enough samples, or a gap to report)."""
        ring = self._ring
        write = ring.write_index
        position = max(self._position, ring.oldest_index)
        with self._gap_lock:
            gaps = list(self._pending)
        if not self.allow_overwrite:  # a gap or overrun ahead is reported at once
            return bool(gaps) or self._position < position or write - position >= n
        missing = sum(max(0, min(end, write) - gap_start) for gap_start, end in gaps)
        return write - position - missing >= n

    def _wait_for(self, n: int, deadline: float | None, timeout: float | None) -> None:
        ring = self._ring

        def ready() -> bool:
            return ring.closed or self._readable(n) or self._stop_reason() is not None

        self._raise_pending_fault()
        self._require_open_ring()
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ring.wait(ready, remaining)
        self._raise_pending_fault()
        self._require_open_ring()
        if self._readable(n):
            return
        reason = self._stop_reason()
        have = self.available
        if reason is not None:
            raise StreamStoppedError(
                f"reader '{self.name}': {reason}; {format_count(have)} of {format_count(n)} "
                "requested samples are left"
            )
        raise StreamTimeoutError(
            f"reader '{self.name}': {format_count(n)} samples did not arrive from "
            f"{self._endpoint} within {timeout} s ({format_count(have)} available); "
            "nothing was consumed"
        )

    def _settle(self, delivered: int = 0) -> None:
        """Move past a gap at the position and past local overruns: count or raise."""
        target = max(self._position, self._ring.oldest_index)
        with self._gap_lock:
            while self._pending and self._pending[0][0] <= target:
                target = max(target, self._pending.popleft()[1])
        if target > self._position:
            self._skip_to(target, delivered)

    def _skip_to(self, oldest: int, delivered: int = 0) -> None:
        gap_start, lost = self._position, oldest - self._position
        self._lost += lost
        self._position = oldest
        if not self.allow_overwrite:
            error = StreamOverrunError(self.name, lost, gap_start, oldest)
            error.delivered = delivered
            raise error

    def _copy_segments(self, samples, stamps, n: int) -> int | None:
        """Copy up to ``n`` samples from the position; across gaps only if overwrite is allowed.

        Returns the count consumed, or None if the local writer overtook the copy (nothing
        consumed). The position lands on a gap's start when overwrite is not allowed.
        """
        ring = self._ring
        write = ring.write_index  # before the gaps: a gap is logged before the writer skips it
        with self._gap_lock:
            gaps = [gap for gap in self._pending if gap[0] < write]
        start = position = self._position
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
            return None
        if index:
            with self._gap_lock:
                for _ in range(index):
                    self._pending.popleft()
        self._lost += crossed
        self._position = position
        return done

    # --------------------------------------------------------------------- receive thread
    def _run(self) -> None:
        last_message = time.monotonic()
        while not self._stop.is_set():
            try:
                if not self._socket.poll(_POLL_MS):
                    if time.monotonic() - last_message > self._silence_timeout:
                        self._publisher_silent()
                    continue
                frames = self._socket.recv_multipart(copy=False)
                last_message = time.monotonic()
                self._messages += 1
                self._handle(frames)
            except Exception as exc:  # never let the thread die: log and go on
                if self._stop.is_set():
                    return
                log.exception("subscriber of %s: unexpected error: %s", self._endpoint, exc)

    def _reject(self, reason: str) -> None:
        self._rejected += 1
        if self._rejected <= _LOG_FIRST_REJECTS or self._rejected % _LOG_EVERY_REJECTS == 0:
            log.warning(
                "subscriber of %s: rejected a message (%s); %d rejected so far",
                self._endpoint,
                reason,
                self._rejected,
            )

    def _handle(self, frames: list) -> None:
        head = frames[0].bytes
        if len(head) != HEADER.size:
            return self._reject(f"header of {len(head)} bytes, expected {HEADER.size}")
        magic, version, kind, flags, session, generation, epoch, first, count = HEADER.unpack(head)
        if magic != MAGIC:
            return self._reject(f"wrong magic {magic!r}: not a qudi-instream stream")
        if version != VERSION:
            return self._reject(f"wire format version {version}, this side reads {VERSION}")
        if kind == CONTROL:
            if len(frames) != 3:
                return self._reject(f"control message of {len(frames)} frames, expected 3")
            return self._control((session, generation), flags, epoch, first, frames)
        if kind != DATA:
            return self._reject(f"unknown message kind {kind}")
        if (session, generation) != self._stream:
            return  # data of a stream we have no description of (yet): not an error
        self._data(flags, first, count, frames)

    def _control(self, stream, state_value, epoch, next_index, frames) -> None:
        try:
            state = RingState(state_value)
            description = json.loads(frames[1].bytes)
            fault = frames[2].bytes.decode(errors="replace")
        except (ValueError, UnicodeDecodeError) as exc:
            return self._reject(f"unreadable control message ({exc})")
        if stream != self._stream:
            if state is RingState.CLOSED or not description:
                return  # nothing to follow yet
            if not self._follow(stream, description, next_index):
                return
        ring = self._local
        local_next = next_index + self._offset
        if local_next > ring.write_index:  # announced samples never arrived (dropped)
            self._log_gap(local_next - ring.write_index)
        if state is RingState.RUNNING:
            if ring.state is not RingState.RUNNING or epoch != self._remote_epoch:
                ring.mark_running()
        elif state is RingState.FAULTED:
            if ring.state is not RingState.FAULTED or epoch != self._remote_epoch:
                if ring.state is RingState.FAULTED:
                    ring.mark_running()  # a new fault of a new run: readers hear of it again
                ring.mark_faulted(RemoteSourceError(f"{fault} (publisher {self._endpoint})"))
        elif ring.state is not RingState.STOPPED:
            ring.mark_stopped()
        self._remote_epoch = epoch

    def _follow(self, stream, description: dict, next_index: int) -> bool:
        """Start following a (new) stream: build the local ring, or continue in it."""
        try:
            new_format, info, remote_capacity = parse_description(description)
            if self._local is None:
                dtype, shape, has_timestamps = new_format
                rate = info.sample_rate or 0.0
                capacity = self._capacity_request or max(
                    remote_capacity, math.ceil(rate * self._seconds), 1024
                )
                ring = StreamRing(capacity, shape, dtype, timestamps=has_timestamps, info=info)
        except (StreamFormatError, TypeError, ValueError) as exc:
            self._reject(f"unusable stream description ({exc})")
            if self._local is None:
                self._setup_error = StreamFormatError(
                    f"the publisher at {self._endpoint} sent an unusable description: {exc}"
                )
                self._described.set()
            return False
        if self._local is None:
            ring.skip_to(next_index, first=True)
            self._local, self._format, self._start_index = ring, new_format, next_index
            self._last_gap_end = next_index
        elif new_format != self._format:
            if self._local.state is not RingState.FAULTED:
                log.error(
                    "subscriber of %s: the stream's format changed (%s -> %s); open a new "
                    "subscriber to read it",
                    self._endpoint,
                    self._format,
                    new_format,
                )
                self._local.mark_faulted(
                    StreamFormatError(
                        f"the stream's format changed from {self._format} to {new_format}"
                    )
                )
            return False
        else:
            # a restarted publisher or a reconfigured hub: its indices start over; ours go on
            self._resyncs += 1
            self._offset = self._local.write_index - next_index
            self._local.info = info
            log.info(
                "subscriber of %s: following a new run of the stream from local index %d",
                self._endpoint,
                self._local.write_index,
            )
        self._stream = stream
        self._remote_epoch = None
        self.description = description
        self._described.set()
        return True

    def _data(self, flags: int, first: int, count: int, frames: list) -> None:
        ring = self._local
        dtype, shape, has_timestamps = self._format
        want_frames = 3 if has_timestamps else 2
        if bool(flags & HAS_TIMESTAMPS) != has_timestamps or len(frames) != want_frames:
            return self._reject(
                f"data message of {len(frames)} frames (timestamps flag {flags & 1}); the stream "
                f"needs {want_frames}"
            )
        sample_bytes = math.prod(shape) * dtype.itemsize
        data = frames[1].buffer
        if count < 1 or data.nbytes != count * sample_bytes:
            return self._reject(
                f"{data.nbytes} data bytes for {count} samples of {sample_bytes} bytes"
            )
        stamps = frames[2].buffer if has_timestamps else None
        if stamps is not None and stamps.nbytes != 8 * count:
            return self._reject(f"{stamps.nbytes} timestamp bytes for {count} samples")
        local_first = first + self._offset
        write = ring.write_index
        if local_first < write:  # overlaps what we have: keep only the new part
            skip = write - local_first
            if skip >= count:
                return self._reject(f"samples {first}..{first + count - 1} arrived twice")
        else:
            skip = 0
            if local_first > write:
                self._log_gap(local_first - write)
        samples = np.frombuffer(data, dtype).reshape(count, *shape)[skip:]
        times = None if stamps is None else np.frombuffer(stamps, np.float64)[skip:]
        ring.write(samples, times)
        self._received += count - skip

    def _log_gap(self, lost: int) -> None:
        ring = self._local
        start = ring.write_index
        gap = Gap(start, lost, start - self._offset)
        oldest = ring.oldest_index
        with self._gap_lock:  # logged before the writer skips, so readers never read into it
            # gaps the ring has moved past count as part of the reader's overrun: forget them
            while self._pending and self._pending[0][1] <= oldest:
                self._pending.popleft()
            self._pending.append((start, start + lost))
        self._gap_log.append(gap)
        self._gaps += 1
        self._missed += lost
        self._last_gap_end = start + lost
        ring.skip_to(start + lost)
        log.info(
            "subscriber of %s: %s samples lost on the way (publisher indices %d to %d)",
            self._endpoint,
            format_count(lost),
            gap.remote_index,
            gap.remote_index + lost - 1,
        )

    def _publisher_silent(self) -> None:
        ring = self._local
        if ring is not None and ring.state is RingState.RUNNING:
            log.warning(
                "subscriber of %s: no message for %.1f s; treating the stream as stopped",
                self._endpoint,
                self._silence_timeout,
            )
            ring.mark_stopped()
            self._remote_epoch = None  # the next RUNNING heartbeat resumes the stream

    # ---------------------------------------------------------------------------- lifetime
    def _shutdown(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(_JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            raise StreamError(f"{self._thread.name} did not stop within {_JOIN_TIMEOUT_S} s")
        self._release()
        if self._local is not None:
            self._local.close()

    def _release(self) -> None:
        socket = getattr(self, "_socket", None)
        if socket is not None:
            socket.close(linger=0)
        self._context.term()


def _check_n(n: object, limit: int, limit_name: str = "the room in the output buffers") -> int:
    return check_count(n, limit, "n", limit_name)
