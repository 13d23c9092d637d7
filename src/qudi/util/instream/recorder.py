"""StreamRecorder: the writer side of recording; drains one reader into an HDF5 file.

A recorder owns one thread (``instream-recorder-<file name>``) and one file. The thread polls
its reader without blocking (``read_available_into``) into one preallocated block, appends the
block to chunked, resizable datasets, and sleeps on an event in between, so :meth:`stop` is
prompt. Memory stays constant however long it runs: one block, HDF5's chunk caches (a few
chunks per dataset) and metadata cache (bounded by HDF5, 32 MiB at most by default), a few
counters. h5py holds the GIL while it writes a block (a few ms for 0.2 s of 8 ch x 1 MS/s), a
cost per block, never per sample.

The file is flushed at least once a second, so a crash of the process loses at most about the
last second. It is written in HDF5's default (oldest compatible) format on purpose: a killed
recording then still opens as a valid file (its ``status`` attribute still says
``recording``), where the newest format (and SWMR) would refuse to open it until ``h5clear``
had repaired it. After a crash, the first ``samples_recorded`` rows (an attribute written
after every flush of the data) are complete; HDF5 may have stored a larger dataset extent
whose last rows were never written.

File layout::

    /data         [samples, *sample_shape]  the ring's dtype, chunks of about 1 MiB
    /timestamps   [samples] float64          only if the stream carries timestamps
    /gaps         [gaps, 2] int64            (index in /data where samples are missing, count)
    /  attributes channel_names, channel_units, sample_rate, sample_timing, dtype,
                  sample_shape, start_time, stop_time, samples_recorded, samples_lost,
                  status, error, ... and the caller's own attributes

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
import errno
import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qudi.util.instream.errors import StreamStoppedError
from qudi.util.instream.hub import HubReader
from qudi.util.instream.reader import RingReader
from qudi.util.instream.ring import RingState

__all__ = ["RecordingStatus", "RecordingSummary", "StreamRecorder"]

log = logging.getLogger(__name__)

FILE_FORMAT = "qudi-instream recording"
FILE_FORMAT_VERSION = 1

# Chunks of about 1 MiB: large enough that HDF5's per-chunk bookkeeping is negligible, small
# enough that a partly filled chunk stays in the chunk cache until it is complete.
CHUNK_BYTES = 1 << 20
CHUNK_CACHE_CHUNKS = 4  # per dataset: the chunk being filled plus slack for a block's span
# HDF5's metadata cache keeps the chunk index (B-tree nodes) of everything written, at about
# 8x their size in the file, up to 32 MiB of file size by default: some 250 MB of memory after
# hours of recording. Appending only ever touches the newest path through the index, so a
# small cache does: memory levels off after about 1 500 chunks (1.5 GB of data).
METADATA_CACHE_BYTES = 64 << 10
# A numeric array attribute lives in the object header, whose messages hold at most 64 KiB;
# strings go to a heap and may be longer. Larger number lists are stored as JSON text.
MAX_ARRAY_ATTRIBUTE_BYTES = 32 << 10
MIN_BLOCK_SAMPLES = 4096
MAX_BLOCK_BYTES = 32 << 20  # caps the read block for large samples (video frames)
DEFAULT_BLOCK_SECONDS = 0.2
DEFAULT_POLL_INTERVAL_S = 0.03
DEFAULT_FLUSH_INTERVAL_S = 1.0
DEFAULT_STOP_TIMEOUT_S = 10.0
DEFAULT_MIN_FREE_BYTES = 256 << 20
COMPRESSIONS = (None, "gzip", "lzf")

# Attribute names the recorder writes itself; the caller's attributes may not reuse them.
RESERVED_ATTRIBUTES = frozenset(
    {
        "format",
        "format_version",
        "stream_name",
        "reader_name",
        "channel_names",
        "channel_units",
        "sample_rate",
        "sample_timing",
        "stream_info_extra",
        "dtype",
        "sample_shape",
        "first_sample_index",
        "start_time",
        "stop_time",
        "samples_recorded",
        "bytes_recorded",
        "samples_lost",
        "status",
        "error",
    }
)


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


class StreamRecorder:
    """Records what one reader of a stream gets into a new HDF5 file, from its own thread.

    Parameters
    ----------
    reader: the reader to drain (a :class:`RingReader` or a started :class:`HubReader`); the
        recorder must be its only consumer. The caller owns it: the recorder neither starts,
        stops nor closes it. Its ``allow_overwrite`` decides what a loss does (module doc).
    path: the new file. An existing file is never overwritten (:class:`FileExistsError`); the
        directory must exist (:class:`FileNotFoundError`).
    max_bytes: stop cleanly once this many bytes of samples (and timestamps) are recorded; the
        last block is cut so the limit is never exceeded. None: no limit.
    attributes: extra file attributes (JSON-serialisable values, e.g. oversampling settings or
        the streamer's name). Strings, numbers and lists of either are stored as HDF5 values,
        anything else (dicts, None, nested lists) as JSON text.
    compression: None (default, fastest), ``"gzip"`` or ``"lzf"``.
    block_seconds: size of the read block in seconds of data (at least 4096 samples, at most
        32 MiB).
    poll_interval: seconds to sleep when the reader has nothing more.
    flush_interval: seconds between flushes of the file to the operating system.
    min_free_bytes: the recording fails cleanly (:class:`OSError` ENOSPC, file closed and
        valid) when less than this is free on the file's disk, or less than two flush
        intervals of data at the stream's rate if that is more. Checked at the start and at
        every flush. A full disk must be avoided: when HDF5 cannot write while closing a
        file, h5py can neither close it nor release it (h5py issues 914 and 2160).
    on_finished: called with the :class:`RecordingSummary` when the recording ends for any
        reason, in the recorder's thread, after the file is closed. Keep it short.

    Starting creates the file and the thread; :meth:`stop` (or leaving the ``with`` block)
    records what was published before the call, writes the final attributes and closes the
    file. The recording also ends by itself at ``max_bytes``, when the stream ends, or on an
    error, which is kept in :attr:`error` and the summary (and re-raised when a ``with`` block
    ends without an exception of its own).
    """

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
        self._attributes = _checked_attributes(attributes)
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        self._compression = compression
        self._block_samples = _block_samples(
            ring.info.sample_rate, self._sample_bytes, _positive("block_seconds", block_seconds)
        )
        self._poll_interval = _positive("poll_interval", poll_interval)
        self._flush_interval = _positive("flush_interval", flush_interval)
        self._min_free_bytes = _free_space_margin(
            min_free_bytes, ring.info.sample_rate, self._record_bytes, self._flush_interval
        )
        if on_finished is not None and not callable(on_finished):
            raise TypeError(f"on_finished must be callable, got {on_finished!r}")
        self._on_finished = on_finished

        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: h5py.File | None = None
        self._data: h5py.Dataset | None = None
        self._timestamps: h5py.Dataset | None = None
        self._gaps: h5py.Dataset | None = None
        self._block: np.ndarray | None = None
        self._block_timestamps: np.ndarray | None = None
        self._status = RecordingStatus.NOT_STARTED
        self._error: BaseException | None = None
        self._samples_written = 0
        self._gap_count = 0
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

        Raises :class:`FileExistsError` if the file appeared meanwhile, :class:`RuntimeError`
        if this recorder was started before (a recorder writes one file), and
        :class:`StreamStoppedError` if the reader cannot deliver (hub reader not started,
        stream closed).
        """
        if self._status is not RecordingStatus.NOT_STARTED:
            raise RuntimeError(
                f"the recorder of '{self._path}' was started before; a recorder writes one "
                "file, make a new one for the next recording"
            )
        self._check_reader_delivers()
        self._create_file()
        try:
            _limit_metadata_cache(self._file)
            self._create_datasets()
            self._block, self._block_timestamps = self._allocate_block()
            self._lost_at_start = self._reader.lost
            self._write_start_attributes(self._reader.position)
            self._started_at = self._next_flush = time.monotonic()
            self._status = RecordingStatus.RECORDING
            self._thread = threading.Thread(
                target=self._run, name=f"instream-recorder-{self._path.name}", daemon=True
            )
            self._thread.start()
        except BaseException:
            self._status = RecordingStatus.NOT_STARTED
            self._close_file()
            self._path.unlink(missing_ok=True)  # our own, still empty file
            raise

    def stop(self, timeout: float | None = DEFAULT_STOP_TIMEOUT_S) -> RecordingSummary:
        """Record what was published until now, close the file and return the summary.

        Harmless on a recording that ended by itself (or never started). ``timeout`` bounds
        the wait for the thread in seconds; :class:`TimeoutError` if it does not finish (the
        disk stalls), in which case it still closes the file when it can.
        """
        self._stop_requested.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(
                    f"the recorder of '{self._path}' did not finish within {timeout} s (is the "
                    "disk stalled?); it closes the file as soon as its last write returns"
                )
        return self.summary()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the recording ends by itself; True if it has ended (the file is closed)."""
        thread = self._thread
        if thread is None:
            return self._status is not RecordingStatus.RECORDING
        thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self) -> StreamRecorder:
        if self._status is RecordingStatus.NOT_STARTED:
            self.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        summary = self.stop()
        if exc_type is None and summary.error is not None:
            raise summary.error

    def __repr__(self) -> str:
        return (
            f"<StreamRecorder '{self._path}' {self._status.value}, "
            f"{self._samples_written} samples, lost {self.samples_lost}>"
        )

    # -------------------------------------------------------------------- set-up (caller)
    def _check_reader_delivers(self) -> None:
        reader = self._reader
        if reader.ring.closed:
            raise StreamStoppedError(
                f"cannot record from reader '{reader.name}': its stream is closed"
            )
        if isinstance(reader, HubReader) and not reader.running:
            raise StreamStoppedError(
                f"cannot record from reader '{reader.name}': it is not running; start it first"
            )

    def _create_file(self) -> None:
        """Create the file; mode 'x' makes the "never overwrite" promise atomic.

        The chunk cache (per dataset) holds a few chunks, so the partly filled chunk at the
        end stays in memory until it is complete instead of being written twice.
        """
        chunk_cache = CHUNK_CACHE_CHUNKS * max(self._chunk_samples() * self._sample_bytes, 1 << 20)
        try:
            self._file = h5py.File(self._path, "x", rdcc_nbytes=chunk_cache, rdcc_w0=1.0)
        except FileExistsError:
            raise _exists_error(self._path) from None

    def _create_datasets(self) -> None:
        ring = self._reader.ring
        shape = ring.sample_shape
        chunk = self._chunk_samples()
        self._data = self._file.create_dataset(
            "data",
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=ring.dtype,
            chunks=(chunk, *shape),
            compression=self._compression,
        )
        if ring.has_timestamps:
            self._timestamps = self._file.create_dataset(
                "timestamps",
                shape=(0,),
                maxshape=(None,),
                dtype=np.float64,
                chunks=(self._cap_to_limit(CHUNK_BYTES // 8),),
                compression=self._compression,
            )
        self._gaps = self._file.create_dataset(
            "gaps", shape=(0, 2), maxshape=(None, 2), dtype=np.int64, chunks=(256, 2)
        )

    def _chunk_samples(self) -> int:
        return self._cap_to_limit(max(1, CHUNK_BYTES // self._sample_bytes))

    def _cap_to_limit(self, samples: int) -> int:
        """No chunk larger than the whole recording can be (small max_bytes, small file)."""
        return samples if self._max_samples is None else max(1, min(samples, self._max_samples))

    def _allocate_block(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The one read block, every page touched now.

        A slow stream fills only the start of the block, and the kernel would make the rest
        resident later, 2 MiB at a time (numpy asks for huge pages): the memory a recording
        needs is better resident, and visible, from its start.
        """
        ring = self._reader.ring
        samples = self._cap_to_limit(self._block_samples)
        block = np.empty((samples, *ring.sample_shape), ring.dtype)
        block.view(np.uint8).fill(0)
        if not ring.has_timestamps:
            return block, None
        stamps = np.empty(samples, np.float64)
        stamps.fill(0.0)
        return block, stamps

    def _write_start_attributes(self, first_sample_index: int) -> None:
        ring = self._reader.ring
        info = ring.info
        attrs = self._file.attrs
        attrs["format"] = FILE_FORMAT
        attrs["format_version"] = FILE_FORMAT_VERSION
        attrs["stream_name"] = ring.name
        attrs["reader_name"] = self._reader.name
        attrs["channel_names"] = _string_array(info.channel_names)
        attrs["channel_units"] = _string_array(info.channel_units)
        attrs["sample_rate"] = float(info.sample_rate) if info.sample_rate else math.nan
        attrs["sample_timing"] = str(info.sample_timing)
        attrs["stream_info_extra"] = json.dumps(dict(info.extra))
        attrs["dtype"] = str(ring.dtype)
        attrs["sample_shape"] = np.array(ring.sample_shape, np.int64)
        attrs["first_sample_index"] = np.int64(first_sample_index)
        attrs["start_time"] = _now_iso()
        attrs["stop_time"] = ""
        attrs["status"] = RecordingStatus.RECORDING.value
        attrs["error"] = ""
        for key, value in self._attributes.items():
            attrs[key] = value
        self._write_counts()

    # ------------------------------------------------------------------ the writer thread
    def _run(self) -> None:
        status = RecordingStatus.FAILED
        try:
            status = self._record()
        except Exception as exc:  # kept for the owner: .error, the summary, the file
            self._error = exc
            log.error("recording to '%s' stopped: %s", self._path, exc)
        finally:
            self._finish(status)
        if self._on_finished is not None:
            try:
                self._on_finished(self.summary())
            except Exception:
                log.exception("the on_finished callback of the recorder of '%s' failed", self._path)

    def _record(self) -> RecordingStatus:
        """Drain, flush and sleep until stopped; returns why the recording ended."""
        self._check_free_space()
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
        """No more samples can come: the ring stopped, or its hub reader was stopped."""
        reader = self._reader
        if reader.ring.closed:
            return False  # not an end but a failure: the next read says so
        if reader.ring.state is not RingState.RUNNING:
            return True
        return isinstance(reader, HubReader) and not reader.running

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
            self._append_gap(lost)
        if count:
            self._append(count)
        return count

    def _append(self, count: int) -> None:
        start, end = self._samples_written, self._samples_written + count
        self._data.resize(end, axis=0)
        self._data[start:end] = self._block[:count]
        if self._timestamps is not None:
            self._timestamps.resize(end, axis=0)
            self._timestamps[start:end] = self._block_timestamps[:count]
        self._samples_written = end

    def _append_gap(self, lost: int) -> None:
        row = self._gap_count
        self._gaps.resize(row + 1, axis=0)
        self._gaps[row] = (self._samples_written, lost)
        self._gap_count = row + 1

    def _flush_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_flush:
            self._check_free_space()
            self._file.flush()  # the data first: the counts must never claim unflushed rows
            self._write_counts()
            self._file.flush()
            self._next_flush = now + self._flush_interval

    def _check_free_space(self) -> None:
        """Fail while the file can still be closed intact, not when the disk is full."""
        free = shutil.disk_usage(self._path.parent).free
        if free < self._min_free_bytes:
            raise OSError(
                errno.ENOSPC,
                f"only {free / 1e6:.0f} MB are free on the disk of '{self._path}' (the "
                f"recording keeps at least {self._min_free_bytes / 1e6:.0f} MB free): recording "
                "stopped so that the file is closed intact",
            )

    def _write_counts(self) -> None:
        attrs = self._file.attrs
        attrs["samples_recorded"] = np.int64(self._samples_written)
        attrs["bytes_recorded"] = np.int64(self.bytes_written)
        attrs["samples_lost"] = np.int64(self._reader.lost - self._lost_at_start)

    def _finish(self, status: RecordingStatus) -> None:
        """Write the final attributes and close the file, whatever happened before."""
        self._lost_at_end = self._reader.lost
        self._ended_at = time.monotonic()
        try:
            self._write_end_attributes(status)
        except Exception as exc:  # e.g. the disk is full: the first error is the one to keep
            if self._error is None:
                self._error = exc
                status = RecordingStatus.FAILED
        finally:
            try:
                self._close_file()
            except Exception as exc:
                if self._error is None:
                    self._error = exc
                    status = RecordingStatus.FAILED
            self._block = self._block_timestamps = None
            self._status = status

    def _write_end_attributes(self, status: RecordingStatus) -> None:
        if self._error is not None:
            status = RecordingStatus.FAILED
        self._write_counts()
        attrs = self._file.attrs
        attrs["stop_time"] = _now_iso()
        attrs["status"] = status.value
        error = self._error
        attrs["error"] = "" if error is None else f"{type(error).__name__}: {error}"

    def _close_file(self) -> None:
        file, self._file = self._file, None
        self._data = self._timestamps = self._gaps = None
        if file is not None:
            file.close()


# ------------------------------------------------------------------------------ helpers
def _limit_metadata_cache(file: h5py.File) -> None:
    """Keep HDF5's metadata cache at METADATA_CACHE_BYTES, so memory stays flat for hours."""
    config = file.id.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = config.max_size = METADATA_CACHE_BYTES
    config.min_size = METADATA_CACHE_BYTES // 2
    file.id.set_mdc_config(config)


def _exists_error(path: Path) -> FileExistsError:
    return FileExistsError(
        f"'{path}' already exists; a recording never overwrites a file, choose another name"
    )


def _checked_new_path(path: str | os.PathLike) -> Path:
    try:
        path = Path(path)
    except TypeError:
        raise TypeError(f"path must be a file name (str or Path), got {path!r}") from None
    if str(path) in ("", "."):
        raise ValueError("path must name a file, got an empty path")
    path = path.expanduser().absolute()
    if path.exists():
        raise _exists_error(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot record to '{path}': the directory '{path.parent}' does not exist"
        )
    return path


def _checked_max_samples(max_bytes: object, record_bytes: int) -> int | None:
    """max_bytes in whole samples (with their timestamps); None means no limit."""
    if max_bytes is None:
        return None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
        raise TypeError(f"max_bytes must be an integer number of bytes or None, got {max_bytes!r}")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    if max_bytes < record_bytes:
        raise ValueError(
            f"max_bytes={max_bytes} is less than one sample ({record_bytes} bytes with its "
            "timestamp, if any)"
        )
    return int(max_bytes) // record_bytes


def _positive(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _free_space_margin(
    min_free_bytes: object, sample_rate: float | None, record_bytes: int, flush_interval: float
) -> int:
    """Bytes to keep free: the caller's minimum, or two check intervals of data if more."""
    if isinstance(min_free_bytes, bool) or not isinstance(min_free_bytes, (int, np.integer)):
        raise TypeError(
            f"min_free_bytes must be an integer number of bytes, got {min_free_bytes!r}"
        )
    if min_free_bytes < 0:
        raise ValueError(f"min_free_bytes must not be negative, got {min_free_bytes}")
    per_check = (sample_rate or 0.0) * record_bytes * flush_interval
    return max(int(min_free_bytes), math.ceil(2 * per_check))


def _block_samples(sample_rate: float | None, sample_bytes: int, block_seconds: float) -> int:
    """About ``block_seconds`` of data per read, at least 4096 samples, at most 32 MiB."""
    wanted = math.ceil(sample_rate * block_seconds) if sample_rate else MIN_BLOCK_SAMPLES
    return max(1, min(max(wanted, MIN_BLOCK_SAMPLES), MAX_BLOCK_BYTES // sample_bytes))


def _checked_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's attributes converted to values HDF5 stores (see :class:`StreamRecorder`)."""
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise TypeError(f"attributes must be a mapping of names to values, got {attributes!r}")
    converted = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"attribute names must be non-empty strings, got {key!r}")
        if key in RESERVED_ATTRIBUTES:
            raise ValueError(
                f"attribute '{key}' is written by the recorder itself; choose another name"
            )
        try:
            json.dumps(value, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"attribute '{key}' is not JSON-serialisable: {exc}") from None
        converted[key] = _storable(value)
    return converted


def _storable(value: Any) -> Any:
    """A JSON-serialisable value as an HDF5 attribute value: native where HDF5 has one."""
    if isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else json.dumps(value)
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(item, str) for item in value):
            return _string_array(value)
        if all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value):
            numbers = np.asarray(value)
            # not object dtype (an integer beyond 64 bits), not too large for a header message
            if numbers.dtype.kind in "if" and numbers.nbytes <= MAX_ARRAY_ATTRIBUTE_BYTES:
                return numbers
    return json.dumps(value)


def _string_array(strings) -> np.ndarray:
    return np.array([str(s) for s in strings], dtype=h5py.string_dtype())


def _now_iso() -> str:
    """Local time with its UTC offset, e.g. 2024-05-01T14:03:07.123+02:00."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")
