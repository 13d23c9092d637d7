"""The stream format: what a stream's samples are and mean, and the one codec that says it.

Both the shared-memory header of a ring and a ZeroMQ publisher's control messages carry the
same JSON *description* of a stream (:func:`describe` writes it, :func:`parse_description`
checks it), so a stream looks the same wherever it is read. Nothing in a description is
evaluated: it is JSON, and a dtype is rebuilt from numpy's own description of it, refusing
dtypes that would let raw bytes stand for Python objects.

The ring's header layout (:class:`RingLayout`) is kept here beside the codec::

    0     magic b"QISTREAM", version, header size, metadata size
    64    control words (uint64, see :class:`Control`)
    128   fault message (UTF-8, 1 KiB)
    1152  metadata: the description as JSON
    ...   data ring    [capacity, *sample_shape]     (64-byte aligned)
    ...   timestamps   [capacity] float64, optional  (64-byte aligned)
"""

from __future__ import annotations

import enum
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qudi.util.instream.errors import StreamFormatError

__all__ = [
    "ALIGN",
    "CONTROL_OFFSET",
    "CONTROL_WORDS",
    "FAULT_BYTES",
    "FAULT_OFFSET",
    "HEADER_PREFIX",
    "MAGIC",
    "METADATA_OFFSET",
    "VERSION",
    "Control",
    "RingLayout",
    "RingState",
    "StreamInfo",
    "check_sample_dtype",
    "checked_format",
    "describe",
    "dtype_description",
    "dtype_from_description",
    "parse_description",
]

MAGIC = b"QISTREAM"
VERSION = 1
HEADER_PREFIX = struct.Struct("<8sIII")  # magic, version, header size, metadata size
CONTROL_OFFSET = 64
CONTROL_WORDS = 8
FAULT_OFFSET = 128
FAULT_BYTES = 1024
METADATA_OFFSET = FAULT_OFFSET + FAULT_BYTES
ALIGN = 64

# What can go wrong while reading a description someone else wrote (nothing is trusted).
_BAD_DESCRIPTION = (KeyError, ValueError, TypeError, AttributeError, IndexError, RecursionError)


class Control(enum.IntEnum):
    """Index of each uint64 control word in a ring's header; only the ring writes them."""

    WRITE = 0  # samples ever published
    CLAIM = 1  # samples the writer may be writing (readers treat them as overwritten)
    STATE = 2  # a RingState
    EPOCH = 3  # counts the writer's starts
    FAULT_LENGTH = 4  # bytes of the fault message
    RUN_START = 5  # index of the first sample of the current run
    SKIPS = 6  # odd while skip_to moves WRITE and CLAIM together (readers then wait)


class RingState(enum.IntEnum):
    """Whether the writer is producing; readers use it to end waits that cannot be satisfied."""

    STOPPED = 0
    RUNNING = 1
    FAULTED = 2
    CLOSED = 3


@dataclass(frozen=True)
class StreamInfo:
    """What the samples mean; stored in the ring's header so other processes can read it."""

    channel_names: tuple[str, ...] = ()
    channel_units: tuple[str, ...] = ()
    sample_rate: float | None = None
    sample_timing: str = "CONSTANT"
    extra: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ dtypes
def dtype_description(dtype: np.dtype) -> Any:
    """numpy's description of ``dtype`` (a str, or nested lists for a struct), JSON-ready."""
    return np.lib.format.dtype_to_descr(dtype)


def dtype_from_description(description: Any) -> np.dtype:
    """The dtype a (JSON-decoded) description stands for; raises ValueError or TypeError."""
    return np.lib.format.descr_to_dtype(_as_descr(description))


def _as_descr(description: Any) -> Any:
    """JSON turns the tuples of a structured dtype description into lists; turn them back.

    A struct is a list of fields ``[name, dtype]`` or ``[name, dtype, shape]``; a name may be
    a ``[title, name]`` pair and a field's dtype a struct again.
    """
    if not isinstance(description, list):
        return description
    fields = []
    for entry in description:
        if not isinstance(entry, list) or len(entry) not in (2, 3):
            raise TypeError(
                f"a struct field must be [name, dtype] or [name, dtype, shape], got {_short(entry)}"
            )
        name, field_type, *shape = entry
        field = (tuple(name) if isinstance(name, list) else name, _as_descr(field_type))
        if shape:
            field += (tuple(shape[0]) if isinstance(shape[0], list) else shape[0],)
        fields.append(field)
    return fields


def check_sample_dtype(dtype: np.dtype) -> None:
    """Refuse a dtype whose bytes cannot stand for themselves in shared memory or on the wire.

    Raises
    ------
    TypeError
        For a dtype holding Python objects anywhere (``object``, or a struct or subarray with
        an object inside) and for a dtype of zero bytes.
    """
    if dtype.hasobject or dtype.itemsize == 0:
        what = "holds Python objects" if dtype.hasobject else "has zero bytes per sample"
        raise TypeError(
            f"dtype {dtype} {what}, so it cannot live in shared memory or be streamed: use a "
            "fixed-size dtype of numbers or bytes (structs and subarrays of them included)"
        )


