"""AlignedReader: several streams read onto one time axis, the primary's.

Each read takes ``n`` samples of the primary stream and, for each secondary stream, its values
at the times those primary samples were taken: linearly interpolated between the secondary's
two samples around each time, after :func:`~qudi.util.instream.alignment.align` has said
where the secondary's samples fall on the primary's axis (exact on a declared shared clock,
fitted with an uncertainty otherwise).

An edge value is never held: a primary time past a secondary's newest sample either waits
for that sample (``missing='wait'``: the read blocks, with its timeout) or gets NaN and is
counted (``missing='nan'``); a time before a secondary's oldest kept sample (it started later,
or the time lies further back than its history) is always NaN and counted. (A TIMESTAMP
primary's times are known only once its samples are read, so ``'wait'`` waits by its nominal
rate; a stamp beyond that still finds no secondary sample and is NaN and counted.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from qudi.util.instream.alignment import Alignment, align
from qudi.util.instream.contracts import TimedCursor
from qudi.util.instream.errors import StreamStoppedError, StreamTimeoutError
from qudi.util.instream.stream_clock import StreamClock
from qudi.util.instream.timebase import SampleClock, StreamTime

__all__ = ["MISSING_POLICIES", "AlignedChunk", "AlignedReader"]

#: What a read does for a time a secondary has no sample for yet.
MISSING_POLICIES = ("wait", "nan")
_HISTORY_MIN = 1024
_SETTLE_S = 1e-3  # how often a wait for a secondary looks again (it may be in another process)


@dataclass(frozen=True)
class AlignedChunk:
    """One aligned read.

    Attributes
    ----------
    index
        The primary's ring indices of the ``n`` samples.
    time
        Host monotonic seconds at which they were taken (the primary's fit).
    device_time
        The same on the primary's own clock: seconds since its run's first sample (its
        timestamps, for a TIMESTAMP primary).
    primary
        The primary's samples ``[n, channels]`` (its own dtype).
    secondary
        Per secondary: its values at those times ``[n, channels]``, float64, NaN where it had
        no sample.
    missing
        Per secondary: how many of the ``n`` rows are NaN.
    uncertainty
        Per secondary: the largest uncertainty (s) of where its samples fall on the primary's
        axis in this chunk (0.0 when exact).
    method
        Per secondary: how it was aligned (see :mod:`qudi.util.instream.alignment`).
    """

    index: np.ndarray
    time: np.ndarray
    device_time: np.ndarray
    primary: np.ndarray
    secondary: dict[str, np.ndarray]
    missing: dict[str, int]
    uncertainty: dict[str, float]
    method: dict[str, str]


class _Follower:
    """A secondary stream's recent samples with their device times, read as they come."""

    def __init__(self, name: str, reader: TimedCursor, clock: SampleClock | None):
        ring = reader.ring
        timing = str(ring.info.sample_timing)
        if timing not in ("CONSTANT", "TIMESTAMP"):
            raise ValueError(
                f"secondary stream '{name}' has {timing} sample timing: only CONSTANT and "
                "TIMESTAMP streams have times to align"
            )
        self.name = name
        self.reader = reader
        self.clock = StreamClock(ring)
        self.declared = clock
        self.stamped = timing == "TIMESTAMP" and ring.has_timestamps
        self.channels = int(np.prod(ring.sample_shape)) if ring.sample_shape else 1
        self.rate = float(ring.info.sample_rate or 0.0)
        if not self.stamped and not self.rate > 0:
            raise ValueError(
                f"secondary stream '{name}' is CONSTANT without a sample rate: its samples "
                "have no times"
            )
        self.keep = max(_HISTORY_MIN, int(self.rate * 30))
        self.run_epoch = ring.run_epoch
        self.first_index = ring.run_start_index
        self.times = np.empty(0)
        self.values = np.empty((0, self.channels))

    def time_base(self) -> StreamTime | None:
        found = self.clock.refresh()
        if found is None or self.declared is None:
            return found
        return replace(found, clock=replace(self.declared, start_tick=found.clock.start_tick))

    def pull(self) -> None:
        """Take whatever the secondary has published into the history (with the device time
        of each sample: its stamp, or its index since the run's first over the rate)."""
        count = self.reader.available
        if count <= 0:
            return
        ring = self.reader.ring
        out = np.empty((count, *ring.sample_shape), ring.dtype)
        stamps = np.empty(count) if self.stamped else None
        got = self.reader.read_available_into(out, timestamps=stamps)
        if got <= 0:
            return
        start = self.reader.position - got
        if ring.run_epoch != self.run_epoch:  # a new run: a new device clock
            self.run_epoch = ring.run_epoch
            self.times, self.values = np.empty(0), np.empty((0, self.channels))
        if stamps is not None:
            times = stamps[:got]
        else:
            times = (np.arange(start, start + got) - self._first_index(ring)) / self.rate
        values = out[:got].reshape(got, self.channels).astype(np.float64)
        self.times = np.concatenate([self.times, times])[-self.keep :]
        self.values = np.concatenate([self.values, values])[-self.keep :]

    def _first_index(self, ring) -> int:
        """The index of the run's first sample: the time table's (a receiver's ring starts
        where it joined, the publisher's run before); the history follows a change."""
        self.clock.refresh()
        run = self.clock.run
        first = run.first_index if run is not None and run.run_epoch == ring.run_epoch else None
        if first is None:
            first = ring.run_start_index
        if first != self.first_index:
            self.times = self.times + (self.first_index - first) / self.rate
            self.first_index = first
        return first

    @property
    def newest(self) -> float:
        return float(self.times[-1]) if len(self.times) else -math.inf

    def values_at(self, times: np.ndarray) -> tuple[np.ndarray, int]:
        """Values interpolated at secondary device ``times``; NaN outside the history."""
        out = np.full((len(times), self.channels), np.nan)
        if len(self.times) == 0:
            return out, len(times)
        inside = (times >= self.times[0]) & (times <= self.times[-1])
        for channel in range(self.channels):
            out[inside, channel] = np.interp(times[inside], self.times, self.values[:, channel])
        return out, int(len(times) - inside.sum())


class AlignedReader:
    """Reads a primary stream and several secondaries onto the primary's time axis.

    Parameters
    ----------
    primary
        A reader of the primary stream (a :class:`~qudi.util.instream.reader.RingReader` or
        a hub's reader, started): its samples set the time axis.
    secondaries
        Readers of the other streams, by the name results are reported under.
    missing
        ``'wait'``: a read waits (up to its timeout) until every secondary has samples past
        the primary's; ``'nan'``: it does not wait, and such rows are NaN and counted.
    clocks
        Declared sample clocks that override what the streams say (by secondary name, or
        ``'primary'``), e.g. ``SampleClock('shared', 'lab')`` for two streams the user knows
        run on one clock.

    Raises
    ------
    ValueError
        For an unknown ``missing`` policy, a stream without a time table, or a secondary
        with RANDOM timing.
    """

    def __init__(
        self,
        primary: TimedCursor,
        secondaries: Mapping[str, TimedCursor],
        *,
        missing: str = "wait",
        clocks: Mapping[str, SampleClock] | None = None,
    ):
        if missing not in MISSING_POLICIES:
            raise ValueError(f"missing={missing!r}: valid are {list(MISSING_POLICIES)}")
        clocks = dict(clocks or {})
        unknown = sorted(set(clocks) - set(secondaries) - {"primary"})
        if unknown:
            raise ValueError(f"clocks names streams {unknown} that are not read here")
        self.missing = missing
        self.primary = primary
        ring = primary.ring
        self._primary_clock = StreamClock(ring)
        self._primary_declared = clocks.get("primary")
        self._stamped = ring.has_timestamps and str(ring.info.sample_timing) == "TIMESTAMP"
        self._followers = {
            name: _Follower(name, reader, clocks.get(name)) for name, reader in secondaries.items()
        }
        self.alignments: dict[str, Alignment] = {}

    @property
    def secondary_names(self) -> list[str]:
        return list(self._followers)

    def primary_time_base(self) -> StreamTime | None:
        found = self._primary_clock.refresh()
        if found is None or self._primary_declared is None:
            return found
        tick = found.clock.start_tick
        return replace(found, clock=replace(self._primary_declared, start_tick=tick))

    @property
    def available(self) -> int:
        """Primary samples a read can return now without waiting (with ``missing='wait'``:
        those every secondary has caught up with)."""
        count = self.primary.available
        if self.missing == "nan" or count <= 0:
            return count
        primary = self.primary_time_base()
        if primary is None or not self._align(primary):
            return 0
        position = self.primary.position
        for name, follower in self._followers.items():
            follower.pull()
            reach = float(self.alignments[name].primary_time(follower.newest))
            newest_index = primary.run.first_index + reach * float(primary.rate or 0.0)
            count = min(count, max(0, math.floor(newest_index) - position + 1))
        return count

    def read(self, n: int, *, timeout: float | None = None) -> AlignedChunk:
        """The next ``n`` primary samples with every secondary's values at their times.

        Raises
        ------
        StreamTimeoutError
            If the primary's samples, or (``missing='wait'``) a secondary's samples past them,
            did not come within ``timeout`` seconds; no primary sample was consumed.
        StreamStoppedError
            If (``missing='wait'``) a secondary stopped before reaching the primary's times.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        ring = self.primary.ring
        if not ring.wait(lambda: self.primary.available >= n, timeout):
            raise StreamTimeoutError(
                f"{n} samples of the primary stream did not come within {timeout} s"
            )
        primary = self._wait_for_time_base(deadline)
        start = self.primary.position
        index = np.arange(start, start + n)
        stamps = np.empty(n) if self._stamped else None
        # a TIMESTAMP primary's stamps are known once read: wait by its nominal rate then
        device = primary.device_time_of(index)
        self._wait_for_secondaries(primary, float(device[-1]), deadline)
        data = np.empty((n, *ring.sample_shape), ring.dtype)
        self.primary.read_into(data, n, timeout=0.0, timestamps=stamps)
        if stamps is not None:
            device = stamps
        return self._chunk(primary, index, device, data)

    # ---------------------------------------------------------------------- internals
    def _align(self, primary: StreamTime) -> bool:
        for name, follower in self._followers.items():
            secondary = follower.time_base()
            if secondary is None:
                return False
            self.alignments[name] = align(primary, secondary)
        return True

    def _wait_for_time_base(self, deadline: float | None) -> StreamTime:
        while True:
            primary = self.primary_time_base()
            if primary is not None and self._align(primary):
                return primary
            self._pause(deadline, "the streams' first time-table rows")

    def _wait_for_secondaries(
        self, primary: StreamTime, last: float, deadline: float | None
    ) -> None:
        """Wait until each secondary has a sample at or after primary device time ``last``."""
        for name, follower in self._followers.items():
            while True:
                follower.pull()
                alignment = self.alignments[name]
                if self.missing == "nan" or float(alignment.primary_time(follower.newest)) >= last:
                    break
                if not follower.reader.running and follower.reader.available == 0:
                    raise StreamStoppedError(
                        f"secondary stream '{name}' stopped before it reached the primary's "
                        f"samples (missing='wait'); use missing='nan' to read on without it"
                    )
                self._pause(deadline, f"secondary stream '{name}'")
                self._align(primary)

    def _pause(self, deadline: float | None, what: str) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise StreamTimeoutError(f"{what} did not come in time; nothing was consumed")
        time.sleep(_SETTLE_S)

    def _chunk(
        self, primary: StreamTime, index: np.ndarray, device: np.ndarray, data: np.ndarray
    ) -> AlignedChunk:
        values, missing, spread, method = {}, {}, {}, {}
        for name, follower in self._followers.items():
            follower.pull()
            alignment = self.alignments[name]
            targets = alignment.secondary_time(device)
            values[name], missing[name] = follower.values_at(targets)
            uncertainty = alignment.uncertainty(targets)
            spread[name] = float(np.max(uncertainty)) if len(uncertainty) else 0.0
            method[name] = alignment.method
        host = primary.fit.host_time(device)
        return AlignedChunk(index, host, device, data, values, missing, spread, method)
