"""Numbers as the time series GUI shows them: values with SI prefix and unit.

Byte counts use the package's one ``format_bytes`` (``qudi.util.instream.errors``).
"""

from __future__ import annotations

import math

import pyqtgraph as pg

__all__ = ["format_value"]


def format_value(value, unit: str = "", precision: int = 4) -> str:
    """A number with SI prefix and unit, e.g. ``1.234 kHz``.

    Parameters
    ----------
    value : int, float or numpy scalar
        The number; anything that is not a number gives ``"—"``.
    unit : str
        The unit to append (after the prefix).
    precision : int
        Significant digits.

    Returns
    -------
    str
        The text; ``nan`` and ``inf`` are shown as they are, with the unit.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(number):
        return f"{number} {unit}".strip()
    return pg.siFormat(number, precision=precision, suffix=unit)
