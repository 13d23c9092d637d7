"""StreamHub: one per streaming source, shared by its readers (HubReader) through one ring.

The hub counts its running readers: the source starts with the first started reader and
stops with the last one, and a :class:`~qudi.util.instream.pump.Pump` thread moves samples
into the ring meanwhile. A slow or dead reader cannot hold back the source or anyone else.
The hub also keeps what its readers must learn of each run: where it started, how it failed.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import numpy as np

from qudi.util.instream.arrays import as_channel_names, check_count, check_positive_number
from qudi.util.instream.contracts import ReaderHost, StreamSource
from qudi.util.instream.enums import in_kind_of, member_name
from qudi.util.instream.errors import (
    StreamBusyError,
    StreamCapacityError,
    StreamError,
    StreamStoppedError,
)
from qudi.util.instream.pump import Pump
from qudi.util.instream.reader import RingReader
from qudi.util.instream.ring import RingState, StreamInfo, StreamRing
from qudi.util.instream.time_table import now_pair
from qudi.util.instream.timebase import RunStart, SampleClock

__all__ = [
    "MAX_POLL_RATE",
    "MIN_POLL_RATE",
    "HubReader",
    "HubStats",
    "ReaderStats",
    "StreamHub",
    "StreamSource",
    "check_poll_rate",
]

log = logging.getLogger(__name__)

MIN_RING_SAMPLES = 1024
# Below 1 Hz readers would wait seconds for each batch and the ring would have to hold that
# long; above 1000 Hz the pump would spend its time in calls, not in copies.
MIN_POLL_RATE = 1.0
MAX_POLL_RATE = 1000.0
_RATE_WINDOW_S = 1.0
_RUNS_REMEMBERED = 64  # a reader stopped this many runs ago gets nothing more of its run
_MIN_PUMP_CHUNK = 256
_READ_SLACK_S = 0.1  # how late a reader may wake and still lose nothing
_T = TypeVar("_T")


@dataclass(frozen=True)
class ReaderStats:
    """A snapshot of one reader: see :class:`RingReader` for what each number means."""

    name: str
    running: bool
    allow_overwrite: bool
    available: int
    fill: float
    lost: int


@dataclass(frozen=True)
class HubStats:
    """A snapshot of a hub's health; ``measured_rate`` is over the last second, not a lifetime."""

    name: str
    running: bool
    samples_written: int
    nominal_rate: float
    measured_rate: float
    ring_capacity: int
    fault: str | None
    readers: tuple[ReaderStats, ...]


def check_poll_rate(rate: object) -> float:
    """``rate`` as a float if it is a valid ``max_poll_rate``: a number of Hz from 1 to 1000.

    Raises
    ------
    ValueError
        Naming ``max_poll_rate``, the value and the valid range otherwise.
    """
    meaning = f"a number of Hz from {MIN_POLL_RATE:g} to {MAX_POLL_RATE:g}"
    value = check_positive_number(rate, "max_poll_rate", meaning)
    if not MIN_POLL_RATE <= value <= MAX_POLL_RATE:
        raise ValueError(f"max_poll_rate must be {meaning}, got {rate!r}")
    return value


