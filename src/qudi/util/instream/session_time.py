"""The time base of a recorded stream: what a session stores of it, and its time table rows.

A thin seam between the session recorder and the stream's time model
(:mod:`qudi.util.instream.timebase`, :mod:`qudi.util.instream.time_table`): the recorder
stores a stream's time base (its declared sample clock and its run's start) as JSON with the
stream, and at every flush copies the (index, host, device) rows the ring's pump has noted
since the last copy. :func:`recorded_stream_time` turns both back into the
:class:`~qudi.util.instream.timebase.StreamTime` a live reader would have built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from qudi.util.instream.time_table import ROW_DTYPE
from qudi.util.instream.timebase import RunStart, SampleClock, StreamTime, TimeTable

__all__ = ["ROW_DTYPE", "recorded_stream_time", "stream_time_base", "time_table_rows"]


def stream_time_base(ring: Any) -> dict[str, Any]:
    """The ring's sample clock and its run's start as JSON-ready values (``run`` is None for
    a ring without a time table, such as a private ring the logic's frames feed)."""
    clock = getattr(ring.info, "sample_clock", None)
    table = getattr(ring, "time_table", None)
    run = table.run() if table is not None else None
    return {
        "sample_clock": clock.as_description() if isinstance(clock, SampleClock) else {},
        "run": None if run is None else dataclasses.asdict(run),
    }


def time_table_rows(ring: Any, since: int) -> tuple[np.ndarray, int]:
    """``(rows, count)``: the ring's time-table rows numbered ``since`` or later as
    :data:`ROW_DTYPE` records, and the count to pass as ``since`` next time."""
    table = getattr(ring, "time_table", None)
    if table is None:
        return np.empty(0, ROW_DTYPE), since
    rows, count = table.rows(since)
    out = np.empty(len(rows), ROW_DTYPE)
    out["index"], out["host"], out["device"] = rows.index, rows.host, rows.device
    return out, count


def recorded_stream_time(
    time_base: Mapping[str, Any], rows: np.ndarray, sample_rate: float | None
) -> StreamTime | None:
    """The stream's :class:`StreamTime` from what a session stored: its time base and time
    table, fitted by the live readers' own :func:`~qudi.util.instream.timebase.fit_clock`.

    Returns None when the stream has no run start or too few rows to fit (a stream that
    had no time table, or one recorded for less than a pump poll).
    """
    run = time_base.get("run")
    if not run or len(rows) < 2:
        return None
    table = TimeTable.of(rows["index"], rows["host"], rows["device"])
    if np.count_nonzero(np.isfinite(table.device)) < 2:
        return None
    clock = SampleClock.from_description(time_base.get("sample_clock") or None)
    return StreamTime(RunStart(**run), sample_rate, table.fit(), clock)
