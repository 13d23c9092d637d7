"""StreamReceiver: the consumer's side of the ZeroMQ wire, a SUB socket refilling a local ring.

A thread ``instream-subscriber-<name>`` receives the messages of
:mod:`~qudi.util.instream.transport.wire`, checks each one completely before it changes
anything, follows the publisher (its description builds the local ring; a restart or a new
ring of the publisher is followed without a jump in local indices), and writes the samples
into the local ring, of which it is the one writer. Samples that never came are logged in a
:class:`~qudi.util.instream.transport.gaps.GapLog` before the ring skips their indices.
:class:`~qudi.util.instream.transport.subscriber.StreamSubscriber` reads that ring.

A peer is not trusted. What it can and cannot do:

* A message that does not fit the format is rejected and counted (``rejected``); the log gets
  the first ten and every thousandth, with or without a traceback.
* No index runs ahead by more than :data:`MAX_JUMP` at once, and local indices stay below
  :data:`LOCAL_INDEX_LIMIT`; a forged jump below that is taken for a gap, and the publisher's
  next heartbeat, whose next index is then behind what arrived, resynchronises the stream.
* While a stream is followed, a second one on the same endpoint (a broker in front of two
  publishers, or a forger) is rejected and counted, message by message; it is followed only
  once the first has gone quiet or closed. When a stream that was followed before comes back,
  what it sent meanwhile is a gap: nothing vanishes uncounted.
* With :class:`~qudi.util.instream.transport.curve.ClientKeys` the connection is CURVE: only
  the publisher that holds the trusted server key gets one, and everything is encrypted; a
  refused handshake is counted and said (``handshake_failure``).
* Memory: ZeroMQ refuses frames over ``max_message_bytes``, and ends the connection that sent
  one (the receiver connects again once the stream has been silent for ``silence_timeout``:
  what was sent meanwhile is a gap); the local ring is sized from the publisher's description
  only up to ``max_ring_bytes``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from qudi.util.instream.errors import (
    StreamCapacityError,
    StreamError,
    StreamFormatError,
    StreamTimeoutError,
    format_bytes,
    format_count,
)
from qudi.util.instream.ring import RingState, StreamInfo, StreamRing
from qudi.util.instream.stream_format import parse_description
from qudi.util.instream.time_table import note_arrival
from qudi.util.instream.transport.curve import ClientKeys
from qudi.util.instream.transport.following import Following
from qudi.util.instream.transport.gaps import GapLog
from qudi.util.instream.transport.handshakes import HandshakeWatch
from qudi.util.instream.transport.remote_time import RemoteTime
from qudi.util.instream.transport.wire import (
    CONTROL,
    MAX_DESCRIPTION_BYTES,
    TIME,
    Control,
    Header,
    WireError,
    check_frame_count,
    read_control,
    read_data,
    read_header,
    read_time,
    receive_frames,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_RING_BYTES",
    "LOCAL_INDEX_LIMIT",
    "MAX_JUMP",
    "RemoteSourceError",
    "StreamReceiver",
]

log = logging.getLogger(__name__)

#: The local ring takes at most this much memory unless told otherwise.
DEFAULT_MAX_RING_BYTES = 512 << 20
#: ZeroMQ refuses bigger frames (256 times a publisher's default data message).
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
#: The largest jump of the index that one message is believed (2**40: 12 days at 1 MS/s).
MAX_JUMP = 2**40
#: Local indices stay below this, far from the 64-bit end of the ring's counters.
LOCAL_INDEX_LIMIT = 2**63
MIN_RING_SAMPLES = 1024
_JOIN_TIMEOUT_S = 10.0
_POLL_MS = 50  # the receive thread re-checks its stop flag at least this often


class RemoteSourceError(RuntimeError):
    """The source behind a publisher failed; the message is the publisher's."""


