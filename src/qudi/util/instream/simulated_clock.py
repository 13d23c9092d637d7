"""Simulated sample clocks: when a simulated card takes its samples and when they arrive.

Real sample clocks start a little after they are told to, run a few ppm fast or slow against
the host's clock, and hand over their samples late and irregularly; several cards may share
one clock. :class:`SimulatedClock` does all of that for the dummy streamer
(:class:`~qudi.util.instream.simulated.SimulatedSource`), so that the time model and the
alignment of streams can be tested without hardware; it also says, for each sample, when it
was truly taken (what a benchmark measures errors against).

Clocks shared by name (:func:`shared_clock`) live in this process: dummies in one qudi share
them.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from qudi.util.instream.timebase import SampleClock

__all__ = ["SharedClock", "SimulatedClock", "shared_clock"]

_registry: weakref.WeakValueDictionary[str, SharedClock] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


@dataclass(frozen=True)
class SharedClock:
    """One oscillator for several simulated streams: ticks ``tick_rate`` times a second of
    its own time, which runs ``drift_ppm`` fast against the host; tick 0 at host time
    ``epoch``."""

    name: str
    drift_ppm: float
    tick_rate: float
    epoch: float

    @property
    def speed(self) -> float:
        """Seconds of this clock per host second."""
        return 1.0 + self.drift_ppm * 1e-6

    def next_tick(self, host_time: float) -> int:
        """The first tick at or after ``host_time``."""
        return math.ceil((host_time - self.epoch) * self.tick_rate * self.speed - 1e-9)

    def host_time_of_tick(self, tick: int) -> float:
        return self.epoch + tick / (self.tick_rate * self.speed)


def shared_clock(
    name: str, *, drift_ppm: float = 0.0, tick_rate: float = 1e6, epoch: float = 0.0
) -> SharedClock:
    """The simulated clock shared under ``name`` in this process (made on first use).

    Raises
    ------
    ValueError
        If a clock of that name exists with another drift or tick rate (a shared clock has
        one of each: give every streamer on it the same, or none).
    """
    with _registry_lock:
        clock = _registry.get(name)
        if clock is None:
            clock = SharedClock(name, float(drift_ppm), float(tick_rate), float(epoch))
            _registry[name] = clock
        elif (clock.drift_ppm, clock.tick_rate) != (float(drift_ppm), float(tick_rate)):
            raise ValueError(
                f"shared clock '{name}' runs {clock.drift_ppm} ppm at {clock.tick_rate} ticks/s; "
                f"a streamer asked for {drift_ppm} ppm at {tick_rate} ticks/s: give every "
                "streamer on one clock the same drift"
            )
        return clock


class SimulatedClock:
    """When the samples of a simulated card are taken and when they reach its buffer.

    Parameters
    ----------
    start_offset
        Seconds from the start call to the first sample (>= 0).
    drift_ppm
        How fast the card's clock runs against the host's, in parts per million (ignored on
        a shared clock, which has its own).
    jitter
        Samples reach the card's buffer up to this many seconds after they were taken
        (uniformly at random per look, never out of order).
    shared
        A :class:`SharedClock` to run on: the first sample falls on its next tick at or after
        ``start_offset``, and :attr:`sample_clock` declares it.
    seed
        For the jitter (None: fresh randomness).

    Raises
    ------
    ValueError
        For a negative or non-finite start offset or jitter, or a non-finite drift.
    """

    def __init__(
        self,
        *,
        start_offset: float = 0.0,
        drift_ppm: float = 0.0,
        jitter: float = 0.0,
        shared: SharedClock | None = None,
        seed: int | None = None,
    ):
        for key, value, low in (("start_offset", start_offset, 0.0), ("jitter", jitter, 0.0)):
            if not (math.isfinite(value) and value >= low):
                raise ValueError(f"{key} is {value!r}: use a finite number of seconds >= 0")
        if not math.isfinite(drift_ppm):
            raise ValueError(f"drift_ppm is {drift_ppm!r}: use a finite number")
        self.start_offset = float(start_offset)
        self.drift_ppm = float(shared.drift_ppm if shared is not None else drift_ppm)
        self.jitter = float(jitter)
        self.shared = shared
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._first: float | None = None  # host time of sample 0
        self._rate = 1.0
        self._start_tick: int | None = None
        self._seen = 0

    @property
    def is_simple(self) -> bool:
        """No offset, drift, jitter or shared clock: samples arrive at exactly ``i / rate``."""
        return not (self.start_offset or self.drift_ppm or self.jitter or self.shared)

    @property
    def sample_clock(self) -> SampleClock:
        """What this clock declares to a hub (a shared one by name, with the run's start
        tick once started)."""
        if self.shared is None:
            return SampleClock()
        return SampleClock(
            kind="shared",
            source=self.shared.name,
            tick_rate=self.shared.tick_rate,
            start_tick=self._start_tick,
        )

    def start(self, host_time: float, rate: float) -> None:
        """A run starts: the start call came at ``host_time``; samples at ``rate`` Hz."""
        self._rate = float(rate)
        self._rng = np.random.default_rng(self._seed)
        self._seen = 0
        wanted = host_time + self.start_offset
        if self.shared is None:
            self._first, self._start_tick = wanted, None
        else:
            self._start_tick = self.shared.next_tick(wanted)
            self._first = self.shared.host_time_of_tick(self._start_tick)

    @property
    def speed(self) -> float:
        """Seconds of the card's clock per host second."""
        return 1.0 + self.drift_ppm * 1e-6

    def true_time(self, index: np.ndarray | int) -> np.ndarray:
        """Host time at which samples ``index`` (counted from the run's start) were taken."""
        if self._first is None:
            raise RuntimeError("the clock has not started")
        return self._first + np.asarray(index, np.float64) / (self._rate * self.speed)

    def taken_by(self, host_time: float) -> int:
        """Samples taken up to ``host_time`` (0 before the first)."""
        if self._first is None or host_time < self._first:
            return 0
        return math.floor((host_time - self._first) * self._rate * self.speed) + 1

    def arrived_by(self, host_time: float) -> int:
        """Samples in the card's buffer at ``host_time``: taken, and handed over (late by up
        to ``jitter``); never fewer than a look before said."""
        late = self._rng.uniform(0.0, self.jitter) if self.jitter else 0.0
        self._seen = max(self._seen, self.taken_by(host_time - late))
        return self._seen

    def arrived_by_many(self, host_times: np.ndarray) -> np.ndarray:
        """:meth:`arrived_by` for increasing host times at once (for simulations of a
        reader's polls: the same counts as a look at each time in turn)."""
        times = np.asarray(host_times, np.float64)
        if self._first is None:
            return np.zeros(times.shape, np.int64)
        late = self._rng.uniform(0.0, self.jitter, times.shape) if self.jitter else 0.0
        since = (times - late - self._first) * self._rate * self.speed
        taken = np.where(since >= 0, np.floor(np.maximum(since, 0)) + 1, 0).astype(np.int64)
        seen = np.maximum.accumulate(np.maximum(taken, self._seen)) if len(taken) else taken
        if len(seen):
            self._seen = int(seen[-1])
        return seen
