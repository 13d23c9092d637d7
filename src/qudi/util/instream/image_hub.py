"""ImageHub: one camera's frames shared by any number of readers, through one ring.

The camera counterpart of :class:`~qudi.util.instream.hub.StreamHub`. Its ring holds whole
images (``[capacity, H, W]``, a float64 time per frame beside them) and is sized in frames
and seconds, not in the thousands of samples a channel stream needs (1024 frames of 1024 x
1024 uint16 would be 2 GiB). Everything else is the channel stream's: readers are
:class:`~qudi.util.instream.hub.HubReader`\\ s (own cursor, overwrite policy, exact lost count,
timeouts, torn reads refused), the :class:`~qudi.util.instream.pump.Pump` moves frames from the
camera straight into the ring's free slots, the camera starts with the first running reader
and stops with the last, and a change of configuration while readers run is refused with a
:class:`~qudi.util.instream.errors.StreamBusyError` naming them. The hub is a
:class:`~qudi.util.instream.contracts.ReaderHost`, the contract a HubReader needs of its owner.

:data:`image_hubs` keeps one hub per camera module of this process; :func:`join_image_hub` is
how a consumer module gets its place in it.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from qudi.util.instream.arrays import check_count, check_positive_number
from qudi.util.instream.enums import member_name
from qudi.util.instream.errors import StreamBusyError, StreamError, StreamStoppedError
from qudi.util.instream.hub import HubReader, check_poll_rate
from qudi.util.instream.pump import Pump
from qudi.util.instream.ring import RingState, StreamInfo, StreamRing

__all__ = [
    "IMAGE_KIND",
    "ImageHub",
    "ImageHubRegistry",
    "ImageSource",
    "JoinedImageHub",
    "image_hubs",
    "join_image_hub",
]

log = logging.getLogger(__name__)

IMAGE_KIND = "image"  # StreamInfo.extra["kind"] of a camera stream
_READ_SLACK_S = 0.1  # how late a reader may wake and still lose nothing
_RUNS_REMEMBERED = 64


class ImageSource(Protocol):
    """What an image hub needs of a camera: the shape of ``ImageStreamInterface``."""

    @property
    def constraints(self) -> Any: ...  # .data_type, .pixel_unit

    @property
    def frame_shape(self) -> tuple[int, int]: ...

    @property
    def frame_rate(self) -> float: ...

    @property
    def frame_buffer_size(self) -> int: ...

    @property
    def streaming_mode(self) -> Any: ...

    @property
    def available_frames(self) -> int: ...

    def configure(self, frame_rate: float, frame_buffer_size: int, streaming_mode: Any) -> Any: ...

    def start_stream(self) -> None: ...

    def stop_stream(self) -> None: ...

    def read_frames_into_buffer(
        self, frame_buffer: np.ndarray, frames: int, timestamp_buffer: np.ndarray | None = None
    ) -> None: ...


class _PumpFeed:
    """The camera as the pump reads a source: samples are frames (read by exact counts)."""

    def __init__(self, camera: ImageSource):
        self._camera = camera
        self._shape = tuple(camera.frame_shape)

    @property
    def constraints(self) -> Any:
        return self._camera.constraints

    @property
    def active_channels(self) -> Sequence[str]:
        return ()

    @property
    def sample_rate(self) -> float:
        return float(self._camera.frame_rate)

    @property
    def channel_buffer_size(self) -> int:
        return int(self._camera.frame_buffer_size)

    @property
    def streaming_mode(self) -> Any:
        return self._camera.streaming_mode

    @property
    def available_samples(self) -> int:
        return int(self._camera.available_frames)

    def configure(self, active_channels, streaming_mode, channel_buffer_size, sample_rate) -> Any:
        return self._camera.configure(sample_rate, channel_buffer_size, streaming_mode)

    def start_stream(self) -> None:
        self._camera.start_stream()

    def stop_stream(self) -> None:
        self._camera.stop_stream()

    def read_data_into_buffer(
        self, data_buffer: np.ndarray, samples_per_channel: int, timestamp_buffer=None
    ) -> None:
        frames = data_buffer.reshape(-1, *self._shape)  # the pump hands a flat view
        self._camera.read_frames_into_buffer(frames, samples_per_channel, timestamp_buffer)

    def read_available_data_into_buffer(self, data_buffer, timestamp_buffer=None) -> int:
        raise NotImplementedError("the pump reads a camera by exact counts")


def image_ring(camera: ImageSource, capacity: int, *, shared: bool, name: str) -> StreamRing:
    """A stopped ring of ``capacity`` frames in the format the camera streams now."""
    info = StreamInfo(
        sample_rate=float(camera.frame_rate),
        sample_timing="TIMESTAMP",
        extra={
            "kind": IMAGE_KIND,
            "pixel_unit": str(getattr(camera.constraints, "pixel_unit", "counts")),
            "stream_id": uuid.uuid4().hex,  # tells a replaced ring from the old one
        },
    )
    ring = StreamRing(
        capacity,
        tuple(int(n) for n in camera.frame_shape),
        np.dtype(camera.constraints.data_type),
        timestamps=True,
        info=info,
        shared=shared,
        name=name,
    )
    ring.mark_stopped()
    return ring


def ring_frames(readable: int, rate: float, period: float) -> tuple[int, int]:
    """``(readable, capacity)`` in frames: what a blocking read may wait for, and the ring with
    headroom beyond it (two pump chunks being claimed and 0.1 s of late wake-up), as for a
    channel stream (see :func:`~qudi.util.instream.hub.ring_size`), without its 1024-sample
    floor."""
    chunk = max(1, math.ceil(1.25 * rate * period))
    readable = max(2, readable)
    headroom = max(2 * chunk + math.ceil(rate * _READ_SLACK_S), -(-readable // 15), 2)
    return readable, readable + headroom


class ImageHub:
    """Shares one camera among any number of readers through one ring and one pump thread.

    Parameters
    ----------
    camera
        An ``ImageStreamInterface``-shaped object (see :class:`ImageSource`).
    name
        The stream's name; with ``shared=True`` other processes attach to it by this name
        (:meth:`StreamRing.attach`), zero copy.
    shared
        Keep the ring in named shared memory (default) or in private memory.
    max_poll_rate
        Most reads of the camera per second (Hz, 1 to 1000).
    ring_seconds
        The ring holds at least this many seconds of frames (and headroom beyond).

    Raises
    ------
    ValueError
        For a ``max_poll_rate`` or ``ring_seconds`` out of range.
    StreamCapacityError
        If the ring does not fit in (shared) memory.
    """

    def __init__(
        self,
        camera: ImageSource,
        *,
        name: str,
        shared: bool = True,
        max_poll_rate: float = 30.0,
        ring_seconds: float = 1.0,
    ):
        self._max_poll_rate = check_poll_rate(max_poll_rate)
        self._ring_seconds = check_positive_number(ring_seconds, "ring_seconds")
        self.name = name
        self._camera = camera
        self._feed = _PumpFeed(camera)
        self._shared = shared
        self._requested = 0
        self._lock = threading.RLock()
        self._readers: dict[str, HubReader] = {}
        self._running: set[HubReader] = set()
        self._pump: Pump | None = None
        self._faults: dict[int, BaseException] = {}
        self._run_starts: dict[int, int] = {}
        self._ring, self._readable = self._new_ring()

    # ------------------------------------------------------------------------- public API
    @property
    def ring(self) -> StreamRing:
        return self._ring

    @property
    def camera(self) -> ImageSource:
        return self._camera

    @property
    def max_poll_rate(self) -> float:
        return self._max_poll_rate

    @max_poll_rate.setter
    def max_poll_rate(self, rate: float) -> None:
        self._max_poll_rate = check_poll_rate(rate)

    @property
    def readable_frames(self) -> int:
        """The most frames one blocking read may wait for."""
        return self._readable

    @property
    def running(self) -> bool:
        return self._ring.state is RingState.RUNNING

    @property
    def error(self) -> BaseException | None:
        """The camera's exception that ended the current run, if it ended that way."""
        return self._faults.get(self._ring.run_epoch)

    @property
    def readers(self) -> tuple[HubReader, ...]:
        return tuple(self._readers.values())

    @property
    def running_readers(self) -> list[str]:
        return sorted(r.name for r in self._running if r.running)

    def measured_rate(self) -> float:
        """Frames per second moved into the ring over the last second (0.0 when stopped)."""
        pump = self._pump
        return pump.measured_rate(1.0) if pump is not None else 0.0

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> HubReader:
        """A new (stopped) reader; names are unique per hub so errors can name readers."""
        with self._lock:
            self._require_open()
            reader = HubReader(self, name, allow_overwrite)  # checks the arguments
            if name in self._readers:
                raise ValueError(f"stream '{self.name}' already has a reader named '{name}'")
            self._readers[name] = reader
            return reader

    def configure(
        self, frame_rate: float, frame_buffer_size: int | None, streaming_mode: Any
    ) -> None:
        """Configure the camera and size the ring; a no-op when nothing changes.

        ``frame_buffer_size`` means "at least this many frames in one blocking read", as a
        channel stream's ``channel_buffer_size``, and is the camera's own buffer; None keeps
        the camera's buffer and asks nothing of the ring (a consumer that sets only the rate).
        Raises :class:`StreamBusyError` naming the running readers if a change is asked for
        while any runs; the camera's own checks (``TypeError``/``ValueError``) otherwise. A
        refused call changes nothing.
        """
        rate = check_positive_number(frame_rate, "frame_rate", "a positive number of frames/s")
        if frame_buffer_size is None:
            size = min(int(self._camera.frame_buffer_size), self._readable)
            camera_size = int(self._camera.frame_buffer_size)
        else:
            size = camera_size = check_count(
                frame_buffer_size, 1 << 30, "frame_buffer_size", "2**30 frames", minimum=1
            )
        mode = member_name(streaming_mode)
        with self._lock:
            self._require_open()
            self._end_ended_run()
            change = self._describe_change(rate, size, mode)
            if change is None:
                return
            running = self.running_readers
            if running:
                raise StreamBusyError(running, f"{change} of stream '{self.name}'")
            camera = self._camera
            previous = (camera.frame_rate, camera.frame_buffer_size, camera.streaming_mode)
            camera.configure(rate, camera_size, streaming_mode)
            old = self._ring
            if self._shared:
                old.close()  # the new ring takes over the old one's name
            try:
                ring, readable = self._new_ring(size)
            except Exception:
                camera.configure(*previous)
                if old.closed:
                    self._use_ring(*self._new_ring())
                raise
            old.close()
            self._requested = size
            self._use_ring(ring, readable)

    def hold_seconds(self, seconds: float) -> None:
        """Make the ring hold at least ``seconds`` of frames from now on (it never shrinks).

        The ring is replaced at once if no reader runs; otherwise the request counts from the
        next configuration change.
        """
        seconds = check_positive_number(seconds, "ring_seconds")
        with self._lock:
            if seconds <= self._ring_seconds:
                return
            self._ring_seconds = seconds
            if self.running_readers or self._ring.closed:
                return
            old = self._ring
            if self._shared:
                old.close()
            self._use_ring(*self._new_ring())
            old.close()

    def close(self) -> None:
        """Stop the camera, end every reader and release the ring (and its shared memory)."""
        with self._lock:
            if self._ring.closed:
                return
            try:
                if self._running:
                    self._running.clear()
                    self._stop_camera()
            finally:
                for reader in self._readers.values():
                    reader.end_for_good()
                self._readers.clear()
                self._ring.close()

    def __enter__(self) -> ImageHub:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------- the ReaderHost contract of HubReader
    def start_reader(self, reader: HubReader) -> None:
        """Count ``reader`` as running, starting the camera if it is the first."""
        with self._lock:
            self._require_open()
            self._end_ended_run()
            if reader in self._running:
                return
            first = not self._running
            if first:
                self._camera.start_stream()
                self._ring.mark_running()
                self._remember(self._run_starts, self._ring.run_epoch, self._ring.run_start_index)
            reader.join_run(self._ring)
            self._running.add(reader)
            if first:
                self._start_pump()

    def stop_reader(self, reader: HubReader) -> None:
        """Stop counting ``reader``; the camera stops with the last running reader."""
        with self._lock:
            reader.leave_run()
            if reader not in self._running:
                return
            self._running.discard(reader)
            if not self._running and not self._ring.closed:
                self._stop_camera()
            self._ring.wake_waiters()

    def forget_reader(self, reader: HubReader) -> None:
        """Stop ``reader`` and drop it (its name is free again)."""
        with self._lock:
            self.stop_reader(reader)
            if self._readers.get(reader.name) is reader:
                del self._readers[reader.name]

    def fault_of_run(self, run_epoch: int) -> BaseException | None:
        return self._faults.get(run_epoch)

    def run_end(self, run_epoch: int, fallback: int) -> int:
        return self._run_starts.get(run_epoch + 1, fallback)

    # -------------------------------------------------------------------------- internals
    def _require_open(self) -> None:
        if self._ring.closed:
            raise StreamError(f"stream '{self.name}' is closed")

    @staticmethod
    def _remember(log_: dict, epoch: int, value: Any) -> None:
        log_[epoch] = value
        if len(log_) > _RUNS_REMEMBERED:
            del log_[min(log_)]

    def _period(self, rate: float) -> float:
        period = 1.0 / self._max_poll_rate
        buffer = int(self._camera.frame_buffer_size)
        return min(period, buffer / rate / 4) if rate > 0 else period

    def _start_pump(self) -> None:
        rate = float(self._camera.frame_rate)
        period = self._period(rate)
        room = self._ring.capacity - self._readable - math.ceil(rate * _READ_SLACK_S)
        chunk = max(1, min(math.ceil(1.25 * rate * period), room // 2, self._ring.capacity // 4))
        self._pump = Pump(
            self.name, self._feed, self._ring, period, self._on_pump_fault, max_chunk=chunk
        )

    def _stop_camera(self) -> None:
        pump, self._pump = self._pump, None
        try:
            if pump is not None:
                pump.stop()
            if pump is None or pump.fault is None:  # a faulted pump stopped the camera already
                self._camera.stop_stream()
        finally:
            if self._ring.state is RingState.RUNNING:
                self._ring.mark_stopped()

    def _on_pump_fault(self, ring: StreamRing, exc: BaseException) -> None:
        """Runs in the pump thread: stop the camera, keep the error, tell the readers."""
        self._remember(self._faults, ring.run_epoch, exc)
        log.warning("stream '%s': the camera failed and was stopped: %s", self.name, exc)
        try:
            self._camera.stop_stream()
        except Exception as stop_exc:
            log.error("stream '%s': stopping the camera failed too: %s", self.name, stop_exc)
        ring.mark_faulted(exc)

    def _end_ended_run(self) -> None:
        if self._pump is not None and self._pump.ended:
            self._running.clear()
            self._stop_camera()

    def _describe_change(self, rate: float, size: int, mode: object) -> str | None:
        camera = self._camera
        current = (float(camera.frame_rate), member_name(camera.streaming_mode))
        if (rate, mode) == current or math.isclose(rate, current[0]) and mode == current[1]:
            if size <= self._readable:
                return None
            return f"grow the buffer from {self._readable} to {size} frames"
        changed = [
            f"{key} from {old!r} to {new!r}"
            for key, old, new in zip(
                ("frame_rate", "streaming_mode"), current, (rate, mode), strict=True
            )
            if old != new
        ]
        return "change " + ", ".join(changed)

    def _new_ring(self, requested: int | None = None) -> tuple[StreamRing, int]:
        rate = float(self._camera.frame_rate)
        requested = self._requested if requested is None else requested
        readable = max(
            requested,
            math.ceil(rate * self._ring_seconds),
            math.ceil(4 * rate / self._max_poll_rate),
        )
        readable, capacity = ring_frames(readable, rate, self._period(rate))
        return image_ring(self._camera, capacity, shared=self._shared, name=self.name), readable

    def _use_ring(self, ring: StreamRing, readable: int) -> None:
        self._ring, self._readable = ring, readable
        self._faults.clear()
        self._run_starts.clear()
        for reader in self._readers.values():
            reader.rebind(ring)


class ImageHubRegistry:
    """The image hubs of this process, one per camera, shared by all its consumers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hubs: dict[object, tuple[ImageHub, set[str]]] = {}

    def join(
        self, key: object, member: str, open_hub: Callable[[], ImageHub], max_poll_rate: float
    ) -> ImageHub:
        """The hub for ``key`` (opened on first use), with ``member`` counted among its users.

        Raises
        ------
        ValueError
            If ``member`` is a user of this hub already (nothing changes then).
        """
        with self._lock:
            if key not in self._hubs:
                self._hubs[key] = (open_hub(), set())
            hub, members = self._hubs[key]
            if member in members:
                raise ValueError(f"stream '{hub.name}' already has a consumer named '{member}'")
            members.add(member)
            hub.max_poll_rate = max(hub.max_poll_rate, max_poll_rate)
            return hub

    def leave(self, hub: ImageHub, member: str) -> None:
        """The last member to leave closes the hub (its thread and shared memory)."""
        with self._lock:
            for key, (known, members) in list(self._hubs.items()):
                if known is hub:
                    members.discard(member)
                    if not members:
                        del self._hubs[key]
                        hub.close()


image_hubs = ImageHubRegistry()


class JoinedImageHub:
    """One consumer's place in a camera's :class:`ImageHub`; :meth:`leave` gives it up."""

    def __init__(self, hub: ImageHub, member: str, registry: ImageHubRegistry):
        self.hub = hub
        self._member = member
        self._registry = registry
        self._left = False

    @property
    def name(self) -> str:
        return self.hub.name

    @property
    def ring(self) -> StreamRing:
        return self.hub.ring

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> HubReader:
        if self._left:
            raise StreamStoppedError(f"consumer '{self._member}' left stream '{self.name}'")
        return self.hub.open_reader(name, allow_overwrite=allow_overwrite)

    def configure(
        self, frame_rate: float, frame_buffer_size: int | None, streaming_mode: Any
    ) -> None:
        self.hub.configure(frame_rate, frame_buffer_size, streaming_mode)

    def leave(self) -> None:
        """Give up this place; a second call does nothing."""
        if not self._left:
            self._left = True
            self._registry.leave(self.hub, self._member)


def join_image_hub(
    camera: Any, member: str, max_poll_rate: float, *, ring_seconds: float = 1.0
) -> JoinedImageHub:
    """``member``'s place in the image hub of qudi camera module ``camera`` in this process.

    The stream is named ``<module name>_<process id>``, unique on the host. The ring holds
    the largest ``ring_seconds`` any consumer asked for (see :meth:`ImageHub.hold_seconds`).
    """
    hub = image_hubs.join(
        camera.module_uuid,
        member,
        lambda: ImageHub(
            camera,
            name=f"{camera.module_name}_{os.getpid()}",
            max_poll_rate=max_poll_rate,
            ring_seconds=ring_seconds,
        ),
        max_poll_rate,
    )
    try:
        hub.hold_seconds(ring_seconds)
    except Exception:
        image_hubs.leave(hub, member)
        raise
    return JoinedImageHub(hub, member, image_hubs)
