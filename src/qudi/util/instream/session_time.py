"""The time base of a recorded stream: what a session stores of it, and its time table rows.

A thin seam between the session recorder and the stream's time model
(:mod:`qudi.util.instream.timebase`): the recorder asks for a stream's time base (stored as
JSON with the stream) and, at every flush, for the (sample index, host monotonic time) pairs
its ring has noted since the last copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["stream_time_base", "time_table_rows"]


def stream_time_base(ring: Any) -> dict[str, Any]:
    """The stream's time base as JSON-ready values (empty if the ring notes none)."""
    return {}


def time_table_rows(ring: Any, since_index: int) -> np.ndarray:
    """(sample index, host monotonic s) pairs of ``ring`` for indices >= ``since_index``."""
    return np.empty((0, 2), np.float64)
