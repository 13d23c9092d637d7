"""The ZeroMQ wire format of a published stream, and the checks a received message passes.

Every message is multipart; its first frame is a fixed header, :data:`HEADER`::

    magic b"QIZM", version u8, kind u8, flags u16, session u64, generation u32, run epoch u32,
    first u64, count u64                                    (little-endian, 40 bytes)

* ``DATA`` (kind 1): ``[header, samples, timestamps?]``: ``count`` samples whose absolute index
  starts at ``first``, raw C-order bytes of the stream's dtype; flag bit 0 says a float64
  timestamp frame follows. A receiver detects lost samples by the index.
* ``CONTROL`` (kind 2): ``[header, description JSON, fault message]``: ``flags`` is the
  :class:`~qudi.util.instream.stream_format.RingState`, ``first`` the index of the next sample
  the publisher will send, ``count`` 0. The description is that of
  :meth:`~qudi.util.instream.ring.StreamRing.description` (``{}`` once the publisher's ring is
  closed). ``count`` is 1 if the publisher sends TIME messages (old publishers send 0; old
  subscribers do not look at it).
* ``TIME`` (kind 3): ``[header, run record, rows]``: the publisher's run start and the newest
  rows of its ring's time table (:mod:`~qudi.util.instream.time_table`), in the publisher's
  indices and on its host's monotonic clock. ``epoch`` is the run's epoch, ``first`` its first
  index, ``count`` the number of rows, flag bit 0 says the run knows its start tick. The run
  record is :data:`TIME_RUN`: monotonic start, UTC start, start call, host uncertainty (s),
  start tick, and the port of the publisher's clock service (0 for none; see
  :mod:`~qudi.util.instream.transport.clock_sync`). The rows are
  :data:`~qudi.util.instream.time_table.ROW_DTYPE` records. A subscriber of an older version
  refuses the kind (it counts each as rejected and goes on with the stream).

``session`` is random per publisher, ``generation`` counts the publisher's rings (a hub builds
a new ring when it is reconfigured): together they say which index space a message belongs to.

Nothing received is trusted: :func:`receive_frames` keeps at most :data:`MAX_FRAMES` frames of
a message (the rest are read and dropped one by one, so a message of a million frames costs no
list of a million), and :func:`read_header`, :func:`read_control` and :func:`read_data`
(and :func:`read_time`) check a message completely (sizes, counts, index range, JSON kind) and raise
:class:`WireError` naming what is wrong before a receiver acts on any of it. Nothing is ever
unpickled or evaluated: a header, raw numbers and JSON.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from qudi.util.instream.errors import StreamFormatError
from qudi.util.instream.stream_format import FAULT_BYTES, RingState, decode_description
from qudi.util.instream.time_table import MAX_TIME_SLOTS, ROW_DTYPE
from qudi.util.instream.timebase import RunStart

__all__ = [
    "CONTROL",
    "DATA",
    "HAS_TIMESTAMPS",
    "HEADER",
    "MAGIC",
    "MAX_DESCRIPTION_BYTES",
    "MAX_FRAMES",
    "MAX_INDEX",
    "SENDS_TIME",
    "TIME",
    "TIME_RUN",
    "VERSION",
    "Control",
    "Header",
    "TimeMessage",
    "WireError",
    "pack_header",
    "pack_time",
    "read_control",
    "read_data",
    "read_time",
    "check_frame_count",
    "read_header",
    "receive_frames",
]

MAGIC = b"QIZM"
VERSION = 1
HEADER = struct.Struct("<4sBBHQIIQQ")
DATA, CONTROL, TIME = 1, 2, 3
HAS_TIMESTAMPS = 1
#: A CONTROL message's count: the publisher sends TIME messages.
SENDS_TIME = 1
#: A TIME message's run record (see the module docstring), 48 bytes.
TIME_RUN = struct.Struct("<ddddqH6x")
_HAS_TICK = 1

#: No sample index on the wire goes beyond this (2**62: 146 years at 1 GS/s), so a receiver's
#: own indices (the publisher's plus an offset) stay far from the 64-bit end of its ring.
MAX_INDEX = 2**62
#: A description is a few hundred bytes; a larger one is refused before it is parsed.
MAX_DESCRIPTION_BYTES = 64 * 1024
#: No message of the format has more frames (data with timestamps, control).
MAX_FRAMES = 3

_STATES = tuple(RingState)


class WireError(ValueError):
    """A received message that does not fit the wire format; the message says why."""


class Header(NamedTuple):
    """A message's header, unpacked (``first`` and ``count`` as for :data:`HEADER`)."""

    kind: int
    flags: int
    session: int
    generation: int
    epoch: int
    first: int
    samples: int  # the header's count: samples in a data message

    @property
    def stream(self) -> tuple[int, int]:
        """``(session, generation)``: the index space the message belongs to."""
        return self.session, self.generation