class HubReader(RingReader):
    """A reader that belongs to a hub: starting it starts the source if needed.

    Its owner is any :class:`~qudi.util.instream.contracts.ReaderHost` (a :class:`StreamHub`,
    or a :class:`~qudi.util.instream.sharing.RemoteHub` for a hub in another process), which
    it calls only through that contract. The host in turn moves it only through
    :meth:`join_run`, :meth:`leave_run`, :meth:`rebind` and :meth:`end_for_good`.

    Parameters
    ----------
    host
        The owner; its :attr:`~ReaderHost.ring` is the ring read.
    name
        The reader's name in errors (a non-empty str).
    allow_overwrite
        The loss policy (see :class:`RingReader`).
    """

    __slots__ = ("_host", "_started", "_run_epoch", "_fault_reported")

    def __init__(self, host: ReaderHost, name: str, allow_overwrite: bool):
        super().__init__(host.ring, name=name, allow_overwrite=allow_overwrite)
        self._host = host
        self._started = False
        self._run_epoch = -1  # no position in the stream until started
        self._fault_reported = False

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`stop` or a source fault."""
        ring = self._ring
        return (
            self._started
            and not ring.closed
            and ring.run_epoch == self._run_epoch
            and ring.state is RingState.RUNNING
            and self._host.fault_of_run(self._run_epoch) is None  # set before the ring says so
        )

    def start(self) -> None:
        """Read new samples from now on; starts the source if no other reader runs.

        Harmless on a running reader. Clears a fault this reader was stopped by.

        Raises
        ------
        StreamStoppedError
            Once the reader is closed.
        """
        if self._closed:
            raise StreamStoppedError(f"reader '{self.name}' is closed; open a new one")
        self._host.start_reader(self)

    def stop(self) -> None:
        """Stop reading; the source stops when the last running reader stops."""
        self._host.stop_reader(self)

    def close(self) -> None:
        """Stop and leave the hub for good."""
        self._host.forget_reader(self)
        self.end_for_good()

    # ----------------------------------------------------------------- called by the host
    def join_run(self, ring: StreamRing, position: int | None = None) -> None:
        """The host counts this reader in the run now going on in ``ring``: read from its
        newest sample on, or from ``position`` (where the host counted it, at most the newest)."""
        self._ring = ring
        newest = ring.write_index
        self._position = newest if position is None else min(max(int(position), 0), newest)
        self._run_epoch = ring.run_epoch
        self._started = True
        self._fault_reported = False

    def leave_run(self) -> None:
        """The host no longer counts this reader as running."""
        self._started = False

    def rebind(self, ring: StreamRing) -> None:
        """The host reads ``ring`` from now on (a new configuration): this reader has no place
        in it until it is started again."""
        self._ring = ring
        self._position = 0
        self._run_epoch = -1
        self._started = False

    def end_for_good(self) -> None:
        """The reader is closed (its host closed, or it left): reads, and one blocked in
        another thread, raise :class:`StreamStoppedError`."""
        RingReader.close(self)

    # ------------------------------------------------------------- hooks of RingReader
    @property
    def available(self) -> int:
        return super().available if self._run_epoch >= 0 else 0

    def _end(self) -> int:
        """This reader's run ends where the next run starts: never read on into a run that
        another reader started after this one was stopped (by a fault, say)."""
        ring = self._ring
        epoch = ring.run_epoch
        if epoch == self._run_epoch or self._run_epoch < 0:
            return ring.write_index
        if epoch == self._run_epoch + 1:
            return ring.run_start_index
        return self._host.run_end(self._run_epoch, self._position)

    def _require_open_ring(self) -> None:
        if self._run_epoch < 0 and not self._closed:  # never ran: no position in the stream
            raise StreamStoppedError(f"reader '{self.name}' has not been started")
        super()._require_open_ring()

    def _stop_reason(self) -> str | None:
        if self._closed:
            return f"reader '{self.name}' is closed"
        fault = self._host.fault_of_run(self._run_epoch)
        if fault is not None:
            return f"the stream stopped after a fault ({type(fault).__name__}: {fault})"
        if not self.running:
            return f"reader '{self.name}' is stopped"
        return None

    def _pending_fault(self):
        fault = self._host.fault_of_run(self._run_epoch)
        if fault is None or self._fault_reported or not self._started:
            return None
        self._fault_reported = True
        return f"{type(fault).__name__}: {fault}", fault


def poll_period(max_poll_rate: float, rate: float, source_buffer: int) -> float:
    """Seconds between polls: at most ``max_poll_rate`` a second, and often enough that the
    source's own buffer (``source_buffer`` samples at ``rate``) never fills up."""
    period = 1.0 / max_poll_rate
    return min(period, source_buffer / rate / 4) if rate > 0 else period


