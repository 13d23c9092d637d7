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
    ...   time table   run start and (index, host, device) rows, optional  (64-byte aligned,
                       see :mod:`qudi.util.instream.time_table`)

A description may also carry ``sample_clock`` (what ticks the samples, see
:class:`~qudi.util.instream.timebase.SampleClock`) and ``time_slots`` (rows of the ring's time
table); both are optional, so older descriptions read as before.
"""

from __future__ import annotations

import enum
import json
import math
import numbers
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from qudi.util.instream.errors import StreamFormatError
from qudi.util.instream.time_table import DEFAULT_TIME_SLOTS, MAX_TIME_SLOTS, time_bytes
from qudi.util.instream.timebase import SampleClock

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
    "check_info",
    "check_sample_dtype",
    "checked_format",
    "decode_description",
    "describe",
    "dtype_description",
    "dtype_from_description",
    "encode_description",
    "parse_description",
    "time_slots_of",
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
_MAX_STRUCT_DEPTH = 16  # structs in structs: numpy's own descriptions stay far below
_MAX_EXTRA_DEPTH = 32  # lists and objects in ``extra``
_MAX_DIMS = 32  # of a sample (numpy allows 64 for the whole array)


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
    sample_clock: SampleClock = SampleClock()


# ------------------------------------------------------------------------------ dtypes
def dtype_description(dtype: np.dtype) -> Any:
    """numpy's description of ``dtype`` (a str, or nested lists for a struct), JSON-ready."""
    return np.lib.format.dtype_to_descr(dtype)


def dtype_from_description(description: Any) -> np.dtype:
    """The dtype a (JSON-decoded) description stands for; raises ValueError or TypeError."""
    return np.lib.format.descr_to_dtype(_as_descr(description))


def _as_descr(description: Any, depth: int = 0) -> Any:
    """JSON turns the tuples of a structured dtype description into lists; turn them back.

    A struct is a list of fields ``[name, dtype]`` or ``[name, dtype, shape]``; a name may be
    a ``[title, name]`` pair and a field's dtype a struct again, at most 16 levels deep. Only
    what :func:`dtype_description` writes is read: a str or such a list.
    """
    if isinstance(description, str):
        return description
    if not isinstance(description, list):
        raise TypeError(
            f"a dtype is described by a str or a list of fields, not {_short(description)}"
        )
    if depth >= _MAX_STRUCT_DEPTH:
        raise TypeError(f"the dtype nests structs more than {_MAX_STRUCT_DEPTH} levels deep")
    fields = []
    for entry in description:
        if not isinstance(entry, list) or len(entry) not in (2, 3):
            raise TypeError(
                f"a struct field must be [name, dtype] or [name, dtype, shape], got {_short(entry)}"
            )
        name, field_type, *shape = entry
        field: tuple[Any, ...] = (
            tuple(name) if isinstance(name, list) else name,
            _as_descr(field_type, depth + 1),
        )
        if shape:
            field = (*field, tuple(shape[0]) if isinstance(shape[0], list) else shape[0])
        fields.append(field)
    return fields


def check_sample_dtype(dtype: np.dtype) -> None:
    """Refuse a dtype whose bytes cannot stand for themselves in shared memory or on the wire.

    Raises
    ------
    TypeError
        For a dtype holding Python objects anywhere (``object``, or a struct or subarray with
        an object inside), for a dtype, struct field or subarray of zero bytes (nested ones
        included), and for a subarray dtype (its shape belongs in the sample shape).
    """
    if dtype.hasobject:
        raise TypeError(
            f"dtype {dtype} holds Python objects, so it cannot live in shared memory or be "
            "streamed: use a fixed-size dtype of numbers or bytes (structs and subarrays of "
            "them included)"
        )
    empty = _zero_sized_part(dtype)
    if empty is not None:
        raise TypeError(
            f"dtype {dtype} has zero bytes per sample{empty}, so it cannot live in shared "
            "memory or be streamed: use a fixed-size dtype of numbers or bytes (structs and "
            "subarrays of them included, every field at least one byte)"
        )
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        raise TypeError(
            f"dtype {dtype} is a subarray: give its shape {shape} as (part of) the sample shape "
            f"and {base} as the dtype"
        )


def _zero_sized_part(dtype: np.dtype) -> str | None:
    """``""`` if ``dtype`` has no bytes, ``" in field 'a.b'"`` if a field has none, else None."""
    if dtype.itemsize == 0:
        return ""
    parts: list[tuple[str, np.dtype]] = [("", dtype)]
    while parts:  # no recursion: a struct may nest as deep as numpy lets it
        path, part = parts.pop()
        if part.itemsize == 0:
            return f" in field '{path}'"
        if part.subdtype is not None:
            parts.append((path, part.subdtype[0]))
        for name, (field_type, *_) in (part.fields or {}).items():
            parts.append((f"{path}.{name}" if path else str(name), field_type))
    return None


