"""SessionFile: the HDF5 layout of a session (several streams, their time tables, gaps, markers).

File layout::

    /                       attributes format ("qudi-instream session"), format_version,
                            streams (labels, in order; the first is the primary),
                            start_time (local ISO), start_utc (Unix s), start_monotonic
                            (host monotonic s at start_utc), stop_time, status, error,
                            ... and the caller's own attributes
    /state                  () S64: "recording", then how it ended (live, SWMR-readable)
    /markers                [n] (time f8 host monotonic s, sample_index i8, text S256 UTF-8);
                            sample_index counts samples of the primary stream (ring index)
    /streams/<label>/data        [samples, *sample_shape], the ring's dtype (a stream of raw
                            ADC codes: scaling attributes, see qudi.util.instream.raw_scaling)
    /streams/<label>/timestamps  [samples] float64, only if the stream carries timestamps
    /streams/<label>/gaps        [gaps, 2] int64 (row in data where samples are missing, count)
    /streams/<label>/time_table  [rows] (index i8, host f8, device f8): by host monotonic time
                            ``host`` the samples before ``index`` had been taken, the last at
                            ``device`` s of the stream's clock (see qudi.util.instream.timebase)
    /streams/<label>/counts      [3] int64 (rows in data, samples lost, gap rows), live
    /streams/<label>  attributes stream_name, reader_name, channel_names, channel_units,
                            sample_rate, sample_timing, stream_info_extra, dtype, sample_shape,
                            first_sample_index, time_base (JSON: sample_clock, run start)

Sample index ``first_sample_index + row + (samples lost before row)`` is the stream's own
index of ``data[row]``, the index its time table and the markers use.

The file is written in HDF5's newest format and in SWMR mode (single writer, multiple
readers): every object exists from the start, and what changes while recording (extents, the
``counts`` and ``state`` datasets) is flushed so that a reader that opens the file with
``h5py.File(path, "r", swmr=True)`` and calls ``refresh()`` on a dataset follows it. The same
call opens a session whose writer was killed: the rows up to the last flush are there, with
``counts`` saying how many. (A plain ``h5py.File(path, "r")`` opens a finished session only:
HDF5 marks a file open for writing until it is closed; ``h5clear -s`` removes the mark.)

The counts are written after the data they count is flushed, so after a crash the first
``counts[0]`` rows of each stream are complete (a dataset's extent may be larger).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qudi.util.instream.raw_scaling import write_scaling_attributes
from qudi.util.instream.recording_file import (
    CHUNK_BYTES,
    CHUNK_CACHE_CHUNKS,
    exists_error,
    limit_metadata_cache,
    now_iso,
    string_array,
)
from qudi.util.instream.time_table import ROW_DTYPE

__all__ = [
    "MARKER_DTYPE",
    "MARKER_TEXT_BYTES",
    "SESSION_FORMAT",
    "MarkerTable",
    "SESSION_FORMAT_VERSION",
    "SessionFile",
    "SessionStream",
    "StreamTrack",
    "checked_label",
    "checked_marker_text",
]

SESSION_FORMAT = "qudi-instream session"
SESSION_FORMAT_VERSION = 1
MARKER_TEXT_BYTES = 256
# fixed-size text: SWMR readers see a row whole, and no global heap grows while recording
MARKER_DTYPE = np.dtype([("time", "f8"), ("sample_index", "i8"), ("text", f"S{MARKER_TEXT_BYTES}")])
STATE_BYTES = 64
RESERVED_SESSION_ATTRIBUTES = frozenset(
    {
        "format",
        "format_version",
        "streams",
        "start_time",
        "start_utc",
        "start_monotonic",
        "stop_time",
        "status",
        "error",
    }
)


@dataclass(frozen=True)
class SessionStream:
    """One stream of a session as the file needs it: its label, ring, reader and start."""

    label: str
    ring: Any  # a StreamRing: sample_shape, dtype, has_timestamps, info, name
    reader_name: str
    first_sample_index: int
    time_base: Mapping[str, Any]


def checked_label(label: object) -> str:
    """A stream's label as a group name: a non-empty str without '/' that is not '.'.

    Raises
    ------
    ValueError
        Naming the label and what a label may be.
    """
    if not isinstance(label, str) or not label or "/" in label or label in (".", ".."):
        raise ValueError(
            f"stream label {label!r} cannot name a group in the session file: use a non-empty "
            "text without '/', e.g. the streamer's module name"
        )
    return label


def checked_marker_text(text: object) -> bytes:
    """``text`` as the bytes a marker row stores (UTF-8, at most 256 bytes, no NUL).

    Raises
    ------
    TypeError
        ``text`` is no str.
    ValueError
        Empty, too long or with a NUL character (which the fixed-size field would cut).
    """
    if not isinstance(text, str):
        raise TypeError(f"a marker's text must be a str, got {type(text).__name__} {text!r}")
    encoded = text.encode("utf-8")
    if not encoded or len(encoded) > MARKER_TEXT_BYTES or "\x00" in text:
        raise ValueError(
            f"a marker's text must be 1 to {MARKER_TEXT_BYTES} bytes of UTF-8 without NUL "
            f"characters; got {len(encoded)} bytes: {text[:40]!r}"
        )
    return encoded


class MarkerTable:
    """The ``markers`` table of a file: rows of :data:`MARKER_DTYPE` (host monotonic time,
    sample index, text), appended as they come. A session's, and a one-stream recording's
    while its logic has a marker stream (written by its recorder's thread at each flush, see
    :mod:`qudi.util.instream.pending_markers`).

    Parameters
    ----------
    parent : h5py.Group
        Where the table goes (a file's root); a ``markers`` there is an error.
    """

    def __init__(self, parent: h5py.Group):
        self.dataset = parent.create_dataset(
            "markers", shape=(0,), maxshape=(None,), dtype=MARKER_DTYPE, chunks=(64,)
        )
        self.rows = 0

    def append(self, time_s: float, sample_index: int, text: bytes) -> None:
        """One row (text from :func:`checked_marker_text`)."""
        row = self.rows
        self.dataset.resize(row + 1, axis=0)
        self.dataset[row] = (time_s, sample_index, text)
        self.rows = row + 1

    def extend(self, rows: Sequence[tuple[float, int, bytes]]) -> None:
        """Several rows at once (one resize): (time, sample index, text from
        :func:`checked_marker_text`) each."""
        if not rows:
            return
        start = self.rows
        self.dataset.resize(start + len(rows), axis=0)
        self.dataset[start:] = np.array(rows, dtype=MARKER_DTYPE)
        self.rows = start + len(rows)


class StreamTrack:
    """The datasets of one stream in a session file, and the rows appended to them."""

    def __init__(self, group: h5py.Group, stream: SessionStream, compression: str | None):
        ring = stream.ring
        shape = tuple(ring.sample_shape)
        sample_bytes = max(1, math.prod(shape) * ring.dtype.itemsize)
        self.label = stream.label
        self.rows = 0
        self.lost = 0
        self._gap_rows = 0
        self._table_rows = 0
        self.data = group.create_dataset(
            "data",
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=ring.dtype,
            chunks=(max(1, CHUNK_BYTES // sample_bytes), *shape),
            compression=compression,
        )
        self.timestamps = None
        if ring.has_timestamps:
            self.timestamps = group.create_dataset(
                "timestamps",
                shape=(0,),
                maxshape=(None,),
                dtype=np.float64,
                chunks=(CHUNK_BYTES // 8,),
                compression=compression,
            )
        self.gaps = group.create_dataset(
            "gaps", shape=(0, 2), maxshape=(None, 2), dtype=np.int64, chunks=(256, 2)
        )
        self.time_table = group.create_dataset(
            "time_table", shape=(0,), maxshape=(None,), dtype=ROW_DTYPE, chunks=(1024,)
        )
        self.counts = group.create_dataset("counts", data=np.zeros(3, np.int64))
        info = ring.info
        attrs = group.attrs
        attrs["stream_name"] = str(ring.name or "")
        attrs["reader_name"] = stream.reader_name
        attrs["channel_names"] = string_array(info.channel_names or [""])
        attrs["channel_units"] = string_array(info.channel_units or [""])
        attrs["sample_rate"] = float(info.sample_rate) if info.sample_rate else math.nan
        attrs["sample_timing"] = str(info.sample_timing)
        attrs["stream_info_extra"] = json.dumps(dict(info.extra))
        attrs["dtype"] = str(ring.dtype)
        attrs["sample_shape"] = np.array(shape, np.int64)
        attrs["first_sample_index"] = np.int64(stream.first_sample_index)
        attrs["time_base"] = json.dumps(dict(stream.time_base))
        # raw ADC codes: their polynomials beside the data, as a one-stream recording has them
        write_scaling_attributes(self.data, info.extra, info.channel_names)

    def append(self, samples: np.ndarray, stamps: np.ndarray | None) -> None:
        """Append ``samples`` (and their timestamps, if the stream has them)."""
        start, end = self.rows, self.rows + len(samples)
        self.data.resize(end, axis=0)
        self.data[start:end] = samples
        if self.timestamps is not None:
            self.timestamps.resize(end, axis=0)
            self.timestamps[start:end] = stamps
        self.rows = end

    def append_gap(self, lost: int) -> None:
        """Note that ``lost`` samples are missing before the next appended sample."""
        row = self._gap_rows
        self.gaps.resize(row + 1, axis=0)
        self.gaps[row] = (self.rows, lost)
        self._gap_rows = row + 1
        self.lost += lost

    def append_time_rows(self, rows: np.ndarray) -> None:
        """Append time-table rows (:data:`~qudi.util.instream.time_table.ROW_DTYPE`)."""
        if len(rows):
            start = self._table_rows
            self.time_table.resize(start + len(rows), axis=0)
            self.time_table[start:] = rows
            self._table_rows = start + len(rows)

    def write_counts(self) -> None:
        self.counts[...] = (self.rows, self.lost, self._gap_rows)

    def flush(self) -> None:
        for dataset in (self.data, self.timestamps, self.gaps, self.time_table):
            if dataset is not None:
                dataset.flush()


class SessionFile:
    """A new HDF5 session file in SWMR mode with a track per stream and a markers table.

    Parameters
    ----------
    path : pathlib.Path
        The new file; :class:`FileExistsError` if it exists (checked atomically).
    streams : sequence of SessionStream
        The streams, the primary first (the markers count its samples).
    compression : str or None
        None, ``"gzip"`` or ``"lzf"`` for the sample datasets.
    attributes : mapping
        The caller's attributes, converted by
        :func:`~qudi.util.instream.recording_file.checked_attributes`.

    Raises
    ------
    FileExistsError
        ``path`` exists.
    ValueError
        A reserved attribute name, or labels that repeat or cannot name a group.
    OSError
        HDF5 could not create the file (nothing is left open then).
    """

    def __init__(
        self,
        path: Path,
        streams: Sequence[SessionStream],
        *,
        compression: str | None,
        attributes: Mapping[str, Any],
    ):
        labels = [checked_label(stream.label) for stream in streams]
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"a session needs one or more streams with distinct labels: {labels}")
        for key in attributes:
            if key in RESERVED_SESSION_ATTRIBUTES:
                raise ValueError(
                    f"attribute '{key}' is written by the session itself; choose another name"
                )
        self.path = path
        chunk_cache = CHUNK_CACHE_CHUNKS * CHUNK_BYTES
        try:
            self._file = h5py.File(path, "x", libver="latest", rdcc_nbytes=chunk_cache, rdcc_w0=1.0)
        except FileExistsError:
            raise exists_error(path) from None
        try:
            limit_metadata_cache(self._file)
            self.tracks = {
                stream.label: StreamTrack(
                    self._file.require_group(f"streams/{stream.label}"), stream, compression
                )
                for stream in streams
            }
            self._markers = MarkerTable(self._file)
            self._write_start(labels, attributes)
            self._file.swmr_mode = True  # from now on readers may follow
        except BaseException:
            self.close()
            path.unlink(missing_ok=True)  # our own, still empty file
            raise

    @property
    def marker_rows(self) -> int:
        """Rows of the markers table."""
        return self._markers.rows

    def _write_start(self, labels: list[str], attributes: Mapping[str, Any]) -> None:
        self._state = self._file.create_dataset(
            "state", data=np.array(b"recording", dtype=f"S{STATE_BYTES}")
        )
        attrs = self._file.attrs
        attrs["format"] = SESSION_FORMAT
        attrs["format_version"] = SESSION_FORMAT_VERSION
        attrs["streams"] = string_array(labels)
        attrs["start_time"] = now_iso()
        attrs["start_utc"] = time.time()
        attrs["start_monotonic"] = time.monotonic()
        attrs["stop_time"] = ""
        attrs["status"] = "recording"
        attrs["error"] = ""
        for key, value in attributes.items():
            attrs[key] = value

    # -------------------------------------------------------------------------- writes
    def append_marker(self, time_s: float, sample_index: int, text: bytes) -> None:
        """One row of the markers table (text from :func:`checked_marker_text`)."""
        self._markers.append(time_s, sample_index, text)

    def flush(self) -> None:
        """Flush the data, then the counts: the counts never claim unflushed rows."""
        for track in self.tracks.values():
            track.flush()
        self._markers.dataset.flush()
        self._file.flush()
        for track in self.tracks.values():
            track.write_counts()
            track.counts.flush()
        self._file.flush()

    def write_end(self, status: str, error: BaseException | None) -> None:
        """The final counts, ``state``, ``stop_time``, ``status`` and ``error``."""
        for track in self.tracks.values():
            track.write_counts()
        self._state[()] = status.encode()[:STATE_BYTES]
        attrs = self._file.attrs
        attrs["stop_time"] = now_iso()
        attrs["status"] = status
        attrs["error"] = "" if error is None else f"{type(error).__name__}: {error}"

    def close(self) -> None:
        """Close the file (harmless when closed)."""
        file, self._file = getattr(self, "_file", None), None
        if file is not None:
            file.close()