@dataclass(frozen=True)
class Control:
    """A checked CONTROL message."""

    stream: tuple[int, int]
    state: RingState
    epoch: int
    next_index: int
    description: dict[str, Any] | None  # None: the publisher has no stream (its ring closed)
    fault: str
    sends_time: bool = False  # TIME messages follow (a publisher of this version with a table)


@dataclass(frozen=True)
class TimeMessage:
    """A checked TIME message: the publisher's run and rows, in its indices and host clock."""

    stream: tuple[int, int]
    run: RunStart  # run_epoch: the header's (32 bits)
    port: int  # the publisher's clock service, 0 for none
    rows: np.ndarray  # ROW_DTYPE, index in order, host finite


def pack_header(
    kind: int, flags: int, session: int, generation: int, epoch: int, first: int, count: int
) -> bytes:
    """The header frame of a message."""
    return HEADER.pack(MAGIC, VERSION, kind, flags, session, generation, epoch, first, count)


def receive_frames(socket: Any, most: int = MAX_FRAMES) -> tuple[list[Any], int]:
    """The frames of the next message on a ZeroMQ ``socket`` (zero-copy), of which at most
    ``most`` are kept, and how many the message had. Every frame is read, so the next call
    starts at the next message; a message with more than ``most`` is not one of the format
    (:func:`check_frame_count`)."""
    frames: list[Any] = []
    count = 0
    more = True
    while more:
        frame = socket.recv(copy=False)
        more = frame.more
        count += 1
        if count <= most:  # the rest are not kept: a hostile frame count costs no memory here
            frames.append(frame)
    return frames, count


def check_frame_count(frames: list[Any], count: int) -> None:
    """Refuse a message of which :func:`receive_frames` kept only a part.

    Raises
    ------
    WireError
        If the message had more frames than were kept.
    """
    if count > len(frames):
        raise WireError(f"message of {count} frames, at most {len(frames)} are read")


def read_header(frames: list[Any]) -> Header:
    """The header of a received message (a list of zmq frames).

    Raises
    ------
    WireError
        For a header of the wrong size, magic or version, or an unknown kind.
    """
    head = frames[0].bytes if frames else b""
    if len(head) != HEADER.size:
        raise WireError(f"header of {len(head)} bytes, expected {HEADER.size}")
    magic, version, kind, flags, session, generation, epoch, first, count = HEADER.unpack(head)
    if magic != MAGIC:
        raise WireError(f"wrong magic {magic!r}: not a qudi-instream stream")
    if version != VERSION:
        raise WireError(f"wire format version {version}, this side reads {VERSION}")
    if kind not in (DATA, CONTROL, TIME):
        raise WireError(f"unknown message kind {kind}")
    return Header(kind, flags, session, generation, epoch, first, count)


def read_control(header: Header, frames: list[Any]) -> Control:
    """A CONTROL message, checked.

    Raises
    ------
    WireError
        For the wrong number of frames, a state that is no ring state, an index beyond
        :data:`MAX_INDEX`, and a description that is too big, not strict JSON, or not a JSON
        object (see :func:`~qudi.util.instream.stream_format.decode_description`; ``{}`` is a
        publisher without a stream).
    """
    if len(frames) != 3:
        raise WireError(f"control message of {len(frames)} frames, expected 3")
    if header.flags >= len(_STATES):
        raise WireError(f"control message with state {header.flags}, not a ring state")
    if header.first > MAX_INDEX:
        raise WireError(f"control message says the next index is {header.first}, beyond 2**62")
    raw = frames[1].bytes
    if len(raw) > MAX_DESCRIPTION_BYTES:
        raise WireError(
            f"stream description of {len(raw)} bytes (at most {MAX_DESCRIPTION_BYTES} are read)"
        )
    try:
        description = decode_description(raw, "stream description")
    except StreamFormatError as exc:
        raise WireError(str(exc)) from None
    fault = frames[2].bytes[: 4 * FAULT_BYTES].decode(errors="replace")[:FAULT_BYTES]
    return Control(
        header.stream,
        _STATES[header.flags],
        header.epoch,
        header.first,
        description or None,
        fault,
        bool(header.samples & SENDS_TIME),
    )


