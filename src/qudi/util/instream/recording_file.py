"""RecordingFile: the HDF5 layout of a recording (datasets, appends, gap rows, attributes).

File layout::

    /data         [samples, *sample_shape]  the ring's dtype, chunks of about 1 MiB
    /timestamps   [samples] float64          only if the stream carries timestamps
    /gaps         [gaps, 2] int64            (index in /data where samples are missing, count)
    /markers      [n] (time f8, sample_index i8, text S256): only when the recording's logic
                  has a marker stream; the session's table
                  (:class:`~qudi.util.instream.session_file.MarkerTable`), appended by the
                  recorder's thread before each flush (see
                  :mod:`qudi.util.instream.pending_markers`), so a killed recording has
                  the markers up to its last flush
    /  attributes format, format_version, stream_name, reader_name, channel_names,
                  channel_units, sample_rate, sample_timing, stream_info_extra, dtype,
                  sample_shape, first_sample_index, start_time, stop_time,
                  samples_recorded, bytes_recorded, samples_lost, status, error,
                  ... and the caller's own attributes (none may reuse these names)
    /data attributes  scaling_coefficients, scaling_unit, scaling_note: only for a stream of
                  raw codes (see :mod:`qudi.util.instream.raw_scaling`)

The file is created with mode ``"x"``, so "never overwrite" is atomic, and written in HDF5's
default (oldest compatible) format on purpose: a killed recording then still opens as a valid
file (its ``status`` attribute still says ``recording``), where the newest format (and SWMR)
would refuse to open it until ``h5clear`` had repaired it. :meth:`RecordingFile.flush` writes
the data first and the counts after, so after a crash the first ``samples_recorded`` rows are
complete; HDF5 may have stored a larger dataset extent whose last rows were never written.

Memory stays flat: each dataset's chunk cache holds a few chunks (the partly filled chunk at
the end stays in memory until it is complete instead of being written twice), and HDF5's
metadata cache is capped at :data:`METADATA_CACHE_BYTES`.

The caller's attributes (:func:`checked_attributes`) must be JSON-serialisable; strings,
numbers and lists of either are stored as HDF5 values, anything else (dicts, None, nested
lists, integers beyond 64 bits, number lists too large for an object header) as JSON text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qudi.util.instream.raw_scaling import write_scaling_attributes

__all__ = [
    "CHUNK_BYTES",
    "FILE_FORMAT",
    "FILE_FORMAT_VERSION",
    "METADATA_CACHE_BYTES",
    "RESERVED_ATTRIBUTES",
    "RecordingFile",
    "checked_attributes",
    "exists_error",
    "limit_metadata_cache",
    "now_iso",
    "string_array",
]

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


def exists_error(path: Path) -> FileExistsError:
    """The error for a recording file that exists already."""
    return FileExistsError(
        f"'{path}' already exists; a recording never overwrites a file, choose another name"
    )


class RecordingFile:
    """A new HDF5 file laid out for one recording of a ring's samples.

    Parameters
    ----------
    path : pathlib.Path
        The new file; :class:`FileExistsError` if it exists (checked atomically).
    ring : StreamRing
        The recorded ring: its sample shape, dtype, timestamps and info shape the file.
    compression : str or None
        None, ``"gzip"`` or ``"lzf"`` for the datasets.
    max_samples : int or None
        The most samples the recording can hold (chunks are never larger); None: no limit.

    Raises
    ------
    FileExistsError
        ``path`` exists.
    OSError
        HDF5 could not create the file (nothing is left open then).
    """

    def __init__(
        self, path: Path, ring, *, compression: str | None, max_samples: int | None
    ) -> None:
        self.path = path
        self._ring = ring
        self._sample_bytes = math.prod(ring.sample_shape) * ring.dtype.itemsize
        self._max_samples = max_samples
        self.rows = 0  # samples appended
        self._gap_rows = 0
        chunk_cache = CHUNK_CACHE_CHUNKS * max(self._chunk_samples() * self._sample_bytes, 1 << 20)
        try:
            self._file = h5py.File(path, "x", rdcc_nbytes=chunk_cache, rdcc_w0=1.0)
        except FileExistsError:
            raise exists_error(path) from None
        try:
            limit_metadata_cache(self._file)
            self._create_datasets(compression)
        except BaseException:
            self.close()
            path.unlink(missing_ok=True)  # our own, still empty file
            raise

    def _create_datasets(self, compression: str | None) -> None:
        ring = self._ring
        shape = ring.sample_shape
        self._data = self._file.create_dataset(
            "data",
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=ring.dtype,
            chunks=(self._chunk_samples(), *shape),
            compression=compression,
        )
        self._timestamps = None
        if ring.has_timestamps:
            self._timestamps = self._file.create_dataset(
                "timestamps",
                shape=(0,),
                maxshape=(None,),
                dtype=np.float64,
                chunks=(self._cap(CHUNK_BYTES // 8),),
                compression=compression,
            )
        self._gaps = self._file.create_dataset(
            "gaps", shape=(0, 2), maxshape=(None, 2), dtype=np.int64, chunks=(256, 2)
        )

    def _chunk_samples(self) -> int:
        return self._cap(max(1, CHUNK_BYTES // self._sample_bytes))

    def _cap(self, samples: int) -> int:
        """No chunk larger than the whole recording can be (small max_bytes, small file)."""
        return samples if self._max_samples is None else max(1, min(samples, self._max_samples))

    @property
    def root(self) -> h5py.File:
        """The open file (for tables written beside the samples, e.g. ``/markers``)."""
        if self._file is None:
            raise ValueError(f"the recording file '{self.path}' is closed")
        return self._file

    # -------------------------------------------------------------------------- writes
    def write_start(
        self, reader_name: str, first_sample_index: int, attributes: Mapping[str, Any]
    ) -> None:
        """The attributes known at the start: the stream, the reader, the caller's own.

        ``attributes`` come from :func:`checked_attributes`.
        """
        ring = self._ring
        info = ring.info
        attrs = self._file.attrs
        attrs["format"] = FILE_FORMAT
        attrs["format_version"] = FILE_FORMAT_VERSION
        attrs["stream_name"] = ring.name
        attrs["reader_name"] = reader_name
        attrs["channel_names"] = string_array(info.channel_names)
        attrs["channel_units"] = string_array(info.channel_units)
        attrs["sample_rate"] = float(info.sample_rate) if info.sample_rate else math.nan
        attrs["sample_timing"] = str(info.sample_timing)
        attrs["stream_info_extra"] = json.dumps(dict(info.extra))
        # raw codes: their polynomials (and how to use them) beside /data
        write_scaling_attributes(self._data, info.extra, info.channel_names)
        attrs["dtype"] = str(ring.dtype)
        attrs["sample_shape"] = np.array(ring.sample_shape, np.int64)
        attrs["first_sample_index"] = np.int64(first_sample_index)
        attrs["start_time"] = now_iso()
        attrs["stop_time"] = ""
        attrs["status"] = "recording"
        attrs["error"] = ""
        for key, value in attributes.items():
            attrs[key] = value
        self.write_counts(0, 0)

    def append(self, samples: np.ndarray, stamps: np.ndarray | None) -> None:
        """Append ``samples`` (and their timestamps, if the stream has them)."""
        start, end = self.rows, self.rows + len(samples)
        self._data.resize(end, axis=0)
        self._data[start:end] = samples
        if self._timestamps is not None:
            self._timestamps.resize(end, axis=0)
            self._timestamps[start:end] = stamps
        self.rows = end

    def append_gap(self, lost: int) -> None:
        """Note that ``lost`` samples are missing before the next appended sample."""
        row = self._gap_rows
        self._gaps.resize(row + 1, axis=0)
        self._gaps[row] = (self.rows, lost)
        self._gap_rows = row + 1

    def write_counts(self, payload_bytes: int, lost: int) -> None:
        """``samples_recorded`` (the rows appended), ``bytes_recorded``, ``samples_lost``."""
        attrs = self._file.attrs
        attrs["samples_recorded"] = np.int64(self.rows)
        attrs["bytes_recorded"] = np.int64(payload_bytes)
        attrs["samples_lost"] = np.int64(lost)

    def flush(self, payload_bytes: int, lost: int) -> None:
        """Flush the data, then the counts: the counts never claim unflushed rows."""
        self._file.flush()
        self.write_counts(payload_bytes, lost)
        self._file.flush()

    def write_end(self, status: str, error: BaseException | None, payload_bytes: int, lost: int):
        """The final counts, ``stop_time``, ``status`` and ``error`` (empty if none)."""
        self.write_counts(payload_bytes, lost)
        attrs = self._file.attrs
        attrs["stop_time"] = now_iso()
        attrs["status"] = status
        attrs["error"] = "" if error is None else f"{type(error).__name__}: {error}"

    def close(self) -> None:
        """Close the file (harmless when closed)."""
        file, self._file = self._file, None
        self._data = self._timestamps = self._gaps = None
        if file is not None:
            file.close()


# ------------------------------------------------------------------------------ helpers
def checked_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's attributes converted to values HDF5 stores (see the module docstring).

    Parameters
    ----------
    attributes : mapping or None
        Names (non-empty str, none of :data:`RESERVED_ATTRIBUTES`) to JSON-serialisable values.

    Returns
    -------
    dict
        The values as they will be stored.

    Raises
    ------
    TypeError
        Not a mapping, a name that is not a non-empty str, or a value JSON cannot hold.
    ValueError
        A reserved name.
    """
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


def limit_metadata_cache(file: h5py.File) -> None:
    """Keep HDF5's metadata cache at METADATA_CACHE_BYTES, so memory stays flat for hours."""
    config = file.id.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = config.max_size = METADATA_CACHE_BYTES
    config.min_size = METADATA_CACHE_BYTES // 2
    file.id.set_mdc_config(config)


def _storable(value: Any) -> Any:
    """A JSON-serialisable value as an HDF5 attribute value: native where HDF5 has one."""
    if isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else json.dumps(value)
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(item, str) for item in value):
            return string_array(value)
        if all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value):
            numbers = np.asarray(value)
            # not object dtype (an integer beyond 64 bits), not too large for a header message
            if numbers.dtype.kind in "if" and numbers.nbytes <= MAX_ARRAY_ATTRIBUTE_BYTES:
                return numbers
    return json.dumps(value)


def string_array(strings) -> np.ndarray:
    """``strings`` as an HDF5 array of variable-length UTF-8 strings."""
    return np.array([str(s) for s in strings], dtype=h5py.string_dtype())


def now_iso() -> str:
    """Local time with its UTC offset, e.g. 2024-05-01T14:03:07.123+02:00."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")
