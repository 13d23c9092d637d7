"""Filter chains: stages that turn chunks ``[samples, channels]`` into filtered chunks, with
their state carried from one chunk to the next so that chunked filtering equals filtering the
whole signal at once.

Stages (see :mod:`qudi.util.instream.filter_spec` for how they are written): ``scale``
(gain and offset per channel, optionally a new unit), ``cast`` (another number type; floats to
integers are rounded and clipped to the type's range), ``channels`` (subset / reorder),
``iir`` (second-order sections, designed with :mod:`scipy.signal` or given), ``notch`` and
``decimate`` (anti-aliased: what ``scipy.signal.decimate(x, q, zero_phase=False)`` does, one
chunk at a time; the samples kept are every q-th from the first the chain saw).

IIR stages compute in float64 and deliver float64 (add a ``cast`` to store less). A chain is
built for one stream format (:class:`ChunkFormat`) by :func:`build_chain`, which refuses what
does not fit it (a channel it lacks, a cutoff above Nyquist) naming the key.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from scipy import signal

from qudi.util.instream.filter_spec import FilterSpecError, StageSpec, parse_chain

__all__ = ["ChunkFormat", "FilterChain", "FilterStage", "build_chain"]


@dataclass(frozen=True)
class ChunkFormat:
    """What a chunk holds: channel names and units, the number type, samples per second."""

    channel_names: tuple[str, ...]
    channel_units: tuple[str, ...]
    dtype: np.dtype
    sample_rate: float

    @classmethod
    def of_ring(cls, ring: Any) -> ChunkFormat:
        """The format of a ring of ``(channels,)`` samples (a stream of the qudi interface).

        Raises
        ------
        ValueError
            For a ring whose samples are not one number per channel.
        """
        shape = tuple(ring.sample_shape)
        dtype = np.dtype(ring.dtype)
        if len(shape) != 1 or dtype.kind not in "iuf":
            raise ValueError(
                f"stream '{ring.name}' carries samples of shape {list(shape)} and dtype {dtype}: "
                "filters need one number per channel, samples of shape [channels]"
            )
        info = ring.info
        names = tuple(info.channel_names) or tuple(f"ch{i}" for i in range(shape[0]))
        units = tuple(info.channel_units) or ("",) * len(names)
        return cls(names, units, dtype, float(info.sample_rate or 0.0))

    @property
    def channels(self) -> int:
        return len(self.channel_names)


class FilterStage(Protocol):
    """One stage: ``process`` takes ``[m, channels_in]`` and gives ``[outputs_for(m),
    channels_out]`` of :attr:`output` format, carrying its state to the next call."""

    output: ChunkFormat

    def process(self, chunk: np.ndarray) -> np.ndarray: ...

    def outputs_for(self, inputs: int) -> int: ...

    def inputs_for(self, outputs: int) -> int: ...

    def kept(self, inputs: int) -> slice: ...

    def reset(self, phase: bool = True) -> None: ...


class _OneToOne:
    """A stage that gives one output sample per input sample."""

    output: ChunkFormat

    def outputs_for(self, inputs: int) -> int:
        return inputs

    def inputs_for(self, outputs: int) -> int:
        return outputs

    def kept(self, inputs: int) -> slice:
        return slice(0, inputs)

    def reset(self, phase: bool = True) -> None:
        pass


def _per_channel(value: Any, fmt: ChunkFormat, key: str, what: str) -> np.ndarray:
    """A spec's per-channel value as one float per channel of ``fmt``."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(fmt.channel_names))
        if unknown:
            raise FilterSpecError(
                f"{key}.{unknown[0]}",
                value[unknown[0]],
                f"this stream's channels are {list(fmt.channel_names)}",
            )
        default = 1.0 if what == "gain" else 0.0
        return np.array([value.get(ch, default) for ch in fmt.channel_names])
    if isinstance(value, tuple):
        if len(value) != fmt.channels:
            raise FilterSpecError(
                key,
                list(value),
                f"give {fmt.channels} values, one per channel {list(fmt.channel_names)}",
            )
        return np.array(value)
    return np.full(fmt.channels, float(value))