def pump_chunk(
    rate: float,
    period: float,
    capacity: int | None = None,
    readable: int = 0,
    *,
    minimum: int = _MIN_PUMP_CHUNK,
) -> int:
    """The most samples the pump claims at once: a poll's worth and a quarter (polls come a
    little late), at least ``minimum`` (256, so that slow streams are not read a few samples
    at a time; 1 for camera frames). In a ring of ``capacity`` made for reads of
    ``readable``: no more than its headroom holds (see :func:`ring_size`; ``max_poll_rate``
    may have been lowered since it was made)."""
    chunk = max(minimum, math.ceil(1.25 * rate * period))
    if capacity is None:
        return chunk
    room = capacity - readable - math.ceil(rate * _READ_SLACK_S)
    return max(1, min(chunk, room // 2, capacity // 4))


def ring_size(
    readable: int,
    rate: float,
    period: float,
    *,
    min_readable: int = MIN_RING_SAMPLES,
    min_chunk: int = _MIN_PUMP_CHUNK,
) -> tuple[int, int]:
    """``(readable, capacity)``: what a blocking read may ask for (at least ``min_readable``:
    1024 samples for a channel stream, 2 for camera frames; pump chunks of at least
    ``min_chunk``, see :func:`pump_chunk`),
    and a ring's capacity with headroom beyond it, so that such a read by a reader that keeps
    up never overruns (issue 12: a ring of exactly the size read lost samples every time).

    When such a read wakes, up to one pump chunk more than it waits for has arrived; while it
    copies, the pump may claim the next chunk (claimed slots count as overwritten); and the
    reader may wake late (a reader in another process polls every 2 ms, any reader can be
    descheduled): 0.1 s of samples cover that. A blocking read may also wait for no more than
    15/16 of a ring (see :func:`~qudi.util.instream.reader.RingReader.read_into`), so the
    headroom is at least a fifteenth of ``readable``.
    """
    readable = max(min_readable, readable)
    late = math.ceil(rate * _READ_SLACK_S)
    headroom = max(2 * pump_chunk(rate, period, minimum=min_chunk) + late, -(-readable // 15))
    return readable, readable + headroom


def ring_for_source(source: StreamSource, capacity: int, *, shared: bool, name: str) -> StreamRing:
    """A stopped ring of ``capacity`` samples in the format of what ``source`` streams now."""
    channels = tuple(source.active_channels)
    constraints = source.constraints
    timing = str(member_name(constraints.sample_timing))
    info = StreamInfo(
        channel_names=channels,
        channel_units=tuple(str(constraints.channel_units[ch]) for ch in channels),
        sample_rate=float(source.sample_rate),
        sample_timing=timing,
        # stream_id tells a replaced ring from the old one
        extra={**declared_extra(source), "stream_id": uuid.uuid4().hex},
        sample_clock=replace(declared_clock(source), start_tick=None),  # known at the start
    )
    ring = StreamRing(
        capacity,
        (len(channels),),
        np.dtype(constraints.data_type),
        timestamps=timing == "TIMESTAMP",
        info=info,
        shared=shared,
        name=name,
    )
    ring.mark_stopped()
    return ring


def declared_extra(source: object) -> dict[str, Any]:
    """What a source declares for its description's ``extra`` (its optional ``stream_extra``:
    a JSON-ready mapping, e.g. the scaling of raw codes); empty if it declares none or
    something unusable (logged)."""
    declared = None
    try:
        declared = getattr(source, "stream_extra", None)  # a property: it may raise anything
        if declared is None:
            return {}
        return dict(json.loads(json.dumps(dict(declared))))  # plain JSON, also from a proxy
    except Exception as exc:
        log.warning("the source's stream_extra %r is not usable (%s): left out", declared, exc)
        return {}


def declared_clock(source: object) -> SampleClock:
    """The sample clock a source declares (its optional ``sample_clock``: a
    :class:`~qudi.util.instream.timebase.SampleClock` or a mapping of its fields); internal
    if it declares none or something unreadable (logged)."""
    declared = None
    try:
        declared = getattr(source, "sample_clock", None)  # a property: it may raise anything
        return SampleClock.from_description(declared)
    except Exception as exc:
        log.warning(
            "the source's sample_clock %r is not understood (%s): taken as internal", declared, exc
        )
        return SampleClock()


def record_run_start(
    ring: StreamRing, source: object, monotonic_start: float, utc_start: float
) -> None:
    """Write the start of ``ring``'s run of ``source`` into its time table (see
    :class:`RunStart`): the clocks read just before the source was started."""
    if ring.time_table is None:
        return
    run = RunStart(
        run_epoch=ring.run_epoch,
        first_index=ring.run_start_index,
        monotonic_start=monotonic_start,
        utc_start=utc_start,
        start_call=max(0.0, now_pair()[0] - monotonic_start),
        start_tick=declared_clock(source).start_tick,
    )
    ring.time_table.write_run(run)


class _RunLog(Generic[_T]):
    """What a hub knows of each run, by run epoch: of the most recent runs only, so a
    long-lived hub does not grow."""

    def __init__(self, keep: int = _RUNS_REMEMBERED):
        self._keep = keep
        self._entries: dict[int, _T] = {}

    def remember(self, run_epoch: int, value: _T) -> None:
        self._entries[run_epoch] = value
        if len(self._entries) > self._keep:
            del self._entries[min(self._entries)]

    def get(self, run_epoch: int, default: Any = None) -> Any:
        return self._entries.get(run_epoch, default)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class StreamHub:
    """Shares one source among any number of readers through one ring and one pump thread.

    Parameters
    ----------
    source
        A ``DataInStreamInterface``-shaped object (see :class:`StreamSource`).
    name
        The stream's name; with ``shared=True`` other processes attach to it by this name.
    shared
        Keep the ring in named shared memory (default) or in private memory.
    max_poll_rate
        Most polls of the source per second (Hz, 1 to 1000); faster only if the source's own
        buffer would otherwise fill before the next poll.
    min_ring_seconds
        The ring holds at least this much data at the configured rate (and headroom beyond
        it, so that a blocking read of that much succeeds: see :func:`ring_size`).

    Raises
    ------
    ValueError
        If ``max_poll_rate`` is not a number from 1 to 1000 or ``min_ring_seconds`` is not a
        positive number.
    StreamCapacityError
        If the ring for the source's configuration does not fit in memory.

    A stream of another shape (an :class:`~qudi.util.instream.image_hub.ImageHub`'s frames)
    changes how the ring is made and sized through :meth:`_make_ring` and the two class
    attributes below, and keeps everything else.
    """

    min_readable = MIN_RING_SAMPLES  # the least a blocking read may wait for (ring_size)
    min_pump_chunk = _MIN_PUMP_CHUNK  # the fewest samples the pump claims at once

    def __init__(
        self,
        source: StreamSource,
        *,
        name: str,
        shared: bool = True,
        max_poll_rate: float = 30.0,
        min_ring_seconds: float = 1.0,
    ):
        self._max_poll_rate = check_poll_rate(max_poll_rate)
        self._min_ring_seconds = check_positive_number(min_ring_seconds, "min_ring_seconds")
        self.name = name
        self._source = source
        self._shared = shared
        self._requested_capacity = 0
        self._accepted_request: tuple | None = None
        self._lock = threading.RLock()
        self._readers: dict[str, HubReader] = {}
        self._running: set[HubReader] = set()
        self._pump: Pump | None = None
        self._faults: _RunLog[BaseException] = _RunLog()  # the exception that ended a run
        self._run_starts: _RunLog[int] = _RunLog()  # the index of a run's first sample
        self._ring, self._readable = self._new_ring()

    # ------------------------------------------------------------------------- public API
    @property
    def ring(self) -> StreamRing:
        return self._ring

    @property
    def max_poll_rate(self) -> float:
        """Most polls of the source per second (Hz); a new value counts from the next start.

        Raises
        ------
        ValueError
            When set to anything but a number from 1 to 1000 (nothing changes then).
        """
        return self._max_poll_rate

    @max_poll_rate.setter
    def max_poll_rate(self, rate: float) -> None:
        self._max_poll_rate = check_poll_rate(rate)

    @property
    def source(self) -> StreamSource:
        return self._source

    @property
    def running(self) -> bool:
        return self._ring.state is RingState.RUNNING

    @property
    def error(self) -> BaseException | None:
        """The source's exception that ended the current run, if it ended that way."""
        return self._faults.get(self._ring.run_epoch)

    @property
    def readers(self) -> tuple[HubReader, ...]:
        return tuple(self._readers.values())

    @property
    def running_readers(self) -> list[str]:
        return sorted(r.name for r in self._running if r.running)

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> HubReader:
        """A new (stopped) reader; names are unique per hub so errors can name readers.

        ``name`` is a non-empty str, ``allow_overwrite`` True or False (see :class:`RingReader`).
        """
        with self._lock:
            self._require_open()
            reader = HubReader(self, name, allow_overwrite)  # checks the arguments
            if name in self._readers:
                raise ValueError(f"stream '{self.name}' already has a reader named '{name}'")
            self._readers[name] = reader
            return reader

    def configure(
        self,
        active_channels: Sequence[str],
        streaming_mode: Any,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Configure the source and size the ring; a no-op when nothing changes.

        ``active_channels`` is a non-empty list of channel names, ``channel_buffer_size`` an
        integer >= 1 and ``sample_rate`` a positive number of samples per second (TypeError or
        ValueError naming the argument otherwise; the source checks ``streaming_mode`` and what
        it supports). ``channel_buffer_size`` means "at least this many samples in one
        blocking read": it is satisfied while the ring holds that many and the headroom such a
        read needs (see :func:`ring_size`), so its capacity is somewhat larger. Raises
        :class:`StreamBusyError` naming the running readers if a change is asked for while
        any runs, and
        :class:`~qudi.util.instream.errors.StreamCapacityError` if the ring this needs does not
        fit in memory; the previous configuration is then kept.
        """
        request = (
            as_channel_names(active_channels),
            member_name(streaming_mode),
            check_count(
                channel_buffer_size,
                sys.maxsize,
                "channel_buffer_size",
                "the largest possible array",
                minimum=1,
            ),
            check_positive_number(
                sample_rate, "sample_rate", "a positive number of samples per second"
            ),
        )
        with self._lock:
            self._require_open()
            self._end_ended_run()
            change = self._describe_change(request)
            if change is None:
                return
            running = self.running_readers
            if running:
                raise StreamBusyError(running, f"{change} of stream '{self.name}'")
            source = self._source
            previous = (
                list(source.active_channels),
                source.streaming_mode,
                source.channel_buffer_size,
                source.sample_rate,
            )
            mode = in_kind_of(streaming_mode, source.streaming_mode)  # the source's own enum
            source.configure(active_channels, mode, channel_buffer_size, sample_rate)
            try:
                self._replace_ring(request[2], previous)
            except StreamCapacityError as exc:
                raise StreamCapacityError(
                    f"stream '{self.name}' cannot hold channel_buffer_size={request[2]} samples "
                    f"at sample_rate={request[3]!r}: {exc}; it keeps its previous configuration",
                    exc.capacity,
                    exc.nbytes,
                ) from exc
            self._accepted_request = request
            self._requested_capacity = request[2]

    def stats(self) -> HubStats:
        pump = self._pump
        measured = pump.measured_rate(_RATE_WINDOW_S) if pump is not None else 0.0
        ring = self._ring
        error = self.error
        return HubStats(
            name=self.name,
            running=self.running,
            samples_written=ring.write_index,
            nominal_rate=float(ring.info.sample_rate or 0.0),
            measured_rate=measured,
            ring_capacity=ring.capacity,
            fault=None if error is None else f"{type(error).__name__}: {error}",
            readers=tuple(
                ReaderStats(r.name, r.running, r.allow_overwrite, r.available, r.fill, r.lost)
                for r in self.readers
            ),
        )

    def close(self) -> None:
        """Stop the source, end every reader and release the ring (and its shared memory)."""
        with self._lock:
            if self._ring.closed:
                return
            try:
                if self._running:
                    self._running.clear()
                    self._stop_source()
            finally:
                for reader in self._readers.values():
                    reader.end_for_good()
                self._readers.clear()
                self._ring.close()

    def __enter__(self) -> StreamHub:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def join_if_running(self, reader: HubReader) -> bool:
        """Start ``reader`` if the source runs for other readers; never start the source.

        For a reader that follows whatever runs (a publisher after a fault or a finished
        run, once another reader has restarted the hub). Returns whether ``reader`` runs.
        """
        with self._lock:
            if self.running and not self._ring.closed and not reader.running:
                reader.start()
            return reader.running

    # ------------------------------------------------- the ReaderHost contract of HubReader
    def start_reader(self, reader: HubReader) -> None:
        """Count ``reader`` as running, starting the source if it is the first (see
        :meth:`HubReader.start`, which calls this)."""
        with self._lock:
            self._require_open()
            self._end_ended_run()
            if reader in self._running:
                return
            first = not self._running
            if first:
                monotonic_start, utc_start = now_pair()
                self._source.start_stream()
                self._ring.mark_running()
                self._run_starts.remember(self._ring.run_epoch, self._ring.run_start_index)
                record_run_start(self._ring, self._source, monotonic_start, utc_start)
            reader.join_run(self._ring)  # before the pump runs: the first reader misses nothing
            self._running.add(reader)
            if first:
                self._start_pump()

    def stop_reader(self, reader: HubReader) -> None:
        """Stop counting ``reader``; the source stops with the last running reader."""
        with self._lock:
            reader.leave_run()
            if reader not in self._running:
                return
            self._running.discard(reader)
            if not self._running and not self._ring.closed:
                self._stop_source()
            self._ring.wake_waiters()

    def forget_reader(self, reader: HubReader) -> None:
        """Stop ``reader`` and drop it from :attr:`readers` (its name is free again)."""
        with self._lock:
            self.stop_reader(reader)
            if self._readers.get(reader.name) is reader:
                del self._readers[reader.name]

    def fault_of_run(self, run_epoch: int) -> BaseException | None:
        """The source's exception that ended run ``run_epoch`` (one of the recent runs)."""
        return self._faults.get(run_epoch)

    def run_end(self, run_epoch: int, fallback: int) -> int:
        """Index where run ``run_epoch`` ended (the next run's start), if this hub knows."""
        return self._run_starts.get(run_epoch + 1, fallback)

    # -------------------------------------------------------------------------- internals
    def _require_open(self) -> None:
        if self._ring.closed:
            raise StreamError(f"stream '{self.name}' is closed")

    def _poll_period(self, rate: float) -> float:
        return poll_period(self.max_poll_rate, rate, self._source.channel_buffer_size)

    def _start_pump(self) -> None:
        rate = float(self._source.sample_rate)
        period = self._poll_period(rate)
        chunk = pump_chunk(
            rate, period, self._ring.capacity, self._readable, minimum=self.min_pump_chunk
        )
        self._pump = Pump(
            self.name, self._source, self._ring, period, self._on_pump_fault, max_chunk=chunk
        )

    def _stop_source(self) -> None:
        pump, self._pump = self._pump, None
        try:
            if pump is not None:
                pump.stop()
            if pump is None or pump.fault is None:  # a faulted pump stopped the source already
                self._source.stop_stream()
        finally:
            if self._ring.state is RingState.RUNNING:
                self._ring.mark_stopped()

    def _on_pump_fault(self, ring: StreamRing, exc: BaseException) -> None:
        """Runs in the pump thread: stop the source, keep the error, tell the readers."""
        self._faults.remember(ring.run_epoch, exc)
        # a warning: the error itself reaches every reader, whose owner reports it
        log.warning("stream '%s': the source failed and was stopped: %s", self.name, exc)
        try:
            self._source.stop_stream()
        except Exception as stop_exc:
            log.error(
                "stream '%s': stopping the source after its failure failed too: %s",
                self.name,
                stop_exc,
            )
        ring.mark_faulted(exc)

    def _end_ended_run(self) -> None:
        """After a fault or a finished FINITE run, its readers count as stopped: forget them."""
        if self._pump is not None and self._pump.ended:
            self._running.clear()
            self._stop_source()

    def _describe_change(self, request: tuple) -> str | None:
        channels, mode, buffer_size, rate = request
        source = self._source
        current = (
            tuple(source.active_channels),
            member_name(source.streaming_mode),
            float(source.sample_rate),
        )
        accepted = self._accepted_request
        if (channels, mode, rate) == current or (
            accepted is not None
            and (channels, mode, rate) == (accepted[0], accepted[1], accepted[3])
        ):
            if buffer_size <= self._readable:  # a blocking read of this many succeeds
                return None
            return f"grow the buffer from {self._readable} to {buffer_size} samples"
        names = ("active_channels", "streaming_mode", "sample_rate")
        changed = [
            f"{key} from {old!r} to {new!r}"
            for key, old, new in zip(names, current, (channels, mode, rate), strict=True)
            if old != new
        ]
        return "change " + ", ".join(changed)

    def _new_ring(self, requested_capacity: int | None = None) -> tuple[StreamRing, int]:
        """A stopped ring for the source's configuration, and how many samples a blocking read
        of it may ask for: at least ``requested_capacity``, and the ring has headroom beyond
        that (see :func:`ring_size`)."""
        rate = float(self._source.sample_rate)
        if requested_capacity is None:
            requested_capacity = self._requested_capacity
        readable = max(  # what a consumer may ask for in one blocking read
            requested_capacity,
            math.ceil(rate * self._min_ring_seconds),
            math.ceil(4 * rate / self.max_poll_rate),
        )
        period = self._poll_period(rate)
        readable, capacity = ring_size(
            readable, rate, period, min_readable=self.min_readable, min_chunk=self.min_pump_chunk
        )
        return self._make_ring(capacity), readable

    def _make_ring(self, capacity: int) -> StreamRing:
        """A stopped ring of ``capacity`` in the format of what the source streams now."""
        return ring_for_source(self._source, capacity, shared=self._shared, name=self.name)

    def _replace_ring(self, requested_capacity: int, previous: tuple) -> None:
        """Put a ring for the source's new configuration in place of the old one.

        If the new ring cannot be made, the source is configured back to ``previous`` and the
        hub keeps (or, if the old ring had to make way for the new one's shared-memory name,
        rebuilds) a ring for it, so a request that is too big leaves the hub usable.
        """
        old = self._ring
        if self._shared:
            old.close()  # the new ring takes over the old one's name
        try:
            ring, readable = self._new_ring(requested_capacity)
        except Exception:
            self._source.configure(*previous)
            if old.closed:
                self._use_ring(*self._new_ring())
            raise
        old.close()
        self._use_ring(ring, readable)

    def _use_ring(self, ring: StreamRing, readable: int) -> None:
        self._ring, self._readable = ring, readable
        self._faults.clear()  # run epochs count again from 0 in the new ring
        self._run_starts.clear()
        for reader in self._readers.values():
            reader.rebind(ring)
