"""StreamRing: the one copy of a stream, written by one producer and read by many cursors.

The ring's memory is the same for private and shared memory, so one code path serves both:
a header (see :mod:`qudi.util.instream.stream_format`: control words, fault message, the
stream's description as JSON), then the data ring and an optional timestamp ring.

Indices are absolute sample counts since the ring was created; sample ``i`` lives in slot
``i % capacity``. The writer raises the *claim index* before it touches a slot and the
*write index* after the samples are complete. A reader copies, then re-reads the claim index:
if the writer claimed the slots it was copying meanwhile, the copy may be torn and is rejected.
This relies on stores becoming visible in program order, which holds on x86-64. Only the ring
writes its control words; a receiver that knows some indices will never arrive says so with
:meth:`StreamRing.skip_to`.

Any process of the writer's user can write the control words too, so every read of them is
checked (a few integer comparisons per read, none per sample): the write index never goes back
and never passes the claim index, the claim index is never more than a capacity ahead of it,
the state word is a :class:`RingState`, and the fault text is no longer than its field. What
fails is a :class:`~qudi.util.instream.errors.StreamFormatError` naming the stream and the
word, and the read consumes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import math
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from qudi.util.instream.errors import (
    StreamCapacityError,
    StreamError,
    StreamFormatError,
    format_bytes,
    format_count,
)
from qudi.util.instream.reader import RingReader
from qudi.util.instream.shared_block import (
    AttachedBlock,
    block_directory,
    create_block,
    free_bytes,
)
from qudi.util.instream.stream_format import (
    CONTROL_OFFSET,
    CONTROL_WORDS,
    FAULT_BYTES,
    FAULT_OFFSET,
    HEADER_PREFIX,
    MAGIC,
    METADATA_OFFSET,
    VERSION,
    Control,
    RingLayout,
    RingState,
    StreamInfo,
    checked_format,
    describe,
)
from qudi.util.instream.time_table import (
    DEFAULT_TIME_SLOTS,
    MAX_TIME_SLOTS,
    TimeTableBlock,
    note_run_start,
)

__all__ = ["RingControl", "RingState", "StreamInfo", "StreamRing"]

# the control words' indices as plain ints: write_index and friends are on every read's path
_WRITE, _CLAIM, _STATE, _EPOCH, _FAULT_LENGTH, _RUN_START, _SKIPS = map(int, Control)
_LAST_INDEX = 2**64 - 1  # the control words are uint64
_STATES = tuple(RingState)  # by value: 0, 1, 2, 3
_SKIP_WAIT_S = 1.0  # a skip moves two words; longer than this between them is no skip

# Waiting without a condition variable (a reader in another process): poll, backing off.
_POLL_MIN_S = 50e-6
_POLL_MAX_S = 2e-3


class RingControl:
    """A ring's control words as its readers see them: every read of them is checked.

    Only the writer writes the control words, but any process of its user can. Every read of
    an index checks ``seen <= write <= claim <= write + capacity`` (``seen``: the highest write
    index read before). Read in either order while the writer moves on, the two words may fail
    that by chance (the writer raises the claim first, then the write index); the slow path
    then reads them in the order that makes the check exact, and raises only if it still fails.
    :class:`StreamRing` builds on this; ``_control`` (the words), ``_buf`` (the memory, None
    once closed), ``name`` and ``capacity`` are set by it.
    """

    name: str
    capacity: int
    _control: np.ndarray
    _buf: memoryview | None
    _write_seen: int

    @property
    def write_index(self) -> int:
        """Samples ever published (the absolute index one past the newest sample).

        Raises
        ------
        StreamFormatError
            If the control words say something a writer never writes (see
            :meth:`indices`).
        """
        control = self._control
        seen = self._write_seen
        write = control.item(_WRITE)
        if seen <= write <= control.item(_CLAIM) <= write + self.capacity:
            self._write_seen = write
            return write
        return self._settled_indices()[1]

    @property
    def oldest_index(self) -> int:
        """Absolute index of the oldest sample still intact (the writer may claim older slots).

        Raises
        ------
        StreamFormatError
            As :attr:`write_index`.
        """
        control = self._control
        seen = self._write_seen
        claim = control.item(_CLAIM)
        write = control.item(_WRITE)
        if seen <= write <= claim <= write + self.capacity:
            self._write_seen = write
            return max(0, claim - self.capacity)
        return self._settled_indices()[0]

    def indices(self) -> tuple[int, int]:
        """``(oldest_index, write_index)`` read together, so that ``oldest <= write`` always.

        (The two properties read one after the other may see the writer move in between, by
        more than the capacity if the reader was descheduled.)

        Raises
        ------
        StreamFormatError
            If the write index went back, is ahead of the claim index, or the claim index is
            more than the capacity ahead of it: the block was written by a process other
            than its writer. Nothing is read then.
        """
        control = self._control
        seen = self._write_seen
        claim = control.item(_CLAIM)
        write = control.item(_WRITE)
        if seen <= write <= claim <= write + self.capacity:
            self._write_seen = write
            return max(0, claim - self.capacity), write
        return self._settled_indices()

    def _settled_indices(self) -> tuple[int, int]:
        """``(oldest, write)`` once no :meth:`skip_to` is half done; raise if they are
        impossible. The slow path of the index properties: runs only when a check failed."""
        control = self._control
        deadline = time.monotonic() + _SKIP_WAIT_S
        pause = _POLL_MIN_S
        while True:
            skips = control.item(_SKIPS)
            seen = self._write_seen
            claim = control.item(_CLAIM)
            write = control.item(_WRITE)
            claim_after = control.item(_CLAIM)
            if not skips & 1 and control.item(_SKIPS) == skips:  # no skip moved the words
                problem = _index_problem(seen, claim, write, claim_after, self.capacity)
                if problem is None:
                    self._write_seen = max(self._write_seen, write)
                    return max(0, claim - self.capacity), write
                raise self._corrupted(problem)
            if time.monotonic() > deadline:
                raise self._corrupted(
                    f"its skip counter holds {skips}: a skip of its writer has been under way "
                    f"for more than {_SKIP_WAIT_S} s"
                )
            time.sleep(pause)  # a skip is under way: its writer is between two stores
            pause = min(2 * pause, _POLL_MAX_S)

    def _corrupted(self, problem: str) -> StreamFormatError:
        return StreamFormatError(
            f"stream '{self.name}': {problem}; a ring's writer never writes that, so another "
            "process changed its shared memory (nothing was read)"
        )

    @property
    def state(self) -> RingState:
        """Whether the writer produces, stopped, failed or closed the ring.

        Raises
        ------
        StreamFormatError
            If the state word holds no :class:`RingState`.
        """
        value = self._control.item(_STATE)
        if value < len(_STATES):
            return _STATES[value]
        valid = ", ".join(f"{state.value} {state.name}" for state in _STATES)
        raise self._corrupted(f"its state word holds {value}, not a ring state ({valid})")

    @property
    def run_epoch(self) -> int:
        """Counts the writer's starts, so readers can tell one run from the next."""
        return int(self._control.item(_EPOCH))

    @property
    def run_start_index(self) -> int:
        """Index of the first sample of the current run (where the run before it ended).

        Raises
        ------
        StreamFormatError
            If it lies beyond the write index (a run starts where the writer was).
        """
        start = self._control.item(_RUN_START)  # before the write index: it only grows
        write = self.write_index
        if start <= write:
            return int(start)
        raise self._corrupted(f"its run start index {start} is beyond its write index {write}")

    @property
    def fault_message(self) -> str:
        """The writer's fault as text (at most 1 KiB of UTF-8: its field in the header)."""
        buf = self._buf
        if buf is None:
            return ""
        length = min(self._control.item(_FAULT_LENGTH), FAULT_BYTES)
        return bytes(buf[FAULT_OFFSET : FAULT_OFFSET + length]).decode(errors="replace")


