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
* :class:`OffsetEstimate` keeps the recent probes (:data:`DEFAULT_SPAN_S`, at most
  :data:`DEFAULT_KEEP`) and measures the drift from them. With the offset a straight line over
  that span and its slope within :data:`MAX_HOST_DRIFT_PPM` (the prior), the lines through every
  probe's interval are a convex polygon (:mod:`~qudi.util.instream.transport.offset_lines`); at a
  time ``now`` the true offset lies between the lowest and the highest of them there: the answer
  is the midpoint, half that range the bound, and the polygon's slopes are the measured drift and
  its range (:class:`DriftRange`). Each probe's interval is widened by half its squared distance
  to the newest probe times :data:`MAX_DRIFT_CHANGE_PPM_PER_MIN` (a drift that changes bends the
  line: the tangent at the newest probe stays inside the widened intervals), and so is the answer
  by its squared distance. The answer is also clipped to each probe's own interval grown by the
  prior drift times its age (the rule before the drift was measured, which needs no line): never
  wider than it, much narrower once the probes span some seconds. The span is bounded because a
  drift that changes (temperature) bends the line more the longer it is, while the drift's range
  narrows only as one over the span (for round trips of a tenth of a millisecond and the allowed
  bend, the two balance near a minute). When no line passes through all intervals (a clock step,
  or a drift that jumped), the estimate logs it (a warning the first time), counts it in
  :attr:`OffsetEstimate.steps` and starts over from the newest probe alone, which is honest
  whatever came before. A step shows only once a probe contradicts the kept ones: until then (a
  step smaller than the probes' intervals, or probes with long round trips) the answer can be off
  by up to the step.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import zmq

from qudi.util.instream.transport.offset_lines import Vertex, feasible_lines

if TYPE_CHECKING:
    from qudi.util.instream.transport.curve import ClientKeys, CurveGuard

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_SPAN_S",
    "MAX_DRIFT_CHANGE_PPM_PER_MIN",
    "MAX_HOST_DRIFT_PPM",
    "ClockProbe",
    "DriftRange",
    "OffsetEstimate",
    "TimeServer",
    "probe_address",
]

log = logging.getLogger(__name__)

#: How fast two hosts' monotonic clocks may drift apart (ppm): NTP keeps them within tens of
#: ppm of true time, a free-running crystal within 100; two such, both ways.
MAX_HOST_DRIFT_PPM = 200.0
#: How fast that drift may change (ppm per minute): a crystal's ~0.5 ppm/K as a host's case
#: warms by a kelvin or two in a minute under load. The lines bend by at most this much.
MAX_DRIFT_CHANGE_PPM_PER_MIN = 1.0
#: The probes kept: at most this many (four a second for two minutes) ...
DEFAULT_KEEP = 512
#: ... and none older than this before the newest (s): the drift's range narrows with the
#: span, the bend allowance grows with its square (both alike at about a minute on a LAN).
DEFAULT_SPAN_S = 120.0
_SLACK_S = 1e-9  # float rounding of host times (1e-10 s at a million seconds of uptime)
_CHUNK = 256  # times per block in offsets_at (a probes x times array per block)
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


@dataclass(frozen=True)
class DriftRange:
    """The drift the probes measured: how fast the offset (subscriber time - publisher time)
    grows, in ppm of the subscriber's time (positive: the subscriber's clock runs fast
    relative to the publisher's). The true drift now lies in ``[low_ppm, high_ppm]``;
    ``ppm`` is its midpoint; ``probes`` probes over ``span_s`` seconds measured it."""

    ppm: float
    low_ppm: float
    high_ppm: float
    probes: int
    span_s: float


def _checked(key: str, value: object, valid: str, ok) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise ValueError(f"{key} must be {valid}, got {value!r}")


