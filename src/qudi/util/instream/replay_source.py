"""SessionReplay: one recorded stream played back as a live source, paced or lossless.

The core of :class:`qudi.hardware.instream.replay.RecordingReplayStreamer` (usable without qudi,
e.g. as a :class:`~qudi.util.instream.hub.StreamHub` source). It reads one stream of a session
file (or of a one-stream recording) in blocks straight into the caller's buffer and hands out
the samples as they fall due:

* ``speed`` > 0: at the recorded pace times ``speed`` (1.0 is real time). A sample is due when
  its recorded time since the first sample (its timestamp, or its sample index over the rate
  for CONSTANT streams, counting lost samples) has passed on the host's monotonic clock, scaled;
* ``speed="max"``: as fast as the caller's ``room()`` allows, so that no reader that must not
  lose samples loses any (a qudi replay asks its hub how far its strict readers are behind).

Gaps and markers come back where they were: when playback passes a recorded gap,
:attr:`SessionReplay.lost_samples` grows by its count (at the recorded pace a gap is a silence
as long as the lost samples took); the markers of the session's primary stream are listed by
:meth:`SessionReplay.played_markers` once playback has reached their sample.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from qudi.util.instream.session import RecordedStream, Session, open_session

__all__ = ["MAX_SPEED", "ReplayStreamSource", "SessionReplay", "checked_speed"]

MAX_SPEED = "max"
_STAMP_WINDOW = 1 << 16  # timestamps looked ahead at once to find the due rows


def checked_speed(speed: object) -> float | str:
    """``speed``: a finite number > 0 (1.0 real time, 10.0 ten times faster) or ``"max"``.

    Raises
    ------
    ValueError
        Naming the value and what is valid.
    """
    if speed == MAX_SPEED:
        return MAX_SPEED
    if (
        isinstance(speed, bool)
        or not isinstance(speed, (int, float))
        or not math.isfinite(speed)
        or speed <= 0
    ):
        raise ValueError(
            f"speed {speed!r} is no replay speed: use a number > 0 (1.0 plays in real time, "
            f"10.0 ten times faster) or '{MAX_SPEED}' (as fast as readers allow, lossless)"
        )
    return float(speed)


class SessionReplay:
    """Plays stream ``stream`` of the session file ``path``; see the module docstring.

    Parameters
    ----------
    path : str or os.PathLike
        A session file or a one-stream recording.
    stream : str or None, optional
        The stream's label (None: the session's primary stream).
    speed : float or "max", optional
        See :func:`checked_speed`.
    room : callable, optional
        For ``"max"``: returns how many samples may be handed out now without a loss (None:
        any number).

    Raises
    ------
    FileNotFoundError, ValueError, OSError
        No such file, no session, or no stream of that label (the valid ones are named).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        stream: str | None = None,
        *,
        speed: float | str = 1.0,
        room: Callable[[], int] | None = None,
    ):
        self._speed = checked_speed(speed)
        self._room = room
        session = open_session(path)
        try:
            label = session.labels[0] if stream is None else stream
            if label not in session.streams:
                raise ValueError(
                    f"'{path}' has no stream {label!r}; its streams are {session.labels}"
                )
            self._session: Session = session
            self._stream: RecordedStream = session.streams[label]
            self.rows = self._stream.rows
            self._gaps = self._stream.gaps
            self._markers = self._marker_rows(session, label)
        except BaseException:
            session.close()
            raise
        self.label = label
        self._lock = threading.Lock()
        self._columns: np.ndarray | None = None  # a channel subset, if one was configured
        self._end = self.rows  # a FINITE run may end sooner
        self._position = 0
        self._started_at: float | None = None
        self._window: tuple[int, np.ndarray] = (0, np.empty(0))
        first_stamp = None
        if self._stream.timestamps is not None and self.rows:
            first_stamp = float(self._stream.timestamps[0])
        self._first_stamp = first_stamp

    # ------------------------------------------------------------------------- properties
    @property
    def stream(self) -> RecordedStream:
        """What is played: channel names, units, rate, timing, dtype, sample shape."""
        return self._stream

    @property
    def has_timestamps(self) -> bool:
        return self._stream.timestamps is not None

    @property
    def speed(self) -> float | str:
        return self._speed

    @property
    def position(self) -> int:
        """Rows handed out in this run."""
        return self._position

    @property
    def remaining(self) -> int:
        """Rows this run has still to hand out (a FINITE run plays its first rows only)."""
        return max(0, self._end - self._position)

    @property
    def finished(self) -> bool:
        """Every row of this run was handed out."""
        return self._position >= self._end

    @property
    def lost_samples(self) -> int:
        """Samples of the recorded gaps that playback has passed (see :meth:`played_gaps`)."""
        played = self.played_gaps()
        return int(played[:, 1].sum()) if len(played) else 0

    def played_gaps(self) -> np.ndarray:
        """``[gaps, 2]`` (row, count) of the recorded gaps before the rows handed out."""
        position = self._position
        if position >= self.rows:
            return self._gaps.copy()
        return self._gaps[self._gaps[:, 0] < position] if position else self._gaps[:0]

    def played_markers(self) -> list[tuple[float, int, str]]:
        """(host monotonic time, sample index, text) of the markers playback has reached."""
        position = self._position
        return [marker for row, marker in self._markers if row <= position]

    # ---------------------------------------------------------------------------- control
    def configure(self, channels: Sequence[str] | None, samples: int | None) -> None:
        """Play ``channels`` (in this order; None: all) and ``samples`` rows (None: all).

        Raises
        ------
        ValueError
            An unknown channel (the known ones are named).
        """
        names = list(self._stream.channel_names)
        columns = None
        if channels is not None and list(channels) != names:
            unknown = [ch for ch in channels if ch not in names]
            if unknown:
                raise ValueError(f"unknown channels {unknown}; the recording has {names}")
            columns = np.array([names.index(ch) for ch in channels])
        with self._lock:
            self._columns = columns
            self._end = self.rows if samples is None else min(self.rows, int(samples))

    def start(self) -> None:
        """Play from the first row, with the clock starting now."""
        with self._lock:
            self._position = 0
            self._window = (0, np.empty(0))
            self._started_at = time.monotonic()

    def stop(self) -> None:
        with self._lock:
            self._started_at = None

    def close(self) -> None:
        """Close the file (harmless twice)."""
        with self._lock:
            self._started_at = None
            self._session.close()

    # ------------------------------------------------------------------------------ reads
    @property
    def available_samples(self) -> int:
        """Rows due now (0 when stopped)."""
        with self._lock:
            return self._due() - self._position

    def read_into(self, data: np.ndarray, stamps: np.ndarray | None, count: int) -> int:
        """Copy the next ``count`` due rows (at most) into ``data`` (``[n, channels]``, or
        flat) and their timestamps into ``stamps``; returns how many were copied."""
        with self._lock:
            count = max(0, min(count, self._due() - self._position))
            if count == 0:
                return 0
            start, stop = self._position, self._position + count
            out = data.reshape(-1, *self._out_shape())[:count]
            if self._columns is None:
                self._stream.data.read_direct(out, np.s_[start:stop], np.s_[0:count])
            else:
                out[...] = self._stream.data[start:stop][:, self._columns]
            if stamps is not None and self._stream.timestamps is not None:
                self._stream.timestamps.read_direct(stamps, np.s_[start:stop], np.s_[0:count])
            self._position = stop
            return count

    def _out_shape(self) -> tuple[int, ...]:
        shape = self._stream.sample_shape
        if self._columns is not None:
            return (len(self._columns), *shape[1:])
        return shape

    def _due(self) -> int:
        """The first row not yet due (caller holds the lock)."""
        if self._started_at is None:
            return self._position
        end = self._end
        if self._speed == MAX_SPEED:
            room = self._room() if self._room is not None else end
            return min(end, self._position + max(0, int(room)))
        elapsed = (time.monotonic() - self._started_at) * float(self._speed)
        if self._first_stamp is not None:
            return min(end, self._due_by_stamps(self._first_stamp + elapsed))
        rate = self._stream.sample_rate or 0.0
        return min(end, self._due_by_index(math.floor(elapsed * rate)))

    def _due_by_index(self, offset: int) -> int:
        """Rows whose index, counted from the first row's (lost samples too), is <= offset."""
        lo, hi = 0, self.rows  # the first row beyond offset, by bisection: O(log rows)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._index_offset(mid) <= offset:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _index_offset(self, row: int) -> int:
        """The stream index of ``row`` minus that of row 0 (gaps before row 0 not counted)."""
        return row + self._lost_through(row) - self._lost_through(0)

    def _lost_through(self, row: int) -> int:
        """Samples of the gaps at rows <= ``row`` (a gap at row r lies just before it)."""
        passed = int(np.searchsorted(self._gaps[:, 0], row, side="right"))
        return int(self._gaps[:passed, 1].sum())

    def _due_by_stamps(self, until: float) -> int:
        """Rows whose timestamp is <= ``until``, looked up in a window of timestamps."""
        position = self._position
        start, window = self._window
        if position < start or position >= start + len(window) or window[-1] <= until:
            stop = min(self.rows, position + _STAMP_WINDOW)
            stamps = self._stream.timestamps
            window = stamps[position:stop] if stamps is not None else np.empty(0)
            start = position
            self._window = (start, window)
        if len(window) == 0:
            return position
        return start + int(np.searchsorted(window, until, side="right"))

    def _marker_rows(self, session: Session, label: str) -> list[tuple[int, tuple]]:
        """The primary stream's markers, each with the rows playback must reach for it."""
        if label != session.labels[0] or self.rows == 0:
            return []
        first_index = self._stream.first_sample_index + self._lost_through(0)
        return [
            (self._due_by_index(index - first_index - 1), (when, index, text))
            for when, index, text in session.marker_list()
        ]


