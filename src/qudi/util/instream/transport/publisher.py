"""StreamPublisher: the owner's side of the ZeroMQ transport, a stream sent on a PUB socket.

The publisher reads a stream (a :class:`~qudi.util.instream.hub.StreamHub` or a
:class:`~qudi.util.instream.ring.StreamRing`) through its own overwrite-allowed reader, so it
never holds back the producer, and sends it in the messages of
:mod:`~qudi.util.instream.transport.wire`. Its peers only ever send subscriptions, so the
socket takes no inbound message over :data:`MAX_SUBSCRIPTION_BYTES`: a peer that sends a bigger
one is disconnected before ZeroMQ stores it (subscriptions live in a per-byte trie, tens of
times their size).

With :class:`~qudi.util.instream.transport.curve.ServerKeys` the socket is a CURVE server: only
clients whose public key is in the allow-list folder get a connection, and everything is
encrypted (see :mod:`~qudi.util.instream.transport.curve`). Without keys a publisher binds
loopback only, unless told ``insecure=True``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from qudi.util.instream.errors import StreamError, StreamStoppedError
from qudi.util.instream.hub import HubReader, StreamHub
from qudi.util.instream.reader import RingReader
from qudi.util.instream.ring import RingState, StreamRing
from qudi.util.instream.stream_format import encode_description
from qudi.util.instream.time_table import ROW_DTYPE
from qudi.util.instream.transport.clock_sync import TimeServer
from qudi.util.instream.transport.curve import MAKE_KEYS, CurveGuard, ServerKeys, is_loopback
from qudi.util.instream.transport.wire import (
    CONTROL,
    DATA,
    HAS_TIMESTAMPS,
    SENDS_TIME,
    pack_header,
    pack_time,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_HEARTBEAT_S",
    "DEFAULT_SEND_HWM",
    "MAX_SUBSCRIPTION_BYTES",
    "PublisherStats",
    "StreamPublisher",
]

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:*"
#: Messages queued per subscriber before PUB drops them: with data messages at most every
#: :data:`SEND_INTERVAL_S`, a second of the stream (at most this many chunks of memory).
DEFAULT_SEND_HWM = 100
DEFAULT_CHUNK_BYTES = 1 << 18  # 256 KiB per data message: far above zmq's copy threshold
DEFAULT_HEARTBEAT_S = 0.25
#: Rows of the time table each heartbeat sends again, for subscribers that joined since.
RECENT_ROWS = 64
#: The largest message a peer may send the publisher (a subscription is 1 byte plus a topic;
#: a subscriber of this package subscribes to everything, an empty topic).
MAX_SUBSCRIPTION_BYTES = 4096
_JOIN_TIMEOUT_S = 10.0
#: Data messages go out at most this often unless a whole chunk is ready: fewer, bigger
#: messages (a few per stream write would make the per-subscriber queue, counted in messages,
#: hold only milliseconds of the stream), for at most this much more latency.
SEND_INTERVAL_S = 0.01
_REBIND_S = 2.0  # how long one try to bind the endpoint again after a revocation lasts


@dataclass(frozen=True)
class PublisherStats:
    """A snapshot of a publisher's counters."""

    endpoint: str
    samples_sent: int
    messages_sent: int
    lost: int  # samples the publisher's own reader lost (it was too slow)
    queued_bytes: int  # sample bytes handed to ZeroMQ and not yet released by it
    peak_queued_bytes: int
    refused: int = 0  # CURVE handshakes refused (a key not in the allow-list)
    revocations: int = 0  # times the connections were dropped because a key was revoked


def _ring_state(ring: StreamRing) -> RingState:
    return RingState.CLOSED if ring.closed else ring.state