def pack_time(
    session: int, generation: int, run: RunStart, port: int, rows: np.ndarray
) -> list[bytes]:
    """The frames of a TIME message: ``run`` and ``rows`` (ROW_DTYPE) of the publisher."""
    flags = _HAS_TICK if run.start_tick is not None else 0
    header = pack_header(
        TIME, flags, session, generation, run.run_epoch & 0xFFFFFFFF, run.first_index, len(rows)
    )
    record = TIME_RUN.pack(
        run.monotonic_start,
        run.utc_start,
        run.start_call,
        run.host_uncertainty,
        run.start_tick or 0,
        port,
    )
    return [header, record, np.ascontiguousarray(rows, ROW_DTYPE).tobytes()]


def read_time(header: Header, frames: list[Any]) -> TimeMessage:
    """A TIME message, checked.

    Raises
    ------
    WireError
        For the wrong number of frames, unknown flags, a run record of the wrong size or with
        times that are not finite (or a negative start call or uncertainty), more rows than
        a time table holds, a rows frame whose size does not fit the count, and rows whose
        index is not after the run's first and within :data:`MAX_INDEX`, decreases, or whose
        host time is not finite or device time infinite.
    """
    if len(frames) != 3:
        raise WireError(f"time message of {len(frames)} frames, expected 3")
    if header.flags & ~_HAS_TICK:
        raise WireError(f"time message with flags {header.flags:#x}, only bit 0 is known")
    if header.first > MAX_INDEX:
        raise WireError(f"time message of a run starting at index {header.first}, beyond 2**62")
    record = frames[1].bytes
    if len(record) != TIME_RUN.size:
        raise WireError(f"time message run record of {len(record)} bytes, expected {TIME_RUN.size}")
    mono, utc, call, spread, tick, port = TIME_RUN.unpack(record)
    if not all(math.isfinite(v) for v in (mono, utc, call, spread)) or call < 0 or spread < 0:
        raise WireError(
            f"time message run record with times start {mono!r}, UTC {utc!r}, start call "
            f"{call!r}, uncertainty {spread!r}: all must be finite, the last two >= 0"
        )
    count = header.samples
    if count > MAX_TIME_SLOTS:
        raise WireError(f"time message of {count} rows, at most {MAX_TIME_SLOTS}")
    raw = frames[2].bytes
    if len(raw) != count * ROW_DTYPE.itemsize:
        raise WireError(f"{len(raw)} row bytes for {count} rows of {ROW_DTYPE.itemsize} bytes")
    rows = np.frombuffer(raw, ROW_DTYPE).copy()
    index, host, device = rows["index"], rows["host"], rows["device"]
    if count and (
        index[0] <= header.first
        or index[-1] > MAX_INDEX
        or np.any(np.diff(index) < 0)
        or not np.isfinite(host).all()
        or np.isinf(device).any()
    ):
        raise WireError(
            "time message rows out of order, not after the run's first index, beyond 2**62, "
            "or with host times that are not finite"
        )
    run = RunStart(
        header.epoch,
        header.first,
        mono,
        utc,
        call,
        tick if header.flags & _HAS_TICK else None,
        spread,
    )
    return TimeMessage(header.stream, run, port, rows)


def read_data(
    header: Header, frames: list[Any], sample_bytes: int, has_timestamps: bool
) -> tuple[memoryview, memoryview | None]:
    """The sample bytes (and timestamp bytes) of a DATA message, checked against the stream's
    format: ``sample_bytes`` per sample, with or without timestamps.

    Raises
    ------
    WireError
        For the wrong number of frames or timestamp flag, no samples, an index range beyond
        :data:`MAX_INDEX`, and byte counts that do not match the count.
    """
    want_frames = 3 if has_timestamps else 2
    if bool(header.flags & HAS_TIMESTAMPS) != has_timestamps or len(frames) != want_frames:
        raise WireError(
            f"data message of {len(frames)} frames (timestamps flag "
            f"{header.flags & HAS_TIMESTAMPS}); the stream needs {want_frames}"
        )
    count = header.samples
    if count < 1:
        raise WireError("data message without samples")
    if header.first + count > MAX_INDEX:
        raise WireError(
            f"data message of samples {header.first} to {header.first + count - 1}, beyond 2**62"
        )
    data = frames[1].buffer
    if data.nbytes != count * sample_bytes:
        raise WireError(f"{data.nbytes} data bytes for {count} samples of {sample_bytes} bytes")
    stamps = frames[2].buffer if has_timestamps else None
    if stamps is not None and stamps.nbytes != 8 * count:
        raise WireError(f"{stamps.nbytes} timestamp bytes for {count} samples")
    return data, stamps
