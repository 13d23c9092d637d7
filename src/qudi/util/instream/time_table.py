"""The time table of a ring: its run's start and the pump's (index, host time) rows, in the
ring's own memory, so that readers in other processes see them as the writer writes them.

Layout (at the ring layout's ``time_offset``, ``time_slots`` rows)::

    0    run record: sequence (odd while written), run epoch, first index, start tick,
         monotonic start, UTC start, start call (s), has start tick
    64   rows written (uint64, ever)
    72   host uncertainty of the run (float64, s; 0 in tables of older versions)
    128  rows [time_slots] of (index int64, host float64, device float64), slot = row % slots

Only the ring's writer writes here. A row is written into its slot before the count says it
exists, and a reader drops every row whose slot the writer may have reused while it copied,
so a row is never read half written. The run record is guarded by its sequence number.
Rows carry no run: those of the current run are the ones with an index past its first index.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from qudi.util.instream.timebase import RunStart, TimeTable

if TYPE_CHECKING:
    from qudi.util.instream.ring import StreamRing

__all__ = [
    "DEFAULT_TIME_SLOTS",
    "note_arrival",
    "note_run_start",
    "MAX_TIME_SLOTS",
    "ROW_DTYPE",
    "TimeTableBlock",
    "now_pair",
    "time_bytes",
]

#: Rows a ring keeps by default: at 30 polls a second, half a minute of them.
DEFAULT_TIME_SLOTS = 1024
MAX_TIME_SLOTS = 1 << 16
ROW_DTYPE = np.dtype([("index", "<i8"), ("host", "<f8"), ("device", "<f8")])
_HEAD_BYTES = 128
_SEQ, _EPOCH, _FIRST, _TICK, _HAS_TICK, _ROWS = 0, 1, 2, 3, 7, 8  # uint64 words
_MONO, _UTC, _CALL, _HOST_ERR = 4, 5, 6, 9  # float64 words (same memory)
_READ_TRIES = 100


def time_bytes(slots: int) -> int:
    """Bytes a time table of ``slots`` rows takes (0 for none)."""
    return _HEAD_BYTES + slots * ROW_DTYPE.itemsize if slots else 0


class TimeTableBlock:
    """A ring's time table on ``buf`` at ``offset`` (see the module docstring)."""

    def __init__(self, buf: memoryview, offset: int, slots: int, *, writer: bool):
        self.slots = slots
        self.is_writer = writer
        self._words = np.ndarray((_HEAD_BYTES // 8,), np.uint64, buf, offset)
        self._floats = np.ndarray((_HEAD_BYTES // 8,), np.float64, buf, offset)
        self._rows = np.ndarray((slots,), ROW_DTYPE, buf, offset + _HEAD_BYTES)

    # ----------------------------------------------------------------------- writer
    def write_run(self, run: RunStart) -> None:
        """Record the start of a new run (before its first row)."""
        words, floats = self._words, self._floats
        words[_SEQ] = words.item(_SEQ) + 1  # odd: being written
        words[_EPOCH] = run.run_epoch
        words[_FIRST] = run.first_index
        words[_HAS_TICK] = run.start_tick is not None
        words[_TICK] = np.int64(run.start_tick or 0).view(np.uint64)
        floats[_MONO], floats[_UTC], floats[_CALL], floats[_HOST_ERR] = (
            run.monotonic_start,
            run.utc_start,
            run.start_call,
            run.host_uncertainty,
        )
        words[_SEQ] = words.item(_SEQ) + 1

    def append(self, index: int, host: float, device: float) -> None:
        """Add a row: by host time ``host`` the samples before ``index`` had been taken, the
        last of them at ``device`` seconds of the stream's clock (NaN if unknown)."""
        count = self._words.item(_ROWS)
        self._rows[count % self.slots] = (index, host, device)
        self._words[_ROWS] = count + 1

    # ----------------------------------------------------------------------- readers
    @property
    def rows_written(self) -> int:
        return int(self._words.item(_ROWS))

    def run(self) -> RunStart | None:
        """The current run's start, None before the first run."""
        words, floats = self._words, self._floats
        for _ in range(_READ_TRIES):
            seq = words.item(_SEQ)
            if seq & 1:
                time.sleep(1e-5)
                continue
            epoch, first = words.item(_EPOCH), words.item(_FIRST)
            tick = (
                int(np.uint64(words.item(_TICK)).view(np.int64)) if words.item(_HAS_TICK) else None
            )
            mono, utc, call = floats.item(_MONO), floats.item(_UTC), floats.item(_CALL)
            spread = floats.item(_HOST_ERR)
            if words.item(_SEQ) == seq:
                if seq == 0:
                    return None
                if not (math.isfinite(spread) and spread >= 0):
                    spread = math.inf  # a corrupt word: the times are unknown, not exact
                return RunStart(int(epoch), int(first), mono, utc, call, tick, spread)
        return None  # a writer between two stores for a whole millisecond: ask again later

    def rows(self, since: int = 0) -> tuple[TimeTable, int]:
        """``(rows, count)``: the kept rows of the current run numbered ``since`` or later
        (count them from 0, ever), and the count to pass as ``since`` next time."""
        run = self.run()
        count = self.rows_written
        first = max(since, count - self.slots + 1, 0)
        if run is None or first >= count:
            return TimeTable.empty(), count
        slots = np.arange(first, count) % self.slots
        copied = self._rows[slots]  # fancy indexing: a copy
        after = self.rows_written
        copied = copied[max(0, after - self.slots + 1 - first) :]  # slots reused meanwhile
        copied = copied[copied["index"] > run.first_index]
        good = np.isfinite(copied["host"])
        copied = copied[good]
        return TimeTable.of(copied["index"], copied["host"], copied["device"]), count

    def release(self) -> TimeTableBlock:
        """Let go of the memory (before the ring unmaps it); a copy keeps answering."""
        self._words = self._words.copy()
        self._floats = self._words.view(np.float64)
        self._rows = self._rows.copy()
        return self


def now_pair() -> tuple[float, float]:
    """``(time.monotonic(), time.time())`` read as close together as Python can."""
    before = time.monotonic()
    utc = time.time()
    return (before + time.monotonic()) / 2, utc


def note_run_start(ring: StreamRing, start_tick: int | None = None) -> None:
    """Record in ``ring``'s time table that its current run starts now (a receiver that
    refills a ring does this when it hears of a new run); nothing for a ring without one."""
    table = ring.time_table
    if table is None:
        return
    monotonic, utc = now_pair()
    table.write_run(RunStart(ring.run_epoch, ring.run_start_index, monotonic, utc, 0.0, start_tick))


def note_arrival(ring: StreamRing, last_stamp: float | None = None) -> None:
    """Add a row for the samples just written into ``ring``: they had all been taken by now
    (its last one at ``last_stamp`` of the stream's clock, or at its index over the rate).

    For a writer that is not a pump, e.g. a receiver refilling a ring from the network: its
    rows are late by the transfer too, which the clock fit takes as it takes any latency.
    """
    table = ring.time_table
    if table is None:
        return
    index = ring.write_index
    if last_stamp is not None:
        device = float(last_stamp)
    else:
        rate = float(ring.info.sample_rate or 0.0)
        constant = str(ring.info.sample_timing) == "CONSTANT" and rate > 0
        device = (index - 1 - ring.run_start_index) / rate if constant else float("nan")
    table.append(index, time.monotonic(), device)
