"""StreamRing: the one copy of a stream, written by one producer and read by many cursors.

Memory layout (identical for private and shared memory, so one code path serves both)::

    0     magic b"QISTREAM", version, header size, metadata size
    64    control words (uint64): write index, claim index, state, run epoch, fault length,
          start index of the current run
    128   fault message (UTF-8, 1 KiB)
    1152  metadata (JSON): dtype, sample shape, capacity, offsets, channel names, units, rate ...
    ...   data ring    [capacity, *sample_shape]     (64-byte aligned)
    ...   timestamps   [capacity] float64, optional  (64-byte aligned)

Indices are absolute sample counts since the ring was created; sample ``i`` lives in slot
``i % capacity``. The writer raises the *claim index* before it touches a slot and the
*write index* after the samples are complete. A reader copies, then re-reads the claim index:
if the writer claimed the slots it was copying meanwhile, the copy may be torn and is rejected.
This relies on stores becoming visible in program order, which holds on x86-64.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import json
import math
import os
import struct
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qudi.util.instream.errors import (
    StreamCapacityError,
    StreamError,
    StreamFormatError,
    format_bytes,
    format_count,
)
from qudi.util.instream.shared_block import _LINUX_SHM_DIR, AttachedBlock, create_block

__all__ = ["RingState", "StreamInfo", "StreamRing"]

MAGIC = b"QISTREAM"
VERSION = 1
_PREFIX = struct.Struct("<8sIII")  # magic, version, header size, metadata size
_CONTROL_OFFSET = 64
_CONTROL_WORDS = 8
_FAULT_OFFSET = 128
_FAULT_BYTES = 1024
_METADATA_OFFSET = _FAULT_OFFSET + _FAULT_BYTES
_ALIGN = 64
_WRITE, _CLAIM, _STATE, _EPOCH, _FAULT_LENGTH, _RUN_START = range(6)

# Waiting without a condition variable (a reader in another process): poll, backing off.
_POLL_MIN_S = 50e-6
_POLL_MAX_S = 2e-3


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


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


@dataclass(frozen=True)
class _Layout:
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
        capacity,
        sample_shape,
        dtype,
        has_timestamps,
        info: StreamInfo,
        header_bytes: int | None = None,
    ) -> _Layout:
        """Offsets follow from the header size and the format, so they need not be stored."""
        metadata = json.dumps(
            {
                "dtype": np.lib.format.dtype_to_descr(dtype),
                "sample_shape": list(sample_shape),
                "capacity": capacity,
                "timestamps": has_timestamps,
                "channel_names": list(info.channel_names),
                "channel_units": list(info.channel_units),
                "sample_rate": info.sample_rate,
                "sample_timing": info.sample_timing,
                "extra": dict(info.extra),
            }
        ).encode()
        if header_bytes is None:
            header_bytes = _aligned(_METADATA_OFFSET + len(metadata))
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
    def read(cls, buf: memoryview, name: str) -> tuple[_Layout, StreamInfo]:
        """Parse and check the header of an existing block."""
        if len(buf) < _METADATA_OFFSET:
            raise StreamFormatError(f"'{name}' is too small ({len(buf)} bytes) to be a stream ring")
        magic, version, header_bytes, metadata_bytes = _PREFIX.unpack_from(buf, 0)
        if magic != MAGIC:
            raise StreamFormatError(f"'{name}' is not a stream ring (magic {magic!r})")
        if version != VERSION:
            raise StreamFormatError(
                f"'{name}' has ring layout version {version}; this qudi-instream reads version "
                f"{VERSION} (update the package on one side)"
            )
        if _METADATA_OFFSET + metadata_bytes > min(header_bytes, len(buf)):
            raise StreamFormatError(f"'{name}' has a corrupted header (metadata size)")
        try:
            meta = json.loads(bytes(buf[_METADATA_OFFSET : _METADATA_OFFSET + metadata_bytes]))
            dtype = np.lib.format.descr_to_dtype(_as_descr(meta["dtype"]))
            sample_shape = tuple(int(n) for n in meta["sample_shape"])
            capacity = int(meta["capacity"])
            has_timestamps = bool(meta["timestamps"])
            info = StreamInfo(
                channel_names=tuple(meta["channel_names"]),
                channel_units=tuple(meta["channel_units"]),
                sample_rate=meta["sample_rate"],
                sample_timing=meta["sample_timing"],
                extra=meta["extra"],
            )
            if capacity < 1 or any(n < 1 for n in sample_shape) or header_bytes % _ALIGN:
                raise ValueError("impossible ring format")
        except (ValueError, KeyError, TypeError) as exc:
            raise StreamFormatError(f"'{name}' has a corrupted header ({exc})") from None
        layout = cls.plan(capacity, sample_shape, dtype, has_timestamps, info, header_bytes)
        if layout.total_bytes > len(buf):
            raise StreamFormatError(
                f"'{name}' has a corrupted header: its format needs {layout.total_bytes} bytes, "
                f"the block has {len(buf)}"
            )
        return layout, info


def _as_descr(descr: Any) -> Any:
    """JSON turns the tuples of a structured dtype description into lists; turn them back."""
    if isinstance(descr, list):
        return [tuple(_as_descr(item) for item in field) for field in descr]
    return descr


class StreamRing:
    """A ring of fixed-shape samples with one writer and any number of readers.

    Parameters
    ----------
    capacity: number of samples the ring holds.
    sample_shape: shape of one sample: ``(channels,)`` for the qudi interface, ``(h, w)`` for
        video frames, ``()`` for a scalar or structured record per sample.
    dtype: numpy dtype of the samples (any fixed-size dtype, structured ones included).
    timestamps: keep a float64 timestamp per sample in lock-step with the data.
    info: what the samples mean (channel names, units, rate, timing); stored in the header.
    shared: put the ring in a named shared-memory block that other processes can attach to
        with :meth:`attach`. ``name`` names it (default: a unique name); see :attr:`name`.
    """

    def __init__(
        self,
        capacity: int,
        sample_shape: int | tuple[int, ...] = (),
        dtype: np.typing.DTypeLike = np.float64,
        *,
        timestamps: bool = False,
        info: StreamInfo | None = None,
        shared: bool = False,
        name: str | None = None,
    ):
        capacity, sample_shape, dtype, info = _checked_format(capacity, sample_shape, dtype, info)
        layout = _Layout.plan(capacity, sample_shape, dtype, bool(timestamps), info)
        self.name = name if name is not None else f"stream_{uuid.uuid4().hex[:12]}"
        block, buf = _allocate(layout, self.name, bool(shared))
        # Unlink the block even if close() is never called (garbage collection, exit).
        # Only unlink: at exit other threads may still read the mapping, which goes away
        # with the process; close() unmaps it.
        self._finalizer = weakref.finalize(self, block.unlink) if block is not None else None
        self.is_shared = bool(shared)
        self.is_writer = True
        self._block = block
        self._bind(buf, layout, info)
        _PREFIX.pack_into(buf, 0, MAGIC, VERSION, layout.header_bytes, len(layout.metadata))
        buf[_METADATA_OFFSET : _METADATA_OFFSET + len(layout.metadata)] = layout.metadata
        self._control[_STATE] = RingState.RUNNING
        self._published = threading.Condition()
        self._reserved = 0
        self._fault_exception: BaseException | None = None

    @classmethod
    def attach(cls, name: str) -> StreamRing:
        """Attach to the shared ring ``name`` that another process (or this one) created.

        The result is read-only: use :meth:`reader` on it. Raises
        :class:`~qudi.util.instream.errors.StreamNotFoundError` if no such stream exists and
        :class:`~qudi.util.instream.errors.StreamFormatError` if the block is not a valid ring.
        """
        block = AttachedBlock(name)
        ring = cls.__new__(cls)
        try:
            layout, info = _Layout.read(block.buf, name)
        except BaseException:
            block.close()
            raise
        ring.name = name
        ring.is_shared = True
        ring.is_writer = False
        ring._finalizer = None
        ring._block = block
        ring._bind(block.buf, layout, info)
        ring._published = None
        ring._reserved = 0
        ring._fault_exception = None
        return ring

    def _bind(self, buf: memoryview, layout: _Layout, info: StreamInfo) -> None:
        self._buf = buf
        self.capacity = layout.capacity
        self.sample_shape = layout.sample_shape
        self.dtype = layout.dtype
        self.has_timestamps = layout.has_timestamps
        self.info = info
        self.nbytes = layout.total_bytes
        self._control = np.ndarray((_CONTROL_WORDS,), np.uint64, buf, _CONTROL_OFFSET)
        self._data = np.ndarray(
            (layout.capacity, *layout.sample_shape), layout.dtype, buf, layout.header_bytes
        )
        self._timestamps = (
            np.ndarray((layout.capacity,), np.float64, buf, layout.timestamp_offset)
            if layout.has_timestamps
            else None
        )

    # ------------------------------------------------------------------ state seen by readers
    @property
    def write_index(self) -> int:
        """Samples ever published (the absolute index one past the newest sample)."""
        return int(self._control[_WRITE])

    @property
    def oldest_index(self) -> int:
        """Absolute index of the oldest sample still intact (the writer may claim older slots)."""
        return max(0, int(self._control[_CLAIM]) - self.capacity)

    @property
    def state(self) -> RingState:
        return RingState(int(self._control[_STATE]))

    @property
    def run_epoch(self) -> int:
        """Counts the writer's starts, so readers can tell one run from the next."""
        return int(self._control[_EPOCH])

    @property
    def run_start_index(self) -> int:
        """Index of the first sample of the current run (where the run before it ended)."""
        return int(self._control[_RUN_START])

    @property
    def fault_message(self) -> str:
        length = int(self._control[_FAULT_LENGTH])
        return bytes(self._buf[_FAULT_OFFSET : _FAULT_OFFSET + length]).decode(errors="replace")

    @property
    def fault_exception(self) -> BaseException | None:
        """The writer's exception behind a fault (only known in the writer's process)."""
        return self._fault_exception

    @property
    def closed(self) -> bool:
        return self._buf is None

    def reader(self, name: str = "reader", *, allow_overwrite: bool = False, from_oldest=False):
        """A new cursor on this ring, starting at the newest sample (or the oldest kept one).

        Raises :class:`~qudi.util.instream.errors.StreamStoppedError` if the ring is closed.
        """
        from qudi.util.instream.reader import RingReader

        return RingReader(self, name=name, allow_overwrite=allow_overwrite, from_oldest=from_oldest)

    def copy_out(
        self, position: int, count: int, out: np.ndarray, timestamps_out: np.ndarray | None
    ) -> None:
        """Copy samples ``position .. position+count`` into ``out`` (no torn-read check here)."""
        start = position % self.capacity
        first = min(count, self.capacity - start)
        out[:first] = self._data[start : start + first]
        if first < count:
            out[first:count] = self._data[: count - first]
        if timestamps_out is not None:
            timestamps_out[:first] = self._timestamps[start : start + first]
            if first < count:
                timestamps_out[first:count] = self._timestamps[: count - first]

    def wait(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``ready()`` or the timeout (seconds, None = no limit); returns ``ready()``.

        In the writer's process, publication and state changes wake the wait at once; a reader
        in another process polls, backing off from 50 µs to 2 ms.
        """
        if self._published is not None:
            with self._published:
                return self._published.wait_for(ready, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _POLL_MIN_S
        while not ready():
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return ready()
                pause = min(pause, remaining)
            time.sleep(pause)
            pause = min(2 * pause, _POLL_MAX_S)
        return True

    def wake_waiters(self) -> None:
        """Make blocked readers re-check their condition (after a stop, fault or cancel)."""
        if self._published is not None:
            with self._published:
                self._published.notify_all()

    # ------------------------------------------------------------------------- writer side
    def reserve(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Hand out the next free slots so a producer can fill them in place (no staging copy).

        Returns views ``(data[k, *sample_shape], timestamps[k] | None)`` with
        ``k = min(n, slots left before the ring wraps)``, so the region is contiguous. Readers
        treat these slots as overwritten from now on. Fill them, then call :meth:`publish`.
        """
        self._require_writer()
        if not 0 < n <= self.capacity:
            raise ValueError(
                f"reserve(n={n}): n must be between 1 and the capacity {self.capacity}"
            )
        write = int(self._control[_WRITE])
        start = write % self.capacity
        count = min(n, self.capacity - start)
        claim = write + count
        if claim > int(self._control[_CLAIM]):
            self._control[_CLAIM] = claim
        self._reserved = count
        timestamps = None if self._timestamps is None else self._timestamps[start : start + count]
        return self._data[start : start + count], timestamps

    def publish(self, count: int) -> None:
        """Make the first ``count`` reserved samples visible to readers and wake them."""
        self._require_writer()
        if not 0 <= count <= self._reserved:
            raise ValueError(f"publish(count={count}): only {self._reserved} samples were reserved")
        self._reserved = 0
        if count:
            self._control[_WRITE] = int(self._control[_WRITE]) + count
            with self._published:
                self._published.notify_all()

    def write(self, samples: np.ndarray, timestamps: np.ndarray | None = None) -> None:
        """Copy ``samples`` (``[n, *sample_shape]``) into the ring: reserve, copy, publish."""
        samples = np.asarray(samples)
        if samples.shape[1:] != self.sample_shape:
            raise ValueError(
                f"samples have shape {samples.shape}; the ring needs (n, "
                f"{', '.join(map(str, self.sample_shape))})"
            )
        if (timestamps is not None) != self.has_timestamps:
            need = "needs timestamps" if self.has_timestamps else "has no timestamp ring"
            raise ValueError(f"this ring {need}")
        if timestamps is not None and len(timestamps) != len(samples):
            raise ValueError(f"{len(timestamps)} timestamps for {len(samples)} samples")
        done = 0
        while done < len(samples):
            data, stamps = self.reserve(min(len(samples) - done, self.capacity))
            count = len(data)
            data[...] = samples[done : done + count]
            if stamps is not None:
                stamps[...] = timestamps[done : done + count]
            self.publish(count)
            done += count

    def mark_running(self) -> None:
        """A new run starts: clears a fault and lets readers wait for data again."""
        self._require_writer()
        self._fault_exception = None
        self._control[_FAULT_LENGTH] = 0
        self._control[_RUN_START] = self._control[_WRITE]  # before the epoch says "new run"
        self._control[_EPOCH] = int(self._control[_EPOCH]) + 1
        self._set_state(RingState.RUNNING)

    def mark_stopped(self) -> None:
        """No more data is coming for now; blocked readers that need more stop waiting."""
        self._require_writer()
        self._set_state(RingState.STOPPED)

    def mark_faulted(self, exception: BaseException) -> None:
        """The producer failed: keep its exception (and its message for other processes)."""
        self._require_writer()
        self._fault_exception = exception
        message = f"{type(exception).__name__}: {exception}".encode()[:_FAULT_BYTES]
        self._buf[_FAULT_OFFSET : _FAULT_OFFSET + len(message)] = message
        self._control[_FAULT_LENGTH] = len(message)
        self._set_state(RingState.FAULTED)

    def _set_state(self, state: RingState) -> None:
        self._control[_STATE] = state
        self.wake_waiters()

    def _require_writer(self) -> None:
        if not self.is_writer:
            raise StreamError(f"ring '{self.name}' is attached read-only; only its creator writes")
        if self._buf is None:
            raise StreamError(f"ring '{self.name}' is closed")

    # --------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Release the ring. The writer marks it closed and unlinks its shared-memory block."""
        if self._buf is None:
            return
        if self.is_writer:
            self._set_state(RingState.CLOSED)
        self._control = self._data = self._timestamps = None
        self._buf = None
        if self._block is not None:
            with contextlib.suppress(BufferError):  # a view is still alive: unmapped at exit
                self._block.close()
            self._block = None
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> StreamRing:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "shared" if self.is_shared else "private"
        return (
            f"<StreamRing '{self.name}' {where}, {self.capacity} x {self.sample_shape} "
            f"{self.dtype}, written {self.write_index if self._buf is not None else '-'}>"
        )


def _allocate(layout: _Layout, name: str, shared: bool):
    """The ring's memory: ``(block, buf)`` of a new shared block, or ``(None, buf)`` private.

    A size this machine cannot hold raises :class:`StreamCapacityError`. A shared block is
    checked against the free space of /dev/shm first: the kernel would hand out a bigger one,
    and the writer would crash with SIGBUS once it fills pages that do not exist.
    """
    free = _shared_memory_free() if shared else None
    if layout.total_bytes > sys.maxsize or (free is not None and layout.total_bytes > free):
        raise _capacity_error(layout, shared, free)
    try:
        if shared:
            block = create_block(name, layout.total_bytes)
            return block, block.buf
        return None, memoryview(np.zeros(layout.total_bytes, np.uint8))
    except MemoryError as exc:
        raise _capacity_error(layout, shared, free) from exc
    except OSError as exc:
        if exc.errno not in (errno.ENOMEM, errno.ENOSPC, errno.EFBIG):
            raise
        raise _capacity_error(layout, shared, free) from exc


def _shared_memory_free() -> int | None:
    """Bytes free in /dev/shm (Linux), None where that cannot be known."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        stats = os.statvfs(_LINUX_SHM_DIR)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def _capacity_error(layout: _Layout, shared: bool, free: int | None) -> StreamCapacityError:
    per_sample = math.prod(layout.sample_shape) * layout.dtype.itemsize
    per_sample += 8 if layout.has_timestamps else 0
    total = layout.total_bytes
    if free is not None:
        limit = f"{_LINUX_SHM_DIR} has {format_bytes(free)} free"
    else:
        limit = f"more than this machine can allocate{' as shared memory' if shared else ''}"
    return StreamCapacityError(
        f"capacity={layout.capacity} samples x {per_sample} bytes needs "
        f"{format_count(total)} bytes ({format_bytes(total)}); {limit}: "
        "choose a smaller capacity",
        layout.capacity,
        total,
    )


def _checked_format(capacity, sample_shape, dtype, info):
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
        raise ValueError(f"capacity must be a positive number of samples, got {capacity!r}")
    given = (sample_shape,) if isinstance(sample_shape, (int, np.integer)) else sample_shape
    try:
        sample_shape = tuple(given)
    except TypeError:
        sample_shape = (0,)  # reported just below
    if any(
        isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in sample_shape
    ):
        raise ValueError(f"sample_shape must be a tuple of positive integers, got {given!r}")
    sample_shape = tuple(int(n) for n in sample_shape)
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype {dtype!r} is not a numpy dtype ({exc})") from None
    if dtype.hasobject or dtype.itemsize == 0:
        raise TypeError(f"dtype {dtype} cannot live in shared memory (use fixed-size fields)")
    if info is None:
        info = StreamInfo()
    elif not isinstance(info, StreamInfo):
        raise TypeError(f"info must be a StreamInfo (or None), got {type(info).__name__}")
    channels = sample_shape[0] if sample_shape else 1
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
    return int(capacity), sample_shape, dtype, info
