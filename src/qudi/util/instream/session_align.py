"""Offline realignment of a recorded session: every sample of every stream on one time axis.

The live readers map a sample index to the host's monotonic clock through the stream's time
base and the clock fit of its time table (:class:`~qudi.util.instream.timebase.StreamTime`,
:func:`~qudi.util.instream.timebase.fit_clock`); a live
:class:`~qudi.util.instream.stream_clock.StreamClock` fits only the rows of the last
``window`` seconds of the stream's clock (``DEFAULT_WINDOW_S``, 30 s), so it follows a drift
that changes (a crystal warming up). A session stores the same time base and table rows per
stream, and :func:`realign_session` makes the same windowed fits from them
(:func:`~qudi.util.instream.windowed_fit.windowed_fit`): at knots a quarter window apart, each
exactly the fit a live reader made once it had the rows up to that knot's window end. Every
sample is timed by the windows centred around it (the file has the rows after it too; a fit is
tightest at its rows' middle), blended linearly between the two nearest knots, so the times
and their uncertainty (~95 % coverage, the fits' bend check included) are continuous, without
a step at any boundary. ``window=None`` fits one line over the whole run; a run no longer than
the window is one line either way::

    from qudi.util.instream.session import open_session
    from qudi.util.instream.session_align import align_session, realign_session

    with open_session("session.h5") as session:
        times = realign_session(session)    # window=30.0 s, as the live readers
        lined_up = align_session(session)   # every stream at the first stream's samples
    times["wavemeter"].times     # host monotonic s of each recorded wavemeter sample
    lined_up.values["wavemeter"] # the wavemeter at each counter sample, NaN where it had none

:func:`align_session` lines the streams up on one stream's samples as the live
:class:`~qudi.util.instream.aligned_reader.AlignedReader` does: the same
:func:`~qudi.util.instream.alignment.align` (exact on a declared shared clock, else fitted
offset and drift with an uncertainty, here through both streams' windowed fits), the same
linear interpolation of each other stream at the primary's sample times, NaN (counted) where
a stream has no sample on both sides, never an edge value held. Like the live reader it
interpolates across a stream's gaps; their rows are in ``session.streams[label].gaps``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qudi.util.instream.alignment import align
from qudi.util.instream.session import RecordedStream, Session
from qudi.util.instream.timebase import DEFAULT_WINDOW_S, StreamTime, TimeTable
from qudi.util.instream.windowed_fit import checked_window, windowed_fit

__all__ = [
    "AlignedSession",
    "RealignedStream",
    "align_session",
    "realign_session",
    "realign_stream",
]


@dataclass(frozen=True)
class RealignedStream:
    """When each recorded sample of one stream was taken.

    ``times`` and ``uncertainty`` (seconds, host monotonic clock) have one entry per row of
    the stream's ``data``; ``sample_indices`` are the stream's own indices of those rows;
    ``time`` is the fitted time base for further questions (its ``fit`` the windowed one, a
    :class:`~qudi.util.instream.windowed_fit.WindowedFit` unless one line was asked for or
    the run is no longer than the window; its ``offset``, ``slope`` and ``drift_ppm`` those of
    one line over the run).
    """

    label: str
    sample_indices: np.ndarray
    times: np.ndarray
    uncertainty: np.ndarray
    time: StreamTime

    @property
    def drift_ppm(self) -> float:
        """How much faster the stream's clock ran than the host's, in parts per million (on
        average over the run: one line's slope)."""
        return self.time.fit.drift_ppm


def realign_stream(
    stream: RecordedStream,
    start: int = 0,
    stop: int | None = None,
    *,
    window: float | None = DEFAULT_WINDOW_S,
) -> RealignedStream:
    """Times of rows ``start:stop`` of ``stream`` on the host's monotonic clock, fitted in
    windows of ``window`` seconds of the stream's clock (None: one line; see the module doc).

    Raises
    ------
    ValueError
        The stream has no time table to fit (it was recorded from a ring without one, or
        for less than two pump polls), the rows do not exist, or ``window`` is not a number
        of seconds > 0 or None.
    """
    time = _time_of(stream, checked_window(window), "realigned")
    stop = stream.rows if stop is None else stop
    _, stamps = stream.read(start, stop)
    indices = stream.sample_indices(start, stop)
    if stamps is not None:
        times = time.time_of(indices, stamps)
        uncertainty = time.fit.uncertainty(stamps) + time.run.host_uncertainty
    else:
        times = time.time_of(indices)
        uncertainty = time.uncertainty_of(indices)
    return RealignedStream(stream.label, indices, times, uncertainty, time)


def realign_session(
    session: Session, *, window: float | None = DEFAULT_WINDOW_S
) -> dict[str, RealignedStream]:
    """Every stream of ``session`` that has a time table, realigned (see the module doc and
    :func:`realign_stream`); streams without one are left out.

    Raises
    ------
    ValueError
        ``window`` is not a number of seconds > 0 or None.
    """
    window = checked_window(window)
    aligned = {}
    for label, stream in session.streams.items():
        if stream.stream_time() is not None:
            aligned[label] = realign_stream(stream, window=window)
    return aligned


@dataclass(frozen=True)
class AlignedSession:
    """Every stream at the primary stream's samples.

    ``times``: the primary's device time (s since its run's first sample) of each of its rows;
    ``values[label]``: ``[rows, channels]`` float64 of each other stream interpolated there
    (NaN where it had no sample on both sides, counted in ``missing[label]``);
    ``uncertainty[label]``: how far (s) its samples' times on the primary's axis may be off
    (0 when exact); ``methods[label]``: how it was aligned (exact, rounded or fitted).
    """

    primary: str
    times: np.ndarray
    values: dict[str, np.ndarray]
    missing: dict[str, int]
    uncertainty: dict[str, np.ndarray]
    methods: dict[str, str]


def align_session(
    session: Session, primary: str | None = None, *, window: float | None = DEFAULT_WINDOW_S
) -> AlignedSession:
    """The session's streams at the samples of ``primary`` (its first stream by default),
    each stream's clock fitted in windows of ``window`` seconds (None: one line; streams on
    a declared shared clock are aligned exactly either way).

    Raises
    ------
    ValueError
        An unknown label, a stream without a time table to align it by, or a ``window`` that
        is not a number of seconds > 0 or None.
    """
    window = checked_window(window)
    label = session.labels[0] if primary is None else primary
    if label not in session.streams:
        raise ValueError(f"the session has no stream {label!r}; its streams are {session.labels}")
    main = session.streams[label]
    main_time = _time_of(main, window, "aligned")
    times = _device_times(main, main_time)
    values, missing, uncertainty, methods = {}, {}, {}, {}
    for other_label, other in session.streams.items():
        if other_label == label:
            continue
        other_time = _time_of(other, window, "aligned")
        alignment = align(main_time, other_time)
        own = _device_times(other, other_time)
        data = other.read(0, other.rows)[0].reshape(other.rows, -1).astype(np.float64)
        targets = alignment.secondary_time(times)  # as the live reader asks
        out = np.full((len(times), data.shape[1]), np.nan)
        if len(own):
            inside = (targets >= own[0]) & (targets <= own[-1])
            for channel in range(data.shape[1]):
                out[inside, channel] = np.interp(targets[inside], own, data[:, channel])
        values[other_label] = out
        missing[other_label] = int(np.isnan(out[:, 0]).sum()) if out.shape[1] else 0
        uncertainty[other_label] = alignment.uncertainty(own)
        methods[other_label] = alignment.method
    return AlignedSession(label, times, values, missing, uncertainty, methods)


def _time_of(stream: RecordedStream, window: float | None, done: str) -> StreamTime:
    """The stream's time base as the live readers fit it, window by window."""
    time = stream.stream_time()
    if time is None:
        raise ValueError(
            f"stream '{stream.label}' has no time table with two rows or more: it cannot be "
            f"{done} (was it recorded from a private ring, or for less than two polls?)"
        )
    if window is None:
        return time
    rows = stream.time_table
    table = TimeTable.of(rows["index"], rows["host"], rows["device"])
    return replace(time, fit=windowed_fit(table, window, time.fit))


def _device_times(stream: RecordedStream, time: StreamTime) -> np.ndarray:
    """Device time (s since its run's first sample) of every row: its stamps, or by index."""
    _, stamps = stream.read(0, stream.rows)
    if stamps is not None:
        return np.asarray(stamps, np.float64)
    return time.device_time_of(stream.sample_indices())
