"""The times of an LSL inlet's samples: where samples are missing, and optional dejitter.

LSL tells an inlet nothing when samples go missing: a full inlet buffer silently drops its
oldest samples, and an outlet that stops and comes back (LSL reconnects by itself) leaves a
pause. Both show only in the timestamps of a stream with a nominal rate: a step between
neighbouring samples of ``n + 1`` periods means ``n`` samples are missing.
:class:`GapDetector` finds those steps, vectorised over each pulled chunk.

:class:`Dejitter` smooths timestamps onto a straight line through (sample number, time), as
liblsl's own ``proc_dejitter`` does, but over sample numbers that *include* the missing
samples, so that a gap does not bend the line (liblsl's fit counts only the samples it saw,
which would hide a gap behind smoothed times).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CAUSE_OVERFLOW", "CAUSE_SILENCE", "Dejitter", "GapDetector", "LslGap"]

CAUSE_OVERFLOW = "the inlet's buffer overflowed (LSL dropped its oldest samples)"
CAUSE_SILENCE = "the outlet sent nothing for a while (it stopped, or was restarted)"


@dataclass(frozen=True)
class LslGap:
    """Samples missing from an LSL stream, placed in the qudi stream's indices.

    The samples are missing before one sample in ``earliest .. index`` (inclusive); when the
    two are equal, exactly before sample ``index``. They differ when the outlet stamps only
    some of its samples (``push_chunk`` with one timestamp: the inlet deduces the others from
    the sample it received before) and the outlet's own queue for this inlet dropped samples:
    the loss then shows only at the next stamped sample (see :class:`GapDetector`).
    """

    index: int  # index of the first sample whose timestamp shows the gap
    lost: int  # samples the nominal rate says are missing
    seconds: float  # time from the sample before ``index`` to it
    cause: str  # CAUSE_OVERFLOW or CAUSE_SILENCE
    earliest: int = -1  # the earliest index the loss may precede (-1: ``index``)

    def __post_init__(self) -> None:
        if self.earliest < 0:
            object.__setattr__(self, "earliest", self.index)


_CHAIN_LIMIT = 1 << 20  # missing samples up to which a deduced chain is rebuilt exactly


class GapDetector:
    """Finds missing samples in the raw (uncorrected) timestamps of a stream with a nominal
    rate.

    A step between neighbouring timestamps counts as a gap when it is longer than 1.5 sample
    periods *and* longer than a period plus ``tolerance`` seconds (a shorter delay is
    timestamp jitter, e.g. of an outlet that stamps each chunk when it pushes it). In a chunk
    pulled from an inlet buffer that was full, any step over 1.5 periods counts: LSL dropped
    samples there (before the chunk, or within it while it was pulled).

    Where a gap is: an outlet that pushes a chunk with one timestamp stamps its first sample
    only; the inlet times each other sample as the one it received before plus one period
    (liblsl's deduced timestamps, bit for bit ``t + 1.0 / rate``). An inlet's overflow drops
    samples after they were timed, so its gaps show exactly where they are. But the outlet
    keeps a queue per inlet of the inlet's buffer length and drops that queue's oldest
    samples too when it cannot send fast enough (a busy host): the samples after such a loss
    are timed from the last one sent before it, and the loss shows only at the next sample
    the outlet stamped. The count is still exact; the place is bounded: each gap's
    ``earliest`` is the sample after the newest one known to carry its own timestamp (not
    deduced, not right after a gap). A loss in the deduced samples after the newest stamped
    one is counted when the next stamped sample arrives.

    Parameters
    ----------
    nominal_rate
        The stream's nominal rate in Hz; 0 (LSL's irregular rate) detects nothing.
    tolerance
        Seconds of timestamp jitter that are not read as missing samples.
    """

    def __init__(self, nominal_rate: float, tolerance: float):
        self.nominal_rate = float(nominal_rate)
        self.tolerance = float(tolerance)
        self._last: float | None = None
        self._opened: float | None = None
        self._anchor: int | None = None  # newest index known to carry its own timestamp

    def reset(self, opened: float | None = None) -> None:
        """Forget the last timestamp: a new run starts, its inlet opened at time ``opened``.

        A buffer already full at the run's first read dropped samples taken since then; the
        first read counts them from that time (an estimate: it assumes the outlet sent all
        along).
        """
        self._last = None
        self._opened = opened
        self._anchor = None

    def check(
        self,
        first_index: int,
        timestamps: np.ndarray,
        queue_full: bool,
        *,
        full_before: bool | None = None,
    ) -> list[LslGap]:
        """The gaps before and within one pulled chunk of timestamps.

        Parameters
        ----------
        first_index
            Stream index of ``timestamps[0]``.
        timestamps
            The chunk's raw timestamps (the outlet's LSL seconds, no correction), in order.
        queue_full
            Whether the inlet's buffer may have been full since the last pull (so LSL may
            have dropped samples before or within this chunk).
        full_before
            Whether it was full before this chunk was pulled (default: ``queue_full``); only
            then does a run's first read estimate a loss from the time the inlet opened.
        """
        if len(timestamps) == 0:
            return []
        if full_before is None:
            full_before = queue_full
        ts = np.asarray(timestamps, dtype=np.float64)
        previous, self._last = self._last, float(ts[-1])
        if self.nominal_rate <= 0:
            return []
        if self._anchor is None:
            self._anchor = first_index - 1
        period = 1.0 / self.nominal_rate
        known = np.ones(len(ts), dtype=bool)  # samples with a sample before them
        if previous is None and full_before and self._opened is not None:
            previous = self._opened - period  # as if a sample came then
        if previous is None:
            before = np.concatenate(([ts[0]], ts[:-1]))
            known[0] = False
        else:
            before = np.concatenate(([previous], ts[:-1]))
        steps = ts - before
        missing = known & (steps > 1.5 * period)
        # a full buffer drops its oldest samples while this chunk is pulled too: then any
        # step of missing samples is a loss; otherwise only one longer than the jitter
        late = missing if queue_full else missing & (steps > period + self.tolerance)
        own = np.flatnonzero(~late & ~(known & (ts == before + period)))
        cause = CAUSE_OVERFLOW if queue_full else CAUSE_SILENCE
        gaps = []
        for at in np.flatnonzero(late):
            step = float(steps[at])
            lost = max(1, round(step * self.nominal_rate) - 1)
            index = first_index + int(at)
            earliest = index
            if not self._deduced_across(float(before[at]), float(ts[at]), lost, period):
                mine = np.searchsorted(own, at) - 1
                anchor = first_index + int(own[mine]) if mine >= 0 else self._anchor
                earliest = min(index, anchor + 1)
            gaps.append(LslGap(index, lost, step, cause, earliest))
        if len(own):
            self._anchor = first_index + int(own[-1])
        return gaps

    @staticmethod
    def _deduced_across(before: float, after: float, lost: int, period: float) -> bool:
        """Whether ``after`` is the time the inlet deduces ``lost + 1`` samples after
        ``before``: then the samples in between were timed and dropped by the inlet, and the
        gap is exactly there."""
        if lost > _CHAIN_LIMIT:
            return False
        chain = np.full(lost + 2, period)
        chain[0] = before
        return bool(np.add.accumulate(chain)[-1] == after)


class Dejitter:
    """A straight line ``t = a + b * k`` through (sample number, time), fitted by least squares
    that forget old samples with a half-life of ``halftime`` samples.

    Sums are kept relative to the newest sample, so they stay small however long it runs.
    """

    def __init__(self, halftime: float):
        self._decay = math.exp(math.log(0.5) / max(1.0, float(halftime)))
        self.reset()

    def reset(self) -> None:
        """Forget the line (after the outlet came back: its clock may have jumped)."""
        self._ref: tuple[float, float] | None = None  # (k, t) the sums are relative to
        self._sums = np.zeros(5)  # w, w*k, w*t, w*k*k, w*k*t

    def smooth(self, numbers: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The fitted times of samples ``numbers`` (with missing samples counted) at ``times``."""
        if len(times) == 0:
            return times
        k = np.asarray(numbers, dtype=np.float64)
        t = np.asarray(times, dtype=np.float64)
        if self._ref is None:
            self._ref = (float(k[0]), float(t[0]))
        k0, t0 = self._ref
        dk, dt = k - k0, t - t0
        weights = self._decay ** (len(k) - 1 - np.arange(len(k)))
        s = self._sums * self._decay ** len(k)
        s += (weights.sum(), weights @ dk, weights @ dt, weights @ (dk * dk), weights @ (dk * dt))
        w, sk, st, skk, skt = s
        det = w * skk - sk * sk
        if det <= 1e-12 * max(1.0, w * skk):  # one point so far: nothing to fit yet
            fitted = t.copy()
        else:
            slope = (w * skt - sk * st) / det
            intercept = (st - slope * sk) / w
            fitted = t0 + intercept + slope * dk
        # re-centre the sums on the newest sample: (k, t) -> (k - d, t - e)
        d, e = float(dk[-1]), float(dt[-1])
        s[4] = s[4] - d * s[2] - e * s[1] + d * e * s[0]
        s[3] = s[3] - 2 * d * s[1] + d * d * s[0]
        s[1] -= d * s[0]
        s[2] -= e * s[0]
        self._sums = s
        self._ref = (k0 + d, t0 + e)
        return fitted
