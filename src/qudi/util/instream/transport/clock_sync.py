"""Clock sync between a publisher's host and a subscriber's: round-trip probes, NTP style.

Another host's ``time.monotonic()`` counts from another origin and may run a little faster or
slower. A subscriber maps the publisher's host times (its run start, its time table) onto its
own clock with an offset it measures:

* the publisher runs a :class:`TimeServer`: a ZeroMQ ROUTER socket next to its PUB socket
  (same interface, its own port, announced in every TIME message; CURVE-protected with the
  same keys) that answers each probe with its monotonic time;
* the subscriber's :class:`ClockProbe` sends a probe at its time ``t0``, gets the answer
  ``r`` at ``t3``: the publisher read ``r`` at some instant between ``t0`` and ``t3``, so the
  offset (subscriber time - publisher time) is ``(t0 + t3) / 2 - r`` to within
  ``(t3 - t0) / 2``, a bound, not a spread;
* :class:`OffsetEstimate` keeps the recent probes and answers with the one whose bound is the
  smallest *now*: half its round trip plus :data:`MAX_HOST_DRIFT_PPM` times its age (the two
  clocks may drift apart by that much since).

A probe is 12 bytes (``b"QIZT"``, a u64 id) and its answer 20 (the same, then the float64
time); anything else is dropped unanswered, and the sockets refuse messages over 4 KiB.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

import zmq

if TYPE_CHECKING:
    from qudi.util.instream.transport.curve import ClientKeys, CurveGuard

__all__ = [
    "MAX_HOST_DRIFT_PPM",
    "ClockProbe",
    "OffsetEstimate",
    "TimeServer",
    "probe_address",
]

log = logging.getLogger(__name__)

#: How fast two hosts' monotonic clocks may drift apart (ppm): NTP keeps them within tens of
#: ppm of true time, a free-running crystal within 100; two such, both ways.
MAX_HOST_DRIFT_PPM = 200.0
_MAGIC = b"QIZT"
_PROBE = struct.Struct("<4sQ")
_ANSWER = struct.Struct("<4sQd")
_MAX_BYTES = 4096  # ZeroMQ checks the CURVE handshake against it too (its INITIATE is ~300 B)
_POLL_MS = 50
_JOIN_TIMEOUT_S = 10.0
#: Probes sent this often until twice :data:`SETTLED_PROBES` came back, then every ``interval``;
#: the offset is trusted (rows are written) from :data:`SETTLED_PROBES` answers on.
_BURST_S = 0.02
SETTLED_PROBES = 8


class OffsetEstimate:
    """The offset subscriber time - publisher time from recent probes (see the module doc).

    Thread-safe: a probe thread adds, the receiver's thread asks.
    """

    def __init__(self, keep: int = 64, max_drift_ppm: float = MAX_HOST_DRIFT_PPM):
        self._probes: deque[tuple[float, float, float]] = deque(maxlen=keep)  # mid, offset, half
        self.drift = max_drift_ppm * 1e-6  # relative, per second of age
        self._lock = threading.Lock()
        self.answered = 0

    def add(self, t0: float, remote: float, t3: float) -> None:
        """A probe sent at local ``t0``, answered with the remote time ``remote``, received at
        local ``t3``."""
        if not (math.isfinite(remote) and t3 >= t0):
            return
        mid = 0.5 * (t0 + t3)
        with self._lock:
            self._probes.append((mid, mid - remote, 0.5 * (t3 - t0)))
            self.answered += 1

    def offset(self, now: float) -> tuple[float, float] | None:
        """``(offset, bound)`` at local time ``now``: local = remote + offset, the true offset
        within ``bound`` of it; None before the first answer."""
        with self._lock:
            probes = list(self._probes)
        if not probes:
            return None
        best = min(probes, key=lambda p: p[2] + self.drift * abs(now - p[0]))
        return best[1], best[2] + self.drift * abs(now - best[0])


def probe_address(endpoint: str, port: int) -> str | None:
    """The address of the clock service on ``port`` of the host of a ``tcp://host:port``
    endpoint (None for another transport, or no port)."""
    if not (endpoint.startswith("tcp://") and 0 < port < 65536):
        return None
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0]
    return f"tcp://{host}:{port}"


class TimeServer:
    """Answers clock probes with this host's monotonic time, in a thread of its own.

    Binds ``tcp://<interface of endpoint>:<port>`` (any free port for 0) on ``context``
    (CURVE by ``guard`` if given); :attr:`port` is the bound one, 0 where the endpoint is not
    TCP or the port cannot be bound (no service then, logged).
    """

    def __init__(
        self,
        context: zmq.Context,
        endpoint: str,
        name: str,
        guard: CurveGuard | None,
        port: int = 0,
    ):
        self.port = 0
        self.answered = 0
        self._socket: zmq.Socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not endpoint.startswith("tcp://"):
            return
        interface = endpoint[len("tcp://") :].rsplit(":", 1)[0]
        socket = context.socket(zmq.ROUTER)
        try:
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.MAXMSGSIZE, _MAX_BYTES)
            socket.setsockopt(zmq.SNDHWM, 100)
            socket.setsockopt(zmq.RCVHWM, 100)
            if guard is not None:
                guard.apply(socket)
            if port:
                socket.bind(f"tcp://{interface}:{port}")
                self.port = port
            else:
                self.port = socket.bind_to_random_port(f"tcp://{interface}")
        except zmq.ZMQError as exc:  # the stream goes on; its subscribers time it on arrival
            socket.close(linger=0)
            log.warning(
                "publisher '%s': no clock service on %s port %s (%s); its subscribers time "
                "the samples as they arrive",
                name,
                interface,
                port or "any",
                exc,
            )
            self.port = 0
            return
        except BaseException:
            socket.close(linger=0)
            raise
        self._socket = socket
        self._thread = threading.Thread(
            target=self._run, name=f"instream-publisher-{name}-clock", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        socket = self._socket
        assert socket is not None
        while not self._stop.is_set():
            try:
                if not socket.poll(_POLL_MS):
                    continue
                frames = socket.recv_multipart()
                now = time.monotonic()
                if len(frames) != 2 or len(frames[1]) != _PROBE.size:
                    continue  # not a probe: no answer
                magic, probe = _PROBE.unpack(frames[1])
                if magic != _MAGIC:
                    continue
                socket.send_multipart([frames[0], _ANSWER.pack(_MAGIC, probe, now)], zmq.NOBLOCK)
                self.answered += 1
            except zmq.Again:
                continue  # a peer that does not read its answers
            except zmq.ZMQError as exc:
                if self._stop.is_set():
                    return
                log.warning("clock service: %s", exc)
                self._stop.wait(0.1)

    def close(self) -> None:
        """Stop the thread and close the socket (before the context ends)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT_S)
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None


