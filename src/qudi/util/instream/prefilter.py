"""Pre-filters: a filter chain a streamer declares, applied by its hub's pump once, in the
ring's own slots, before any consumer sees the samples (a calibration, a notch of mains hum).

A source declares them as ``pre_filters``, a spec list like a consumer's filter chain (see
:mod:`qudi.util.instream.filter_spec`), of the stages that keep the stream's format: ``scale``,
``iir`` and ``notch``, on a stream of a float type. The filters' state lives for one run: each
start of the source starts them afresh. The source's channel units are what it declares (a
``unit`` in a pre-filter's ``scale`` is refused: declare the units on the streamer).

scipy is imported only when a source declares pre-filters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PRE_FILTER_KINDS", "PreFilter", "pre_filter_for"]

PRE_FILTER_KINDS = ("scale", "iir", "notch")


class PreFilter:
    """Filters ``[samples, channels]`` blocks where they are (the ring's reserved slots)."""

    def __init__(self, chain: Any):
        self.chain = chain

    def __call__(self, block: np.ndarray) -> None:
        if len(block):
            block[...] = self.chain.process(block)


def source_format(source: Any) -> Any:
    """The format of what ``source`` streams now (for the chain to check against)."""
    from qudi.util.instream.filters import ChunkFormat

    channels = tuple(source.active_channels)
    units = source.constraints.channel_units
    return ChunkFormat(
        channels,
        tuple(str(units[ch]) for ch in channels),
        np.dtype(source.constraints.data_type),
        float(source.sample_rate),
    )


def check_pre_filters(spec: object, fmt: Any, key: str = "pre_filters") -> Any:
    """The chain of a pre-filter spec for streams of ``fmt``, or None for no stage.

    Raises
    ------
    FilterSpecError
        For a spec refused (key, value and what would be valid), a stage that changes the
        format, or a stream of an integer type.
    """
    from qudi.util.instream.filter_spec import FilterSpecError, parse_chain
    from qudi.util.instream.filters import build_chain

    stages = parse_chain(spec, key)
    for stage in stages:
        if stage.kind not in PRE_FILTER_KINDS:
            raise FilterSpecError(
                stage.key,
                stage.kind,
                f"a pre-filter keeps the stream's format: use {list(PRE_FILTER_KINDS)} (a "
                "consumer's own filters may subset, cast and decimate)",
            )
        if stage.kind == "scale" and stage.params["unit"] is not None:
            raise FilterSpecError(
                f"{stage.key}.unit",
                stage.params["unit"],
                "a pre-filter keeps the units the streamer declares: declare the new unit there",
            )
    if not stages:
        return None
    if fmt.dtype.kind != "f":
        raise FilterSpecError(
            key, spec, f"pre-filters need a stream of a float type, this one is {fmt.dtype}"
        )
    return build_chain(spec, fmt, key)


def pre_filter_for(source: Any) -> PreFilter | None:
    """The pre-filter ``source`` declares for what it streams now, None if it declares none.

    Raises
    ------
    FilterSpecError
        As :func:`check_pre_filters`.
    """
    spec = getattr(source, "pre_filters", None)
    if not spec:
        return None
    chain = check_pre_filters(spec, source_format(source))
    return None if chain is None else PreFilter(chain)
