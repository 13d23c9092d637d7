"""Offline realignment of a recorded session: every sample of every stream on one time axis.

The live readers map a sample index to the host's monotonic clock through the stream's time
base and the clock fit of its time table (:class:`~qudi.util.instream.timebase.StreamTime`,
:func:`~qudi.util.instream.timebase.fit_clock`). A session stores the same time base and
table rows per stream, so :func:`realign_session` rebuilds the same ``StreamTime`` from the
file and asks it the same questions: the times it gives are those a live reader with the same
rows would have given, with the same uncertainty (the fit's, ~95 % coverage)::

    from qudi.util.instream.session import open_session
    from qudi.util.instream.session_align import realign_session

    with open_session("session.h5") as session:
        times = realign_session(session)
    times["wavemeter"].times     # host monotonic s of each recorded wavemeter sample
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qudi.util.instream.session import RecordedStream, Session
from qudi.util.instream.timebase import StreamTime

__all__ = ["RealignedStream", "realign_session", "realign_stream"]


@dataclass(frozen=True)
class RealignedStream:
    """When each recorded sample of one stream was taken.

    ``times`` and ``uncertainty`` (seconds, host monotonic clock) have one entry per row of
    the stream's ``data``; ``sample_indices`` are the stream's own indices of those rows;
    ``time`` is the fitted time base (offset, drift, its uncertainty) for further questions.
    """

    label: str
    sample_indices: np.ndarray
    times: np.ndarray
    uncertainty: np.ndarray
    time: StreamTime

    @property
    def drift_ppm(self) -> float:
        """How much faster the stream's clock ran than the host's, in parts per million."""
        return self.time.fit.drift_ppm


def realign_stream(
    stream: RecordedStream, start: int = 0, stop: int | None = None
) -> RealignedStream:
    """Times of rows ``start:stop`` of ``stream`` on the host's monotonic clock.

    Raises
    ------
    ValueError
        The stream has no time table to fit (it was recorded from a ring without one, or
        for less than two pump polls), or the rows do not exist.
    """
    time = stream.stream_time()
    if time is None:
        raise ValueError(
            f"stream '{stream.label}' has no time table with two rows or more: it cannot be "
            "realigned (was it recorded from a private ring, or for less than two polls?)"
        )
    stop = stream.rows if stop is None else stop
    _, stamps = stream.read(start, stop)
    indices = stream.sample_indices(start, stop)
    if stamps is not None:
        times = time.time_of(indices, stamps)
        uncertainty = time.fit.uncertainty(stamps)
    else:
        times = time.time_of(indices)
        uncertainty = time.uncertainty_of(indices)
    return RealignedStream(stream.label, indices, times, uncertainty, time)


def realign_session(session: Session) -> dict[str, RealignedStream]:
    """Every stream of ``session`` that has a time table, realigned (see the module doc);
    streams without one are left out."""
    aligned = {}
    for label, stream in session.streams.items():
        if stream.stream_time() is not None:
            aligned[label] = realign_stream(stream)
    return aligned