class _LogLimit:
    """Lets through the first ten and then every thousandth of many like log records."""

    def __init__(self) -> None:
        self.count = 0

    def due(self) -> bool:
        self.count += 1
        return self.count <= 10 or self.count % 1000 == 0


class StreamReceiver:
    """Receive a published stream into a private local ring (see the module doc).

    Parameters
    ----------
    endpoint
        The publisher's address, e.g. ``tcp://daq-pc.lab:5555``.
    name
        Names the thread and the receiver in messages.
    capacity
        Samples of the local ring; default: the publisher's ring or ``seconds`` of data at
        the stream's rate, whichever is larger, up to ``max_ring_bytes``.
    seconds
        See ``capacity``.
    receive_hwm
        Messages ZeroMQ queues before it drops (the drop shows as a gap).
    silence_timeout
        Seconds without any message after which the stream counts as stopped.
    max_ring_bytes
        The most memory the local ring may take; a larger ``capacity`` is refused when the
        description arrives (``StreamCapacityError``), a larger default is clipped (logged).
    max_message_bytes
        ZeroMQ refuses frames over this (and disconnects the sender); default: 64 MiB or
        ``max_ring_bytes``, whichever is less, and at least 1 MiB.
    keys
        CURVE keys: this subscriber's key pair and the publisher's public key (which the
        handshake verifies). None for a plain publisher (on loopback, or ``insecure``).

    Raises
    ------
    ValueError
        For an option out of range or of the wrong type, before a thread or socket exists.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        name: str = "subscriber",
        capacity: int | None = None,
        seconds: float = 2.0,
        receive_hwm: int = 1000,
        silence_timeout: float = 5.0,
        max_ring_bytes: int = DEFAULT_MAX_RING_BYTES,
        max_message_bytes: int | None = None,
        keys: ClientKeys | None = None,
    ):
        if keys is not None and not isinstance(keys, ClientKeys):
            raise TypeError(f"keys must be ClientKeys or None, got {type(keys).__name__}")
        if capacity is not None:
            _check_whole(capacity, "capacity", "a positive number of samples", 1)
        _check_seconds(seconds, "seconds")
        _check_seconds(silence_timeout, "silence_timeout")
        _check_whole(receive_hwm, "receive_hwm", "a positive number of messages", 1)
        _check_whole(max_ring_bytes, "max_ring_bytes", "a number of bytes of at least 1024", 1024)
        if max_message_bytes is None:
            max_message_bytes = min(DEFAULT_MAX_MESSAGE_BYTES, max(max_ring_bytes, 1 << 20))
        _check_whole(
            max_message_bytes,
            "max_message_bytes",
            f"a number of bytes of at least {MAX_DESCRIPTION_BYTES} (a description's limit)",
            MAX_DESCRIPTION_BYTES,
        )
        self.endpoint = endpoint
        self.name = name
        self.gaps = GapLog()
        self.description: dict[str, Any] = {}
        self.start_index = 0  # the publisher's index of the first sample ours
        self.received = self.messages = self.rejected = self.resyncs = 0
        self.last_rejection: str | None = None
        self._sizing = _Sizing(name, endpoint, capacity, float(seconds), int(max_ring_bytes))
        self._silence_timeout = float(silence_timeout)
        self._local: StreamRing | None = None
        self._format: tuple[np.dtype, tuple[int, ...], bool] | None = None
        self._sample_bytes = 0
        self._following = Following(self._silence_timeout, MAX_JUMP)
        self._remote_epoch: int | None = None
        self._rejects, self._errors = _LogLimit(), _LogLimit()
        self._gap_logs, self._resync_logs = _LogLimit(), _LogLimit()
        self._setup_error: BaseException | None = None
        self._stop = threading.Event()
        self._described = threading.Event()
        self._context = zmq.Context()
        self._handshakes: HandshakeWatch | None = None
        self.remote_time = RemoteTime(self._context, endpoint, name, keys)
        try:
            self._socket = self._context.socket(zmq.SUB)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.RCVHWM, receive_hwm)
            self._socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
            self._socket.setsockopt(zmq.SUBSCRIBE, b"")
            if keys is not None:
                keys.apply(self._socket)
            self._handshakes = HandshakeWatch(self._socket)
            self._socket.connect(endpoint)
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"instream-subscriber-{name}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------------- public API
    @property
    def ring(self) -> StreamRing:
        """The local ring (once the publisher's description arrived)."""
        if self._local is None:
            raise StreamError(f"subscriber '{self.name}' has no stream from {self.endpoint} yet")
        return self._local

    @property
    def handshake_failure(self) -> str | None:
        """Why the last refused handshake with the publisher failed (None if none did)."""
        return None if self._handshakes is None else self._handshakes.last_failure

    def wait_described(self, timeout: float) -> None:
        """Wait until the publisher's description built the local ring.

        Raises
        ------
        StreamTimeoutError
            If none came within ``timeout`` seconds; the message says what did arrive.
        StreamFormatError, StreamCapacityError
            If the description cannot be followed here.

        The receiver is closed when this raises.
        """
        if self._described.wait(timeout) and self._setup_error is None:
            return
        error = self._setup_error or StreamTimeoutError(_nothing_usable(self, timeout))
        self.close()
        raise error

    def close(self) -> None:
        """Stop the thread, close the socket and context, and close the local ring (which ends
        blocked reads). A second call does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(_JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            raise StreamError(f"{self._thread.name} did not stop within {_JOIN_TIMEOUT_S} s")
        self._release()
        if self._local is not None:
            self._local.close()

    # --------------------------------------------------------------------- receive thread
    def _run(self) -> None:
        last_message = time.monotonic()
        while not self._stop.is_set():
            try:
                if not self._socket.poll(_POLL_MS):
                    if self._handshakes is not None:  # refused handshakes: only while silent
                        self._handshakes.check()
                    if time.monotonic() - last_message > self._silence_timeout:
                        self._publisher_silent()
                        self._reconnect()
                        last_message = time.monotonic()  # the next try after another timeout
                    continue
                frames, count = receive_frames(self._socket)
                last_message = time.monotonic()
                self.messages += 1
                check_frame_count(frames, count)
                self._handle(frames)
            except WireError as exc:
                self._reject(str(exc))
            except Exception as exc:  # never let the thread die: count, log (limited), go on
                if self._stop.is_set():
                    return
                self.rejected += 1
                self.last_rejection = f"unexpected error: {type(exc).__name__}: {exc}"
                if self._errors.due():
                    log.error(
                        "subscriber of %s: a message could not be handled (%s: %s); %d so far",
                        self.endpoint,
                        type(exc).__name__,
                        exc,
                        self._errors.count,
                        exc_info=True,
                    )

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        self.last_rejection = reason
        if self._rejects.due():
            log.warning(
                "subscriber of %s: rejected a message (%s); %d rejected so far",
                self.endpoint,
                reason,
                self.rejected,
            )

    def _handle(self, frames: list[Any]) -> None:
        """Check one message and act on it; raises :class:`WireError` before changing
        anything if it does not fit."""
        header = read_header(frames)
        if header.kind == CONTROL:
            self._control(read_control(header, frames))
        elif header.kind == TIME:
            message = read_time(header, frames)
            self.remote_time.receive(message, self._following, self._local, self._remote_epoch)
        else:
            self._data(header, frames)

    # ----------------------------------------------------------------- following a stream
    def _control(self, control: Control) -> None:
        following = self._following
        if control.stream != following.stream:
            if control.description is None:  # a publisher without a stream
                if following.stream is None or following.closed:
                    return  # nothing to follow (yet)
                raise WireError(following.second_stream(control.stream))
            following.check_may_follow(control.stream)
            if not self._follow(control):
                return
        ring = self.ring
        local_next = control.next_index + following.offset
        write = ring.write_index
        if local_next < write:
            # A publisher's next index is never behind what it sent before: what arrived
            # was not its (a forged jump ahead, say). Follow its indices from here on.
            self._resync(control.next_index, "its next index is behind what arrived")
        elif local_next > write:  # announced samples never arrived (dropped)
            self._skip_gap(local_next)
        following.seen(control=True)
        following.closed = control.state is RingState.CLOSED
        self.remote_time.announced(control.sends_time)
        self._apply_state(ring, control)

    def _apply_state(self, ring: StreamRing, control: Control) -> None:
        state, epoch = control.state, control.epoch
        if state is RingState.RUNNING:
            if ring.state is not RingState.RUNNING or epoch != self._remote_epoch:
                ring.mark_running()
        elif state is RingState.FAULTED:
            if ring.state is not RingState.FAULTED or epoch != self._remote_epoch:
                if ring.state is RingState.FAULTED:
                    ring.mark_running()  # a new fault of a new run: readers hear of it again
                fault = f"{control.fault} (publisher {self.endpoint})"
                ring.mark_faulted(RemoteSourceError(fault))
        elif ring.state is not RingState.STOPPED:
            ring.mark_stopped()
        self._remote_epoch = epoch

    def _follow(self, control: Control) -> bool:
        """Start following ``control``'s stream: build the local ring, or go on in it."""
        description = control.description or {}
        try:
            new_format, info, remote_capacity = parse_description(description)
            ring = None
            if self._local is None:
                ring = _local_ring(self._sizing, new_format, info, remote_capacity)
        except (StreamFormatError, TypeError, ValueError, OverflowError, MemoryError) as exc:
            self._refuse_description(exc)
            return False
        if ring is not None:
            ring.skip_to(control.next_index, first=True)
            self._local, self._format, self.start_index = ring, new_format, control.next_index
            self.gaps.last_end = control.next_index
            self._following.switch(control.stream, control.next_index, control.next_index)
        elif new_format != self._format:
            _fault_on_new_format(self.ring, self._format, new_format, self.endpoint)
            return False
        else:
            self._continue_with(control, info)
        self._sample_bytes = math.prod(new_format[1]) * new_format[0].itemsize
        self._remote_epoch = None
        self.remote_time.new_stream()
        self.description = description
        self._described.set()
        return True

    def _continue_with(self, control: Control, info: StreamInfo) -> None:
        """Follow another stream in the same local ring: its indices continue ours."""
        ring = self.ring
        write = ring.write_index
        if self._following.switch(control.stream, control.next_index, write):
            log.info(
                "subscriber of %s: following session %#x again from local index %d (what it "
                "sent meanwhile is a gap)",
                self.endpoint,
                control.stream[0],
                write,
            )
        else:  # a restarted publisher or a reconfigured hub: its indices start over; ours go on
            self._count_resync("a new run of the stream")
        ring.info = info

    def _resync(self, next_index: int, why: str) -> None:
        """The followed stream's ``next_index`` lands on the local write index from now on."""
        self._following.resync(next_index, self.ring.write_index)
        self._count_resync(why)

    def _count_resync(self, why: str) -> None:
        self.resyncs += 1
        if self._resync_logs.due():
            log.info(
                "subscriber of %s: %s; following it from local index %d (%d resyncs)",
                self.endpoint,
                why,
                self.ring.write_index,
                self.resyncs,
            )

    def _refuse_description(self, exc: BaseException) -> None:
        self._reject(f"unusable stream description ({exc})")
        if self._local is None:  # the constructor is waiting: tell it
            if isinstance(exc, StreamCapacityError):
                self._setup_error = exc
            else:
                self._setup_error = StreamFormatError(
                    f"the publisher at {self.endpoint} sent an unusable description: {exc}"
                )
            self._described.set()

    # ----------------------------------------------------------------------------- samples
    def _data(self, header: Header, frames: list[Any]) -> None:
        following = self._following
        if following.stream is None or self._format is None:
            return  # data before any description: the stream is not ours yet
        if header.stream != following.stream:  # counted: data never changes the stream
            raise WireError(following.second_stream(header.stream))
        dtype, shape, has_timestamps = self._format
        data, stamps = read_data(header, frames, self._sample_bytes, has_timestamps)
        ring = self.ring
        count = header.samples
        local_first = header.first + following.offset
        write = ring.write_index
        _check_index(local_first + count, write, f"samples from index {header.first}")
        skip = 0
        if local_first < write:  # overlaps what we have: keep only the new part
            skip = write - local_first
            if skip >= count:
                raise WireError(f"samples {header.first}..{header.first + count - 1} arrived twice")
        elif local_first > write:
            self._skip_gap(local_first)
        samples = np.frombuffer(data, dtype).reshape(count, *shape)[skip:]
        times = None if stamps is None else np.frombuffer(stamps, np.float64)[skip:]
        # a sixteenth of the ring at a time: the writer's room of a blocking read (see
        # reader.blocking_read_limit)
        step = max(1, ring.capacity // 16)
        for start in range(0, len(samples), step):
            part = None if times is None else times[start : start + step]
            ring.write(samples[start : start + step], part)
        if not self.remote_time.active:  # else the publisher's rows are its samples' times
            note_arrival(ring, None if times is None or not len(times) else float(times[-1]))
        self.received += count - skip
        following.seen()

    def _skip_gap(self, local_end: int) -> None:
        """Log the samples up to ``local_end`` as a gap, then let the ring skip them."""
        ring = self.ring
        start = ring.write_index
        _check_index(local_end, start, "the next index")
        offset = self._following.offset
        self.gaps.add(start, local_end, start - offset, ring.oldest_index)
        try:
            ring.skip_to(local_end)  # after the gap is logged: readers never read into it
        except (ValueError, StreamError) as exc:
            self.gaps.withdraw_last()
            raise WireError(f"a gap up to index {local_end} cannot be skipped ({exc})") from exc
        if self._gap_logs.due():
            log.info(
                "subscriber of %s: %s samples lost on the way (publisher indices %d to %d); "
                "%d gaps so far",
                self.endpoint,
                format_count(local_end - start),
                start - offset,
                local_end - offset - 1,
                self.gaps.count,
            )

    def _publisher_silent(self) -> None:
        ring = self._local
        if ring is not None and ring.state is RingState.RUNNING:
            log.warning(
                "subscriber of %s: no message for %.1f s; treating the stream as stopped",
                self.endpoint,
                self._silence_timeout,
            )
            ring.mark_stopped()
            self._remote_epoch = None  # the next RUNNING heartbeat resumes the stream

    def _reconnect(self) -> None:
        """Connect to the publisher afresh. ZeroMQ ends a connection for good when a frame is
        over ``max_message_bytes``; a silent stream may be one that ended that way."""
        with contextlib.suppress(zmq.ZMQError):  # gone already, if ZeroMQ ended it
            self._socket.disconnect(self.endpoint)
        self._socket.connect(self.endpoint)

    def _release(self) -> None:
        self.remote_time.close()
        if self._handshakes is not None:
            self._handshakes.close()
        socket = getattr(self, "_socket", None)
        if socket is not None:
            socket.close(linger=0)
        self._context.term()


def _fault_on_new_format(ring: StreamRing, old: object, new: object, endpoint: str) -> None:
    """A followed stream changed its format: fault the local ring (once); never mix them."""
    if ring.state is RingState.FAULTED:
        return
    log.error(
        "subscriber of %s: the stream's format changed (%s -> %s); open a new subscriber "
        "to read it",
        endpoint,
        old,
        new,
    )
    ring.mark_faulted(StreamFormatError(f"the stream's format changed from {old} to {new}"))


def _check_index(local_end: int, write: int, what: str) -> None:
    """Refuse an index no genuine message has: beyond the local limit, or a jump ahead of more
    than :data:`MAX_JUMP`."""
    if local_end > LOCAL_INDEX_LIMIT:
        raise WireError(f"{what} would take this receiver's indices beyond 2**63")
    if local_end - write > MAX_JUMP:
        raise WireError(
            f"{what} jump {format_count(local_end - write)} samples ahead of the stream "
            f"(more than 2**40 at once is not believed)"
        )


def _nothing_usable(receiver: StreamReceiver, timeout: float) -> str:
    """Why a receiver gave up waiting for a description: what arrived, if anything did."""
    start = (
        f"subscriber '{receiver.name}': no stream description from {receiver.endpoint} within "
        f"{timeout} s"
    )
    refused = receiver.handshake_failure
    if refused is not None:
        return f"{start}: {refused}"
    if not receiver.messages:
        return f"{start} (is a publisher running there, and is the address right?)"
    if receiver.last_rejection is None:
        what = "none of them described a stream (a publisher whose stream is closed)"
    else:
        what = f"{receiver.rejected} rejected, the last because: {receiver.last_rejection}"
    return (
        f"{start}, though {receiver.messages} messages arrived: {what}; is a qudi-instream "
        "publisher of the same version running there?"
    )


@dataclass(frozen=True)
class _Sizing:
    """What sizes a receiver's local ring (see :func:`_local_ring`)."""

    name: str
    endpoint: str
    capacity: int | None  # asked for, in samples
    seconds: float
    max_ring_bytes: int


def _local_ring(
    sizing: _Sizing,
    new_format: tuple[np.dtype, tuple[int, ...], bool],
    info: StreamInfo,
    remote: int,
) -> StreamRing:
    """The local ring for a stream's first description, within ``max_ring_bytes``.

    Raises
    ------
    StreamCapacityError
        For a ``capacity`` asked for that needs more than ``max_ring_bytes``, or a sample
        bigger than that.
    """
    dtype, shape, has_timestamps = new_format
    sample_bytes = math.prod(shape) * dtype.itemsize + (8 if has_timestamps else 0)
    most = sizing.max_ring_bytes // sample_bytes
    limit = f"max_ring_bytes={format_count(sizing.max_ring_bytes)}"
    if sizing.capacity is not None:
        capacity = sizing.capacity
        if capacity > most:
            raise StreamCapacityError(
                f"subscriber '{sizing.name}': capacity={format_count(capacity)} samples of "
                f"{sample_bytes} bytes need {format_bytes(capacity * sample_bytes)}, more "
                f"than {limit} allows: ask for at most {format_count(most)} samples, or "
                "raise max_ring_bytes",
                capacity,
                capacity * sample_bytes,
            )
        return StreamRing(capacity, shape, dtype, timestamps=has_timestamps, info=info)
    if most < 1:
        raise StreamCapacityError(
            f"subscriber '{sizing.name}': one sample of this stream takes "
            f"{format_bytes(sample_bytes)}, more than {limit} allows",
            1,
            sample_bytes,
        )
    by_rate = math.ceil(min((info.sample_rate or 0.0) * sizing.seconds, most))
    wanted = max(remote, by_rate, MIN_RING_SAMPLES)
    capacity = min(wanted, most)
    if capacity < wanted:
        log.warning(
            "subscriber of %s: the stream asks for a ring of %s samples (%s); this subscriber "
            "keeps %s samples (%s), the limit %s: pass capacity= or max_ring_bytes= for more",
            sizing.endpoint,
            format_count(wanted),
            format_bytes(wanted * sample_bytes),
            format_count(capacity),
            format_bytes(capacity * sample_bytes),
            limit,
        )
    return StreamRing(capacity, shape, dtype, timestamps=has_timestamps, info=info)


def _check_whole(value: object, what: str, meaning: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be {meaning}, got {value!r}")


def _check_seconds(value: object, what: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{what} must be a positive, finite number of seconds, got {value!r}")