class StreamRing(RingControl):
    """A ring of fixed-shape samples with one writer and any number of readers.

    Parameters
    ----------
    capacity
        Number of samples the ring holds.
    sample_shape
        Shape of one sample: ``(channels,)`` for the qudi interface, ``(h, w)`` for video
        frames, ``()`` for a scalar or structured record per sample.
    dtype
        numpy dtype of the samples (any fixed-size dtype, structured ones included).
    timestamps
        Keep a float64 timestamp per sample in lock-step with the data.
    info
        What the samples mean (channel names, units, rate, timing); stored in the header.
    shared
        Put the ring in a named shared-memory block that other processes can attach to with
        :meth:`attach`.
    name
        The stream's name (default: a unique one); other processes attach by it.
    time_slots
        Rows of the ring's time table (its run's start and the writer's (index, host time)
        rows, see :mod:`qudi.util.instream.time_table`), 0 for none.

    Raises
    ------
    ValueError, TypeError
        For a format that is impossible (see
        :func:`~qudi.util.instream.stream_format.checked_format`).
    StreamCapacityError
        If a ring this big does not fit in this machine's (shared) memory.
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
        time_slots: int = DEFAULT_TIME_SLOTS,
    ):
        capacity, sample_shape, dtype, info = checked_format(capacity, sample_shape, dtype, info)
        if (
            isinstance(time_slots, bool)
            or not isinstance(time_slots, int)
            or not (0 <= time_slots <= MAX_TIME_SLOTS)
        ):
            raise ValueError(
                f"time_slots={time_slots!r}: use a whole number of rows from 0 to {MAX_TIME_SLOTS}"
            )
        layout = RingLayout.plan(
            capacity, sample_shape, dtype, bool(timestamps), info, time_slots=time_slots
        )
        name = name if name is not None else f"stream_{uuid.uuid4().hex[:12]}"
        block, buf = _allocate(layout, name, bool(shared))
        self._bind(name, block, buf, layout, info, writer=True)
        # Unlink the block even if close() is never called (garbage collection, exit).
        # Only unlink: at exit other threads may still read the mapping, which goes away
        # with the process; close() unmaps it.
        self._finalizer = weakref.finalize(self, block.unlink) if block is not None else None
        HEADER_PREFIX.pack_into(buf, 0, MAGIC, VERSION, layout.header_bytes, len(layout.metadata))
        buf[METADATA_OFFSET : METADATA_OFFSET + len(layout.metadata)] = layout.metadata
        self._control[_STATE] = RingState.RUNNING

    @classmethod
    def attach(cls, name: str) -> StreamRing:
        """Attach to the shared ring ``name`` that another process (or this one) created.

        Returns
        -------
        StreamRing
            A read-only view: use :meth:`reader` on it.

        Raises
        ------
        StreamNotFoundError
            If no such stream exists on this host.
        StreamFormatError
            If the block is not a valid ring (its header is refused, see
            :meth:`~qudi.util.instream.stream_format.RingLayout.read`).
        """
        block = AttachedBlock(name)
        try:
            layout, info = RingLayout.read(block.buf, name)
        except BaseException:
            block.close()
            raise
        ring = cls.__new__(cls)
        ring._bind(name, block, block.buf, layout, info, writer=False)
        return ring

    def _bind(
        self,
        name: str,
        block: Any,
        buf: memoryview,
        layout: RingLayout,
        info: StreamInfo,
        *,
        writer: bool,
    ) -> None:
        """Set up a ring on ``buf`` (in ``block``, None for private memory), as its writer or
        as a read-only view of another's."""
        self.name = name
        self.is_shared = block is not None
        self.is_writer = writer
        self._block = block
        self._finalizer = None
        self._write_seen = 0  # the highest write index read: it never goes back
        # the writer's process wakes its readers at once; others poll (see wait())
        self._published = threading.Condition() if writer else None
        self._reserved = 0
        self._fault_exception: BaseException | None = None
        self._buf: memoryview | None = buf
        self.capacity = layout.capacity
        self.sample_shape = layout.sample_shape
        self.dtype = layout.dtype
        self.has_timestamps = layout.has_timestamps
        self.info = info
        self.nbytes = layout.total_bytes
        self._control = np.ndarray((CONTROL_WORDS,), np.uint64, buf, CONTROL_OFFSET)
        self._data = np.ndarray(
            (layout.capacity, *layout.sample_shape), layout.dtype, buf, layout.header_bytes
        )
        self._timestamps = (
            np.ndarray((layout.capacity,), np.float64, buf, layout.timestamp_offset)
            if layout.has_timestamps
            else None
        )
        self.time_slots = layout.time_slots
        #: the run's start and the writer's (index, host time) rows; None for a ring without
        self.time_table: TimeTableBlock | None = (
            TimeTableBlock(buf, layout.time_offset, layout.time_slots, writer=writer)
            if layout.time_slots
            else None
        )

    @property
    def fault_exception(self) -> BaseException | None:
        """The writer's exception behind a fault (only known in the writer's process)."""
        return self._fault_exception

    @property
    def closed(self) -> bool:
        return self._buf is None

    def description(self) -> dict[str, Any]:
        """The stream's format, meaning and name as JSON-ready values: what its header holds
        and what a subscriber is told (read it back with
        :func:`~qudi.util.instream.stream_format.parse_description`)."""
        fmt = (self.capacity, self.sample_shape, self.dtype, self.has_timestamps)
        return {**describe(*fmt, self.info, self.time_slots), "name": self.name}

    def reader(
        self, name: str = "reader", *, allow_overwrite: bool = False, from_oldest: bool = False
    ) -> RingReader:
        """A new cursor on this ring, starting at the newest sample (or the oldest kept one).

        Raises
        ------
        StreamStoppedError
            If the ring is closed.
        """
        return RingReader(self, name=name, allow_overwrite=allow_overwrite, from_oldest=from_oldest)

    def copy_out(
        self, position: int, count: int, out: np.ndarray, timestamps_out: np.ndarray | None
    ) -> None:
        """Copy samples ``position .. position+count`` into ``out`` (no torn-read check here)."""
        start = position % self.capacity
        first = min(count, self.capacity - start)
        data = self._data
        out[:first] = data[start : start + first]
        if first < count:
            out[first:count] = data[: count - first]
        if timestamps_out is not None:
            stamps = self._timestamps
            if stamps is None:
                raise ValueError(f"ring '{self.name}' carries no timestamps")
            timestamps_out[:first] = stamps[start : start + first]
            if first < count:
                timestamps_out[first:count] = stamps[: count - first]

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
        control = self._control
        write = control.item(_WRITE)
        start = write % self.capacity
        count = min(n, self.capacity - start)
        claim = write + count
        if claim > control.item(_CLAIM):
            control[_CLAIM] = claim
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
            self._control[_WRITE] = self._control.item(_WRITE) + count
            self.wake_waiters()

    def skip_to(self, index: int, *, first: bool = False) -> None:
        """Say that the indices up to ``index`` will never be written: ``index`` becomes the
        next write index, and readers waiting for samples re-check (a receiver's gap).

        The skipped slots keep what they held: the receiver that skips tells its readers where
        the gap is (as :class:`~qudi.util.instream.network.StreamSubscriber` does), since a
        plain :class:`RingReader` cannot know. A gap of a capacity or more leaves nothing
        older kept: every slot would be read as a sample of the gap. ``first=True`` places an
        empty ring at ``index`` before anything was written: nothing older counts as kept, not
        even for a reader ``from_oldest``.

        Raises
        ------
        ValueError
            If ``index`` is not a whole number from the write index up to 2**64 - 1 minus the
            capacity (room for the samples after it), if samples are reserved and not yet
            published, or with ``first=True`` on a ring that was written. Nothing changes
            then.
        StreamError
            On a ring attached read-only or closed.
        """
        self._require_writer()
        write = self._control.item(_WRITE)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"skip_to(index={index!r}): index must be a whole number")
        last = _LAST_INDEX - self.capacity
        if not write <= index <= last:
            raise ValueError(
                f"skip_to(index={index}): index must be from the write index {write} up to "
                f"{last} (a ring never goes back, and its indices are 64-bit)"
            )
        if self._reserved:
            raise ValueError(
                f"skip_to(index={index}): {self._reserved} reserved samples are not published"
            )
        control = self._control
        if first and control.item(_CLAIM) != 0:
            raise ValueError(f"skip_to(index={index}, first=True): the ring was written already")
        if first or index - write >= self.capacity:
            claim = index + self.capacity  # no slot holds a sample below index: none is kept
        else:
            claim = max(control.item(_CLAIM), index)  # readers check write <= claim
        # Readers check write <= claim <= write + capacity; between the two stores that may
        # not hold, so the skip counter is odd meanwhile and a reader that looks then waits.
        control[_SKIPS] = control.item(_SKIPS) + 1
        control[_CLAIM] = claim
        control[_WRITE] = index
        control[_SKIPS] = control.item(_SKIPS) + 1
        self.wake_waiters()

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
            if stamps is not None and timestamps is not None:  # both or neither (checked)
                stamps[...] = timestamps[done : done + count]
            self.publish(count)
            done += count

    def mark_running(self) -> None:
        """A new run starts: clears a fault and lets readers wait for data again."""
        self._require_writer()
        self._fault_exception = None
        self._control[_FAULT_LENGTH] = 0
        self._control[_RUN_START] = self._control[_WRITE]  # before the epoch says "new run"
        self._control[_EPOCH] = self._control.item(_EPOCH) + 1
        note_run_start(self)  # now, on this host's clocks (a hub then records its start call)
        self._set_state(RingState.RUNNING)

    def mark_stopped(self) -> None:
        """No more data is coming for now; blocked readers that need more stop waiting."""
        self._require_writer()
        self._set_state(RingState.STOPPED)

    def mark_faulted(self, exception: BaseException) -> None:
        """The producer failed: keep its exception (and its message for other processes)."""
        buf = self._require_writer()
        self._fault_exception = exception
        message = f"{type(exception).__name__}: {exception}".encode()[:FAULT_BYTES]
        buf[FAULT_OFFSET : FAULT_OFFSET + len(message)] = message
        self._control[_FAULT_LENGTH] = len(message)
        self._set_state(RingState.FAULTED)

    def _set_state(self, state: RingState) -> None:
        self._control[_STATE] = state
        self.wake_waiters()

    def _require_writer(self) -> memoryview:
        """The ring's memory, if this is its writer and it is open."""
        if not self.is_writer:
            raise StreamError(f"ring '{self.name}' is attached read-only; only its creator writes")
        if self._buf is None:
            raise StreamError(f"ring '{self.name}' is closed")
        return self._buf

    # --------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Release the ring. The writer marks it closed and unlinks its shared-memory block."""
        if self._buf is None:
            return
        if self.is_writer:
            self._set_state(RingState.CLOSED)
        # Let go of every view of the memory before unmapping it; the last control words stay
        # readable (a closed ring answers its indices), the data arrays are empty.
        self._control = self._control.copy()
        self._data = np.empty((0, *self.sample_shape), self.dtype)
        self._timestamps = None if self._timestamps is None else np.empty(0)
        if self.time_table is not None:
            self.time_table.release()
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


