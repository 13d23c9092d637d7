"""Reading one LSL stream: find it by name/type/source_id, and one run of an inlet on it.

:func:`resolve_stream` finds the stream (or raises an error that lists what it found).
:class:`LslInletRun` is one run: the inlet opens at start and is destroyed at :meth:`close`.
Its reads pull straight into the caller's array (a ring's free slots) with the outlet's raw
timestamps, find the samples LSL lost on the way in those
(:class:`~qudi.util.instream.lsl_timing.GapDetector`: they are counted and kept as gaps,
never hidden), and only then correct them to this host's clock (the inlet's latest
``time_correction``), keep them monotonic and turn them into seconds since the run's start.
The raw times are needed: only in them does a time the inlet deduced (the previous sample's
plus one period) show bit for bit. Plain Python and numpy; pylsl is passed in (see
``lsl_support``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from qudi.util.instream.errors import StreamNotFoundError, StreamTimeoutError
from qudi.util.instream.lsl_support import describe_found, time_correction
from qudi.util.instream.lsl_timing import CAUSE_SILENCE, Dejitter, GapDetector, LslGap

__all__ = ["LslInletRun", "LslQuery", "resolve_stream"]

_log = logging.getLogger(__name__)
_WAIT_STEP = 0.002  # s between looks at the inlet while a blocking read waits
_DEJITTER_HALFTIME = 30.0  # s of samples that weigh half in the dejitter line
_HISTORY = 10_000  # gaps kept
_SECOND_LOOK = 1.0  # s to wait for a second stream that matches a query


@dataclass(frozen=True)
class LslQuery:
    """Which LSL stream to read: any of name, type and source_id (all given must match)."""

    name: str | None = None
    type: str | None = None
    source_id: str | None = None

    def predicate(self) -> str:
        """The XPath predicate liblsl resolves with, e.g. ``name='EEG' and type='EEG'``."""
        parts = [f"{key}='{value}'" for key, value in self._given()]
        return " and ".join(parts)

    def describe(self) -> str:
        """The query for a message, e.g. ``name='EEG', source_id='amp1'``."""
        return ", ".join(f"{key}={value!r}" for key, value in self._given())

    def _given(self) -> list[tuple[str, str]]:
        given = [("name", self.name), ("type", self.type), ("source_id", self.source_id)]
        return [(key, value) for key, value in given if value is not None]


def resolve_stream(pylsl: ModuleType, query: LslQuery, timeout: float) -> Any:
    """The ``StreamInfo`` of the one LSL stream that matches ``query``.

    Raises
    ------
    StreamNotFoundError
        If no stream matches within ``timeout`` seconds, or several do; the message lists the
        streams that were found.
    """
    found = pylsl.resolve_bypred(query.predicate(), 1, timeout)
    if found:  # it returns at the first answer: give a second stream time to answer too
        more = pylsl.resolve_bypred(query.predicate(), 2, min(timeout, _SECOND_LOOK))
        unique = {info.uid(): info for info in [*found, *more]}
        if len(unique) == 1:
            return found[0]
        raise StreamNotFoundError(
            f"{len(unique)} LSL streams match {query.describe()}; give more of name, type and "
            f"source_id to pick one. Found {describe_found(list(unique.values()))}"
        )
    everything = pylsl.resolve_streams(wait_time=min(timeout, 1.0))
    raise StreamNotFoundError(
        f"no LSL stream matches {query.describe()} (waited {timeout:g} s). Found "
        f"{describe_found(everything)}"
    )


class LslInletRun:
    """One run of an inlet on a resolved stream: open, read, close.

    Parameters
    ----------
    pylsl
        The pylsl module.
    info
        The stream's ``StreamInfo`` (from :func:`resolve_stream`).
    columns
        Channels to deliver, as indices into the stream's channels; None for all (then reads
        pull straight into the caller's array).
    buffer_seconds
        The inlet's buffer (LSL's ``max_buflen``, whole seconds; of an irregular stream,
        hundreds of samples).
    dejitter
        Smooth the timestamps onto a line (see :class:`~qudi.util.instream.lsl_timing.Dejitter`).
    gap_tolerance
        Seconds of timestamp jitter not read as lost samples.
    open_timeout
        Seconds to wait for the outlet to answer when the run starts.

    Raises
    ------
    StreamTimeoutError
        If the outlet does not answer within ``open_timeout``.
    """

    def __init__(
        self,
        pylsl: ModuleType,
        info: Any,
        columns: list[int] | None,
        buffer_seconds: int,
        *,
        dejitter: bool = False,
        gap_tolerance: float = 0.005,
        open_timeout: float = 5.0,
    ):
        self._pylsl = pylsl
        self._columns = columns
        self._channels = int(info.channel_count())
        rate = float(info.nominal_srate())
        self.capacity = buffer_seconds * (round(rate) if rate > 0 else 100)
        self._lock = threading.Lock()
        # no liblsl post-processing: the gaps are found in the raw times (see the docstring)
        self._inlet: Any = pylsl.StreamInlet(
            info, max_buflen=buffer_seconds, recover=True, processing_flags=pylsl.proc_none
        )
        try:
            self._inlet.open_stream(open_timeout)
            # subscribed: what the outlet sends from now on is queued; timestamp 0 of the run
            self.start_time = float(pylsl.local_clock())
            self.clock_offset, self.clock_uncertainty = time_correction(
                self._inlet, pylsl, open_timeout
            )
        except pylsl.util.TimeoutError:
            self.close()
            raise StreamTimeoutError(
                f"the LSL outlet '{info.name()}' did not answer within {open_timeout:g} s"
            ) from None
        except BaseException:
            self.close()
            raise
        self._detector = GapDetector(rate, gap_tolerance)
        self._detector.reset(opened=self.start_time)
        self._dejitter = Dejitter(_DEJITTER_HALFTIME * max(rate, 1.0)) if dejitter else None
        self._delivered = 0  # samples read in this run
        self._numbered = 0  # samples read plus samples missing (the dejitter's sample numbers)
        self._last_correction = time.monotonic()
        self._newest_time = -math.inf  # newest corrected time delivered (kept monotonic)
        self.lost = 0
        self.gaps: list[LslGap] = []
        self.newest: tuple[np.ndarray, float] | None = None

    # ------------------------------------------------------------------------------ state
    @property
    def available(self) -> int:
        """Samples waiting in the inlet."""
        inlet = self._inlet
        return 0 if inlet is None else int(inlet.samples_available())

    def close(self) -> None:
        """Destroy the inlet (liblsl disconnects and ends its threads for it); idempotent."""
        with self._lock:
            inlet, self._inlet = self._inlet, None
        if inlet is not None:
            inlet.close_stream()
            del inlet  # the last reference: pylsl destroys the liblsl inlet now

    # ------------------------------------------------------------------------------ reads
    def read(
        self, out: np.ndarray, count: int, stamps: np.ndarray | None, timeout: float | None
    ) -> None:
        """Read exactly ``count`` samples into ``out`` (``[>= count, channels]``) and their
        times (seconds since :attr:`start_time`) into ``stamps``.

        Raises
        ------
        StreamTimeoutError
            If ``count`` samples did not arrive within ``timeout`` (nothing consumed).
        RuntimeError
            If the run is closed, or LSL lost the stream for good (no ``source_id`` to
            recover by).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.available < count:
            if self._inlet is None:
                raise RuntimeError("the LSL inlet is closed: the stream was stopped")
            if deadline is not None and time.monotonic() >= deadline:
                raise StreamTimeoutError(
                    f"{count} samples did not arrive from LSL within {timeout:g} s "
                    f"({self.available} did)"
                )
            time.sleep(_WAIT_STEP)
        with self._lock:
            inlet = self._inlet
            if inlet is None:
                raise RuntimeError("the LSL inlet is closed: the stream was stopped")
            full_before = inlet.samples_available() >= self.capacity - 1
            times = self._pull(inlet, out, count)
            # full at any moment since the last pull leaves the queue >= capacity - count
            full = full_before or count + inlet.samples_available() >= self.capacity - 1
        times = self._account(times, full, full_before)
        if stamps is not None:
            stamps[:count] = times - self.start_time
        self.newest = (out[count - 1].copy(), float(times[-1] - self.start_time))

    def _pull(self, inlet: Any, out: np.ndarray, count: int) -> np.ndarray:
        """Pull ``count`` waiting samples into ``out``; their clock-corrected LSL times."""
        try:
            if self._columns is None:
                target = out[:count]
                got, times = self._pull_into(inlet, target, count)
            else:
                scratch = np.empty((count, self._channels), out.dtype)
                got, times = self._pull_into(inlet, scratch, count)
                out[:got] = scratch[:got, self._columns]
        except self._pylsl.util.LostError:
            raise RuntimeError(
                "LSL lost the stream and cannot recover it (the outlet has no source_id to "
                "find it again by); restart the stream when the outlet is back"
            ) from None
        if got != count:  # the inlet held them a moment ago, and only this run pulls
            raise RuntimeError(f"the LSL inlet gave {got} of {count} samples it said it held")
        return times

    @staticmethod
    def _pull_into(inlet: Any, target: np.ndarray, count: int) -> tuple[int, np.ndarray]:
        _, times = inlet.pull_chunk(timeout=0.0, max_samples=count, dest_obj=target, as_numpy=True)
        return len(times), np.asarray(times, dtype=np.float64)

    def _account(self, times: np.ndarray, queue_full: bool, full_before: bool) -> np.ndarray:
        """Find what LSL lost before and within these samples (in their raw times); their
        times corrected to this host's clock, smoothed if asked, monotonic."""
        first = self._delivered
        gaps = self._detector.check(first, times, queue_full, full_before=full_before)
        self._delivered += len(times)
        for gap in gaps:
            self.lost += gap.lost
            if len(self.gaps) < _HISTORY:
                self.gaps.append(gap)
            where = f"sample {gap.index}"
            if gap.earliest < gap.index:  # see GapDetector: the outlet's queue may have
                where = f"one of samples {gap.earliest}..{gap.index}"
            _log.warning(
                "LSL stream: %d samples missing before %s (%.3f s without samples): %s",
                gap.lost,
                where,
                gap.seconds,
                gap.cause,
            )
        if any(gap.cause == CAUSE_SILENCE for gap in gaps):
            self._refresh_correction()  # the outlet may be another one now
        times = times + self.clock_offset
        if self._dejitter is not None:
            steps = np.ones(len(times))
            for gap in gaps:
                steps[gap.index - first] += gap.lost
                if gap.cause == CAUSE_SILENCE:  # the outlet may be another one now
                    self._dejitter.reset()
            numbers = self._numbered - 1 + np.cumsum(steps)
            self._numbered = int(numbers[-1]) + 1
            times[:] = self._dejitter.smooth(numbers, times)
        times[0] = max(times[0], self._newest_time)  # as liblsl's proc_monotonize would
        np.maximum.accumulate(times, out=times)
        self._newest_time = float(times[-1])
        if time.monotonic() - self._last_correction > 2.0:
            self._refresh_correction()
        return times

    def _refresh_correction(self) -> None:
        """The inlet's latest clock offset (liblsl updates it in the background)."""
        self._last_correction = time.monotonic()
        inlet = self._inlet
        if inlet is None:
            return
        with contextlib.suppress(Exception):  # no fresh estimate yet: keep the last one
            self.clock_offset, self.clock_uncertainty = time_correction(inlet, self._pylsl, 0.0)

    @staticmethod
    def buffer_seconds(samples: int, rate: float) -> int:
        """LSL's whole-second ``max_buflen`` that holds at least ``samples`` at ``rate``."""
        per_second = round(rate) if rate > 0 else 100
        return max(1, math.ceil(samples / per_second))
