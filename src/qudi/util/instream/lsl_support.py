"""What both LSL bridges share: pylsl loaded lazily, dtypes as LSL channel formats, channel
metadata in LSL's XML convention, and a description of the streams a resolver found.

pylsl is an optional extra (``pip install 'qudi-instream[lsl]'``): nothing here imports it at
module level, so ``import qudi.util.instream`` works without it, and :func:`load_pylsl` says
how to install it when a bridge needs it.

LSL timestamps are ``pylsl.local_clock()`` seconds: on Linux liblsl reads
``std::chrono::steady_clock``, which is ``CLOCK_MONOTONIC``, the clock of ``time.monotonic()``
(tests/lsl checks that the two agree). So an LSL time *is* a host monotonic time here, and no
second clock is needed.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "INSTALL_HINT",
    "LOOPBACK_CONFIG",
    "ChannelMeta",
    "channel_format_of",
    "describe_found",
    "dtype_of_format",
    "load_pylsl",
    "read_channels",
    "time_correction",
    "write_channels",
]

INSTALL_HINT = "pip install 'qudi-instream[lsl]' (or: pip install 'pylsl>=1.16,<1.19')"

# liblsl's config (lsl_api.cfg, or the file named by LSLAPICFG): this host only, IPv4 only
LOOPBACK_CONFIG = """\
[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
[lab]
KnownPeers = {127.0.0.1}
"""

# numpy kinds that LSL carries as they are, and those widened into a format LSL has
_FORMATS = {
    "float32": "cf_float32",
    "float64": "cf_double64",
    "int8": "cf_int8",
    "int16": "cf_int16",
    "int32": "cf_int32",
    "int64": "cf_int64",
}
_WIDENED = {"float16": "float32", "uint8": "int16", "uint16": "int32", "uint32": "int64"}


def load_pylsl() -> ModuleType:
    """pylsl, imported now; an ImportError that says how to install it if it is missing.

    Raises
    ------
    ImportError
        If pylsl (or the liblsl it brings) cannot be loaded.
    """
    try:
        import pylsl
    except (ImportError, OSError, RuntimeError) as exc:  # pylsl raises RuntimeError w/o liblsl
        raise ImportError(
            f"the LSL bridge needs pylsl, which could not be imported ({exc}); {INSTALL_HINT}"
        ) from exc
    return pylsl


def channel_format_of(dtype: object) -> tuple[str, np.dtype]:
    """The LSL channel format for samples of ``dtype``, and the dtype pushed in it.

    float32, float64 and int8 to int64 go as they are; float16, uint8, uint16 and uint32 are
    widened to a type that holds every value exactly (one conversion per push).

    Returns
    -------
    tuple
        ``(format name, e.g. 'cf_float32', numpy dtype of the pushed values)``.

    Raises
    ------
    ValueError
        For a dtype LSL cannot carry exactly (uint64, complex, bool, structured, ...).
    """
    dt = np.dtype(dtype)  # type: ignore[call-overload]
    name = _WIDENED.get(dt.name, dt.name)
    if name not in _FORMATS:
        valid = sorted([*_FORMATS, *_WIDENED])
        raise ValueError(f"LSL cannot carry samples of dtype {dt.name} exactly; valid: {valid}")
    return _FORMATS[name], np.dtype(name)


def dtype_of_format(channel_format: int, pylsl: ModuleType) -> np.dtype:
    """The numpy dtype of an LSL channel format (a ``pylsl.cf_*`` int).

    Raises
    ------
    ValueError
        For string streams (markers), which are no numeric samples.
    """
    for dtype_name, cf_name in _FORMATS.items():
        if getattr(pylsl, cf_name) == channel_format:
            return np.dtype(dtype_name)
    raise ValueError(
        f"LSL channel format {channel_format} is no numeric format (a string or marker stream "
        "is not read by LslInStreamer)"
    )


@dataclass(frozen=True)
class ChannelMeta:
    """One channel as LSL's ``desc/channels/channel`` element describes it."""

    label: str
    unit: str


def write_channels(info: Any, labels: Sequence[str], units: Sequence[str]) -> None:
    """Add ``channels/channel/label|unit`` (LSL's convention) to ``info``'s description."""
    channels = info.desc().append_child("channels")
    for label, unit in zip(labels, units, strict=True):
        channel = channels.append_child("channel")
        channel.append_child_value("label", str(label))
        channel.append_child_value("unit", str(unit))


def read_channels(info: Any) -> list[ChannelMeta]:
    """The channels of a full ``StreamInfo`` (from ``inlet.info()``), one per channel.

    Missing or empty labels become ``ch0``, ``ch1``, ...; duplicate labels get ``_1``, ``_2``
    appended (qudi channel names are unique); missing units become ``''``.
    """
    count = int(info.channel_count())
    found: list[tuple[str, str]] = []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty() and len(found) < count:
        found.append((channel.child_value("label").strip(), channel.child_value("unit").strip()))
        channel = channel.next_sibling("channel")
    found += [("", "")] * (count - len(found))
    result: list[ChannelMeta] = []
    seen: set[str] = set()
    for index, (label, unit) in enumerate(found):
        label = label or f"ch{index}"
        unique, n = label, 0
        while unique in seen:
            n += 1
            unique = f"{label}_{n}"
        seen.add(unique)
        result.append(ChannelMeta(unique, unit))
    return result


def describe_found(infos: Sequence[Any]) -> str:
    """The streams a resolver found, one per line, for an error message."""
    if not infos:
        return "no LSL stream at all (is the outlet running, on this host or in reach?)"
    lines = [
        f"name={i.name()!r} type={i.type()!r} source_id={i.source_id()!r} "
        f"({i.channel_count()} ch, {i.nominal_srate():g} Hz, on {i.hostname()!r})"
        for i in infos
    ]
    return "these LSL streams: " + "; ".join(lines)


def time_correction(inlet: Any, pylsl: ModuleType, timeout: float) -> tuple[float, float]:
    """The inlet's clock offset to its outlet and that estimate's uncertainty, in seconds.

    ``offset`` is what liblsl adds to the outlet's timestamps to bring them to this host's
    clock; ``uncertainty`` is half the round trip of the best probe (liblsl's measure). Uses
    ``lsl_time_correction_ex`` when the loaded liblsl has it (NaN uncertainty otherwise).
    """
    clib = getattr(getattr(pylsl, "lib", None), "lib", None)
    extended = getattr(clib, "lsl_time_correction_ex", None)
    if extended is None:
        return float(inlet.time_correction(timeout)), float("nan")
    extended.restype = ctypes.c_double
    remote, uncertainty, error = ctypes.c_double(), ctypes.c_double(), ctypes.c_int()
    offset = extended(
        inlet.obj,
        ctypes.byref(remote),
        ctypes.byref(uncertainty),
        ctypes.c_double(timeout),
        ctypes.byref(error),
    )
    pylsl.util.handle_error(error)
    return float(offset), float(uncertainty.value)