class _Constraints:
    """The part of ``DataInStreamConstraints`` a hub reads, for a replay outside qudi."""

    def __init__(self, replay: SessionReplay):
        stream = replay.stream
        self.channel_units = dict(zip(stream.channel_names, stream.channel_units, strict=True))
        self.data_type = stream.dtype.type
        self.sample_timing = stream.sample_timing


class ReplayStreamSource:
    """A :class:`SessionReplay` in the shape a :class:`~qudi.util.instream.hub.StreamHub`
    reads (:class:`~qudi.util.instream.contracts.StreamSource`), for replays without qudi::

        replay = SessionReplay("session.h5", "counter", speed=10.0)
        with StreamHub(ReplayStreamSource(replay), name="counter_again") as hub: ...

    The hub's ring is sized by the recorded rate; at a speed of N, ask it for N times the
    buffer (``hub.configure(..., channel_buffer_size, ...)``). The source closes the replay
    with :meth:`close`.
    """

    def __init__(self, replay: SessionReplay):
        self._replay = replay
        self.constraints = _Constraints(replay)
        self._channels = list(replay.stream.channel_names)
        self._buffer_size = 1 << 20
        self.streaming_mode = "CONTINUOUS"

    @property
    def replay(self) -> SessionReplay:
        return self._replay

    @property
    def active_channels(self) -> list[str]:
        return list(self._channels)

    @property
    def sample_rate(self) -> float:
        return float(self._replay.stream.sample_rate or 0.0)

    @property
    def channel_buffer_size(self) -> int:
        return self._buffer_size

    @property
    def available_samples(self) -> int:
        return self._replay.available_samples

    def configure(
        self,
        active_channels: Sequence[str],
        streaming_mode: object,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Channels (a subset of the recorded ones) and buffer size; the recorded rate only.

        Raises
        ------
        ValueError
            Another rate, or an unknown channel.
        """
        if sample_rate != self.sample_rate:
            raise ValueError(
                f"sample_rate {sample_rate!r}: a replay streams at the recorded "
                f"{self.sample_rate:g} Hz"
            )
        self._replay.configure(list(active_channels), None)
        self._channels = list(active_channels)
        self._buffer_size = int(channel_buffer_size)

    def start_stream(self) -> None:
        self._replay.start()

    def stop_stream(self) -> None:
        self._replay.stop()

    def read_available_data_into_buffer(
        self, data: np.ndarray, timestamps: np.ndarray | None = None
    ) -> int:
        rows = data.size // max(1, math.prod(self._replay.stream.sample_shape))
        if self._channels != list(self._replay.stream.channel_names):
            rows = data.size // max(1, len(self._channels))
        return self._replay.read_into(data, timestamps, rows)

    def close(self) -> None:
        self._replay.close()
