"""RemoteTime: a receiver writes the publisher's run start and time-table rows into its ring.

A publisher of this version sends its run and the rows its pump wrote (TIME messages, see
:mod:`~qudi.util.instream.transport.wire`), in its indices and on its host's monotonic clock.
The receiver's ring gets them in its own indices (the publisher's plus the receiver's offset)
and on its own host's clock: every host time plus the offset a
:class:`~qudi.util.instream.transport.clock_sync.ClockProbe` measures. The run's
``host_uncertainty`` is the largest bound of the offset used for any of its rows (plus the
publisher's own, for a stream relayed on), so a reader's uncertainty covers it.

Until the first few probes came back, rows wait here (at most :data:`MAX_PENDING`). If no
probe is answered within :data:`SETTLE_TIMEOUT_S` (a firewall that lets the stream's port
through but not the clock service's), the receiver falls back to rows of its own as samples
arrive, as it does for a publisher of an older version (:attr:`RemoteTime.active` is False).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import zmq

from qudi.util.instream.timebase import RunStart
from qudi.util.instream.transport.clock_sync import ClockProbe, DriftRange, probe_address
from qudi.util.instream.transport.wire import WireError

if TYPE_CHECKING:
    from qudi.util.instream.ring import StreamRing
    from qudi.util.instream.transport.curve import ClientKeys
    from qudi.util.instream.transport.following import Following
    from qudi.util.instream.transport.wire import TimeMessage

__all__ = ["MAX_PENDING", "SETTLE_TIMEOUT_S", "RemoteTime"]

log = logging.getLogger(__name__)

MAX_PENDING = 4096
SETTLE_TIMEOUT_S = 3.0


class RemoteTime:
    """The publisher's time in a receiver's ring (see the module docstring). Used by the
    receiver's thread only; :meth:`close` before the context ends."""

    def __init__(self, context: zmq.Context, endpoint: str, name: str, keys: ClientKeys | None):
        self._context, self._endpoint, self._name, self._keys = context, endpoint, name, keys
        self._probe: ClockProbe | None = None
        self._announced = False  # the followed publisher said it sends TIME messages
        self._failed = False  # its clock service did not answer: rows of our own
        self._since = 0.0  # when we started waiting for the probes to settle
        self._pending: list[np.ndarray] = []
        self._written: tuple[int, tuple] | None = None  # local epoch, the run's fields
        self._spread = 0.0  # the run's host uncertainty so far
        self._last_index = -1  # the newest local row index written in this run

    @property
    def active(self) -> bool:
        """The ring's rows come from the publisher (else: the receiver notes arrivals)."""
        return self._announced and not self._failed

    @property
    def offset(self) -> tuple[float, float] | None:
        """``(offset, bound)`` of the publisher's clock now (None before a probe came back)."""
        probe = self._probe
        return None if probe is None else probe.estimate.offset(time.monotonic())

    @property
    def measured_drift(self) -> DriftRange | None:
        """How fast the publisher's clock drifts from this host's, as the probes measured it
        (ppm, with its range; None before a probe came back)."""
        probe = self._probe
        return None if probe is None else probe.estimate.measured_drift()

    def announced(self, sends_time: bool) -> None:
        """A control message of the followed stream said whether TIME messages come."""
        if sends_time and not self._announced:
            self._since, self._failed = time.monotonic(), False
        self._announced = sends_time

    def new_stream(self) -> None:
        """A new stream is followed: what was known of the last one's time is not its."""
        self._announced = self._failed = False
        self._pending, self._written = [], None

    def receive(
        self,
        message: TimeMessage,
        following: Following,
        ring: StreamRing | None,
        remote_epoch: int | None,
    ) -> None:
        """A checked TIME message for the receiver's ``ring``: taken if it is of the followed
        stream's current run, ignored before any stream is followed or for another run.

        Raises
        ------
        WireError
            For a message of another stream than the followed one (counted as rejected).
        """
        if following.stream is None or ring is None:
            return  # time before any description: the stream is not ours yet
        if message.stream != following.stream:
            raise WireError(following.second_stream(message.stream))
        if message.run.run_epoch == remote_epoch:
            self.take(message, ring, following.offset)

    def take(self, message: TimeMessage, ring: StreamRing, index_offset: int) -> None:
        """Write ``message``'s run and rows into ``ring`` (its writer), mapped; or keep them
        until the clock offset is known."""
        if not self._announced or self._failed:
            return
        self._ensure_probe(message.port)
        probe = self._probe
        if probe is None or not probe.settled:
            if time.monotonic() - self._since > SETTLE_TIMEOUT_S:
                self._give_up(message.port)
            elif sum(map(len, self._pending)) < MAX_PENDING:
                self._pending.append(message.rows)
            return
        rows = np.concatenate([*self._pending, message.rows]) if self._pending else message.rows
        self._pending = []
        self._write(ring, message.run, rows, index_offset, probe)

    def _ensure_probe(self, port: int) -> None:
        address = probe_address(self._endpoint, port)
        if self._probe is not None and self._probe.address == address:
            return
        self._close_probe()
        if address is not None:
            self._probe = ClockProbe(self._context, address, self._name, self._keys)
            self._since = time.monotonic()

    def _give_up(self, port: int) -> None:
        self._failed = True
        self._pending = []
        log.warning(
            "subscriber of %s: the publisher's clock service (port %d) did not answer within "
            "%.0f s; its samples are timed as they arrive here instead (later by the transfer)",
            self._endpoint,
            port,
            SETTLE_TIMEOUT_S,
        )

    def _write(
        self, ring: StreamRing, run: RunStart, rows: np.ndarray, index_offset: int, probe
    ) -> None:
        table = ring.time_table
        now = time.monotonic()
        estimate = probe.estimate.offset(now)
        if table is None or estimate is None:
            return
        offset, bound = estimate
        first = run.first_index + index_offset
        if first < 0:
            return  # the publisher's run started before anything this ring can index
        epoch = ring.run_epoch
        fields = (run.first_index, run.monotonic_start, run.utc_start, run.start_tick)
        if self._written is None or self._written[0] != epoch:
            self._spread, self._last_index = 0.0, -1
        local_index = rows["index"] + index_offset
        fresh = local_index > max(self._last_index, first)
        host = rows["host"][fresh]
        spread = max(self._spread, bound + run.host_uncertainty)
        if len(host):
            # each row by the offset at its own time (rows may have waited here a while)
            at = probe.estimate.offsets_at(host + offset)
            assert at is not None  # the estimate had an answer just now
            offsets, bounds = at
            # ... evaluated at a time off by at most its bound and the offsets' difference
            drift = probe.estimate.drift
            reach = drift * (bounds + np.abs(offsets - offset)) / (1.0 - drift)
            host = host + offsets
            spread = max(spread, float(np.max(bounds + reach)) + run.host_uncertainty)
        if self._written != (epoch, fields) or spread > self._spread:
            self._spread = spread
            table.write_run(
                RunStart(
                    epoch,
                    first,
                    run.monotonic_start + offset,
                    run.utc_start,
                    run.start_call,
                    run.start_tick,
                    spread,
                )
            )
            self._written = (epoch, fields)
        for index, when, device in zip(
            local_index[fresh], host, rows["device"][fresh], strict=True
        ):
            table.append(int(index), float(when), float(device))
        if fresh.any():
            self._last_index = int(local_index[fresh][-1])

    def _close_probe(self) -> None:
        if self._probe is not None:
            with contextlib.suppress(Exception):
                self._probe.close()
            self._probe = None

    def close(self) -> None:
        self._close_probe()
