"""ImageRecorder: records one reader of a camera stream into an HDF5 file, frame by frame.

The camera counterpart of :class:`~qudi.util.instream.recorder.StreamRecorder`, with the same
rules (constant memory, crash-safe file, losses never hidden), laid out for images::

    /frames         [frames, H, W]  the stream's pixel type, one HDF5 chunk per frame
    /frame_times    [frames] float64  each frame's time (s since the camera's start)
    /frame_indices  [frames] int64    each frame's index in the stream (gaps show as jumps)
    /gaps           [gaps, 2] int64   (row in /frames where frames are missing, count)
    /  attributes   format, format_version, stream_name, reader_name, frame_shape, dtype,
                    frame_rate, pixel_unit, compression, start_time, stop_time,
                    frames_recorded, frames_lost, status, error, and the caller's own

One chunk per frame means a viewer or an analysis reads any frame with one chunk read, and
compression (``"gzip"`` or ``"lzf"``, both lossless and built into h5py, optionally with the
byte ``shuffle`` filter, which helps integer images) works per frame. The file is written in
HDF5's default format and flushed at least once a second, data before counts, so a killed
recording still opens and its first ``frames_recorded`` frames are complete. The thread
(``instream-image-recorder-<file name>``) reads at most a block of frames at a time (at most
32 MiB) into one preallocated array: memory stays flat however long it records.

Losses follow the reader's overwrite policy: a strict reader's first loss ends the recording
(``status = "failed"``, the error kept); a reader with ``allow_overwrite=True`` records on and
every gap gets a row in ``/gaps`` and counts in ``frames_lost``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qudi.util.instream.errors import StreamOverrunError
from qudi.util.instream.hub import HubReader
from qudi.util.instream.reader import RingReader
from qudi.util.instream.recorder_thread import ThreadedRecorder
from qudi.util.instream.recording_file import checked_attributes, exists_error
from qudi.util.instream.ring import RingState

__all__ = ["COMPRESSIONS", "IMAGE_FILE_FORMAT", "ImageRecorder", "ImageRecordingSummary"]

log = logging.getLogger(__name__)

IMAGE_FILE_FORMAT = "qudi-instream image recording"
COMPRESSIONS = (None, "gzip", "lzf")
_MAX_BLOCK_BYTES = 32 << 20
_MAX_BLOCK_FRAMES = 64
_METADATA_CACHE_BYTES = 64 << 10
_TIME_CHUNK = 4096


class ImageRecordingSummary:
    """What a recording produced: file, frames, frames lost, status and error (if any)."""

    def __init__(self, path: Path, frames: int, lost: int, status: str, error):
        self.path, self.frames, self.lost, self.status, self.error = (
            path,
            frames,
            lost,
            status,
            error,
        )

    def __repr__(self) -> str:
        return (
            f"<ImageRecordingSummary '{self.path}' {self.status}: {self.frames} frames, "
            f"{self.lost} lost>"
        )


class ImageRecorder(ThreadedRecorder[ImageRecordingSummary]):
    """Records what one reader of a camera stream gets into a new HDF5 file, from a thread.

    Parameters
    ----------
    reader
        A started reader of a camera stream (``[frames, H, W]`` samples with timestamps); the
        recorder is its only consumer and neither starts, stops nor closes it.
    path
        The new file; an existing one is never overwritten (``FileExistsError``), its
        directory must exist (``FileNotFoundError``).
    compression
        None (default, fastest), ``"gzip"`` or ``"lzf"``: lossless, per frame.
    compression_level
        gzip's level 0 to 9 (default 4); only with ``"gzip"``.
    shuffle
        Add HDF5's byte shuffle filter before compression (only with a compression).
    max_frames
        Stop cleanly after this many frames (None: no limit).
    attributes
        Extra file attributes (JSON-serialisable values).
    flush_interval, poll_interval
        Seconds between flushes, and between polls of the reader when it has nothing.
    on_finished
        Called with the :class:`ImageRecordingSummary` in the recorder's thread when the
        recording ends, after the file is closed.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong kind or out of range, naming it.
    FileExistsError, FileNotFoundError
        See ``path``.
    """

    _log = log
    _thread_prefix = "instream-image-recorder"
    _kind = "image recorder"
    _failure_log = "image recording to '%s' stopped: %s"
    _raise_on_stop_timeout = False  # stop() returns the summary so far
    _raise_error_on_exit = False  # the error is in the summary and .error

    def __init__(
        self,
        reader: RingReader,
        path: str | Path,
        *,
        compression: str | None = None,
        compression_level: int | None = None,
        shuffle: bool = False,
        max_frames: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        flush_interval: float = 1.0,
        poll_interval: float = 0.02,
        on_finished: Callable[[ImageRecordingSummary], None] | None = None,
    ):
        if not isinstance(reader, RingReader):
            raise TypeError(f"reader must be a RingReader or HubReader, got {reader!r}")
        ring = reader.ring
        if len(ring.sample_shape) != 2 or not ring.has_timestamps:
            raise ValueError(
                f"stream '{ring.name}' has samples of shape {ring.sample_shape}"
                f"{'' if ring.has_timestamps else ' without times'}: an image recording needs "
                "a camera stream ([frames, H, W] with a time per frame)"
            )
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        if compression_level is not None and (
            compression != "gzip"
            or isinstance(compression_level, bool)
            or not isinstance(compression_level, int)
            or not 0 <= compression_level <= 9
        ):
            raise ValueError(
                f"compression_level must be a whole number 0 to 9 with compression='gzip', "
                f"got {compression_level!r} with compression={compression!r}"
            )
        if not isinstance(shuffle, bool) or (shuffle and compression is None):
            raise ValueError(f"shuffle must be True (with a compression) or False, got {shuffle!r}")
        if max_frames is not None and (
            isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1
        ):
            raise ValueError(f"max_frames must be None or a whole number >= 1, got {max_frames!r}")
        for name, value in (("flush_interval", flush_interval), ("poll_interval", poll_interval)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        self._path = Path(path)
        if self._path.exists():
            raise exists_error(self._path)
        if not self._path.parent.is_dir():
            raise FileNotFoundError(f"the directory of '{self._path}' does not exist")
        self._reader = reader
        self._attributes = checked_attributes(attributes)
        self._filters: dict[str, Any] = {"compression": compression, "shuffle": shuffle}
        if compression == "gzip":
            self._filters["compression_opts"] = (
                4 if compression_level is None else compression_level
            )
        self._max_frames = max_frames
        self._flush_interval = float(flush_interval)
        self._poll_interval = float(poll_interval)
        self._on_finished = on_finished
        frame_bytes = math.prod(ring.sample_shape) * ring.dtype.itemsize
        self._block_frames = max(1, min(_MAX_BLOCK_FRAMES, _MAX_BLOCK_BYTES // frame_bytes))
        super().__init__()
        self._file: h5py.File  # created by start()
        self._frames = 0
        self._lost = 0
        self._status = "not started"
        self._error: BaseException | None = None

    # ------------------------------------------------------------------------- properties
    @property
    def path(self) -> Path:
        return self._path

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def frames_written(self) -> int:
        return self._frames

    @property
    def frames_lost(self) -> int:
        return self._lost

    @property
    def status(self) -> str:
        return self._status

    @property
    def error(self) -> BaseException | None:
        return self._error

    def summary(self) -> ImageRecordingSummary:
        return ImageRecordingSummary(
            self._path, self._frames, self._lost, self._status, self._error
        )

    # ----------------------------------------------------------------------- start / stop
    def start(self) -> None:
        """Create the file and start the thread.

        Raises
        ------
        RuntimeError
            If started before.
        FileExistsError, OSError
            If the file cannot be created (nothing is left open).
        """
        if self._status != "not started":
            raise RuntimeError(f"the recording to '{self._path}' was started before")
        self._file = self._create_file()
        self._status = "recording"
        self._start_thread()

    # ------------------------------------------------------------------------ the file
    def _create_file(self) -> h5py.File:
        ring = self._reader.ring
        shape = ring.sample_shape
        frame_bytes = math.prod(shape) * ring.dtype.itemsize
        try:  # a small chunk cache: the frames of one block, written once each
            file = h5py.File(self._path, "x", rdcc_nbytes=4 * frame_bytes + (1 << 20), rdcc_w0=1.0)
        except FileExistsError:
            raise exists_error(self._path) from None
        try:
            config = file.id.get_mdc_config()  # HDF5's metadata cache: capped, flat memory
            config.set_initial_size = True
            config.initial_size = config.max_size = _METADATA_CACHE_BYTES
            config.min_size = _METADATA_CACHE_BYTES // 2
            file.id.set_mdc_config(config)
            file.create_dataset(
                "frames",
                shape=(0, *shape),
                maxshape=(None, *shape),
                dtype=ring.dtype,
                chunks=(1, *shape),
                **self._filters,
            )
            for name, dtype in (("frame_times", np.float64), ("frame_indices", np.int64)):
                file.create_dataset(
                    name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(_TIME_CHUNK,)
                )
            file.create_dataset(
                "gaps", shape=(0, 2), maxshape=(None, 2), dtype=np.int64, chunks=(256, 2)
            )
            attrs = file.attrs
            info = ring.info
            attrs["format"] = IMAGE_FILE_FORMAT
            attrs["format_version"] = 1
            attrs["stream_name"] = ring.name
            attrs["reader_name"] = self._reader.name
            attrs["frame_shape"] = np.array(shape, np.int64)
            attrs["dtype"] = str(ring.dtype)
            attrs["frame_rate"] = float(info.sample_rate) if info.sample_rate else math.nan
            attrs["pixel_unit"] = str(info.extra.get("pixel_unit", ""))
            attrs["compression"] = json.dumps(self._filters)
            attrs["start_time"] = datetime.now(timezone.utc).isoformat()
            attrs["stop_time"] = ""
            attrs["status"] = "recording"
            attrs["error"] = ""
            for key, value in self._attributes.items():
                if key in attrs:
                    raise ValueError(f"attribute '{key}' is written by the recorder itself")
                attrs[key] = value
            self._write_counts(file)
            file.flush()
        except BaseException:
            file.close()
            self._path.unlink(missing_ok=True)  # our own, still empty file
            raise
        return file

    def _write_counts(self, file: h5py.File) -> None:
        file.attrs["frames_recorded"] = np.int64(self._frames)
        file.attrs["frames_lost"] = np.int64(self._lost)

    # ------------------------------------------------------------------ the writer thread
    def _finish(self, status: str) -> None:
        """The final counts, stop time, status and error; the file closed whatever happens."""
        file = self._file
        self._status = status
        try:
            self._write_counts(file)
            file.attrs["stop_time"] = datetime.now(timezone.utc).isoformat()
            file.attrs["status"] = status
            error = self._error
            file.attrs["error"] = "" if error is None else f"{type(error).__name__}: {error}"
        finally:
            file.close()

    def _record(self) -> str:
        file = self._file
        ring = self._reader.ring
        block = np.empty((self._block_frames, *ring.sample_shape), ring.dtype)
        times = np.empty(self._block_frames)
        next_flush = time.monotonic() + self._flush_interval
        while True:
            stopping = self._stop_requested.is_set()
            ended = self._stream_ended()
            while True:  # drain what is there
                if self._max_frames is not None and self._frames >= self._max_frames:
                    return "frame limit"
                got = self._read_block(file, block, times)
                if got < len(block):
                    break
            if stopping:
                return "stopped"
            if ended:
                return "stream ended"
            now = time.monotonic()
            if now >= next_flush:
                file.flush()  # the data first, then the counts that claim it
                self._write_counts(file)
                file.flush()
                next_flush = now + self._flush_interval
            self._stop_requested.wait(self._poll_interval)

    def _stream_ended(self) -> bool:
        reader = self._reader
        if reader.ring.closed:
            return False  # a failure, not an end: the next read says so
        if reader.ring.state is not RingState.RUNNING:
            return True
        return isinstance(reader, HubReader) and not reader.running

    def _read_block(self, file: h5py.File, block: np.ndarray, times: np.ndarray) -> int:
        room = len(block)
        if self._max_frames is not None:
            room = min(room, self._max_frames - self._frames)
        lost_before = self._reader.lost
        try:
            got = self._reader.read_available_into(block[:room], timestamps=times[:room])
        except StreamOverrunError:  # a strict reader: the recording ends at the gap
            self._lost += self._reader.lost - lost_before
            raise
        lost = self._reader.lost - lost_before
        if lost:  # the reader allows overwriting: note the gap before these frames
            gaps = file["gaps"]
            gaps.resize(len(gaps) + 1, axis=0)
            gaps[-1] = (self._frames, lost)
            self._lost += lost
        if got:
            first_index = self._reader.position - got
            start, end = self._frames, self._frames + got
            for name in ("frames", "frame_times", "frame_indices"):
                file[name].resize(end, axis=0)
            file["frames"][start:end] = block[:got]
            file["frame_times"][start:end] = times[:got]
            file["frame_indices"][start:end] = np.arange(first_index, first_index + got)
            self._frames = end
        return got
