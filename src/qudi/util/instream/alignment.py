"""Where one stream's samples fall on another's time axis: exact on a shared clock, fitted
otherwise, with the uncertainty said.

:func:`align` relates a *secondary* stream to a *primary* one through their time bases
(:class:`~qudi.util.instream.timebase.StreamTime`): primary device time = ``offset`` +
``slope`` x secondary device time.

* Both streams on one clock (their :class:`~qudi.util.instream.timebase.SampleClock`\\ s name
  the same external or shared clock): the slope is exactly 1 (one oscillator, no drift
  between them). The offset is exact if both know their start ticks on that clock, or both
  started on the same start trigger; otherwise it is fitted from the two time tables and, if
  the clock's tick rate is known and the fit is good to a quarter tick, rounded to whole ticks
  (then exact too).
* Otherwise both clocks are fitted against the host's (:func:`~qudi.util.instream.timebase
  .fit_clock`) and chained; the uncertainty combines both fits'.

The same function serves the live :class:`~qudi.util.instream.aligned_reader.AlignedReader`
and offline realignment of a recording (build the :class:`StreamTime`\\ s from its tables).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qudi.util.instream.timebase import StreamTime

__all__ = ["EXACT", "FITTED", "ROUNDED", "Alignment", "align"]

#: How an alignment was found (:attr:`Alignment.method`).
EXACT = "shared clock"
ROUNDED = "shared clock, start fitted to a whole tick"
FITTED = "fitted offset and drift"
_ROUNDING_MARGIN = 0.25  # of a tick: round only a start this well known


@dataclass(frozen=True)
class Alignment:
    """primary device time = ``offset`` + ``slope`` x secondary device time (seconds since
    each stream's run started); ``method`` says how it was found.

    The uncertainty is 0 for an exact alignment; for a fitted one it is the two fits'
    uncertainties combined (covering the true error about 95 % of the time), plus each run's
    ``host_uncertainty`` (a stream received from another host).
    """

    primary: StreamTime
    secondary: StreamTime
    offset: float
    slope: float
    method: str
    shared_uncertainty: float = 0.0

    @property
    def exact(self) -> bool:
        return self.method != FITTED and self.shared_uncertainty == 0.0

    def primary_time(self, secondary_time: npt.ArrayLike) -> np.ndarray:
        """Primary device time (s) of secondary device times (s)."""
        if self.method == FITTED:
            host = self.secondary.fit.host_time(secondary_time)
            return self.primary.fit.device_time(host)
        return self.offset + self.slope * np.asarray(secondary_time, np.float64)

    def secondary_time(self, primary_time: npt.ArrayLike) -> np.ndarray:
        """Secondary device time (s) of primary device times (s)."""
        if self.method == FITTED:
            host = self.primary.fit.host_time(primary_time)
            return self.secondary.fit.device_time(host)
        return (np.asarray(primary_time, np.float64) - self.offset) / self.slope

    def uncertainty(self, secondary_time: npt.ArrayLike) -> np.ndarray:
        """How far (s of primary time) :meth:`primary_time` may be off."""
        x = np.asarray(secondary_time, np.float64)
        if self.method != FITTED:
            return np.full(x.shape, self.shared_uncertainty)
        mine = self.secondary.fit.uncertainty(x)
        theirs = self.primary.fit.uncertainty(self.primary_time(x))
        # a stream from another host: its host times are known to within a bound (not a
        # spread), added in full
        hosts = self.primary.run.host_uncertainty + self.secondary.run.host_uncertainty
        return (np.hypot(mine, theirs) + hosts) / self.primary.fit.slope

    def primary_index(self, secondary_index: npt.ArrayLike) -> np.ndarray:
        """Fractional primary ring index at which CONSTANT secondary samples were taken."""
        x = self.secondary.device_time_of(secondary_index)
        return self.primary.run.first_index + self.primary_time(x) * _rate(self.primary)


def align(primary: StreamTime, secondary: StreamTime) -> Alignment:
    """How ``secondary``'s device time maps onto ``primary``'s (see the module docstring).

    Raises
    ------
    ValueError
        If a stream on a shared clock whose start is not declared has no fit to take it from
        (fewer than two time-table rows).
    """
    p_clock, s_clock = primary.clock, secondary.clock
    if not p_clock.shares_clock_with(s_clock):
        return Alignment(primary, secondary, 0.0, 1.0, FITTED)
    tick_rate = p_clock.tick_rate or s_clock.tick_rate
    p_tick, s_tick = primary.run.start_tick, secondary.run.start_tick
    if tick_rate and p_tick is not None and s_tick is not None:
        return Alignment(primary, secondary, (s_tick - p_tick) / tick_rate, 1.0, EXACT)
    if p_clock.start_trigger and p_clock.start_trigger == s_clock.start_trigger:
        return Alignment(primary, secondary, 0.0, 1.0, EXACT)
    # one clock, unknown start: the start from the fits (where both have rows), drift none
    fitted = Alignment(primary, secondary, 0.0, 1.0, FITTED)
    centre = secondary.fit.x_centre
    offset = float(fitted.primary_time(centre)) - centre
    spread = float(fitted.uncertainty(centre))
    if not math.isfinite(spread):
        raise ValueError(
            "the streams share a clock but not their start, and their time tables are too "
            "short to fit it: wait for a few chunks of each"
        )
    if tick_rate and spread < _ROUNDING_MARGIN / tick_rate:
        return Alignment(primary, secondary, round(offset * tick_rate) / tick_rate, 1.0, ROUNDED)
    return Alignment(primary, secondary, offset, 1.0, ROUNDED, shared_uncertainty=spread)


def _rate(time_base: StreamTime) -> float:
    if not time_base.rate:
        raise ValueError("a stream without a sample rate has no index by time")
    return float(time_base.rate)
