"""The ``filters`` option of a DataInStreamBuffer: one consumer's post-filter chain.

The buffer reads its hub through a :class:`~qudi.util.instream.filtered_reader.FilteredReader`
when the option names stages, and through its plain reader (no extra copy) otherwise. What the
consumer sees follows the chain: the channels, units, number type and sample rate it gives.
A consumer configures the buffer in those terms; :meth:`BufferFilters.stream_request` turns
that into the stream's own (the channels the chain reads, the rate before decimation).

A spec refused at activation raises ``ValueError`` naming ``filters[i].stage.key``, the value
and what would be valid (see :mod:`qudi.util.instream.filter_spec`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from qudi.util.constraints import ScalarConstraint

from qudi.interface.instream_interface import DataInStreamConstraints
from qudi.util.instream.filter_spec import FilterSpecError, parse_chain
from qudi.util.instream.filtered_reader import FilteredReader
from qudi.util.instream.filters import ChunkFormat, FilterChain, build_chain

__all__ = ["BufferFilters"]

DIGITAL_KEY = "digital_channels"  # the stream's digital lines (values 0/1), by name
_KEEP_LEVELS = ("channels", "cast")  # stages that pass a line's 0/1 on unchanged


class BufferFilters:
    """A buffer's filter spec, checked, and the chain built for its stream's format.

    Raises
    ------
    FilterSpecError
        (a ValueError) for a spec refused, naming the key, the value and what is valid.
    """

    def __init__(self, spec: object):
        parse_chain(spec, "filters")  # refuse a bad spec before any stream is looked at
        self.spec = spec
        self.chain: FilterChain | None = None

    @property
    def active(self) -> bool:
        return bool(parse_chain(self.spec, "filters"))

    def wrap(self, reader: Any) -> Any:
        """``reader`` as the consumer reads it: filtered if the spec names stages."""
        inner = reader.inner if isinstance(reader, FilteredReader) else reader
        if not self.active:
            self.chain = None
            return inner
        fmt = ChunkFormat.of_ring(inner.ring)
        if isinstance(reader, FilteredReader) and reader.chain.input == fmt:
            return reader  # the stream is as it was: the filters keep their state
        self.chain = build_chain(self.spec, fmt, "filters")
        return FilteredReader(inner, self.chain)

    @property
    def decimation(self) -> int:
        """The product of the chain's decimation factors (1 without one)."""
        factor = 1
        for stage in parse_chain(self.spec, "filters"):
            if stage.kind == "decimate":
                factor *= int(stage.params["factor"])
        return factor

    def stream_request(self, channels: Sequence[str], rate: Any) -> tuple[list[str], Any]:
        """The stream's channels and rate for a consumer's request in filtered terms.

        Without stages the request is the stream's. A chain that picks channels reads the
        channels it was built for, and is asked for exactly the channels it gives. The chain
        is checked against the stream asked for before anything changes.

        Raises
        ------
        ValueError
            For channels the chain does not give, or a stream the chain does not fit (a
            cutoff above its new Nyquist frequency), naming the key; nothing changes then.
        """
        channels = list(channels)
        factor = self.decimation
        number = isinstance(rate, (int, float)) and not isinstance(rate, bool)
        if factor > 1 and number:
            rate = float(rate) * factor  # anything else is the stream's to refuse
        chain = self.chain
        if chain is None:
            return channels, rate
        picks = any(s.kind == "channels" for s in parse_chain(self.spec, "filters"))
        if picks and channels != list(chain.output.channel_names):
            raise FilterSpecError(
                "filters",
                self.spec,
                f"this buffer's filters give the channels {list(chain.output.channel_names)}: "
                f"configure with those (asked for {channels})",
            )
        if picks:
            channels = list(chain.input.channel_names)
        if number and math.isfinite(rate) and rate > 0:
            units = dict(zip(chain.input.channel_names, chain.input.channel_units, strict=True))
            fmt = ChunkFormat(
                tuple(channels),
                tuple(units.get(ch, "") for ch in channels),
                chain.input.dtype,
                float(rate),
            )
            build_chain(self.spec, fmt, "filters")  # refused now, not after the stream changed
        return channels, rate

    def constraints(self, stream: DataInStreamConstraints) -> DataInStreamConstraints:
        """The stream's constraints as the consumer sees them through the chain."""
        chain = self.chain
        if chain is None:
            return stream
        out = chain.output
        units = dict(zip(out.channel_names, out.channel_units, strict=True))
        if not any(s.kind == "channels" for s in parse_chain(self.spec, "filters")):
            units = {ch: units.get(ch, unit) for ch, unit in stream.channel_units.items()}
        factor = self.decimation
        rate = stream.sample_rate
        if factor > 1 and rate is not None:
            low, high = rate.bounds
            rate = ScalarConstraint(
                default=rate.default / factor,
                bounds=(low / factor, high / factor),
                increment=rate.increment / factor if math.isfinite(rate.increment) else 0,
            )
        return DataInStreamConstraints(
            channel_units=units,
            sample_timing=stream.sample_timing,
            streaming_modes=stream.streaming_modes,
            data_type=out.dtype,
            channel_buffer_size=stream.channel_buffer_size,
            sample_rate=rate,
        )

    def extra(self, stream_extra: dict) -> dict:
        """What of the stream's ``extra`` still holds for what a read gives.

        Unfiltered: all of it. Filtered: only ``digital_channels`` (those the chain passes on),
        and only while every stage keeps a line's 0/1 as it is (``channels``, ``cast``); scale,
        IIR, notch and decimation change the values, so nothing of the stream's description
        is claimed for them.
        """
        if not self.active:
            return dict(stream_extra)
        lines = stream_extra.get(DIGITAL_KEY)
        stages = parse_chain(self.spec, "filters")
        if not lines or self.chain is None or any(s.kind not in _KEEP_LEVELS for s in stages):
            return {}
        kept = [name for name in self.chain.output.channel_names if name in set(lines)]
        return {DIGITAL_KEY: kept} if kept else {}

    def channels(self, ring: Any) -> list[str]:
        """The channels a read gives: the chain's output, or the ring's own."""
        if self.chain is not None:
            return list(self.chain.output.channel_names)
        return list(ring.info.channel_names)

    def rate(self, stream_rate: float) -> float:
        """Samples per second a read gives, for a stream of ``stream_rate``."""
        return stream_rate / self.decimation if self.chain is not None else stream_rate

    def read_format(self, ring: Any) -> tuple[int, Any]:
        """``(values per sample, dtype)`` of what a read gives."""
        if self.chain is not None:
            return self.chain.output.channels, self.chain.output.dtype
        return ring.sample_shape[0], ring.dtype

    def newest(self, reader: Any) -> tuple[np.ndarray, np.float64 | None] | None:
        """The newest filtered sample (zeros before the first), None without filters."""
        if self.chain is None:
            return None
        ring = reader.ring
        stamps = ring.has_timestamps
        got = reader.latest(1, with_timestamps=stamps)
        data, times = got if stamps else (got, None)
        if not len(data):
            return np.zeros(self.chain.output.channels, self.chain.output.dtype), None
        return data[0], None if times is None else np.float64(times[0])
