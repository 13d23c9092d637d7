"""Markers: text events of a session, ``(time, text)`` records that anyone may write.

A marker is one record of :data:`MARKER_DTYPE`: ``time`` in host monotonic seconds
(:func:`time.monotonic`, the clock of every ring's time table) and ``text``, at most 256 bytes
of UTF-8 without NUL (:func:`checked_marker_text`, the same rule as a session file's markers
table). :class:`MarkerSource` holds the markers of one session: :meth:`MarkerSource.add` from
any thread, the newest ``history`` markers for whoever wants to look at them
(:meth:`MarkerSource.since`), and a stream of the records in the shape of a
``DataInStreamInterface`` streamer (one ``markers`` column, TIMESTAMP timing, each record's
stamp its time) that a :class:`~qudi.util.instream.hub.StreamHub` shares like any other, so
recorders and outlets get every marker once, in order.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qudi.util.instream.session_file import MARKER_TEXT_BYTES, checked_marker_text

__all__ = [
    "MARKER_DTYPE",
    "MARKER_TEXT_BYTES",
    "MarkerSource",
    "as_markers",
    "checked_marker_text",
    "marker_list",
]

MARKER_DTYPE = np.dtype([("time", "<f8"), ("text", f"S{MARKER_TEXT_BYTES}")])
DEFAULT_HISTORY = 10_000  # markers kept for lookers
DEFAULT_RATE = 100.0  # nominal markers per second: what a hub sizes its ring by
DEFAULT_BUFFER = 65_536  # markers the stream keeps for its reader


def as_markers(records: np.ndarray) -> np.ndarray:
    """A flat view of marker records as read from a ring (``[n]`` or a hub's ``[n, 1]``).

    Raises
    ------
    TypeError
        If ``records`` are not of :data:`MARKER_DTYPE`.
    """
    if records.dtype != MARKER_DTYPE:
        raise TypeError(f"records have dtype {records.dtype}, not the marker dtype {MARKER_DTYPE}")
    return records.reshape(-1)


def marker_list(records: np.ndarray) -> list[tuple[float, str]]:
    """Marker records as plain ``(time, text)`` pairs (text decoded)."""
    return [(float(t), bytes(text).decode("utf-8")) for t, text in as_markers(records).tolist()]


@dataclass(frozen=True)
class MarkerConstraints:
    """The part of ``DataInStreamConstraints`` a hub needs of a marker source."""

    channel_units: dict[str, str] = field(default_factory=lambda: {"markers": ""})
    data_type: np.dtype = MARKER_DTYPE
    sample_timing: str = "TIMESTAMP"


class MarkerSource:
    """The markers of one session: written from any thread, looked at and streamed.

    :meth:`add` notes a marker now (or at a given time); it is kept in the history (the newest
    ``history`` markers, for :meth:`since`) and, while the stream runs (:meth:`start_stream`,
    as a hub starts it for its first consumer), queued for the stream's reader. A queue of
    ``channel_buffer_size`` markers that nobody reads refuses further markers (the error says
    so) rather than dropping any.

    Parameters
    ----------
    history
        Markers kept for :meth:`since` (the oldest go first).
    sample_rate
        Nominal markers per second (a hub sizes its ring by it; markers come when they come).
    buffer_size
        Markers the stream's queue holds for its reader.
    clock
        Seconds, monotonic (default :func:`time.monotonic`).
    """

    def __init__(
        self,
        *,
        history: int = DEFAULT_HISTORY,
        sample_rate: float = DEFAULT_RATE,
        buffer_size: int = DEFAULT_BUFFER,
        clock: Callable[[], float] = time.monotonic,
    ):
        for name, value in (("history", history), ("buffer_size", buffer_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} is {value!r}: use a whole number of markers >= 1")
        self.constraints = MarkerConstraints()
        self.active_channels = ["markers"]
        self.streaming_mode = "CONTINUOUS"
        self.sample_rate = _checked_rate(sample_rate)
        self.channel_buffer_size = buffer_size
        self.stream_extra = {"kind": "markers"}
        self.has_timestamps = True
        self.id = uuid.uuid4().hex  # tells this source's counts from another's
        self._clock = clock
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # a marker queued, or the stream stopped
        self._history: deque[tuple[float, str]] = deque(maxlen=history)
        self._count = 0  # markers ever added
        self._queue: deque[tuple[float, bytes]] = deque()
        self._running = False

    # --------------------------------------------------------------------------- writers
    def add(self, text: str, at: float | None = None) -> tuple[float, str]:
        """Note ``text`` now (or at host monotonic time ``at``); the ``(time, text)`` noted.

        Raises
        ------
        TypeError, ValueError
            ``text`` is no str, empty, over 256 bytes of UTF-8 or has a NUL; ``at`` is no
            finite number. Nothing is noted.
        RuntimeError
            The stream's queue is full (its reader does not read); nothing is noted.
        """
        encoded = checked_marker_text(text)
        if at is not None and (
            isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at)
        ):
            raise ValueError(f"a marker's time must be a finite number of seconds, got {at!r}")
        with self._lock:
            if self._running and len(self._queue) >= self.channel_buffer_size:
                raise RuntimeError(
                    f"cannot add marker {text!r}: the marker stream's buffer of "
                    f"{self.channel_buffer_size} markers is full (its reader does not read)"
                )
            when = self._clock() if at is None else float(at)
            self._history.append((when, text))
            self._count += 1
            if self._running:
                self._queue.append((when, encoded))
                self._arrived.notify_all()
        return when, text

    # --------------------------------------------------------------------------- lookers
    @property
    def count(self) -> int:
        """Markers added so far (ever; :meth:`since` counts by it)."""
        return self._count

    def since(self, count: int) -> tuple[list[tuple[float, str]], int]:
        """The markers added after the first ``count`` (those still in the history), and the
        count to pass next time."""
        with self._lock:
            total = self._count
            new = min(max(0, total - int(count)), len(self._history))
            kept = list(self._history)[len(self._history) - new :] if new else []
        return kept, total

    # ---------------------------------------------------------------------- the stream
    def configure(self, active_channels, streaming_mode, channel_buffer_size, sample_rate):
        """Only ``['markers']``, CONTINUOUS; ``sample_rate`` is nominal (markers per second);
        ``channel_buffer_size`` the queue's markers."""
        if self._running:
            raise RuntimeError("cannot configure a running marker stream; stop it first")
        if list(active_channels) != ["markers"]:
            raise ValueError(f"active_channels is {list(active_channels)!r}: use ['markers']")
        if str(getattr(streaming_mode, "name", streaming_mode)) != "CONTINUOUS":
            raise ValueError(f"streaming_mode is {streaming_mode!r}: use CONTINUOUS")
        size = channel_buffer_size
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"channel_buffer_size is {size!r}: use a whole number of markers")
        self.sample_rate = _checked_rate(sample_rate)
        self.channel_buffer_size = int(size)

    @property
    def is_running(self) -> bool:
        return self._running

    def start_stream(self) -> None:
        """Queue the markers added from now on for the stream's reader."""
        with self._lock:
            if not self._running:
                self._queue.clear()
                self._running = True

    def stop_stream(self) -> None:
        with self._lock:
            self._running = False
            self._arrived.notify_all()

    @property
    def available_samples(self) -> int:
        """Markers queued for the reader."""
        return len(self._queue)

    def read_available_data_into_buffer(self, data_buffer, timestamp_buffer=None) -> int:
        """Move as many queued markers as fit into ``data_buffer`` (records, flat) and their
        times into ``timestamp_buffer``."""
        with self._lock:
            count = min(len(self._queue), data_buffer.size)
            self._take(data_buffer.reshape(-1), timestamp_buffer, count)
            return count

    def read_data_into_buffer(
        self, data_buffer, samples_per_channel, timestamp_buffer=None, timeout=None
    ) -> None:
        """Take exactly ``samples_per_channel`` markers (waiting at most ``timeout`` s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._arrived:
            while len(self._queue) < samples_per_channel:
                if not self._running:
                    raise RuntimeError(
                        f"the marker stream is not running and holds {len(self._queue)} of "
                        f"{samples_per_channel} markers: call start_stream() first"
                    )
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(
                        f"{samples_per_channel} markers did not come within {timeout} s"
                    )
                self._arrived.wait(left)
            self._take(data_buffer.reshape(-1), timestamp_buffer, samples_per_channel)

    def _take(self, out: np.ndarray, stamps: np.ndarray | None, count: int) -> None:
        queue = self._queue
        for row in range(count):
            when, encoded = queue.popleft()
            out[row] = (when, encoded)
            if stamps is not None:
                stamps.reshape(-1)[row] = when


def _checked_rate(rate: object) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ValueError(f"sample_rate is {rate!r}: use a nominal number of markers per second")
    value = float(rate)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"sample_rate is {rate!r}: use a nominal number of markers per second > 0")
    return value
