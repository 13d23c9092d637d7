"""Checks and sizes shared by the recorders: new paths, limits, read blocks, free disk space.

Used by :class:`~qudi.util.instream.recorder.StreamRecorder` (one stream, one file) and
:class:`~qudi.util.instream.session_recorder.SessionRecorder` (several streams, one file), so
both refuse the same bad options with the same words.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
from pathlib import Path

import numpy as np

from qudi.util.instream.arrays import check_positive_number
from qudi.util.instream.errors import StreamStoppedError
from qudi.util.instream.reader import RingReader
from qudi.util.instream.recording_file import exists_error

__all__ = [
    "DEFAULT_MIN_FREE_BYTES",
    "MAX_BLOCK_BYTES",
    "MIN_BLOCK_SAMPLES",
    "allocate_block",
    "block_samples",
    "check_delivers",
    "check_free_space",
    "checked_max_samples",
    "checked_new_path",
    "free_space_margin",
    "seconds",
]

MIN_BLOCK_SAMPLES = 4096
MAX_BLOCK_BYTES = 32 << 20  # caps the read block for large samples (video frames)
DEFAULT_MIN_FREE_BYTES = 256 << 20


def checked_new_path(path: str | os.PathLike) -> Path:
    try:
        path = Path(path)
    except TypeError:
        raise TypeError(f"path must be a file name (str or Path), got {path!r}") from None
    if str(path) in ("", "."):
        raise ValueError("path must name a file, got an empty path")
    path = path.expanduser().absolute()
    if path.exists():
        raise exists_error(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot record to '{path}': the directory '{path.parent}' does not exist"
        )
    return path


def checked_max_samples(max_bytes: object, record_bytes: int) -> int | None:
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


def seconds(name: str, value: object) -> float:
    return check_positive_number(value, name, "a positive number of seconds")


def free_space_margin(
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


def block_samples(sample_rate: float | None, sample_bytes: int, block_seconds: float) -> int:
    """About ``block_seconds`` of data per read, at least 4096 samples, at most 32 MiB."""
    wanted = math.ceil(sample_rate * block_seconds) if sample_rate else MIN_BLOCK_SAMPLES
    return max(1, min(max(wanted, MIN_BLOCK_SAMPLES), MAX_BLOCK_BYTES // sample_bytes))


def allocate_block(ring, samples: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The one read block of ``samples`` samples (and timestamps), every page touched now.

    A slow stream fills only the start of the block, and the kernel would make the rest
    resident later, 2 MiB at a time (numpy asks for huge pages): the memory a recording needs
    is better resident, and visible, from its start.
    """
    block = np.empty((samples, *ring.sample_shape), ring.dtype)
    block.view(np.uint8).fill(0)
    if not ring.has_timestamps:
        return block, None
    stamps = np.empty(samples, np.float64)
    stamps.fill(0.0)
    return block, stamps


def check_free_space(path: Path, min_free_bytes: int) -> None:
    """Fail while the file can still be closed intact, not when the disk is full."""
    free = shutil.disk_usage(path.parent).free
    if free < min_free_bytes:
        raise OSError(
            errno.ENOSPC,
            f"only {free / 1e6:.0f} MB are free on the disk of '{path}' (the recording keeps "
            f"at least {min_free_bytes / 1e6:.0f} MB free): recording stopped so that the file "
            "is closed intact",
        )


def check_delivers(reader: RingReader) -> None:
    """A recording needs a reader that can get new samples (StreamStoppedError otherwise)."""
    if reader.ring.closed:
        raise StreamStoppedError(f"cannot record from reader '{reader.name}': its stream is closed")
    if not reader.running:
        raise StreamStoppedError(
            f"cannot record from reader '{reader.name}': it is not running; start it first "
            "(or its stream, if it has stopped)"
        )