class OffsetEstimate:
    """The offset subscriber time - publisher time from recent probes (see the module doc).

    ``keep`` probes at most, none older than ``span_s`` before the newest; ``max_drift_ppm``
    bounds the drift (the prior), ``drift_change_ppm_per_min`` how fast it may change (the
    line's allowance for a bend). Thread-safe: a probe thread adds, the receiver's thread asks.
    """

    def __init__(
        self,
        keep: int = DEFAULT_KEEP,
        max_drift_ppm: float = MAX_HOST_DRIFT_PPM,
        span_s: float = DEFAULT_SPAN_S,
        drift_change_ppm_per_min: float = MAX_DRIFT_CHANGE_PPM_PER_MIN,
        name: str = "",
    ):
        _checked(
            "keep",
            keep,
            "an integer number of probes >= 2",
            lambda v: float(v).is_integer() and v >= 2,
        )
        _checked(
            "max_drift_ppm", max_drift_ppm, "a number of ppm > 0 and < 1e5",
            lambda v: 0 < v < 1e5,
        )  # fmt: skip
        _checked("span_s", span_s, "a number of seconds > 0 and <= 3600", lambda v: 0 < v <= 3600)
        _checked(
            "drift_change_ppm_per_min", drift_change_ppm_per_min,
            "a number of ppm per minute >= 0 and < 1e4", lambda v: 0 <= v < 1e4,
        )  # fmt: skip
        self._probes: deque[tuple[float, float, float]] = deque(maxlen=int(keep))
        self.drift = max_drift_ppm * 1e-6  # the prior: relative, per second of age
        self.span_s = float(span_s)
        self._bend = drift_change_ppm_per_min * 1e-6 / 60.0  # |second derivative|, 1/s
        self._name = name
        self._lock = threading.Lock()
        self._model: _Model | None = None  # built from the probes on the first question
        self.answered = 0
        self.steps = 0  # how often the probes contradicted the kept ones (a clock step)

    def add(self, t0: float, remote: float, t3: float) -> None:
        """A probe sent at local ``t0``, answered with the remote time ``remote``, received at
        local ``t3``."""
        if not (math.isfinite(remote) and math.isfinite(t0) and t3 >= t0):
            return
        mid = 0.5 * (t0 + t3)
        with self._lock:
            self._probes.append((mid, mid - remote, 0.5 * (t3 - t0)))
            self.answered += 1
            self._model = None

    def offset(self, now: float) -> tuple[float, float] | None:
        """``(offset, bound)`` at local time ``now``: local = remote + offset, the true offset
        within ``bound`` of it; None before the first answer."""
        found = self.offsets_at(np.array([now], np.float64))
        return None if found is None else (float(found[0][0]), float(found[1][0]))

    def offsets_at(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`offset` at each of the local ``times`` (arrays of offsets and bounds)."""
        with self._lock:
            model = self._current()
        if model is None:
            return None
        times = np.asarray(times, np.float64)
        low, high = model.interval(times, self.drift, self._bend)
        return 0.5 * (low + high), 0.5 * (high - low) + _SLACK_S

    def measured_drift(self) -> DriftRange | None:
        """The drift the kept probes measured, with its range (None before the first answer;
        the prior's range ``+-max_drift_ppm`` from a single probe)."""
        with self._lock:
            model = self._current()
        if model is None:
            return None
        low, high = model.drift_range()
        return DriftRange(
            0.5 * (low + high) * 1e6, low * 1e6, high * 1e6, len(model.mids), model.span
        )

    def _current(self) -> _Model | None:
        """The model of the kept probes (under the lock): built once per probe set."""
        if self._model is not None or not self._probes:
            return self._model
        newest = max(p[0] for p in self._probes)
        while self._probes[0][0] < newest - self.span_s:
            self._probes.popleft()  # older than the span: the drift may have changed since
        model = _Model.of(list(self._probes), self.drift, self._bend)
        if model is None:  # no line through them all: the clock stepped or the drift jumped
            self.steps += 1
            (log.warning if self.steps == 1 else log.debug)(
                "clock probes%s: the offset left the line of the last %d probes (a clock "
                "step, or the drift changed); starting over from the newest probe",
                f" of {self._name}" if self._name else "",
                len(self._probes),
            )
            last = max(reversed(self._probes), key=lambda p: p[0])  # a tie: the last added
            self._probes.clear()
            self._probes.append(last)
            model = _Model.of([last], self.drift, self._bend)
        self._model = model
        return model


class _Model:
    """The kept probes as arrays and the polygon of lines through them (see offset_lines)."""

    def __init__(self, probes: list[tuple[float, float, float]], polygon: list[Vertex]):
        self.mids = np.array([p[0] for p in probes])
        self.offsets = np.array([p[1] for p in probes])
        self.halves = np.array([p[2] for p in probes]) + _SLACK_S
        self.reference = float(self.mids.max())  # the newest probe: the lines' tangent point
        self.base = float(self.offsets[int(np.argmax(self.mids))])
        self.span = float(self.reference - self.mids.min())
        self.line_a = np.array([v[0] for v in polygon])
        self.line_d = np.array([v[1] for v in polygon])

    @classmethod
    def of(
        cls, probes: list[tuple[float, float, float]], drift: float, bend: float
    ) -> _Model | None:
        """None when no line of drift within ``drift`` passes through every probe's interval,
        each widened by ``bend`` times half its squared distance to the newest probe."""
        reference = max(p[0] for p in probes)
        base = next(p[1] for p in probes if p[0] == reference)
        intervals = []
        for mid, offset, half in probes:
            x = mid - reference
            wide = half + _SLACK_S + 0.5 * bend * x * x
            intervals.append((x, offset - base - wide, offset - base + wide))
        polygon = feasible_lines(intervals, drift)
        return cls(probes, polygon) if polygon else None

    def interval(
        self, times: np.ndarray, drift: float, bend: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Where the true offset lies at each local time: the lines' range widened by the
        bend, intersected with each probe's own drift-bounded interval."""
        low = np.empty_like(times)
        high = np.empty_like(times)
        for start in range(0, len(times), _CHUNK):
            t = times[start : start + _CHUNK]
            tau = t - self.reference
            lines = self.line_a[:, None] + self.line_d[:, None] * tau[None, :]
            allowance = 0.5 * bend * tau * tau
            line_low = self.base + lines.min(axis=0) - allowance
            line_high = self.base + lines.max(axis=0) + allowance
            reach = self.halves[:, None] + drift * np.abs(t[None, :] - self.mids[:, None])
            probe_low = (self.offsets[:, None] - reach).max(axis=0)
            probe_high = (self.offsets[:, None] + reach).min(axis=0)
            lo, hi = np.maximum(line_low, probe_low), np.minimum(line_high, probe_high)
            crossed = lo > hi  # the line (through its bend allowance) and a probe disagree:
            lo[crossed] = np.minimum(line_low, probe_low)[crossed]  # both ranges, honestly
            hi[crossed] = np.maximum(line_high, probe_high)[crossed]
            low[start : start + _CHUNK], high[start : start + _CHUNK] = lo, hi
        return low, high

    def drift_range(self) -> tuple[float, float]:
        return float(self.line_d.min()), float(self.line_d.max())


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
    keeps the :attr:`estimate`: a burst at first, then one every ``interval`` seconds.

    ``clock`` is the local clock the offset is measured against (``time.monotonic``: the
    one a receiver's ring times its rows by; another for a test of a drifting host)."""

    def __init__(
        self,
        context: zmq.Context,
        address: str,
        name: str,
        keys: ClientKeys | None,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ):
        _checked("interval", interval, "a number of seconds > 0 and <= 60", lambda v: 0 < v <= 60)
        if not callable(clock):
            raise ValueError(f"clock must be a function returning seconds, got {clock!r}")
        self.address = address
        self._clock = clock
        self.estimate = OffsetEstimate(name=address)
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
                    t0 = self._clock()  # before the send: the answer may come at once
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
                t3 = self._clock()
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