class ClockProbe:
    """Probes a publisher's :class:`TimeServer` at ``address`` in a thread of its own and
    keeps the :attr:`estimate`: a burst at first, then one every ``interval`` seconds."""

    def __init__(
        self,
        context: zmq.Context,
        address: str,
        name: str,
        keys: ClientKeys | None,
        interval: float = 0.25,
    ):
        self.address = address
        self.estimate = OffsetEstimate()
        self.sent = 0
        self._interval = interval
        self._stop = threading.Event()
        socket = context.socket(zmq.DEALER)
        try:
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.MAXMSGSIZE, _MAX_BYTES)
            socket.setsockopt(zmq.SNDHWM, 4)
            socket.setsockopt(zmq.RCVHWM, 100)
            if keys is not None:
                keys.apply(socket)
            socket.connect(address)
        except BaseException:
            socket.close(linger=0)
            raise
        self._socket = socket
        self._thread = threading.Thread(
            target=self._run, name=f"instream-subscriber-{name}-clock", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        socket = self._socket
        pending: dict[int, float] = {}
        salt = int.from_bytes(os.urandom(4), "little") << 32
        next_probe = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_probe:
                    probe = salt | (self.sent & 0xFFFFFFFF)
                    t0 = time.monotonic()  # before the send: the answer may come at once
                    with contextlib.suppress(zmq.Again):  # not connected yet: next time
                        socket.send(_PROBE.pack(_MAGIC, probe), zmq.NOBLOCK)
                        pending[probe] = t0
                        self.sent += 1
                    if len(pending) > 16:  # unanswered ones (lost): forget the oldest
                        del pending[next(iter(pending))]
                    burst = self.estimate.answered < 2 * SETTLED_PROBES
                    next_probe = now + (_BURST_S if burst else self._interval)
                wait = max(0.0, min(next_probe - time.monotonic(), _POLL_MS / 1000))
                if not socket.poll(int(wait * 1000) + 1):
                    continue
                answer = socket.recv()
                t3 = time.monotonic()
                if len(answer) != _ANSWER.size:
                    continue
                magic, probe, remote = _ANSWER.unpack(answer)
                if magic == _MAGIC and probe in pending:
                    self.estimate.add(pending.pop(probe), remote, t3)
            except zmq.ZMQError as exc:
                if self._stop.is_set():
                    return
                log.warning("clock probe of %s: %s", self.address, exc)
                self._stop.wait(0.1)

    @property
    def settled(self) -> bool:
        """Enough probes came back to trust the offset."""
        return self.estimate.answered >= SETTLED_PROBES

    def close(self) -> None:
        """Stop the thread and close the socket (before the context ends)."""
        self._stop.set()
        self._thread.join(_JOIN_TIMEOUT_S)
        self._socket.close(linger=0)
