"""Raw ADC codes and the polynomials that turn them into volts, in streams and recordings.

A source that streams unscaled codes (the NI streamer with ``raw_analog: true``: int16, as
DAQmx's unscaled reader returns them) says how to scale each channel in its stream
description: ``extra["raw_scaling"]`` is ``{"unit": "V", "coefficients": {channel: [c0, c1,
...]}}``, the polynomial ``volts = c0 + c1 * code + c2 * code**2 + ...`` DAQmx reports for that
channel (``ai_dev_scaling_coeff``). Consumers that want volts scale once with
:func:`scale_raw` (one channel) or :func:`scale_block` (``[samples, channels]``).

A recording of such a stream keeps the codes (a quarter of float64's bytes) and writes the
polynomials next to its ``/data`` dataset (:func:`write_scaling_attributes`): attributes
``scaling_coefficients`` (``[channels, terms]`` float64), ``scaling_unit`` and
``scaling_note``, a sentence saying how to scale. :func:`read_volts` reads such a file back
in volts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "RAW_SCALING_KEY",
    "check_coefficients",
    "read_volts",
    "scale_block",
    "scale_raw",
    "scaled_units",
    "scaling_extra",
    "scaling_note",
    "scaling_of",
    "write_scaling_attributes",
]

RAW_SCALING_KEY = "raw_scaling"  # the key in a stream description's ``extra``
MAX_TERMS = 16  # DAQmx reports 4; more would be no scaling polynomial anyone uses


def check_coefficients(coefficients: object, name: str = "coefficients") -> tuple[float, ...]:
    """The polynomial's terms ``(c0, c1, ...)`` as floats, lowest power first.

    Raises
    ------
    TypeError, ValueError
        If ``coefficients`` is no sequence of 1 to 16 finite numbers, naming ``name``.
    """
    if isinstance(coefficients, (str, bytes)) or not isinstance(
        coefficients, (Sequence, np.ndarray)
    ):
        raise TypeError(
            f"{name} must be a sequence of numbers c0, c1, ... (volts = c0 + c1 * code + ...), "
            f"not {coefficients!r}"
        )
    terms = []
    for term in coefficients:
        if isinstance(term, bool) or not isinstance(term, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must hold numbers only, got {term!r} in {coefficients!r}")
        if not math.isfinite(float(term)):
            raise ValueError(f"{name} must be finite numbers, got {term!r} in {coefficients!r}")
        terms.append(float(term))
    if not 1 <= len(terms) <= MAX_TERMS:
        raise ValueError(
            f"{name} must hold 1 to {MAX_TERMS} terms (c0, c1, ...), got {len(terms)}: "
            f"{coefficients!r}"
        )
    return tuple(terms)


def scale_raw(
    raw: npt.ArrayLike, coefficients: Sequence[float], out: np.ndarray | None = None
) -> np.ndarray:
    """``c0 + c1 * raw + c2 * raw**2 + ...`` in float64 (Horner's scheme, one pass per term).

    Parameters
    ----------
    raw : array_like
        Codes of one channel (any shape, integer or float).
    coefficients : sequence of float
        The channel's polynomial, lowest power first (DAQmx's ``ai_dev_scaling_coeff``).
    out : numpy.ndarray, optional
        float64 array of ``raw``'s shape to write into.

    Returns
    -------
    numpy.ndarray
        The values in the polynomial's unit (volts), float64.
    """
    terms = check_coefficients(coefficients)
    codes = np.asarray(raw)
    if codes.dtype.kind not in "iuf":
        raise TypeError(f"raw must hold integer or float codes, not {codes.dtype}")
    if out is None:
        out = np.empty(codes.shape, np.float64)
    elif out.dtype != np.float64 or out.shape != codes.shape:
        raise ValueError(
            f"out must be float64 of shape {codes.shape}, got {out.dtype} of shape {out.shape}"
        )
    out.fill(terms[-1])
    for term in reversed(terms[:-1]):
        np.multiply(out, codes, out=out)
        out += term
    return out


def scale_block(raw: np.ndarray, coefficients: Sequence[Sequence[float]]) -> np.ndarray:
    """``raw[samples, channels]`` in volts, column ``k`` scaled by ``coefficients[k]``."""
    block = np.asarray(raw)
    if block.ndim != 2 or block.shape[1] != len(coefficients):
        raise ValueError(
            f"raw must be [samples, {len(coefficients)}] (one column per polynomial), got shape "
            f"{block.shape}"
        )
    out = np.empty(block.shape, np.float64)
    column = np.empty(len(block), np.float64)
    for k, terms in enumerate(coefficients):
        out[:, k] = scale_raw(block[:, k], terms, out=column)
    return out


def scaling_extra(
    coefficients: Mapping[str, Sequence[float]], unit: str = "V"
) -> dict[str, dict[str, Any]]:
    """The ``extra`` entry of a stream description for these channels' polynomials."""
    checked = {
        str(ch): list(check_coefficients(c, f"coefficients of {ch}"))
        for ch, c in coefficients.items()
    }
    return {RAW_SCALING_KEY: {"unit": str(unit), "coefficients": checked}}