class Scale(_OneToOne):
    """``x * gain + offset`` per channel; integers become float64, floats keep their type."""

    def __init__(self, spec: StageSpec, fmt: ChunkFormat):
        dtype = fmt.dtype if fmt.dtype.kind == "f" else np.dtype(np.float64)
        self.gain = _fitting(spec, "gain", fmt, dtype)
        self.offset = _fitting(spec, "offset", fmt, dtype)
        self._plain_gain = bool(np.all(self.gain == 1.0))
        self._plain_offset = bool(np.all(self.offset == 0.0))
        units = _units(spec.params["unit"], fmt, f"{spec.key}.unit")
        self.output = replace(fmt, channel_units=units, dtype=dtype)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        out = chunk * self.gain if not self._plain_gain else chunk.astype(self.output.dtype)
        if not self._plain_offset:
            out += self.offset
        return out

    def process_in_place(self, chunk: np.ndarray) -> None:
        """For a pre-filter: the ring's own slots (a float type) are scaled where they are."""
        if not self._plain_gain:
            np.multiply(chunk, self.gain, out=chunk)
        if not self._plain_offset:
            np.add(chunk, self.offset, out=chunk)


def _fitting(spec: StageSpec, what: str, fmt: ChunkFormat, dtype: np.dtype) -> np.ndarray:
    """A scale's gain or offset per channel, in the stream's float type (which must hold it)."""
    key = f"{spec.key}.{what}"
    values = _per_channel(spec.params[what], fmt, key, what)
    largest = float(np.finfo(dtype).max)
    if np.abs(values).max() > largest:
        raise FilterSpecError(
            key, spec.params[what], f"this stream's {dtype} holds numbers up to {largest:.4g}"
        )
    return values.astype(dtype)


def _units(value: Any, fmt: ChunkFormat, key: str) -> tuple[str, ...]:
    if value is None:
        return fmt.channel_units
    if isinstance(value, str):
        return (value,) * fmt.channels
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(fmt.channel_names))
        if unknown:
            raise FilterSpecError(
                f"{key}.{unknown[0]}",
                value[unknown[0]],
                f"this stream's channels are {list(fmt.channel_names)}",
            )
        return tuple(
            value.get(ch, unit)
            for ch, unit in zip(fmt.channel_names, fmt.channel_units, strict=True)
        )
    if len(value) != fmt.channels:
        raise FilterSpecError(key, list(value), f"give {fmt.channels} units, one per channel")
    return tuple(value)


class Cast(_OneToOne):
    """Another number type; floats to integers round to nearest and clip to the type's range."""

    def __init__(self, spec: StageSpec, fmt: ChunkFormat):
        self.output = replace(fmt, dtype=spec.params["dtype"])
        self._round = fmt.dtype.kind == "f" and self.output.dtype.kind in "iu"

    def process(self, chunk: np.ndarray) -> np.ndarray:
        if self._round:
            limits = np.iinfo(self.output.dtype)
            chunk = np.clip(np.rint(chunk), limits.min, limits.max)
        return chunk.astype(self.output.dtype)


class Channels(_OneToOne):
    """A subset of the channels, in the order given."""

    def __init__(self, spec: StageSpec, fmt: ChunkFormat):
        names = spec.params["channels"]
        unknown = [ch for ch in names if ch not in fmt.channel_names]
        if unknown:
            raise FilterSpecError(
                spec.key,
                list(names),
                f"{unknown} not in this stream: its channels are {list(fmt.channel_names)}",
            )
        self.index = np.array([fmt.channel_names.index(ch) for ch in names])
        units = tuple(fmt.channel_units[i] for i in self.index)
        self.output = replace(fmt, channel_names=tuple(names), channel_units=units)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        return chunk[:, self.index]


