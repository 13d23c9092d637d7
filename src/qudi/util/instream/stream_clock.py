"""StreamClock: follows one ring's time table and says when its samples were taken.

Any reader of a ring, in the writer's process or attached from another, can make one::

    clock = StreamClock(ring)
    clock.time_of(12345)              # host monotonic seconds of sample 12345
    clock.indices_between(t0, t1)     # the ring indices taken between t0 and t1

It reads the rows the pump added since it last looked (so it keeps more history than the
ring's table holds), refits the stream's clock (see
:func:`~qudi.util.instream.timebase.fit_clock`), and starts over when a new run begins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from qudi.util.instream.timebase import (
    DEFAULT_WINDOW_S,
    RunStart,
    SampleClock,
    StreamTime,
    TimeTable,
)

if TYPE_CHECKING:
    from qudi.util.instream.ring import StreamRing

__all__ = ["StreamClock"]


class StreamClock:
    """The time base of one ring's current run, refreshed from its time table.

    Parameters
    ----------
    ring
        The stream (a writer's ring or one attached by name).
    keep_rows
        Most rows kept; beyond it every second row is dropped (the fit then rests on half
        as many, over the same span).
    window
        Seconds of the stream's clock whose rows (before the newest) the fit takes, checked
        for a bend (see :func:`~qudi.util.instream.timebase.fit_clock`): a drift that
        changes is followed, and said in the uncertainty. None: all rows of the run, one
        straight line (a clock whose drift never changes). Samples older than the window are
        timed by the recent line too, with an uncertainty that grows with their distance.

    Raises
    ------
    ValueError
        If the ring has no time table (it was made with ``time_slots=0``, or by an older
        qudi-instream).
    """

    def __init__(
        self,
        ring: StreamRing,
        *,
        keep_rows: int = 1 << 16,
        window: float | None = DEFAULT_WINDOW_S,
    ):
        if ring.time_table is None:
            raise ValueError(
                f"stream '{ring.name}' has no time table (made with time_slots=0 or by an "
                "older qudi-instream): its samples' times are unknown"
            )
        self.ring = ring
        self.keep_rows = max(16, int(keep_rows))
        self.window = window
        self._table_block = ring.time_table
        self._seen_rows = 0
        self._run: RunStart | None = None
        self._rows = TimeTable.empty()
        self._time: StreamTime | None = None

    @property
    def sample_clock(self) -> SampleClock:
        """What ticks the samples (the static part the source declared), with the current
        run's start tick."""
        clock = self.ring.info.sample_clock
        run = self._run
        if run is None or run.start_tick is None:
            return clock
        return SampleClock(
            clock.kind, clock.source, clock.tick_rate, clock.start_trigger, run.start_tick
        )

    @property
    def run(self) -> RunStart | None:
        """The current run's start as last refreshed (None before the first run)."""
        return self._run

    @property
    def rows(self) -> TimeTable:
        """The rows of the current run kept so far."""
        return self._rows

    def refresh(self) -> StreamTime | None:
        """Read new rows and refit; the stream's time base, None before a run's first row."""
        run = self._table_block.run()
        if run is None:
            return None
        old = self._run
        if old is None or (run.run_epoch, run.first_index) != (old.run_epoch, old.first_index):
            self._rows, self._time = TimeTable.empty(), None
        self._run = run  # the same run's record may be rewritten (a receiver's host bound)
        new, self._seen_rows = self._table_block.rows(self._seen_rows)
        if len(new):
            rows = self._rows.joined(new)
            if len(rows) > self.keep_rows:
                keep = np.r_[np.arange(0, len(rows) - 1, 2), len(rows) - 1]
                rows = TimeTable(rows.index[keep], rows.host[keep], rows.device[keep])
            self._rows = rows
            fitted = rows.fit(self.window) if np.isfinite(rows.device).any() else None
            if fitted is not None:
                rate = self.ring.info.sample_rate
                self._time = StreamTime(run, rate, fitted, self.sample_clock)
        return self._time

    @property
    def time(self) -> StreamTime | None:
        """The time base as last refreshed (see :meth:`refresh`)."""
        return self._time

    def _current(self) -> StreamTime:
        time = self.refresh()
        if time is None:
            raise ValueError(
                f"stream '{self.ring.name}' has no time yet: its run has not started or no "
                "chunk has arrived"
            )
        return time

    def time_of(self, index: npt.ArrayLike) -> np.ndarray:
        """Host monotonic seconds at which samples ``index`` (ring indices) were taken
        (CONSTANT streams; for TIMESTAMP ones use :meth:`time_of_stamps`).

        Raises
        ------
        ValueError
            Before the run's first chunk, or for a stream without a sample rate.
        """
        return self._current().time_of(index)

    def time_of_stamps(self, stamps: npt.ArrayLike) -> np.ndarray:
        """Host monotonic seconds of a TIMESTAMP stream's stamps (device seconds)."""
        return self._current().fit.host_time(stamps)

    def uncertainty_of(self, index: npt.ArrayLike) -> np.ndarray:
        """How far (s) :meth:`time_of` may be off (covers the true error ~95 % of the time)."""
        return self._current().uncertainty_of(index)

    def indices_between(self, t0: float, t1: float) -> tuple[int, int]:
        """``(start, stop)``: ring indices of the samples taken at host times in [t0, t1)."""
        return self._current().indices_between(t0, t1)
