"""SimulatedSource: a clock-paced signal generator shaped like a qudi streaming device.

Samples "arrive" as wall-clock time passes at the configured rate, into a device buffer of
``buffer_size`` samples. If they are not read before that buffer would overflow, reads raise
:class:`SourceOverflowError` and the source stops, as a real card does; no stale or repeated
sample is ever returned. The ``ramp`` signal is the sample's absolute index, so a consumer
can prove it lost or repeated nothing. Used by the demo, the benchmarks and the tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SIGNALS", "SimulatedSource", "SourceConstraints", "SourceOverflowError"]

SIGNALS = ("ramp", "sine", "counts", "noise")


class SourceOverflowError(RuntimeError):
    """The device buffer filled up because it was not read in time; the source stopped."""


@dataclass(frozen=True)
class SourceConstraints:
    """The part of ``DataInStreamConstraints`` a hub needs."""

    channel_units: dict[str, str] = field(default_factory=dict)
    data_type: type = np.float64
    sample_timing: str = "CONSTANT"


class SimulatedSource:
    """Generates ``signals`` (one of :data:`SIGNALS` per channel) at ``sample_rate`` Hz."""

    def __init__(
        self,
        channel_names: Sequence[str] = ("ramp",),
        signals: Sequence[str] | None = None,
        *,
        channel_units: Sequence[str] | None = None,
        sample_rate: float = 1000.0,
        data_type=np.float64,
        buffer_size: int = 1 << 20,
        timestamps: bool = False,
        seed: int | None = None,
    ):
        signals = tuple(signals) if signals is not None else ("ramp",) * len(channel_names)
        units = tuple(channel_units) if channel_units is not None else ("",) * len(channel_names)
        if not (len(signals) == len(units) == len(channel_names)):
            raise ValueError("channel_names, signals and channel_units need one entry per channel")
        unknown = sorted(set(signals) - set(SIGNALS))
        if unknown:
            raise ValueError(f"unknown signals {unknown}; valid are {list(SIGNALS)}")
        self._signals = dict(zip(channel_names, signals, strict=True))
        self.constraints = SourceConstraints(
            dict(zip(channel_names, units, strict=True)),
            np.dtype(data_type).type,
            "TIMESTAMP" if timestamps else "CONSTANT",
        )
        self.active_channels = list(channel_names)
        self.streaming_mode = "CONTINUOUS"
        self.sample_rate = float(sample_rate)
        self.channel_buffer_size = int(buffer_size)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._start_time: float | None = None
        self._read = 0

    def configure(self, active_channels, streaming_mode, channel_buffer_size, sample_rate):
        if self._start_time is not None:
            raise RuntimeError("cannot configure a running source")
        unknown = sorted(set(active_channels) - set(self._signals))
        if unknown:
            raise ValueError(f"unknown channels {unknown}; valid are {sorted(self._signals)}")
        self.active_channels = list(active_channels)
        self.streaming_mode = streaming_mode
        self.channel_buffer_size = int(channel_buffer_size)
        self.sample_rate = float(sample_rate)

    def start_stream(self) -> None:
        with self._lock:
            self._start_time = time.monotonic()
            self._read = 0

    def stop_stream(self) -> None:
        with self._lock:
            self._start_time = None

    @property
    def is_running(self) -> bool:
        return self._start_time is not None

    @property
    def available_samples(self) -> int:
        with self._lock:
            return self._pending()

    def read_available_data_into_buffer(
        self, data_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        """Fill the flat, sample-major buffer with as many pending samples as fit."""
        channels = len(self.active_channels)
        with self._lock:
            count = min(self._pending(), data_buffer.size // channels)
            if timestamp_buffer is not None:
                count = min(count, len(timestamp_buffer))
            out = data_buffer[: count * channels].reshape(count, channels)
            self._generate(out, self._read)
            if timestamp_buffer is not None:
                timestamp_buffer[:count] = (
                    np.arange(self._read, self._read + count) / self.sample_rate
                )
            self._read += count
            return count

    def _pending(self) -> int:
        if self._start_time is None:
            return 0
        produced = math.floor((time.monotonic() - self._start_time) * self.sample_rate)
        pending = produced - self._read
        if pending > self.channel_buffer_size:
            self._start_time = None
            raise SourceOverflowError(
                f"device buffer of {self.channel_buffer_size} samples overflowed: "
                f"{pending} samples were waiting; the source stopped"
            )
        return pending

    def _generate(self, out: np.ndarray, first: int) -> None:
        index = np.arange(first, first + len(out), dtype=np.float64)
        for column, channel in enumerate(self.active_channels):
            signal = self._signals[channel]
            if signal == "ramp":
                out[:, column] = index
            elif signal == "sine":
                out[:, column] = np.sin(index * (2 * np.pi / 100.0))
            elif signal == "counts":
                out[:, column] = self._rng.poisson(5.0, len(out))
            else:
                out[:, column] = self._rng.standard_normal(len(out))