# ------------------------------------------------------------------------- the codec
def describe(
    capacity: int,
    sample_shape: tuple[int, ...],
    dtype: np.dtype,
    has_timestamps: bool,
    info: StreamInfo,
    time_slots: int = 0,
) -> dict[str, Any]:
    """A stream's format and meaning as JSON-ready values (see :func:`parse_description`).

    ``sample_clock`` is written only if it is not the default (internal) and ``time_slots``
    only if there is a time table, so that a description without them reads as before.
    """
    optional: dict[str, Any] = {}
    if info.sample_clock != SampleClock():
        optional["sample_clock"] = info.sample_clock.as_description()
    if time_slots:
        optional["time_slots"] = time_slots
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
        **optional,
    }


def encode_description(description: Mapping[str, Any]) -> bytes:
    """A description as strict JSON (no NaN or Infinity), as :func:`decode_description` reads it.

    Raises
    ------
    ValueError, TypeError
        For values that strict JSON cannot hold.
    """
    return json.dumps(description, allow_nan=False).encode()


def decode_description(raw: bytes | bytearray | memoryview, what: str = "description") -> dict:
    """The JSON object in ``raw``: the first step of reading a description from a header or
    from the wire (then :func:`parse_description`).

    Raises
    ------
    StreamFormatError
        If ``raw`` is not strict JSON (NaN and Infinity are not), nests deeper than JSON can be
        read, or holds anything but an object (``null``, a list, a number).
    """
    try:
        value = json.loads(bytes(raw), parse_constant=_refuse_constant)
    except RecursionError:
        raise StreamFormatError(f"the {what} nests deeper than it can be read") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError among them
        raise StreamFormatError(f"the {what} is not JSON ({str(exc)[:100]})") from None
    if not isinstance(value, dict):
        raise StreamFormatError(
            f"the {what} is {_short(value)}, not an object of fields (a stream description)"
        )
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is no JSON number")


def parse_description(
    description: Mapping[str, Any],
) -> tuple[tuple[np.dtype, tuple[int, ...], bool], StreamInfo, int]:
    """Check a description written by :func:`describe` (in a header or received).

    Only JSON values are used, nothing is evaluated. ``dtype``, ``sample_shape``,
    ``timestamps`` and ``capacity`` are required; the meaning (names, units, rate, timing,
    extra) defaults to "unknown". Nothing is coerced: ``"4096"`` is no capacity, ``2.9`` no
    dimension and ``"no"`` not false.

    Returns
    -------
    tuple
        ``((dtype, sample_shape, has_timestamps), info, capacity)``.

    Raises
    ------
    StreamFormatError
        Naming the field, its value and what would be valid, for a field that is missing, of
        the wrong kind, or impossible: a dtype holding objects or of zero bytes (a field or
        subarray of it included), a shape or capacity below 1, channel names or units that do
        not match the channels per sample, a sample rate that is negative or not finite, an
        ``extra`` that is no object or nests more than 32 levels deep.
    """
    if not isinstance(description, Mapping):
        raise StreamFormatError(
            f"bad field: the description is {_short(description)}, not an object of fields"
        )
    try:
        dtype = _sample_dtype(description["dtype"])
        shape = _sample_shape(_listed(description, "sample_shape"))
        has_timestamps = description["timestamps"]
        if not isinstance(has_timestamps, bool):
            raise TypeError(f"timestamps is {_short(has_timestamps)}, not true or false")
        capacity = _whole(description["capacity"], "capacity")
        extra = description.get("extra", {})
        if not isinstance(extra, dict):
            raise TypeError(
                f"extra is {type(extra).__name__}, not an object ({_short(extra)}): use a JSON "
                "object"
            )
        rate = description.get("sample_rate")
        info = StreamInfo(
            channel_names=_names(description, "channel_names"),
            channel_units=_names(description, "channel_units"),
            sample_rate=float(rate) if _is_number(rate) else rate,
            sample_timing=description.get("sample_timing", "CONSTANT"),
            extra=extra,
            sample_clock=SampleClock.from_description(description.get("sample_clock")),
        )
        if any(n < 1 for n in shape) or capacity < 1:
            raise ValueError(
                f"impossible format: shape {_short(shape)}, capacity {capacity} (both need >= 1)"
            )
        check_info(info, shape)
    except KeyError as exc:
        raise StreamFormatError(f"bad field: {exc} is missing") from None
    except _BAD_DESCRIPTION as exc:
        raise StreamFormatError(f"bad field: {exc}") from None
    return (dtype, shape, has_timestamps), info, capacity


