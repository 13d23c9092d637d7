"""Reading a filter chain's spec (a YAML list) into checked stage parameters, or refusing it.

A chain is written as a list of one-key mappings, applied top to bottom::

    - channels: ['APD', 'analog 1']                       # subset / reorder by name
    - scale: {gain: [1.0e-3, 2.0], offset: [0, -0.5], unit: ['kc/s', 'V']}
    - notch: {frequency: 50.0, quality: 30}              # Hz; Q = f / bandwidth
    - iir: {btype: 'lowpass', cutoff: 100.0, order: 4}   # or {sos: [[b0, b1, b2, 1, a1, a2]]}
    - decimate: {factor: 10}                             # anti-aliased (Chebyshev I, order 8)
    - cast: 'float32'

Each refusal is a :class:`FilterSpecError` naming the key (``filters[2].notch.frequency``), the
value and what would be valid; nothing is built then. Checks that need the stream (channel
names, the Nyquist frequency) are made when the chain is built for a stream's format
(:func:`qudi.util.instream.filters.build_chain`), with the same kind of message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DESIGNS",
    "FILTER_KINDS",
    "IIR_BTYPES",
    "FilterSpecError",
    "StageSpec",
    "parse_chain",
]

FILTER_KINDS = ("scale", "cast", "channels", "iir", "notch", "decimate")
IIR_BTYPES = ("lowpass", "highpass", "bandpass", "bandstop")
DESIGNS = ("butter", "cheby1", "cheby2", "ellip", "bessel")
DECIMATE_FTYPES = ("iir", "fir")
MAX_ORDER = 16  # above this, IIR designs lose their precision in float64
MAX_DECIMATION = 1_000_000

_KEYS = {
    "scale": {"gain", "offset", "unit"},
    "iir": {"sos", "btype", "cutoff", "order", "design", "ripple", "attenuation"},
    "notch": {"frequency", "quality"},
    "decimate": {"factor", "order", "ftype"},
}


class FilterSpecError(ValueError):
    """A filter spec was refused; ``key`` is where (``filters[1].iir.order``)."""

    def __init__(self, key: str, value: object, valid: str):
        self.key = key
        self.value = value
        super().__init__(f"{key} is {_short(value)}: {valid}")


@dataclass(frozen=True)
class StageSpec:
    """One checked stage: its kind (one of :data:`FILTER_KINDS`), its parameters and its key."""

    kind: str
    params: Mapping[str, Any]
    key: str


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def parse_chain(spec: object, key: str = "filters") -> tuple[StageSpec, ...]:
    """The stages of ``spec`` (a list of one-key mappings, or None / [] for no filter).

    Raises
    ------
    FilterSpecError
        Naming the key, the value and what would be valid, for anything refused.
    """
    if spec is None:
        return ()
    if isinstance(spec, (str, bytes, Mapping)) or not isinstance(spec, Sequence):
        raise FilterSpecError(
            key,
            spec,
            f"use a list of filter stages, each a one-key mapping of {list(FILTER_KINDS)}",
        )
    return tuple(_parse_stage(item, f"{key}[{i}]") for i, item in enumerate(spec))


def _parse_stage(item: object, key: str) -> StageSpec:
    if not isinstance(item, Mapping) or len(item) != 1:
        raise FilterSpecError(key, item, f"use a mapping with one key, one of {list(FILTER_KINDS)}")
    ((kind, value),) = item.items()
    if kind not in FILTER_KINDS:
        raise FilterSpecError(key, kind, f"a filter stage is one of {list(FILTER_KINDS)}")
    key = f"{key}.{kind}"
    if kind == "cast":
        return StageSpec(kind, {"dtype": _number_dtype(value, key)}, key)
    if kind == "channels":
        return StageSpec(kind, {"channels": _channel_list(value, key)}, key)
    if not isinstance(value, Mapping):
        raise FilterSpecError(key, value, f"use a mapping of {sorted(_KEYS[kind])}")
    unknown = sorted(str(k) for k in value if k not in _KEYS[kind])
    if unknown:
        raise FilterSpecError(
            f"{key}.{unknown[0]}", value[unknown[0]], f"{kind} takes only {sorted(_KEYS[kind])}"
        )
    return StageSpec(kind, _PARSERS[kind](value, key), key)


# ----------------------------------------------------------------------------- values
def number(
    value: object,
    key: str,
    valid: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as a finite float in the range; :class:`FilterSpecError` otherwise."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        x = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(x) and (x > low if open_low else x >= low)
        ok = ok and (x < high if open_high else x <= high)
    if not ok:
        raise FilterSpecError(key, value, valid)
    return float(value)  # type: ignore[arg-type]


def integer(value: object, key: str, low: int, high: int, what: str) -> int:
    """``value`` as an int from ``low`` to ``high``; :class:`FilterSpecError` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not low <= value <= high
    ):
        raise FilterSpecError(key, value, f"use a whole number from {low} to {high} ({what})")
    return int(value)