# ------------------------------------------------------------------------- the codec
def describe(
    capacity: int,
    sample_shape: tuple[int, ...],
    dtype: np.dtype,
    has_timestamps: bool,
    info: StreamInfo,
) -> dict[str, Any]:
    """A stream's format and meaning as JSON-ready values (see :func:`parse_description`)."""
    return {
        "dtype": dtype_description(dtype),
        "sample_shape": list(sample_shape),
        "capacity": capacity,
        "timestamps": has_timestamps,
        "channel_names": list(info.channel_names),
        "channel_units": list(info.channel_units),
        "sample_rate": info.sample_rate,
        "sample_timing": info.sample_timing,
        "extra": dict(info.extra),
    }


def parse_description(
    description: Mapping[str, Any],
) -> tuple[tuple[np.dtype, tuple[int, ...], bool], StreamInfo, int]:
    """Check a description written by :func:`describe` (in a header or received).

    Only JSON values are used, nothing is evaluated. ``dtype``, ``sample_shape``,
    ``timestamps`` and ``capacity`` are required; the meaning (names, units, rate, timing,
    extra) defaults to "unknown".

    Returns
    -------
    tuple
        ``((dtype, sample_shape, has_timestamps), info, capacity)``.

    Raises
    ------
    StreamFormatError
        Naming the field that is missing, of the wrong kind, or impossible (a dtype holding
        objects or of zero bytes, a shape or capacity below 1).
    """
    try:
        dtype = _sample_dtype(description["dtype"])
        shape = tuple(_whole(n, "sample_shape") for n in _listed(description, "sample_shape"))
        has_timestamps = description["timestamps"]
        if not isinstance(has_timestamps, bool):
            raise TypeError(f"timestamps is {_short(has_timestamps)}, not true or false")
        capacity = _whole(description["capacity"], "capacity")
        rate = description.get("sample_rate")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))):
            raise TypeError(f"sample_rate is {_short(rate)}, not a number")
        extra = description.get("extra", {})
        if not isinstance(extra, dict):
            raise TypeError(f"extra is {type(extra).__name__}, not an object")
        timing = description.get("sample_timing", "CONSTANT")
        if not isinstance(timing, str):
            raise TypeError(f"sample_timing is {_short(timing)}, not a name")
        info = StreamInfo(
            channel_names=_names(description, "channel_names"),
            channel_units=_names(description, "channel_units"),
            sample_rate=None if rate is None else float(rate),
            sample_timing=timing,
            extra=extra,
        )
    except KeyError as exc:
        raise StreamFormatError(f"bad field: {exc} is missing") from None
    except _BAD_DESCRIPTION as exc:
        raise StreamFormatError(f"bad field: {exc}") from None
    if any(n < 1 for n in shape) or capacity < 1:
        raise StreamFormatError(
            f"impossible format: shape {_short(shape)}, capacity {capacity} (both need >= 1)"
        )
    return (dtype, shape, has_timestamps), info, capacity


def _sample_dtype(value: Any) -> np.dtype:
    try:
        dtype = dtype_from_description(value)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        reason = str(exc)[:80]
        raise TypeError(f"dtype {_short(value)} is not a dtype's description ({reason})") from None
    check_sample_dtype(dtype)
    return dtype


def _listed(description: Mapping[str, Any], key: str) -> list:
    value = description.get(key, []) if key.startswith("channel") else description[key]
    if not isinstance(value, list):
        raise TypeError(f"{key} is {_short(value)}, not a list")
    return value


def _names(description: Mapping[str, Any], key: str) -> tuple[str, ...]:
    names = tuple(_listed(description, key))
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"{key} holds something other than names: {_short(names)}")
    return names


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a received value may be huge."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<a {type(value).__name__} nested too deep>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _whole(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} holds {_short(value)}, not a whole number")
    return value


# ------------------------------------------------------------------------ ring header
def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


