"""Checks for arrays that cross the stream boundary (caller-owned output buffers).

Like nidaqmx's stream readers, we check dtype, shape and contiguity up front and raise a
precise error, instead of copying silently or failing deep inside numpy.
"""

from __future__ import annotations

import math

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


def check_count(n: object, limit: int, what: str, limit_name: str) -> int:
    """Validate a sample count: an integer in ``0 .. limit``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{what} must be an integer number of samples, got {n!r}")
    if n < 0:
        raise ValueError(f"{what} must not be negative, got {n}")
    if n > limit:
        raise ValueError(f"{what}={n} is more than {limit_name} ({limit})")
    return int(n)
