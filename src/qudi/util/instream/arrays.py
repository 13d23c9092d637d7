"""Checks of the arguments that cross the stream boundary, each raising an error that names them.

Caller-owned output buffers, sample counts, numbers in a range, timeouts, channel selections and
config options. Like nidaqmx's stream readers, we check dtype, shape and contiguity up front and
raise a precise error (the argument, the value, what is valid), instead of copying silently or
failing deep inside numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def as_sample_array(
    array: object, sample_shape: tuple[int, ...], dtype: np.dtype, what: str = "out"
) -> np.ndarray:
    """Return ``array`` viewed as ``[samples, *sample_shape]`` without copying.

    Parameters
    ----------
    array : object
        The caller's buffer: already of that shape, or flat (1-D) holding whole samples (the
        sample-major interleaved layout of ``DataInStreamInterface``).
    sample_shape : tuple of int
        The shape of one sample, e.g. ``(channels,)``.
    dtype : numpy.dtype
        The stream's sample dtype, which ``array`` must have.
    what : str, optional
        The argument's name, for the error messages.

    Returns
    -------
    numpy.ndarray
        A ``[samples, *sample_shape]`` view of ``array``.

    Raises
    ------
    TypeError
        If ``array`` is no numpy array or has another dtype.
    ValueError
        If it is not C-contiguous, read-only, or of no fitting shape.
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
    """Check a caller's timestamp buffer: 1-D, float64, C-contiguous, writable.

    Parameters
    ----------
    array : object
        The caller's buffer.
    what : str, optional
        The argument's name, for the error messages.

    Returns
    -------
    numpy.ndarray
        ``array``, unchanged.

    Raises
    ------
    TypeError
        If ``array`` is no numpy array or not float64.
    ValueError
        If it is not 1-D, C-contiguous and writable.
    """
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
    """Check a read call's buffers.

    Parameters
    ----------
    out, timestamps : object
        The caller's sample buffer and timestamp buffer (or None).
    sample_shape : tuple of int
        The shape of one sample.
    dtype : numpy.dtype
        The stream's sample dtype.
    has_timestamps : bool
        Whether the stream carries timestamps.
    timestamps_required : bool, optional
        Whether a stream with timestamps needs a timestamp buffer.
    names : tuple of str, optional
        The caller's argument names for the two buffers, for the error messages.

    Returns
    -------
    tuple
        The samples as a ``[samples, *sample_shape]`` view, the timestamps (or None) and how
        many samples fit in both.

    Raises
    ------
    TypeError, ValueError
        If a buffer is refused (see :func:`as_sample_array`, :func:`as_timestamp_array`), or
        timestamps are given for a stream without them, or missing where required.
    """
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
    """Validate a sample count: an integer in ``minimum .. limit``.

    Parameters
    ----------
    n : object
        What the caller passed.
    limit : int
        The largest valid count.
    what : str
        The argument's name, for the error messages.
    limit_name : str
        What the limit is, e.g. ``"what fits"``.
    minimum : int, optional
        The smallest valid count.

    Returns
    -------
    int
        ``n`` as an int.

    Raises
    ------
    TypeError
        If ``n`` is no integer (a ``bool`` is none).
    ValueError
        If ``n`` is below ``minimum`` or above ``limit``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{what} must be an integer number of samples, got {n!r}")
    if n < minimum:
        if minimum == 0:
            raise ValueError(f"{what} must not be negative, got {n}")
        raise ValueError(f"{what} must be at least {minimum}, got {n}")
    if n > limit:
        raise ValueError(f"{what}={n} is more than {limit_name} ({limit})")
    return int(n)


def _is_finite(value: int | float | np.number) -> bool:
    """math.isfinite that says False for an int too large for a float, instead of raising."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_positive_number(value: object, what: str, meaning: str = "positive") -> float:
    """Validate a finite number > 0 (a rate, a duration).

    Parameters
    ----------
    value : object
        What the caller passed.
    what : str
        The argument's name, for the error message.
    meaning : str, optional
        Completes "must be ..." in the message.

    Returns
    -------
    float
        ``value`` as a float.

    Raises
    ------
    ValueError
        If ``value`` is no finite number above 0.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not _is_finite(value)
        or value <= 0
    ):
        raise ValueError(f"{what} must be {meaning}, got {value!r}")
    return float(value)


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type, where callers have caught ``ValueError`` for any bad value.

    Both a ``TypeError`` and a ``ValueError``, as ``io.UnsupportedOperation`` is both an
    ``OSError`` and a ``ValueError``: the streamers of this package refused a timeout of the
    wrong type with ``ValueError`` before they shared :func:`check_timeout`.
    """


