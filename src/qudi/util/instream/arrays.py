"""Checks for what crosses the stream boundary: caller-owned output buffers, counts, times.

Like nidaqmx's stream readers, we check dtype, shape and contiguity up front and raise a
precise error, instead of copying silently or failing deep inside numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def as_sample_array(
    array: object, sample_shape: tuple[int, ...], dtype: np.dtype, what: str = "out"
) -> np.ndarray:
    """Return ``array`` viewed as ``[samples, *sample_shape]`` without copying.

    Accepts an array already of that shape, or a flat (1-D) array holding whole samples
    (the sample-major interleaved layout of ``DataInStreamInterface``).
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise TypeError(f"{what} has dtype {array.dtype}, but the stream's samples are {dtype}")
    if not array.flags.c_contiguous:
        raise ValueError(
            f"{what} must be C-contiguous (a slice with a step or a transposed array is not); "
            "pass a freshly allocated array"
        )
    if not array.flags.writeable:
        raise ValueError(f"{what} is read-only")
    if array.ndim >= 1 and array.shape[1:] == sample_shape:
        return array
    values_per_sample = math.prod(sample_shape)
    if array.ndim == 1 and array.size % values_per_sample == 0:
        return array.reshape((-1, *sample_shape))
    raise ValueError(
        f"{what} has shape {array.shape}; it must be "
        f"(samples, {', '.join(map(str, sample_shape))}) "
        f"or flat with a multiple of {values_per_sample} values"
    )


def as_timestamp_array(array: object, what: str = "timestamps") -> np.ndarray:
    """Check a caller's timestamp buffer: 1-D, float64, C-contiguous, writable."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(array).__name__}")
    if array.dtype != np.float64:
        raise TypeError(f"{what} has dtype {array.dtype}, but timestamps are float64 seconds")
    if array.ndim != 1 or not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(f"{what} must be a writable, C-contiguous 1-D array")
    return array


def check_read_buffers(
    out: object,
    timestamps: object,
    sample_shape: tuple[int, ...],
    dtype: np.dtype,
    has_timestamps: bool,
    *,
    timestamps_required: bool = False,
    names: tuple[str, str] = ("out", "timestamps"),
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """A read call's buffers: the samples as a ``[samples, *sample_shape]`` view, the
    timestamps (or None) and how many samples fit in both. ``names`` are the caller's
    argument names, for the error messages."""
    out_name, stamps_name = names
    samples = as_sample_array(out, sample_shape, dtype, out_name)
    if timestamps is None:
        if has_timestamps and timestamps_required:
            raise ValueError(f"this stream has SampleTiming.TIMESTAMP: pass a {stamps_name}")
        return samples, None, len(samples)
    if not has_timestamps:
        raise ValueError(f"this stream carries no timestamps: pass {stamps_name}=None")
    stamps = as_timestamp_array(timestamps, stamps_name)
    return samples, stamps, min(len(samples), len(stamps))


def check_count(n: object, limit: int, what: str, limit_name: str, *, minimum: int = 0) -> int:
    """Validate a sample count: an integer in ``minimum .. limit``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{what} must be an integer number of samples, got {n!r}")
    if n < minimum:
        if minimum == 0:
            raise ValueError(f"{what} must not be negative, got {n}")
        raise ValueError(f"{what} must be at least {minimum}, got {n}")
    if n > limit:
        raise ValueError(f"{what}={n} is more than {limit_name} ({limit})")
    return int(n)


def check_positive_number(value: object, what: str, meaning: str = "positive") -> float:
    """Validate a finite number > 0 (a rate, a duration); ``meaning`` completes "must be ..."."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{what} must be {meaning}, got {value!r}")
    return float(value)


def check_timeout(timeout: object) -> float | None:
    """Validate a timeout: None (no limit) or a finite number of seconds >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"timeout must be a number of seconds >= 0 or None (no limit), got {timeout!r}"
        )
    if not math.isfinite(timeout) or timeout < 0:
        raise ValueError(
            f"timeout must be a finite number of seconds >= 0 or None (no limit), got {timeout!r}"
        )
    return float(timeout)


def as_channel_names(active_channels: object, what: str = "active_channels") -> tuple[str, ...]:
    """Channel names as a tuple: a non-empty list of str; a lone str (which would become one
    channel per character) is refused."""
    if not isinstance(active_channels, (Sequence, np.ndarray)) or isinstance(
        active_channels, (str, bytes)
    ):
        raise TypeError(f"{what} must be a list of channel names, got {active_channels!r}")
    channels = tuple(active_channels)
    if not channels:
        raise ValueError(f"{what} must name at least one channel, got an empty list")
    if not all(isinstance(channel, str) for channel in channels):
        raise TypeError(f"{what} must be channel names (str), got {active_channels!r}")
    return channels