def scaling_of(extra: Mapping[str, Any], channels: Sequence[str]) -> list[tuple[float, ...]] | None:
    """Each of ``channels``' polynomial from a description's ``extra``; None if it has none
    (its samples are what they say they are).

    Raises
    ------
    ValueError
        If the description has polynomials but not for every channel, or malformed ones.
    """
    entry = extra.get(RAW_SCALING_KEY)
    if entry is None:
        return None
    table = entry.get("coefficients") if isinstance(entry, Mapping) else None
    if not isinstance(table, Mapping):
        raise ValueError(f"extra['{RAW_SCALING_KEY}'] has no 'coefficients' mapping: {entry!r}")
    missing = [ch for ch in channels if ch not in table]
    if missing:
        raise ValueError(
            f"extra['{RAW_SCALING_KEY}'] has no polynomial for {missing}; it has {sorted(table)}"
        )
    return [check_coefficients(table[ch], f"coefficients of {ch}") for ch in channels]


def scaled_units(extra: Mapping[str, Any], units: Mapping[str, str]) -> dict[str, str]:
    """``units`` (channel -> unit) as the channels read once scaled: those with a polynomial
    in ``extra`` in its unit (volts), the others as they are."""
    entry = extra.get(RAW_SCALING_KEY)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("coefficients"), Mapping):
        return dict(units)
    unit, table = str(entry.get("unit", "V")), entry["coefficients"]
    return {ch: unit if ch in table else u for ch, u in units.items()}


def scaling_note(unit: str = "V") -> str:
    """The plain-language sentence a recording of raw codes carries."""
    return (
        "data holds raw ADC codes, not physical values. Channel k (column k, in the order of "
        "the file's channel_names) in "
        f"{unit} is c0 + c1*x + c2*x**2 + c3*x**3 + ... for code x, where c0, c1, ... is row k "
        "of the attribute scaling_coefficients of this dataset (lowest power first, as NI-DAQmx "
        "reports them). In Python: qudi.util.instream.raw_scaling.read_volts(path)."
    )


def write_scaling_attributes(
    dataset: Any, extra: Mapping[str, Any], channels: Sequence[str]
) -> bool:
    """Write the polynomials of a raw stream next to its recorded ``dataset`` (h5py: its
    ``attrs``); False and nothing written if the stream is not raw."""
    table = scaling_of(extra, channels)
    if table is None:
        return False
    terms = max(len(t) for t in table)
    coefficients = np.zeros((len(table), terms), np.float64)  # shorter ones: zero high terms
    for k, row in enumerate(table):
        coefficients[k, : len(row)] = row
    unit = str(extra[RAW_SCALING_KEY].get("unit", "V"))
    dataset.attrs["scaling_coefficients"] = coefficients
    dataset.attrs["scaling_unit"] = unit
    dataset.attrs["scaling_note"] = scaling_note(unit)
    return True


def read_volts(path: str | Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of a recording's ``/data`` in volts (float64 ``[samples,
    channels]``): scaled by its ``scaling_coefficients``, or as stored if it has none.

    Only rows the recording completed (``samples_recorded``) are read.
    """
    import h5py  # only here: streaming needs no HDF5

    with h5py.File(path, "r") as file:
        data = file["data"]
        recorded = int(file.attrs.get("samples_recorded", data.shape[0]))
        stop = recorded if stop is None else min(stop, recorded)
        block = data[start:stop]
        if "scaling_coefficients" not in data.attrs:
            return np.asarray(block, np.float64)
        coefficients = np.asarray(data.attrs["scaling_coefficients"], np.float64)
    return scale_block(block.reshape(len(block), -1), [tuple(row) for row in coefficients])