def check_info(info: StreamInfo, sample_shape: tuple[int, ...]) -> None:
    """Refuse a meaning that does not fit samples of ``sample_shape`` or cannot be JSON.

    The one check of a stream's meaning, for a writer's :class:`StreamInfo` and a received
    description alike.

    Raises
    ------
    TypeError
        For names or units that are not str, a sample rate or timing of the wrong kind, and
        an ``extra`` that strict JSON cannot hold or that nests more than 32 levels deep.
    ValueError
        For channel names that are not one per channel (the first dimension of a sample),
        units that are not one per name, and a negative or infinite sample rate.
    """
    names, units = info.channel_names, info.channel_units
    for key, values in (("channel_names", names), ("channel_units", units)):
        if not isinstance(values, (tuple, list)) or not all(isinstance(v, str) for v in values):
            raise TypeError(
                f"{key} holds something other than names: {_short(values)} (use a list of str)"
            )
    channels = sample_shape[0] if sample_shape else 1
    if names and len(names) != channels:
        raise ValueError(
            f"channel_names: {len(names)} channel names for {channels} channels per sample "
            f"(sample_shape {list(sample_shape)}): give one name per channel, or none"
        )
    if units and len(units) != len(names):
        raise ValueError(
            f"channel_units: {len(units)} channel units for {len(names)} channel names: give "
            "one unit per name, or none"
        )
    rate = info.sample_rate
    if rate is not None:
        if not _is_number(rate):
            raise TypeError(
                f"sample_rate is {_short(rate)}, not a number: use a finite number >= 0 of "
                "samples per second, or null for unknown"
            )
        if not (math.isfinite(float(rate)) and float(rate) >= 0):
            raise ValueError(
                f"sample_rate is {rate!r}: use a finite number >= 0 of samples per second, or "
                "null for unknown"
            )
    if not isinstance(info.sample_clock, SampleClock):
        raise TypeError(
            f"sample_clock is {_short(info.sample_clock)}, not a SampleClock (use "
            "SampleClock.from_description for its fields)"
        )
    if not isinstance(info.sample_timing, str):
        raise TypeError(
            f"sample_timing is {_short(info.sample_timing)}, not a name (such as 'CONSTANT')"
        )
    depth = _depth(info.extra)
    if depth > _MAX_EXTRA_DEPTH:
        raise TypeError(f"extra nests {depth} levels deep: at most {_MAX_EXTRA_DEPTH} are kept")
    try:
        encode_description(dict(info.extra))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"extra must be JSON-serialisable (strict JSON: {exc})") from None