def _index_problem(
    seen: int, claim: int, write: int, claim_after: int, capacity: int
) -> str | None:
    """What is impossible about indices read in this order (None if nothing is).

    ``seen`` is the highest write index read before, ``claim`` was read before ``write`` and
    ``claim_after`` after it; the writer raises the claim index, then the write index.
    """
    if write < seen:
        return f"its write index went back from {seen} to {write}"
    if write > claim_after:
        return f"its write index {write} is ahead of its claim index {claim_after}"
    if claim > write + capacity:
        return (
            f"its claim index {claim} is more than its capacity ({capacity}) ahead of its "
            f"write index {write}"
        )
    return None


def _allocate(layout: RingLayout, name: str, shared: bool) -> tuple[Any, memoryview]:
    """The ring's memory: ``(block, buf)`` of a new shared block, or ``(None, buf)`` private.

    A size this machine cannot hold raises :class:`StreamCapacityError`. A shared block is
    checked against the free space of the block directory first (/dev/shm, see
    :func:`~qudi.util.instream.shared_block.block_directory`), so the error names the ring's
    capacity; :func:`~qudi.util.instream.shared_block.create_block` then reserves every page.
    """
    free = free_bytes() if shared else None
    if layout.total_bytes > sys.maxsize or (free is not None and layout.total_bytes > free):
        raise _capacity_error(layout, shared, free)
    try:
        if shared:
            block = create_block(name, layout.total_bytes, capacity=layout.capacity)
            if block.buf is None:  # only a closed SharedMemory has none
                raise StreamError(f"the block of ring '{name}' was closed as it was made")
            return block, block.buf
        return None, np.zeros(layout.total_bytes, np.uint8).data  # calloc: pages on first use
    except MemoryError as exc:
        raise _capacity_error(layout, shared, free) from exc
    except OSError as exc:
        if exc.errno not in (errno.ENOMEM, errno.ENOSPC, errno.EFBIG):
            raise
        raise _capacity_error(layout, shared, free) from exc


def _capacity_error(layout: RingLayout, shared: bool, free: int | None) -> StreamCapacityError:
    per_sample = math.prod(layout.sample_shape) * layout.dtype.itemsize
    per_sample += 8 if layout.has_timestamps else 0
    total = layout.total_bytes
    if free is not None:
        limit = f"{block_directory()} has {format_bytes(free)} free"
    else:
        limit = f"more than this machine can allocate{' as shared memory' if shared else ''}"
    return StreamCapacityError(
        f"capacity={layout.capacity} samples x {per_sample} bytes needs "
        f"{format_count(total)} bytes ({format_bytes(total)}); {limit}: "
        "choose a smaller capacity",
        layout.capacity,
        total,
    )