class SosFilter(_OneToOne):
    """An IIR filter of second-order sections; its state carries across chunks (float64)."""

    def __init__(self, sos: np.ndarray, fmt: ChunkFormat):
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self.output = replace(fmt, dtype=np.dtype(np.float64))
        self._channels = fmt.channels
        self.reset()

    def reset(self, phase: bool = True) -> None:
        self._state = np.zeros((len(self.sos), 2, self._channels))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        if len(chunk) == 0:
            return np.empty((0, self._channels))
        out, self._state = signal.sosfilt(self.sos, chunk, axis=0, zi=self._state)
        return out


def _nyquist(fmt: ChunkFormat, key: str, frequency: float) -> None:
    nyquist = fmt.sample_rate / 2
    if not 0 < frequency < nyquist:
        raise FilterSpecError(
            key,
            frequency,
            f"use a frequency in Hz above 0 and below this stream's Nyquist frequency "
            f"{nyquist:g} Hz (half its sample rate {fmt.sample_rate:g} S/s)",
        )


def iir_stage(spec: StageSpec, fmt: ChunkFormat) -> SosFilter:
    """An ``iir`` stage: the sections given, or designed by :func:`scipy.signal.iirfilter`."""
    params = spec.params
    if "sos" in params:
        return SosFilter(params["sos"], fmt)
    cutoff = params["cutoff"]
    for f in cutoff if isinstance(cutoff, tuple) else (cutoff,):
        _nyquist(fmt, f"{spec.key}.cutoff", f)
    sos = signal.iirfilter(
        params["order"],
        cutoff,
        rp=params["ripple"],
        rs=params["attenuation"],
        btype=params["btype"],
        ftype=params["design"],
        output="sos",
        fs=fmt.sample_rate,
    )
    return SosFilter(sos, fmt)


def notch_stage(spec: StageSpec, fmt: ChunkFormat) -> SosFilter:
    """A ``notch`` stage: :func:`scipy.signal.iirnotch` as one second-order section."""
    frequency = spec.params["frequency"]
    _nyquist(fmt, f"{spec.key}.frequency", frequency)
    b, a = signal.iirnotch(frequency, spec.params["quality"], fs=fmt.sample_rate)
    return SosFilter(signal.tf2sos(b, a), fmt)


class Decimate:
    """Anti-alias filter, then keep every ``factor``-th sample (from the first one seen).

    With ``ftype='iir'`` the filter is ``scipy.signal.decimate``'s: Chebyshev I of ``order``
    (default 8), 0.05 dB ripple, cutoff at 0.8 of the new Nyquist frequency; with ``'fir'`` a
    Hamming-windowed FIR of ``order + 1`` taps (default 20 * factor). The output rate is the
    input rate / ``factor``.
    """

    def __init__(self, spec: StageSpec, fmt: ChunkFormat):
        q = spec.params["factor"]
        self.factor = q
        self.ftype = spec.params["ftype"]
        order = spec.params["order"]
        if self.ftype == "iir":
            self.sos: np.ndarray | None = signal.cheby1(order, 0.05, 0.8 / q, output="sos")
            self.taps: np.ndarray | None = None
        else:
            self.sos = None
            self.taps = signal.firwin(
                (20 * q if order is None else order) + 1, 1.0 / q, window="hamming"
            )
        self._channels = fmt.channels
        self.output = replace(fmt, dtype=np.dtype(np.float64), sample_rate=fmt.sample_rate / q)
        self.reset()

    def reset(self, phase: bool = True) -> None:
        if phase:
            self._skip = 0  # inputs before the next kept one
        if self.sos is not None:
            self._state = np.zeros((len(self.sos), 2, self._channels))
        else:
            assert self.taps is not None
            self._state = np.zeros((len(self.taps) - 1, self._channels))

    def outputs_for(self, inputs: int) -> int:
        return 0 if inputs <= self._skip else 1 + (inputs - self._skip - 1) // self.factor

    def inputs_for(self, outputs: int) -> int:
        return 0 if outputs <= 0 else self._skip + (outputs - 1) * self.factor + 1

    def kept(self, inputs: int) -> slice:
        return slice(self._skip, inputs, self.factor)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        m = len(chunk)
        if m == 0:
            return np.empty((0, self._channels))
        if self.sos is not None:
            filtered, self._state = signal.sosfilt(self.sos, chunk, axis=0, zi=self._state)
        else:
            filtered, self._state = signal.lfilter(self.taps, 1.0, chunk, axis=0, zi=self._state)
        out = filtered[self.kept(m)]
        self._skip = (self._skip - m) % self.factor
        return out