def check_timeout(timeout: object) -> float | None:
    """Validate a timeout: None (no limit) or a finite number of seconds >= 0.

    Parameters
    ----------
    timeout : object
        What the caller passed.

    Returns
    -------
    float or None
        The timeout in seconds, or None for no limit.

    Raises
    ------
    ArgumentTypeError
        If ``timeout`` is no number (a ``bool`` is none); it is a ``TypeError`` and a
        ``ValueError``.
    ValueError
        If ``timeout`` is negative, NaN or infinite (None is how to wait without a limit).
    """
    if timeout is None:
        return None
    refused = f"timeout must be a number of seconds >= 0 or None, got {timeout!r}"
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float, np.integer, np.floating)):
        raise ArgumentTypeError(refused)
    if timeout == math.inf:
        raise ValueError(f"{refused}: pass None to wait without a limit")
    if not timeout >= 0 or not _is_finite(timeout):
        raise ValueError(refused)
    return float(timeout)


def check_in_range(
    value: object,
    bounds: tuple[float, float],
    what: str,
    *,
    integer: bool = False,
    unit: str = "",
    note: str = "",
) -> float | int:
    """Validate a number within ``bounds`` (inclusive), such as a rate or a buffer size.

    Parameters
    ----------
    value : object
        What the caller passed.
    bounds : tuple of float
        The lowest and the highest allowed value.
    what : str
        The argument's name, for the error messages.
    integer : bool, optional
        Whether only integers are valid (a ``bool`` is none).
    unit : str, optional
        The unit shown after the bounds in the message, e.g. ``" Hz"``.
    note : str, optional
        Where the bounds come from, appended to the message, e.g. ``"(option max_buffer)"``.

    Returns
    -------
    float or int
        ``value`` as an ``int`` if ``integer``, as a ``float`` otherwise.

    Raises
    ------
    TypeError
        If ``value`` is no number (no integer, with ``integer``).
    ValueError
        If ``value`` is outside ``bounds`` or NaN.
    """
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{what} must be {kind}, got {value!r}")
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(
            f"{what}={value} is outside the allowed range {low} to {high}{unit}"
            + (f" {note}" if note else "")
        )
    return int(value) if integer else float(value)


def option_error(key: str, value: object, valid: str) -> ValueError:
    """The error for a config option: ``option 'key' is value: what is valid``.

    Parameters
    ----------
    key : str
        The option's name as the user types it in the config.
    value : object
        The value the config gave.
    valid : str
        What would be valid, as a remedy the user can act on.

    Returns
    -------
    ValueError
        The error, for the caller to raise.
    """
    return ValueError(f"option '{key}' is {value!r}: {valid}")


def as_channel_names(
    active_channels: object,
    what: str = "active_channels",
    *,
    known: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """Channel names as a tuple: a non-empty list of str, checked against ``known``.

    Parameters
    ----------
    active_channels : object
        What the caller passed; a lone str (which would become one channel per character)
        is refused.
    what : str, optional
        The argument's name, for the error messages.
    known : sequence of str, optional
        The channels there are: then each name must be one of them, and at most once.

    Returns
    -------
    tuple of str
        The channel names, in the caller's order.

    Raises
    ------
    TypeError
        If ``active_channels`` is no list of str.
    ValueError
        If it is empty, or (with ``known``) names an unknown channel or one twice.
    """
    if not isinstance(active_channels, (Sequence, np.ndarray)) or isinstance(
        active_channels, (str, bytes)
    ):
        raise TypeError(f"{what} must be a list of channel names, got {active_channels!r}")
    channels = tuple(active_channels)
    if not channels:
        raise ValueError(f"{what} must name at least one channel, got an empty list")
    if not all(isinstance(channel, str) for channel in channels):
        raise TypeError(f"{what} must be channel names (str), got {active_channels!r}")
    if known is not None:
        valid = list(known)
        unknown = [ch for ch in channels if ch not in valid]
        repeated = sorted({ch for ch in channels if channels.count(ch) > 1})
        if unknown or repeated:
            raise ValueError(
                f"{what} {list(channels)} must be a non-empty selection of {valid}, each at "
                "most once"
                + (f"; unknown: {unknown}" if unknown else "")
                + (f"; repeated: {repeated}" if repeated else "")
            )
    return channels
