"""StreamRecorder: the writer side of recording; drains one reader into an HDF5 file.

A recorder owns one thread (``instream-recorder-<file name>``) and one file. The thread polls
its reader without blocking (``read_available_into``) into one preallocated block, appends the
block to the file, and sleeps on an event in between, so :meth:`stop` is prompt. Memory stays
constant however long it runs: one block, HDF5's chunk and metadata caches (both capped), a
few counters. h5py holds the GIL while it writes a block (a few ms for 0.2 s of 8 ch x 1 MS/s),
a cost per block, never per sample.

The file's layout, and why a killed recording still opens, are described in
:mod:`qudi.util.instream.recording_file`, which writes it. The recorder flushes it at least
once a second, so a crash of the process loses at most about the last second. Markers handed
to it (``markers``, a :class:`~qudi.util.instream.pending_markers.PendingMarkers`) are written
by its thread into the file's ``/markers`` table just before each flush, so they are as safe.

Lost samples are never hidden; what happens follows the reader's own overwrite policy:

* ``allow_overwrite=False`` (strict): the first loss ends the recording. The reader's
  :class:`~qudi.util.instream.errors.StreamOverrunError` is kept as :attr:`error`, the file is
  closed and valid, and ``/data`` holds the gap-free record up to the loss; the attributes say
  ``status = "failed"``, the error message and ``samples_lost``.
* ``allow_overwrite=True`` (the caller accepted losses): recording goes on; every gap gets a
  row in ``/gaps`` and counts in ``samples_lost``.

A failure of the source (:class:`~qudi.util.instream.errors.StreamFaultError`), of the disk, or
a stream closed under the recorder ends the recording the same way as a strict overrun.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qudi.util.instream.pending_markers import PendingMarkers
from qudi.util.instream.reader import RingReader
from qudi.util.instream.recorder_thread import ThreadedRecorder
from qudi.util.instream.recording_checks import (
    DEFAULT_MIN_FREE_BYTES,
)
from qudi.util.instream.recording_checks import (
    allocate_block as _allocate_block,
)
from qudi.util.instream.recording_checks import (
    block_samples as _block_samples,
)
from qudi.util.instream.recording_checks import (
    check_delivers as _check_delivers,
)
from qudi.util.instream.recording_checks import (
    check_free_space as _check_free_space,
)
from qudi.util.instream.recording_checks import (
    checked_max_samples as _checked_max_samples,
)
from qudi.util.instream.recording_checks import (
    checked_new_path as _checked_new_path,
)
from qudi.util.instream.recording_checks import (
    free_space_margin as _free_space_margin,
)
from qudi.util.instream.recording_checks import (
    seconds as _seconds,
)
from qudi.util.instream.recording_file import RecordingFile, checked_attributes
from qudi.util.instream.ring import RingState

__all__ = ["RecordingStatus", "RecordingSummary", "StreamRecorder"]

log = logging.getLogger(__name__)

DEFAULT_BLOCK_SECONDS = 0.2
DEFAULT_POLL_INTERVAL_S = 0.03
DEFAULT_FLUSH_INTERVAL_S = 1.0
COMPRESSIONS = (None, "gzip", "lzf")


class RecordingStatus(str, enum.Enum):
    """Where a recording stands; the value is also written to the file's ``status`` attribute."""

    NOT_STARTED = "not started"
    RECORDING = "recording"
    STOPPED = "stopped"  # stop() was called
    SIZE_LIMIT = "size limit"  # max_bytes reached
    STREAM_ENDED = "stream ended"  # the stream stopped (or its reader was stopped)
    FAILED = "failed"  # see the error


@dataclass(frozen=True)
class RecordingSummary:
    """What a recording produced.

    ``bytes`` counts the recorded samples and timestamps (the payload); the file is larger by
    HDF5's own structures and the unfilled rest of its last chunk. ``lost`` counts samples the
    reader lost while recording. ``seconds`` is the wall time from start to end (or to now).
    """

    path: Path
    samples: int
    bytes: int
    seconds: float
    lost: int
    stopped_by_size_limit: bool
    error: BaseException | None
    status: RecordingStatus