_BUILDERS: dict[str, Callable[[StageSpec, ChunkFormat], FilterStage]] = {
    "scale": Scale,
    "cast": Cast,
    "channels": Channels,
    "iir": iir_stage,
    "notch": notch_stage,
    "decimate": Decimate,
}


class FilterChain:
    """Stages applied in order to each chunk; an empty chain hands chunks back untouched.

    Parameters
    ----------
    stages
        Built for consecutive formats, the first for ``input``.
    input
        The format of the chunks given to :meth:`process`.
    """

    def __init__(self, stages: Sequence[FilterStage], input: ChunkFormat):
        self.stages = tuple(stages)
        self.input = input
        self.output = self.stages[-1].output if self.stages else input

    def __len__(self) -> int:
        return len(self.stages)

    def outputs_for(self, inputs: int) -> int:
        """Output samples that ``inputs`` more input samples give, from the current state."""
        for stage in self.stages:
            inputs = stage.outputs_for(inputs)
        return inputs

    def inputs_for(self, outputs: int) -> int:
        """The fewest input samples that give ``outputs`` output samples now."""
        for stage in reversed(self.stages):
            outputs = stage.inputs_for(outputs)
        return outputs

    def kept_indices(self, inputs: int) -> np.ndarray:
        """Which of the next ``inputs`` input samples the outputs stand for (for their
        timestamps): a decimation keeps every factor-th, other stages all."""
        index = np.arange(inputs)
        for stage in self.stages:
            index = index[stage.kept(len(index))]
        return index

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Filter ``[m, channels_in]`` into ``[outputs_for(m), channels_out]``."""
        for stage in self.stages:
            chunk = stage.process(chunk)
        return chunk

    def reset(self, phase: bool = True) -> None:
        """Forget the filters' state: at a new run, and (``phase=False``: decimations go on
        counting samples, so a read gives the outputs it planned) after a gap."""
        for stage in self.stages:
            stage.reset(phase)

    def fresh(self) -> FilterChain:
        """A chain of the same stages from a zero state (``latest`` filters a window afresh)."""
        chain = copy.deepcopy(self)
        chain.reset()
        return chain


def build_chain(spec: object, fmt: ChunkFormat, key: str = "filters") -> FilterChain:
    """The chain ``spec`` describes (see :mod:`qudi.util.instream.filter_spec`) for chunks of
    ``fmt``.

    Raises
    ------
    FilterSpecError
        Naming the key, the value and what would be valid, if the spec or a value in it does
        not fit this stream (channel names, frequencies above Nyquist, a cast of ints...).
    """
    stages: list[FilterStage] = []
    current = fmt
    for stage_spec in parse_chain(spec, key):
        if stage_spec.kind in ("iir", "notch", "decimate") and not current.sample_rate > 0:
            raise FilterSpecError(
                stage_spec.key,
                dict(stage_spec.params),
                "this stream has no known sample rate, which this filter needs",
            )
        stage = _BUILDERS[stage_spec.kind](stage_spec, current)
        stages.append(stage)
        current = stage.output
    if not math.isfinite(current.sample_rate):
        raise FilterSpecError(key, spec, "the chain gives no finite sample rate")
    return FilterChain(stages, fmt)