def choice(value: object, key: str, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise FilterSpecError(key, value, f"use one of {list(options)}")
    return value


def _number_dtype(value: object, key: str) -> np.dtype:
    dtype = None
    if isinstance(value, str):
        try:
            dtype = np.dtype(value)
        except Exception:  # numpy parses type strings: TypeError, ValueError, SyntaxError...
            dtype = None
    if dtype is None or dtype.kind not in "iuf":
        raise FilterSpecError(
            key, value, "use a numpy number type name such as 'float32', 'float64' or 'int32'"
        )
    return dtype


def _channel_list(value: object, key: str) -> tuple[str, ...]:
    if (
        isinstance(value, (str, bytes, Mapping))
        or not isinstance(value, Sequence)
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise FilterSpecError(key, value, "use a non-empty list of channel names")
    duplicates = sorted({v for v in value if list(value).count(v) > 1})
    if duplicates:
        raise FilterSpecError(key, value, f"name each channel once (repeated: {duplicates})")
    return tuple(value)


def _per_channel(value: object, key: str, what: str) -> object:
    """A number, a list of numbers (one per channel) or a mapping channel -> number; the
    channel count is checked when the chain is built."""
    valid = (
        f"use a number, a list of numbers (one per channel) or a mapping channel: number ({what})"
    )
    if isinstance(value, Mapping):
        for ch, x in value.items():
            if not isinstance(ch, str):
                raise FilterSpecError(key, value, valid)
            number(x, f"{key}.{ch}", valid)
        return {str(ch): float(x) for ch, x in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not value:
            raise FilterSpecError(key, value, valid)
        return tuple(number(x, f"{key}[{i}]", valid) for i, x in enumerate(value))
    return number(value, key, valid)


def _units(value: object, key: str) -> object:
    valid = "use a unit (str), a list of units (one per channel) or a mapping channel: unit"
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return dict(value)
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise FilterSpecError(key, value, valid)


def _scale(value: Mapping, key: str) -> dict[str, Any]:
    if "gain" not in value and "offset" not in value:
        raise FilterSpecError(key, dict(value), "give a gain, an offset or both")
    return {
        "gain": _per_channel(value.get("gain", 1.0), f"{key}.gain", "the factor"),
        "offset": _per_channel(value.get("offset", 0.0), f"{key}.offset", "added after the gain"),
        "unit": _units(value.get("unit"), f"{key}.unit"),
    }


def _sos(value: object, key: str) -> np.ndarray:
    valid = (
        "use a list of second-order sections, each [b0, b1, b2, a0, a1, a2] of finite numbers "
        "with a0 = 1 (as scipy.signal's sos)"
    )
    try:
        sos = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise FilterSpecError(key, value, valid) from None
    if sos.ndim != 2 or sos.shape[1] != 6 or len(sos) == 0 or not np.isfinite(sos).all():
        raise FilterSpecError(key, value, valid)
    if not np.all(sos[:, 3] == 1.0):
        raise FilterSpecError(key, value, valid)
    return sos


def _iir(value: Mapping, key: str) -> dict[str, Any]:
    if "sos" in value:
        others = sorted(k for k in value if k != "sos")
        if others:
            raise FilterSpecError(
                f"{key}.{others[0]}", value[others[0]], "give either sos or a design, not both"
            )
        return {"sos": _sos(value["sos"], f"{key}.sos")}
    for needed in ("btype", "cutoff"):
        if needed not in value:
            raise FilterSpecError(
                key, dict(value), f"give {needed} (or sos: a list of second-order sections)"
            )
    btype = choice(value["btype"], f"{key}.btype", IIR_BTYPES)
    cutoff: object = value["cutoff"]
    band = btype in ("bandpass", "bandstop")
    valid = "use a frequency in Hz above 0" if not band else "use [low, high] in Hz, 0 < low < high"
    if band:
        if not isinstance(cutoff, Sequence) or isinstance(cutoff, str) or len(cutoff) != 2:
            raise FilterSpecError(f"{key}.cutoff", cutoff, valid)
        low, high = (number(c, f"{key}.cutoff", valid, 0.0, open_low=True) for c in cutoff)
        if not low < high:
            raise FilterSpecError(f"{key}.cutoff", cutoff, valid)
        cutoff = (low, high)
    else:
        cutoff = number(cutoff, f"{key}.cutoff", valid, 0.0, open_low=True)
    design = choice(value.get("design", "butter"), f"{key}.design", DESIGNS)
    params: dict[str, Any] = {
        "btype": btype,
        "cutoff": cutoff,
        "order": integer(value.get("order", 4), f"{key}.order", 1, MAX_ORDER, "the filter order"),
        "design": design,
        "ripple": None,
        "attenuation": None,
    }
    if design in ("cheby1", "ellip"):
        params["ripple"] = number(
            value.get("ripple", 1.0),
            f"{key}.ripple",
            "use a passband ripple in dB above 0",
            0.0,
            open_low=True,
        )
    if design in ("cheby2", "ellip"):
        params["attenuation"] = number(
            value.get("attenuation", 40.0),
            f"{key}.attenuation",
            "use a stopband attenuation in dB above 0",
            0.0,
            open_low=True,
        )
    return params


def _notch(value: Mapping, key: str) -> dict[str, Any]:
    if "frequency" not in value:
        raise FilterSpecError(key, dict(value), "give the frequency in Hz to remove")
    return {
        "frequency": number(
            value["frequency"],
            f"{key}.frequency",
            "use a frequency in Hz above 0",
            0.0,
            open_low=True,
        ),
        "quality": number(
            value.get("quality", 30.0),
            f"{key}.quality",
            "use a quality factor above 0 (frequency / bandwidth)",
            0.0,
            open_low=True,
        ),
    }


def _decimate(value: Mapping, key: str) -> dict[str, Any]:
    if "factor" not in value:
        raise FilterSpecError(key, dict(value), "give the factor (keep every factor-th sample)")
    ftype = choice(value.get("ftype", "iir"), f"{key}.ftype", DECIMATE_FTYPES)
    default_order = 8 if ftype == "iir" else None
    order = value.get("order", default_order)
    if ftype == "iir":
        order = integer(order, f"{key}.order", 1, MAX_ORDER, "of the Chebyshev I anti-alias filter")
    elif order is not None:
        order = integer(order, f"{key}.order", 2, 100_000, "taps - 1 of the FIR anti-alias filter")
    return {
        "factor": integer(value["factor"], f"{key}.factor", 2, MAX_DECIMATION, "keep every n-th"),
        "ftype": ftype,
        "order": order,
    }


_PARSERS = {"scale": _scale, "iir": _iir, "notch": _notch, "decimate": _decimate}
