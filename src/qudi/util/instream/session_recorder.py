"""SessionRecorder: drains several readers into one SWMR session file, from one thread.

The multi-stream sibling of :class:`~qudi.util.instream.recorder.StreamRecorder`, with the same
rules: one thread (``instream-session-<file name>``) that polls every reader without blocking
into one preallocated block per stream, constant memory, a flush at least every
``flush_interval`` (so a killed process loses at most about that much), and no loss hidden:

* a reader with ``allow_overwrite=False`` that loses samples ends the session (status
  ``failed``, the file closed and valid, every stream complete up to the loss);
* a reader with ``allow_overwrite=True`` goes on; each gap gets a row in its ``gaps``.

A failure of a source, of the disk, or a stream closed under the recorder ends it the same
way. The session ends by itself when every stream has ended, or at ``max_bytes`` (summed over
the streams). Markers (:meth:`SessionRecorder.add_marker`) may be added from any thread; the
recorder's thread writes them with the next block. Each stream's time table (its ring's
(sample index, host monotonic time) pairs, when its time base provides them) is copied at
every flush. The layout is described in :mod:`qudi.util.instream.session_file`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qudi.util.instream.reader import RingReader
from qudi.util.instream.recorder import DEFAULT_POLL_INTERVAL_S, RecordingStatus
from qudi.util.instream.recorder_thread import ThreadedRecorder
from qudi.util.instream.recording_checks import (
    DEFAULT_MIN_FREE_BYTES,
    allocate_block,
    block_samples,
    check_delivers,
    check_free_space,
    checked_new_path,
    free_space_margin,
    seconds,
)
from qudi.util.instream.recording_file import checked_attributes
from qudi.util.instream.ring import RingState
from qudi.util.instream.session_file import (
    SessionFile,
    SessionStream,
    StreamTrack,
    checked_label,
    checked_marker_text,
)
from qudi.util.instream.session_time import stream_time_base, time_table_rows

__all__ = ["Marker", "SessionRecorder", "SessionSummary", "sample_index_at"]

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Marker:
    """A text event: host monotonic time (s), the primary stream's sample index, the text."""

    time: float
    sample_index: int
    text: str


@dataclass(frozen=True)
class SessionSummary:
    """What a session produced: per stream samples and losses, markers, how it ended."""

    path: Path
    samples: dict[str, int]
    lost: dict[str, int]
    bytes: int
    markers: int
    seconds: float
    error: BaseException | None
    status: RecordingStatus
    stopped_by_size_limit: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stopped_by_size_limit", self.status is RecordingStatus.SIZE_LIMIT)


class _Stream:
    """One recorded stream: its reader, read block, track in the file and table position."""

    def __init__(self, label: str, reader: RingReader, block_seconds: float):
        ring = reader.ring
        self.label = label
        self.reader = reader
        self.sample_bytes = math.prod(ring.sample_shape) * ring.dtype.itemsize
        self.record_bytes = self.sample_bytes + (8 if ring.has_timestamps else 0)
        self.block_samples = block_samples(ring.info.sample_rate, self.sample_bytes, block_seconds)
        self.block = np.empty((0, *ring.sample_shape), ring.dtype)
        self.stamps: np.ndarray | None = None
        self.track: StreamTrack
        self.lost_at_start = 0
        self.table_since = 0  # the next time-table row to copy (counted ever)
        self.ended = False