class StreamPublisher:
    """Publish a stream on a ZeroMQ PUB socket (see :mod:`~qudi.util.instream.transport.wire`).

    Parameters
    ----------
    source
        A :class:`StreamHub` (the publisher opens a reader ``name`` on it and starts it, so the
        source runs while it publishes) or a :class:`StreamRing` (e.g. attached by name).
    address
        ZeroMQ address to bind; loopback with a free port by default. Another interface
        (``tcp://0.0.0.0:5555``) needs ``keys``, or ``insecure=True``.
    name
        The name of the publisher's reader, and of its thread.
    send_hwm
        Messages ZeroMQ queues per subscriber; beyond that a slow subscriber loses messages
        (and sees the gap) instead of growing this process's memory.
    chunk_samples
        Samples per data message (default: about 256 KiB).
    heartbeat
        Seconds between control messages (description and state) when nothing changes.
    keys
        The publisher's CURVE keys and allow-list: only allowed clients connect, and the
        stream is encrypted. A key removed from the allow-list while publishing is refused
        from then on (the others reconnect at once: their receivers report what they missed).
    insecure
        Allow binding an address other hosts can reach without ``keys`` (logged as a warning
        each time): any host that reaches it can read the stream.
    clock_port
        The TCP port of the clock service subscribers probe to map the stream's times onto
        their clocks (same interface as ``address``; see
        :mod:`~qudi.util.instream.transport.clock_sync`): 0 for any free one, a number to let
        it through a firewall, None for none (subscribers then time samples as they arrive).

    Raises
    ------
    ValueError, TypeError
        For an argument out of range or of the wrong type, and for an address other hosts can
        reach without ``keys`` or ``insecure=True``.
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
        keys: ServerKeys | None = None,
        insecure: bool = False,
        clock_port: int | None = 0,
    ):
        _check_security(address, keys, insecure, name)
        _check_clock_port(clock_port)
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
        self._hub: StreamHub | None = None
        self._hub_reader: HubReader | None = None  # the same reader, when it is a hub's
        self._reader: RingReader
        if isinstance(source, StreamHub):
            self._hub = source
            self._reader = self._hub_reader = source.open_reader(name, allow_overwrite=True)
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
        self._guard: CurveGuard | None = None
        self._revocations = 0
        self._unbound = False  # dropped its connections and not bound again yet
        self._clock: TimeServer | None = None
        self._rows_sent = 0  # time-table rows of the current ring sent (counted as it counts)
        try:
            if keys is not None:
                self._guard = CurveGuard(self._context, keys, name)
            self._socket = self._context.socket(zmq.PUB)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.SNDHWM, send_hwm)
            self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
            if self._guard is not None:
                self._guard.apply(self._socket)
            self._socket.bind(address)
            self._endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
            if clock_port is not None:
                self._clock = TimeServer(
                    self._context, self._endpoint, name, self._guard, clock_port
                )
            if self._hub_reader is not None:
                self._hub_reader.start()
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
    def clock_port(self) -> int:
        """The port of the clock service subscribers probe (0 for none: not TCP)."""
        return 0 if self._clock is None else self._clock.port

    @property
    def lost(self) -> int:
        """Samples the publisher's reader lost because it fell a whole ring behind."""
        return self._reader.lost

    @property
    def queued_bytes(self) -> int:
        """Sample bytes handed to ZeroMQ that it has not released yet (bounded by the HWM)."""
        return self._queued

    def stats(self) -> PublisherStats:
        """The publisher's counters now."""
        return PublisherStats(
            self._endpoint,
            self._sent_samples,
            self._sent_messages,
            self._reader.lost,
            self._queued,
            self._peak_queued,
            0 if self._guard is None else self._guard.allow_list.refused,
            self._revocations,
        )

    @property
    def public_key(self) -> bytes | None:
        """The publisher's CURVE public key (Z85), None for a plain publisher."""
        return None if self._guard is None else self._guard.keys.public

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
        if self._clock is not None:
            self._clock.close()
        socket = getattr(self, "_socket", None)
        if socket is not None:
            socket.close(linger=0)
        if self._guard is not None:
            self._guard.close()
        self._context.term()

    def _drop_revoked(self) -> None:
        """A key left the allow-list: drop every connection (the socket has no per-peer
        close); each client handshakes again, and the revoked one is refused."""
        if self._unbound or (self._guard is not None and self._guard.revoked()):
            if not self._unbound:
                self._revocations += 1
                self._socket.unbind(self._endpoint)
                self._unbound = True
            # ZeroMQ closes the listener in its I/O thread: the port is free a moment later
            deadline = time.monotonic() + _REBIND_S
            while self._unbound and not self._stop.is_set():
                try:
                    self._socket.bind(self._endpoint)
                    self._unbound = False
                except zmq.ZMQError as exc:
                    if time.monotonic() > deadline:
                        log.error("publisher '%s': cannot bind %s again (%s); retrying",
                                  self.name, self._endpoint, exc)  # fmt: skip
                        return
                    self._stop.wait(0.01)
            log.warning(
                "publisher '%s': a client key was revoked; connections dropped and re-checked",
                self.name,
            )

    def _run(self) -> None:
        ring, reported = None, None
        next_heartbeat = 0.0
        while not self._stop.is_set():
            reader = self._reader
            if reader.ring is not ring:  # a new ring (hub reconfigured): a new index space
                ring = reader.ring
                self._generation += 1
                self._rows_sent = 0
                reported = None
            try:
                self._rejoin_hub()
                state = (_ring_state(ring), 0 if ring.closed else ring.run_epoch)
                if reported is None or (state != reported and state[0] is RingState.RUNNING):
                    # a new stream's description and a start go before their data
                    self._send_control(reader, ring, state)
                    reported = state
                    next_heartbeat = time.monotonic() + self._heartbeat
                if self._drain(reader, next_heartbeat):  # a stop or fault goes after its data
                    self._pace(reader)
                state = (_ring_state(ring), 0 if ring.closed else ring.run_epoch)
                if state != reported or time.monotonic() >= next_heartbeat:
                    self._drop_revoked()
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
        hub, reader = self._hub, self._hub_reader
        if hub is not None and reader is not None and not reader.running:
            hub.join_if_running(reader)  # never starts the source itself

    def _pace(self, reader: RingReader) -> None:
        """Wait up to :data:`SEND_INTERVAL_S` after a send, unless a whole chunk is ready or
        the stream's state changes."""
        ring = reader.ring

        def ready() -> bool:
            return (
                self._stop.is_set()
                or ring.closed
                or reader.available >= self._chunk_samples
                or ring.state is not RingState.RUNNING
            )

        ring.wait(ready, SEND_INTERVAL_S)

    def _drain(self, reader: RingReader, until: float) -> bool:
        """Send what is readable, a chunk per message; return when caught up or at ``until``
        (a publisher that cannot catch up still sends its heartbeats). True if it sent."""
        sent = False
        ring = reader.ring
        while not self._stop.is_set() and not ring.closed and time.monotonic() < until:
            self._send_time(ring)  # the rows before the samples they time
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
                return sent
            except StreamError as exc:  # a fault, reported once: it goes out as CONTROL
                log.info("publisher '%s': %s", self.name, exc)
                continue
            if count == 0:
                return sent
            first = reader.position - count
            frames: list[Any] = [
                pack_header(
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
            sent = True
        return sent

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
        description = b"{}" if ring.closed else encode_description(ring.description())
        fault = ring.fault_message.encode() if ring_state is RingState.FAULTED else b""
        header = pack_header(
            CONTROL,
            int(ring_state),
            self._session,
            self._generation,
            epoch & 0xFFFFFFFF,
            reader.position,
            SENDS_TIME if self._sends_time(ring) else 0,
        )
        self._socket.send_multipart([header, description, fault])
        if not ring.closed:
            self._send_time(ring, RECENT_ROWS)

    def _sends_time(self, ring: StreamRing) -> bool:
        """Whether the stream's times come in TIME messages: its ring has a table that a
        pump fills (a hub's; a ring of another writer once it has rows). Else subscribers
        time the samples as they arrive, as they do for older publishers."""
        table = None if ring.closed else ring.time_table
        if table is None or self._clock is None or not self._clock.port:
            return False
        return self._hub is not None or table.rows_written > 0

    def _send_time(self, ring: StreamRing, recent: int = 0) -> None:
        """A TIME message: the run and the time-table rows added since the last one (and up
        to ``recent`` rows before them again). Nothing if there is nothing new to say."""
        table = ring.time_table
        run = table.run() if table is not None and self._sends_time(ring) else None
        if table is None or run is None:
            return
        rows, count = table.rows(max(0, self._rows_sent - recent))
        if not (len(rows) or recent):
            return
        self._rows_sent = count
        records = np.empty(len(rows), ROW_DTYPE)
        records["index"], records["host"], records["device"] = rows.index, rows.host, rows.device
        port = self._clock.port if self._clock is not None else 0
        self._socket.send_multipart(pack_time(self._session, self._generation, run, port, records))


def _check_clock_port(clock_port: object) -> None:
    """Refuse a ``clock_port`` that is no TCP port, 0 or None."""
    if clock_port is None or (
        isinstance(clock_port, int) and not isinstance(clock_port, bool) and 0 <= clock_port < 65536
    ):
        return
    raise ValueError(
        f"clock_port must be a TCP port (1 to 65535), 0 for any free one, or None for no "
        f"clock service, got {clock_port!r}"
    )


def _check_security(address: object, keys: object, insecure: object, name: str) -> None:
    """Refuse plain publishing on an address other hosts can reach unless told ``insecure``."""
    if not isinstance(insecure, bool):
        raise TypeError(f"insecure must be True or False, got {insecure!r}")
    if keys is not None and not isinstance(keys, ServerKeys):
        raise TypeError(f"keys must be ServerKeys or None, got {type(keys).__name__}")
    if not isinstance(address, str):
        raise TypeError(f"address must be a ZeroMQ address string, got {address!r}")
    if keys is not None or is_loopback(address):
        return
    if not insecure:
        raise ValueError(
            f"publisher '{name}': binding {address!r} without keys lets any host that reaches it "
            f"read the stream. Make key pairs with '{MAKE_KEYS}' and pass keys=ServerKeys."
            "from_files(...), or pass insecure=True on a network you trust"
        )
    log.warning(
        "publisher '%s': publishing on %s WITHOUT authentication or encryption (insecure=True): "
        "any host that reaches it can read the stream",
        name,
        address,
    )
