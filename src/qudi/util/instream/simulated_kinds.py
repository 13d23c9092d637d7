"""More kinds of simulated signal: ``digital`` TTL-like lines (0/1 with a mean edge rate) next
to the channels of :class:`~qudi.util.instream.simulated.SimulatedSource`.

A digital line is a random telegraph: at each sample it flips with probability
``edge_rate / sample_rate`` (at most 1), so edges come at ``edge_rate`` per second on average,
and the values are the same however the stream is read (one generator per line, drawn sample
by sample in order). :class:`KindsSource` is a :class:`SimulatedSource` whose ``digital``
channels are such lines: the other channels come from a SimulatedSource as before (its clock,
device buffer, overflow, timing and modes), the digital columns are filled in after each read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from qudi.util.instream.simulated import SimulatedSource, SourceConstraints

__all__ = ["KIND_SIGNALS", "DigitalLine", "KindsSource", "check_edge_rate"]

KIND_SIGNALS = ("digital",)
_HIDDEN = "__sample_clock__"  # the inner source's only channel when every channel is digital


def check_edge_rate(rate: object, key: str = "digital_edge_rate") -> float:
    """``rate`` as a float if it is a mean edge rate (a finite number of edges per second >= 0).

    Raises
    ------
    ValueError
        Naming ``key``, the value and what would be valid.
    """
    ok = isinstance(rate, (int, float)) and not isinstance(rate, bool)
    if not ok or not math.isfinite(float(rate)) or float(rate) < 0:  # type: ignore[arg-type]
        raise ValueError(
            f"option '{key}' is {rate!r}: use a mean number of edges per second >= 0 (a digital "
            "line flips at most once per sample)"
        )
    return float(rate)  # type: ignore[arg-type]


class DigitalLine:
    """A 0/1 random telegraph with ``edge_rate`` edges per second on average."""

    def __init__(self, edge_rate: float, seed: Any):
        self.edge_rate = float(edge_rate)
        self._seed = seed
        self.restart()

    def restart(self) -> None:
        """Start again from level 0 (and the same values, for a given seed)."""
        self._rng = np.random.default_rng(self._seed)
        self.level = 0

    def fill(self, out: np.ndarray, sample_rate: float) -> None:
        """Fill ``out`` (1-D, any number type) with the next ``len(out)`` levels."""
        if not len(out):
            return
        p = min(1.0, self.edge_rate / sample_rate)
        flips = self._rng.random(len(out)) < p
        levels = (np.cumsum(flips) + self.level) & 1
        out[:] = levels
        self.level = int(levels[-1])


class KindsSource:
    """A :class:`SimulatedSource` with ``digital`` channels too (see the module doc).

    It has the face of a SimulatedSource (what the dummy module uses) and holds one for the
    other channels. Parameters are those of :class:`SimulatedSource`, plus ``edge_rate``: the
    digital lines' mean edges per second. Digital channels hold 0 and 1 in any data type.
    """

    def __init__(
        self,
        channel_names: Sequence[str],
        signals: Sequence[str],
        *,
        edge_rate: float = 100.0,
        channel_units: Sequence[str] | None = None,
        data_type: Any = np.float64,
        seed: int | None = None,
        **options: Any,
    ):
        names, kinds = list(channel_names), list(signals)
        units = list(channel_units) if channel_units is not None else [""] * len(names)
        if not len(kinds) == len(units) == len(names):
            raise ValueError("channel_names, signals and channel_units need one entry per channel")
        rate = check_edge_rate(edge_rate, "edge_rate")
        self._digital = [ch for ch, kind in zip(names, kinds, strict=True) if kind == "digital"]
        analog = [
            (ch, kind, unit)
            for ch, kind, unit in zip(names, kinds, units, strict=True)
            if kind != "digital"
        ]
        # with digital channels only, the inner source is just the sample clock (float64,
        # so its ramp never ends); its values are dropped
        inner_type = data_type if analog else np.float64
        self._clock_only = not analog
        analog = analog or [(_HIDDEN, "ramp", "")]
        self._inner = SimulatedSource(
            [a[0] for a in analog],
            [a[1] for a in analog],
            channel_units=[a[2] for a in analog],
            data_type=inner_type,
            seed=seed,
            **options,
        )
        self._lines = {
            ch: DigitalLine(rate, None if seed is None else [seed, i])
            for i, ch in enumerate(names)
            if ch in self._digital
        }
        self._channels = names
        self.constraints = SourceConstraints(
            dict(zip(names, units, strict=True)),
            np.dtype(data_type).type,
            self._inner.constraints.sample_timing,
        )
        self.active_channels = list(names)
        self._staging = np.empty((0, 1), np.dtype(inner_type))

    # ------------------------------------------------------------------ the source's face
    def __getattr__(self, name: str) -> Any:
        """What this class does not say itself, the inner source says (its sample clock, and
        whatever a SimulatedSource grows)."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    @property
    def has_timestamps(self) -> bool:
        return self._inner.has_timestamps

    @property
    def is_running(self) -> bool:
        return self._inner.is_running

    @property
    def sample_rate(self) -> float:
        return self._inner.sample_rate

    @property
    def channel_buffer_size(self) -> int:
        return self._inner.channel_buffer_size

    @property
    def streaming_mode(self) -> str:
        return self._inner.streaming_mode

    @property
    def available_samples(self) -> int:
        return self._inner.available_samples

    def configure(self, active_channels, streaming_mode, channel_buffer_size, sample_rate):
        """As :meth:`SimulatedSource.configure`, for any of the channels, digital ones too."""
        wanted = list(active_channels)
        unknown = [ch for ch in wanted if ch not in self._channels]
        if unknown:
            raise ValueError(f"unknown channels {unknown}; valid are {self._channels}")
        if len(set(wanted)) != len(wanted) or not wanted:
            raise ValueError(f"active_channels {wanted}: name each channel once, at least one")
        inner = [ch for ch in wanted if ch not in self._lines]
        if not inner:  # keep the inner source's clock running on one of its channels
            inner = [self._inner.active_channels[0]]
        self._inner.configure(inner, streaming_mode, channel_buffer_size, sample_rate)
        self.active_channels = wanted

    def start_stream(self) -> None:
        self._inner.start_stream()
        for line in self._lines.values():
            line.restart()

    def stop_stream(self) -> None:
        self._inner.stop_stream()

    def simulate_fault(self, error: BaseException) -> None:
        self._inner.simulate_fault(error)

    def read_available_data_into_buffer(self, data_buffer, timestamp_buffer=None) -> int:
        staging = self._staged(data_buffer.size // len(self.active_channels))
        got = self._inner.read_available_data_into_buffer(staging.reshape(-1), timestamp_buffer)
        self._assemble(data_buffer, staging, got)
        return got

    def read_data_into_buffer(
        self, data_buffer, samples_per_channel, timestamp_buffer=None, timeout=None
    ) -> None:
        staging = self._staged(samples_per_channel)
        self._inner.read_data_into_buffer(
            staging.reshape(-1), samples_per_channel, timestamp_buffer, timeout
        )
        self._assemble(data_buffer, staging, samples_per_channel)

    def newest_sample(self) -> tuple[np.ndarray, float | None]:
        """The newest sample: the inner channels' newest, the lines' current levels."""
        inner, stamp = self._inner.newest_sample()
        out: np.ndarray = np.zeros(len(self.active_channels), self.constraints.data_type)
        names = self._inner.active_channels
        for column, ch in enumerate(self.active_channels):
            line = self._lines.get(ch)
            out[column] = line.level if line is not None else inner[names.index(ch)]
        return out, stamp

    # -------------------------------------------------------------------------- internals
    def _staged(self, samples: int) -> np.ndarray:
        """The inner source's samples land here first (the digital columns are not its)."""
        columns = len(self._inner.active_channels)
        if self._staging.shape[0] < samples or self._staging.shape[1] != columns:
            self._staging = np.empty((max(samples, 1), columns), self._staging.dtype)
        return self._staging[:samples]

    def _assemble(self, data_buffer: np.ndarray, staging: np.ndarray, count: int) -> None:
        outer = self.active_channels
        out = data_buffer[: count * len(outer)].reshape(count, len(outer))
        names = self._inner.active_channels
        for column, ch in enumerate(outer):
            line = self._lines.get(ch)
            if line is not None:
                line.fill(out[:, column], self.sample_rate)
            else:
                out[:, column] = staging[:count, names.index(ch)]