@dataclass(frozen=True)
class RingLayout:
    """Where a ring's parts lie in its memory; follows from the header size and the format."""

    capacity: int
    sample_shape: tuple[int, ...]
    dtype: np.dtype
    has_timestamps: bool
    header_bytes: int  # the data ring starts right after the header
    timestamp_offset: int
    total_bytes: int
    metadata: bytes

    @classmethod
    def plan(
        cls,
        capacity: int,
        sample_shape: tuple[int, ...],
        dtype: np.dtype,
        has_timestamps: bool,
        info: StreamInfo,
        header_bytes: int | None = None,
    ) -> RingLayout:
        """The layout of a ring of this format (offsets need not be stored: they follow)."""
        metadata = json.dumps(describe(capacity, sample_shape, dtype, has_timestamps, info))
        metadata = metadata.encode()
        if header_bytes is None:
            header_bytes = _aligned(METADATA_OFFSET + len(metadata))
        sample_bytes = math.prod(sample_shape) * dtype.itemsize
        timestamp_offset = _aligned(header_bytes + capacity * sample_bytes)
        total = timestamp_offset + (8 * capacity if has_timestamps else 0)
        return cls(
            capacity,
            sample_shape,
            dtype,
            has_timestamps,
            header_bytes,
            timestamp_offset,
            total,
            metadata,
        )

    @classmethod
    def read(cls, buf: memoryview, name: str) -> tuple[RingLayout, StreamInfo]:
        """Parse and check the header of the existing block of stream ``name``.

        Raises
        ------
        StreamFormatError
            If the block is no stream ring, of another layout version, or its header is
            corrupted (its description is refused as by :func:`parse_description`, or the
            format needs more bytes than the block has).
        """
        if len(buf) < METADATA_OFFSET:
            raise StreamFormatError(f"'{name}' is too small ({len(buf)} bytes) to be a stream ring")
        magic, version, header_bytes, metadata_bytes = HEADER_PREFIX.unpack_from(buf, 0)
        if magic != MAGIC:
            raise StreamFormatError(f"'{name}' is not a stream ring (magic {magic!r})")
        if version != VERSION:
            raise StreamFormatError(
                f"'{name}' has ring layout version {version}; this qudi-instream reads version "
                f"{VERSION} (update the package on one side)"
            )
        if METADATA_OFFSET + metadata_bytes > min(header_bytes, len(buf)):
            raise StreamFormatError(f"'{name}' has a corrupted header (metadata size)")
        if header_bytes % ALIGN:
            raise StreamFormatError(f"'{name}' has a corrupted header (header size)")
        try:
            meta = json.loads(bytes(buf[METADATA_OFFSET : METADATA_OFFSET + metadata_bytes]))
            if not isinstance(meta, dict):
                raise StreamFormatError(f"metadata is {type(meta).__name__}, not an object")
            (dtype, sample_shape, has_timestamps), info, capacity = parse_description(meta)
        except (StreamFormatError, *_BAD_DESCRIPTION) as exc:
            raise StreamFormatError(f"'{name}' has a corrupted header ({exc})") from None
        layout = cls.plan(capacity, sample_shape, dtype, has_timestamps, info, header_bytes)
        if layout.total_bytes > len(buf):
            raise StreamFormatError(
                f"'{name}' has a corrupted header: its format needs {layout.total_bytes} bytes, "
                f"the block has {len(buf)}"
            )
        return layout, info


# ------------------------------------------------------------------- a writer's format
def checked_format(
    capacity: object, sample_shape: object, dtype: object, info: object
) -> tuple[int, tuple[int, ...], np.dtype, StreamInfo]:
    """A new ring's format, checked: ``(capacity, sample_shape, dtype, info)``.

    Raises
    ------
    ValueError
        For a capacity or a sample shape that is not positive whole numbers, and channel names
        or units that do not match the channels per sample.
    TypeError
        For a dtype that numpy does not know or that cannot live in shared memory (see
        :func:`check_sample_dtype`), an ``info`` that is no :class:`StreamInfo`, and an
        ``info.extra`` that JSON cannot hold.
    """
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
        raise ValueError(f"capacity must be a positive number of samples, got {capacity!r}")
    given = (sample_shape,) if isinstance(sample_shape, (int, np.integer)) else sample_shape
    try:
        shape = tuple(given)
    except TypeError:
        shape = (0,)  # reported just below
    if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape):
        raise ValueError(f"sample_shape must be a tuple of positive integers, got {given!r}")
    shape = tuple(int(n) for n in shape)
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype {dtype!r} is not a numpy dtype ({exc})") from None
    check_sample_dtype(dtype)
    if info is None:
        info = StreamInfo()
    elif not isinstance(info, StreamInfo):
        raise TypeError(f"info must be a StreamInfo (or None), got {type(info).__name__}")
    channels = shape[0] if shape else 1
    if info.channel_names and len(info.channel_names) != channels:
        raise ValueError(
            f"{len(info.channel_names)} channel names for {channels} channels per sample"
        )
    if info.channel_units and len(info.channel_units) != len(info.channel_names):
        raise ValueError(
            f"{len(info.channel_units)} channel units for {len(info.channel_names)} channel names"
        )
    try:
        json.dumps(dict(info.extra))
    except TypeError as exc:
        raise TypeError(f"info.extra must be JSON-serialisable: {exc}") from None
    return int(capacity), shape, dtype, info