class SessionRecorder(ThreadedRecorder[SessionSummary]):
    """Records several readers' streams into one new HDF5 session file, from one thread.

    Parameters
    ----------
    readers : mapping of str to RingReader
        Label (the stream's group name in the file) to reader, the primary stream first; the
        recorder must be each reader's only consumer. The caller owns the readers (the
        recorder neither starts, stops nor closes them).
    path : str or os.PathLike
        The new file; never overwritten (:class:`FileExistsError`), its directory must exist.
    max_bytes : int or None, optional
        Stop cleanly at this many bytes of samples and timestamps, summed over the streams.
    attributes : mapping, optional
        Extra attributes of the file (JSON-serialisable values).
    compression : str or None, optional
        None (default), ``"gzip"`` or ``"lzf"``.
    block_seconds, poll_interval, flush_interval : float, optional
        Read block per stream (seconds of data), sleep when no reader has more, seconds
        between flushes (the most a crash loses).
    min_free_bytes : int, optional
        The session fails cleanly when less is free on the disk (or less than two flush
        intervals of all streams' data).
    on_finished : callable, optional
        Called with the :class:`SessionSummary` in the recorder's thread after the file is
        closed.

    Raises
    ------
    TypeError, ValueError
        A reader that is none, labels that repeat or cannot name a group, an option out of
        range (the message names it); nothing is created.
    FileExistsError, FileNotFoundError
        See ``path``.
    """

    _log = log
    _thread_prefix = "instream-session"
    _kind = "session recorder"
    _failure_log = "session recording to '%s' stopped: %s"
    _failed_status = RecordingStatus.FAILED

    def __init__(
        self,
        readers: Mapping[str, RingReader],
        path: str | os.PathLike,
        *,
        max_bytes: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        compression: str | None = None,
        block_seconds: float = 0.2,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL_S,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        on_finished: Callable[[SessionSummary], None] | None = None,
    ):
        if not isinstance(readers, Mapping) or not readers:
            raise TypeError(f"readers must be a mapping of labels to readers, got {readers!r}")
        block_seconds = seconds("block_seconds", block_seconds)
        streams = []
        for label, reader in readers.items():
            checked_label(label)
            if not isinstance(reader, RingReader):
                raise TypeError(
                    f"reader of stream '{label}' must be a RingReader or HubReader, got "
                    f"{type(reader).__name__}"
                )
            streams.append(_Stream(label, reader, block_seconds))
        self._streams = streams
        self._path = checked_new_path(path)
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer))
        ):
            raise TypeError(
                f"max_bytes must be an integer number of bytes or None, got {max_bytes!r}"
            )
        if max_bytes is not None and max_bytes < max(s.record_bytes for s in streams):
            raise ValueError(
                f"max_bytes must hold at least one sample of each stream, got {max_bytes}"
            )
        self._max_bytes = None if max_bytes is None else int(max_bytes)
        self._attributes = checked_attributes(attributes)
        if compression not in (None, "gzip", "lzf"):
            raise ValueError(
                f"compression must be one of (None, 'gzip', 'lzf'), got {compression!r}"
            )
        self._compression = compression
        self._poll_interval = seconds("poll_interval", poll_interval)
        self._flush_interval = seconds("flush_interval", flush_interval)
        rate_bytes = sum((s.reader.ring.info.sample_rate or 0.0) * s.record_bytes for s in streams)
        self._min_free_bytes = free_space_margin(
            min_free_bytes, rate_bytes, 1, self._flush_interval
        )
        if on_finished is not None and not callable(on_finished):
            raise TypeError(f"on_finished must be callable, got {on_finished!r}")
        self._on_finished = on_finished

        super().__init__()
        self._markers: deque[Marker] = deque()
        self._marker_count = 0
        self._marker_lock = threading.Lock()
        self._file: SessionFile
        self._status = RecordingStatus.NOT_STARTED
        self._error: BaseException | None = None
        self._bytes = 0
        self._started_at = self._ended_at = 0.0
        self._next_flush = 0.0

    # ------------------------------------------------------------------------- properties
    @property
    def path(self) -> Path:
        return self._path

    @property
    def labels(self) -> list[str]:
        """The streams' labels, the primary first."""
        return [s.label for s in self._streams]

    @property
    def running(self) -> bool:
        return self._status is RecordingStatus.RECORDING

    @property
    def status(self) -> RecordingStatus:
        return self._status

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def bytes_written(self) -> int:
        return self._bytes

    @property
    def samples_written(self) -> dict[str, int]:
        started = self._status is not RecordingStatus.NOT_STARTED
        return {s.label: s.track.rows if started else 0 for s in self._streams}

    def summary(self) -> SessionSummary:
        """A snapshot of the session so far (final once :attr:`running` is False)."""
        started = self._status is not RecordingStatus.NOT_STARTED
        end = time.monotonic() if self.running else self._ended_at
        return SessionSummary(
            path=self._path,
            samples=self.samples_written,
            lost={s.label: s.track.lost if started else 0 for s in self._streams},
            bytes=self._bytes,
            markers=self._marker_count,
            seconds=end - self._started_at if started else 0.0,
            error=self._error,
            status=self._status,
        )

    # ----------------------------------------------------------------------- public API
    def start(self) -> None:
        """Create the file and record what every reader gets from now on.

        Raises
        ------
        RuntimeError
            Started before (a recorder writes one file).
        StreamStoppedError
            A reader cannot deliver (not running, or its stream is closed).
        FileExistsError
            The file appeared meanwhile.
        """
        if self._status is not RecordingStatus.NOT_STARTED:
            raise RuntimeError(
                f"the session recorder of '{self._path}' was started before; make a new one"
            )
        for stream in self._streams:
            check_delivers(stream.reader)
        specs = [
            SessionStream(
                s.label,
                s.reader.ring,
                s.reader.name,
                s.reader.position,
                stream_time_base(s.reader.ring),
            )
            for s in self._streams
        ]
        self._file = SessionFile(
            self._path, specs, compression=self._compression, attributes=self._attributes
        )
        try:
            for stream in self._streams:
                stream.block, stream.stamps = allocate_block(
                    stream.reader.ring, stream.block_samples
                )
                stream.lost_at_start = stream.reader.lost
                stream.track = self._file.tracks[stream.label]
                stream.table_since = 0  # every row of the run: the fit wants them all
            self._started_at = self._next_flush = time.monotonic()
            self._status = RecordingStatus.RECORDING
            self._start_thread()
        except BaseException:
            self._status = RecordingStatus.NOT_STARTED
            self._file.close()
            self._path.unlink(missing_ok=True)
            raise

    def add_marker(self, text: str, at: float | None = None) -> Marker:
        """Note a text event now (or at host monotonic time ``at``) in the markers table.

        The marker's sample index is the primary stream's next sample index (its ring's write
        index) when called; for a marker of an earlier time ``at`` on a CONSTANT stream whose
        time table says when its samples were taken, the index of the first sample taken at or
        after ``at`` (markers from a marker stream reach the recorder late). Callable from any
        thread; written with the next block.

        Returns
        -------
        Marker
            What is recorded.

        Raises
        ------
        TypeError, ValueError
            ``text`` is no str, empty, longer than 256 bytes of UTF-8, or has a NUL; ``at``
            is no finite number.
        RuntimeError
            The session is not recording.
        """
        checked_marker_text(text)
        when = time.monotonic() if at is None else at
        if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
            raise ValueError(f"a marker's time must be a finite number of seconds, got {at!r}")
        with self._marker_lock:
            if not self.running:
                raise RuntimeError(
                    f"cannot add marker {text!r}: the session '{self._path.name}' is "
                    f"{self._status.value}"
                )
            reader = self._streams[0].reader
            index = int(reader.ring.write_index) if at is None else sample_index_at(reader, when)
            marker = Marker(float(when), index, text)
            self._markers.append(marker)
            self._marker_count += 1
        return marker

    def __repr__(self) -> str:
        return f"<SessionRecorder '{self._path}' {self._status.value}, streams {self.labels}>"

    # ------------------------------------------------------------------ the writer thread
    def _record(self) -> RecordingStatus:
        check_free_space(self._path, self._min_free_bytes)
        while True:
            stopping = self._stop_requested.is_set()
            for stream in self._streams:
                stream.ended = stream.ended or _stream_ended(stream.reader)
            ended = all(s.ended for s in self._streams)
            final = stopping or ended
            for stream in self._streams:
                self._drain(stream, final or stream.ended)
                if self._size_limit_reached():
                    return RecordingStatus.SIZE_LIMIT
            self._write_markers()
            if stopping:
                return RecordingStatus.STOPPED
            if ended:
                return RecordingStatus.STREAM_ENDED
            self._flush_if_due()
            self._stop_requested.wait(self._poll_interval)

    def _drain(self, stream: _Stream, final: bool) -> None:
        """Write blocks while the reader has samples (at least one read, to see faults)."""
        remaining = stream.reader.available if final else None
        while not self._size_limit_reached():
            room = len(stream.block)
            if self._max_bytes is not None:
                room = min(room, (self._max_bytes - self._bytes) // stream.record_bytes)
            if remaining is not None:
                room = min(room, remaining)
            count = self._read_block(stream, room)
            if remaining is not None:
                remaining -= count
            if count < room or room == 0:
                return
            self._flush_if_due()
            if not final and self._stop_requested.is_set():
                return

    def _read_block(self, stream: _Stream, room: int) -> int:
        reader = stream.reader
        lost_before = reader.lost
        stamps = None if stream.stamps is None else stream.stamps[:room]
        count = reader.read_available_into(stream.block[:room], timestamps=stamps)
        lost = reader.lost - lost_before
        if lost:
            stream.track.append_gap(lost)
        if count:
            stamps = None if stream.stamps is None else stream.stamps[:count]
            stream.track.append(stream.block[:count], stamps)
            self._bytes += count * stream.record_bytes
        return count

    def _size_limit_reached(self) -> bool:
        if self._max_bytes is None:
            return False
        smallest = min(s.record_bytes for s in self._streams)
        return self._max_bytes - self._bytes < smallest

    def _write_markers(self) -> None:
        with self._marker_lock:
            pending = list(self._markers)
            self._markers.clear()
        for marker in pending:
            self._file.append_marker(marker.time, marker.sample_index, marker.text.encode())

    def _copy_time_tables(self) -> None:
        for stream in self._streams:
            rows, stream.table_since = time_table_rows(stream.reader.ring, stream.table_since)
            stream.track.append_time_rows(rows)

    def _flush_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_flush:
            check_free_space(self._path, self._min_free_bytes)
            self._write_markers()
            self._copy_time_tables()
            self._file.flush()
            self._next_flush = now + self._flush_interval

    def _finish(self, status: RecordingStatus) -> None:
        self._ended_at = time.monotonic()
        try:
            if self._error is not None:
                status = RecordingStatus.FAILED
            self._write_markers()  # also after a loss: what was noted is kept
            self._copy_time_tables()
            self._file.write_end(status.value, self._error)
        except Exception as exc:
            if self._error is None:
                self._error = exc
                status = RecordingStatus.FAILED
        finally:
            try:
                self._file.close()
            except Exception as exc:
                if self._error is None:
                    self._error = exc
                    status = RecordingStatus.FAILED
            for stream in self._streams:
                stream.block, stream.stamps = stream.block[:0].copy(), None
            with self._marker_lock:
                self._status = status


def sample_index_at(reader: RingReader, when: float) -> int:
    """The index of the sample ``reader``'s stream took at host time ``when``: on a CONSTANT
    stream the first at or after it by its ring's time table (it may not be written yet: the
    ring's writer is behind by its latency), else (or without a table) the ring's next sample.

    The rule by which a marker gets its sample, in session and one-stream recordings alike.
    """
    newest = int(reader.ring.write_index)
    if reader.ring.info.sample_timing != "CONSTANT":
        return newest
    try:
        time_base = reader.clock.refresh()
        if time_base is None:
            return newest
        index = math.ceil(float(time_base.index_at(when)) - 1e-6)
    except (ValueError, AttributeError):  # no table, too few rows, no rate
        return newest
    return max(int(time_base.run.first_index), index)


def _stream_ended(reader: RingReader) -> bool:
    """No more samples can come: the ring stopped, or the reader stopped running."""
    if reader.ring.closed:
        return False  # a failure, not an end: the next read says so
    if reader.ring.state is not RingState.RUNNING:
        return True
    return not reader.running