class StreamRecorder(ThreadedRecorder[RecordingSummary]):
    """Records what one reader of a stream gets into a new HDF5 file, from its own thread.

    Parameters
    ----------
    reader : RingReader
        The reader to drain (a plain reader, or a started hub reader); the recorder must be its
        only consumer. The caller owns it: the recorder neither starts, stops nor closes it.
        Its ``allow_overwrite`` decides what a loss does (module doc).
    path : str or os.PathLike
        The new file. An existing file is never overwritten (:class:`FileExistsError`); the
        directory must exist (:class:`FileNotFoundError`).
    max_bytes : int or None, optional
        Stop cleanly once this many bytes of samples (and timestamps) are recorded; the last
        block is cut so the limit is never exceeded. None: no limit.
    attributes : mapping, optional
        Extra file attributes (JSON-serialisable values, e.g. oversampling settings or the
        streamer's name). Strings, numbers and lists of either are stored as HDF5 values,
        anything else (dicts, None, nested lists) as JSON text.
    compression : str or None, optional
        None (default, fastest), ``"gzip"`` or ``"lzf"``.
    block_seconds : float, optional
        Size of the read block in seconds of data (at least 4096 samples, at most 32 MiB).
    poll_interval : float, optional
        Seconds to sleep when the reader has nothing more.
    flush_interval : float, optional
        Seconds between flushes of the file to the operating system.
    min_free_bytes : int, optional
        The recording fails cleanly (:class:`OSError` ENOSPC, file closed and valid) when less
        than this is free on the file's disk, or less than two flush intervals of data at the
        stream's rate if that is more. Checked at the start and at every flush. A full disk
        must be avoided: when HDF5 cannot write while closing a file, h5py can neither close
        it nor release it (h5py issues 914 and 2160).
    on_finished : callable, optional
        Called with the :class:`RecordingSummary` when the recording ends for any reason, in
        the recorder's thread, after the file is closed. Keep it short.
    markers : PendingMarkers, optional
        Markers handed over from any thread while it records: its thread writes them into
        ``/markers`` before each flush and as it finishes (then the queue takes no more).

    Raises
    ------
    TypeError
        ``reader`` is no reader, or an option of the wrong type.
    ValueError
        An option out of its range, naming it and its value.
    FileExistsError, FileNotFoundError
        See ``path``.

    Starting creates the file and the thread; :meth:`stop` (or leaving the ``with`` block)
    records what was published before the call, writes the final attributes and closes the
    file. The recording also ends by itself at ``max_bytes``, when the stream ends, or on an
    error, which is kept in :attr:`error` and the summary (and re-raised when a ``with`` block
    ends without an exception of its own).
    """

    _log = log
    _stop_timeout_hint = (
        " (is the disk stalled?); it closes the file as soon as its last write returns"
    )
    _callback_log = "the on_finished callback of the recorder of '%s' failed"
    _failed_status = RecordingStatus.FAILED

    def __init__(
        self,
        reader: RingReader,
        path: str | os.PathLike,
        *,
        max_bytes: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        compression: str | None = None,
        block_seconds: float = DEFAULT_BLOCK_SECONDS,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL_S,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        on_finished: Callable[[RecordingSummary], None] | None = None,
        markers: PendingMarkers | None = None,
    ):
        if not isinstance(reader, RingReader):
            raise TypeError(
                f"reader must be a RingReader or HubReader, got {type(reader).__name__}"
            )
        ring = reader.ring
        self._reader = reader
        self._path = _checked_new_path(path)
        self._sample_bytes = math.prod(ring.sample_shape) * ring.dtype.itemsize
        self._record_bytes = self._sample_bytes + (8 if ring.has_timestamps else 0)
        self._max_samples = _checked_max_samples(max_bytes, self._record_bytes)
        self._attributes = checked_attributes(attributes)
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        self._compression = compression
        self._block_samples = _block_samples(
            ring.info.sample_rate, self._sample_bytes, _seconds("block_seconds", block_seconds)
        )
        self._poll_interval = _seconds("poll_interval", poll_interval)
        self._flush_interval = _seconds("flush_interval", flush_interval)
        self._min_free_bytes = _free_space_margin(
            min_free_bytes, ring.info.sample_rate, self._record_bytes, self._flush_interval
        )
        if on_finished is not None and not callable(on_finished):
            raise TypeError(f"on_finished must be callable, got {on_finished!r}")
        self._on_finished = on_finished
        if markers is not None and not isinstance(markers, PendingMarkers):
            raise TypeError(f"markers must be a PendingMarkers, got {markers!r}")
        self._markers = markers

        super().__init__()
        self._file: RecordingFile  # created by start()
        self._block = np.empty((0, *ring.sample_shape), ring.dtype)  # allocated by start()
        self._block_timestamps: np.ndarray | None = None
        self._status = RecordingStatus.NOT_STARTED
        self._error: BaseException | None = None
        self._samples_written = 0
        self._lost_at_start = 0
        self._lost_at_end: int | None = None
        self._started_at = self._ended_at = 0.0  # time.monotonic()
        self._next_flush = 0.0

    # ------------------------------------------------------------------------- properties
    @property
    def path(self) -> Path:
        return self._path

    @property
    def reader(self) -> RingReader:
        return self._reader

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the file is closed."""
        return self._status is RecordingStatus.RECORDING

    @property
    def status(self) -> RecordingStatus:
        return self._status

    @property
    def samples_written(self) -> int:
        return self._samples_written

    @property
    def bytes_written(self) -> int:
        """Bytes of samples and timestamps written so far (the file adds HDF5's overhead)."""
        return self._samples_written * self._record_bytes

    @property
    def samples_lost(self) -> int:
        """Samples the reader lost since the recording started."""
        if self._lost_at_end is not None:
            return self._lost_at_end - self._lost_at_start
        if self._status is RecordingStatus.NOT_STARTED:
            return 0
        return self._reader.lost - self._lost_at_start

    @property
    def elapsed_seconds(self) -> float:
        """Wall time since :meth:`start`, frozen when the recording ends."""
        if self._status is RecordingStatus.NOT_STARTED:
            return 0.0
        end = time.monotonic() if self._status is RecordingStatus.RECORDING else self._ended_at
        return end - self._started_at

    @property
    def stopped_by_size_limit(self) -> bool:
        return self._status is RecordingStatus.SIZE_LIMIT

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the recording (overrun, source fault, disk error), if any."""
        return self._error

    def summary(self) -> RecordingSummary:
        """A snapshot of the recording so far (final once :attr:`running` is False)."""
        return RecordingSummary(
            path=self._path,
            samples=self._samples_written,
            bytes=self.bytes_written,
            seconds=self.elapsed_seconds,
            lost=self.samples_lost,
            stopped_by_size_limit=self.stopped_by_size_limit,
            error=self._error,
            status=self._status,
        )

    # ----------------------------------------------------------------------- public API
    def start(self) -> None:
        """Create the file and start recording what the reader gets from now on.

        Raises
        ------
        FileExistsError
            The file appeared meanwhile (it is left as it is).
        RuntimeError
            This recorder was started before (a recorder writes one file).
        StreamStoppedError
            The reader cannot deliver: it is not running (a hub reader not started, a
            stopped stream) or its stream is closed.
        """
        if self._status is not RecordingStatus.NOT_STARTED:
            raise RuntimeError(
                f"the recorder of '{self._path}' was started before; a recorder writes one "
                "file, make a new one for the next recording"
            )
        _check_delivers(self._reader)
        self._file = RecordingFile(
            self._path,
            self._reader.ring,
            compression=self._compression,
            max_samples=self._max_samples,
        )
        try:
            samples = self._block_samples
            if self._max_samples is not None:  # no block larger than the whole recording
                samples = max(1, min(samples, self._max_samples))
            self._block, self._block_timestamps = _allocate_block(self._reader.ring, samples)
            self._lost_at_start = self._reader.lost
            self._file.write_start(self._reader.name, self._reader.position, self._attributes)
            self._started_at = self._next_flush = time.monotonic()
            self._status = RecordingStatus.RECORDING
            self._start_thread()
        except BaseException:
            self._status = RecordingStatus.NOT_STARTED
            self._file.close()
            self._path.unlink(missing_ok=True)  # our own, still empty file
            raise

    def __repr__(self) -> str:
        return (
            f"<StreamRecorder '{self._path}' {self._status.value}, "
            f"{self._samples_written} samples, lost {self.samples_lost}>"
        )

    # ------------------------------------------------------------------ the writer thread
    def _record(self) -> RecordingStatus:
        """Drain, flush and sleep until stopped; returns why the recording ended."""
        _check_free_space(self._path, self._min_free_bytes)
        while True:
            # Looked at before draining: what was published before stop() (or before the
            # stream stopped) is still recorded by this last drain.
            stopping = self._stop_requested.is_set()
            ended = self._stream_ended()
            self._drain(final=stopping or ended)
            if self._size_limit_reached():
                return RecordingStatus.SIZE_LIMIT
            if stopping:
                return RecordingStatus.STOPPED
            if ended:
                return RecordingStatus.STREAM_ENDED
            self._flush_if_due()
            self._stop_requested.wait(self._poll_interval)

    def _stream_ended(self) -> bool:
        """No more samples can come: the ring stopped, or the reader stopped running."""
        reader = self._reader
        if reader.ring.closed:
            return False  # not an end but a failure: the next read says so
        if reader.ring.state is not RingState.RUNNING:
            return True
        return not reader.running

    def _drain(self, final: bool) -> None:
        """Write blocks while the reader has samples; the final drain takes only what is there.

        Catching up may take several blocks; a stop request ends a normal drain early
        because the final drain follows at once. Every drain reads at least once, even with
        no room left, so that a source fault or a closed stream is never missed.
        """
        remaining = self._reader.available if final else None
        while not self._size_limit_reached():
            room = len(self._block)
            if self._max_samples is not None:
                room = min(room, self._max_samples - self._samples_written)
            if remaining is not None:
                room = min(room, remaining)
            count = self._read_block(room)
            if remaining is not None:
                remaining -= count
            if count < room or room == 0:
                return
            self._flush_if_due()
            if not final and self._stop_requested.is_set():
                return

    def _size_limit_reached(self) -> bool:
        return self._max_samples is not None and self._samples_written >= self._max_samples

    def _read_block(self, room: int) -> int:
        """Read up to ``room`` samples into the block and append them; returns the count."""
        lost_before = self._reader.lost
        stamps = None if self._block_timestamps is None else self._block_timestamps[:room]
        count = self._reader.read_available_into(self._block[:room], timestamps=stamps)
        lost = self._reader.lost - lost_before
        if lost:  # an overwriting reader skipped a gap right before these samples
            self._file.append_gap(lost)
        if count:
            stamps = None if self._block_timestamps is None else self._block_timestamps[:count]
            self._file.append(self._block[:count], stamps)
            self._samples_written = self._file.rows
        return count

    def _flush_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_flush:
            _check_free_space(self._path, self._min_free_bytes)
            if self._markers is not None:  # flushed with the samples
                self._markers.write_into(self._file.root)
            self._file.flush(self.bytes_written, self._reader.lost - self._lost_at_start)
            self._next_flush = now + self._flush_interval

    def _finish(self, status: RecordingStatus) -> None:
        """Write the final attributes and close the file, whatever happened before."""
        self._lost_at_end = self._reader.lost
        self._ended_at = time.monotonic()
        try:
            if self._error is not None:
                status = RecordingStatus.FAILED
            lost = self._lost_at_end - self._lost_at_start
            if self._markers is not None:  # the last ones; the queue takes no more
                self._markers.write_into(self._file.root, final=True)
            self._file.write_end(status.value, self._error, self.bytes_written, lost)
        except Exception as exc:  # e.g. the disk is full: the first error is the one to keep
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
            self._block, self._block_timestamps = self._block[:0].copy(), None  # memory freed
            self._status = status