def _is_number(value: object) -> TypeGuard[numbers.Real]:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _depth(value: Any) -> int:
    """How deep lists and dicts nest in ``value`` (without recursion; stops past the limit)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, (list, tuple)):
            deepest = max(deepest, depth)
            if depth <= _MAX_EXTRA_DEPTH:
                pending.extend((child, depth + 1) for child in item)
    return deepest


def _sample_dtype(value: Any) -> np.dtype:
    try:
        dtype = dtype_from_description(value)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, RecursionError) as exc:
        reason = str(exc)[:80]
        raise TypeError(
            f"dtype {_short(value)} is not a dtype's description ({reason}): use numpy's "
            "description of a fixed-size dtype, such as '<f8'"
        ) from None
    check_sample_dtype(dtype)
    return dtype


def _sample_shape(dimensions: list) -> tuple[int, ...]:
    if len(dimensions) > _MAX_DIMS:
        raise ValueError(
            f"sample_shape has {len(dimensions)} dimensions: at most {_MAX_DIMS} (the ring "
            "adds one for the sample index)"
        )
    return tuple(_whole(n, "sample_shape") for n in dimensions)


def _listed(description: Mapping[str, Any], key: str) -> list:
    value = description.get(key, []) if key.startswith("channel") else description[key]
    if not isinstance(value, list):
        raise TypeError(f"{key} is {_short(value)}, not a list")
    return value


def _names(description: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(_listed(description, key))  # each one a str: see check_info


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a received value may be huge."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<a {type(value).__name__} nested too deep>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _whole(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} holds {_short(value)}, not a whole number (use whole numbers >= 1)")
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
    time_offset: int = 0
    time_slots: int = 0

    @classmethod
    def plan(
        cls,
        capacity: int,
        sample_shape: tuple[int, ...],
        dtype: np.dtype,
        has_timestamps: bool,
        info: StreamInfo,
        header_bytes: int | None = None,
        time_slots: int = DEFAULT_TIME_SLOTS,
    ) -> RingLayout:
        """The layout of a ring of this format (offsets need not be stored: they follow)."""
        described = describe(capacity, sample_shape, dtype, has_timestamps, info, time_slots)
        metadata = encode_description(described)
        if header_bytes is None:
            header_bytes = _aligned(METADATA_OFFSET + len(metadata))
        sample_bytes = math.prod(sample_shape) * dtype.itemsize
        timestamp_offset = _aligned(header_bytes + capacity * sample_bytes)
        time_offset = _aligned(timestamp_offset + (8 * capacity if has_timestamps else 0))
        total = time_offset + time_bytes(time_slots)
        return cls(
            capacity,
            sample_shape,
            dtype,
            has_timestamps,
            header_bytes,
            timestamp_offset,
            total,
            metadata,
            time_offset,
            time_slots,
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
            raw = bytes(buf[METADATA_OFFSET : METADATA_OFFSET + metadata_bytes])  # no view kept
            meta = decode_description(raw, "metadata")
            (dtype, sample_shape, has_timestamps), info, capacity = parse_description(meta)
            slots = time_slots_of(meta)
        except (StreamFormatError, *_BAD_DESCRIPTION) as exc:
            raise StreamFormatError(f"'{name}' has a corrupted header ({exc})") from None
        layout = cls.plan(capacity, sample_shape, dtype, has_timestamps, info, header_bytes, slots)
        if layout.total_bytes > len(buf):
            raise StreamFormatError(
                f"'{name}' has a corrupted header: its format needs {layout.total_bytes} bytes, "
                f"the block has {len(buf)}"
            )
        return layout, info


def time_slots_of(description: Mapping[str, Any]) -> int:
    """Rows of the time table a description declares (0, none, if it declares none).

    Raises
    ------
    StreamFormatError
        If ``time_slots`` is not a whole number from 0 to 65536.
    """
    slots = description.get("time_slots", 0)
    if isinstance(slots, bool) or not isinstance(slots, int) or not 0 <= slots <= MAX_TIME_SLOTS:
        raise StreamFormatError(
            f"bad field: time_slots is {_short(slots)}: use a whole number from 0 to "
            f"{MAX_TIME_SLOTS}"
        )
    return slots


# ------------------------------------------------------------------- a writer's format
def checked_format(
    capacity: object, sample_shape: object, dtype: npt.DTypeLike, info: object
) -> tuple[int, tuple[int, ...], np.dtype, StreamInfo]:
    """A new ring's format, checked: ``(capacity, sample_shape, dtype, info)``.

    What a reader would refuse in a header (see :func:`parse_description`) is refused here,
    before any memory is taken. Channel names and units come back as tuples.

    Raises
    ------
    ValueError
        For a capacity or a sample shape that is not positive whole numbers (at most 32
        dimensions), and a meaning that does not fit (see :func:`check_info`).
    TypeError
        For a dtype that numpy does not know or that cannot live in shared memory (see
        :func:`check_sample_dtype`), an ``info`` that is no :class:`StreamInfo`, and a meaning
        of the wrong kinds (see :func:`check_info`).
    """
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
        raise ValueError(f"capacity must be a positive number of samples, got {capacity!r}")
    shape = _writer_shape(sample_shape)
    try:
        sample_dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype {dtype!r} is not a numpy dtype ({exc})") from None
    check_sample_dtype(sample_dtype)
    if info is None:
        info = StreamInfo()
    elif not isinstance(info, StreamInfo):
        raise TypeError(f"info must be a StreamInfo (or None), got {type(info).__name__}")
    check_info(info, shape)
    info = replace(
        info, channel_names=tuple(info.channel_names), channel_units=tuple(info.channel_units)
    )
    return int(capacity), shape, sample_dtype, info


def _writer_shape(sample_shape: object) -> tuple[int, ...]:
    """``sample_shape`` (a count, or an iterable of counts) as a tuple of ints, checked."""
    given = (sample_shape,) if isinstance(sample_shape, (int, np.integer)) else sample_shape
    dimensions: tuple[object, ...] = tuple(given) if isinstance(given, Iterable) else (0,)
    counts = tuple(
        int(n)
        for n in dimensions
        if isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
    )
    if len(counts) != len(dimensions) or len(counts) > _MAX_DIMS:
        raise ValueError(
            f"sample_shape must be a tuple of positive integers, got {_short(given)} (at "
            f"most {_MAX_DIMS} of them)"
        )
    return counts
