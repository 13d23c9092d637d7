"""ImageHub: one camera's frames shared by any number of readers, through one ring.

A :class:`~qudi.util.instream.hub.StreamHub` for a camera, whose ring holds whole
images (``[capacity, H, W]``, a float64 time per frame beside them) and is sized in frames
and seconds, not in the thousands of samples a channel stream needs (1024 frames of 1024 x
1024 uint16 would be 2 GiB). Everything else is the channel stream's: readers are
:class:`~qudi.util.instream.hub.HubReader`\\ s (own cursor, overwrite policy, exact lost count,
timeouts, torn reads refused), the :class:`~qudi.util.instream.pump.Pump` moves frames from the
camera straight into the ring's free slots, the camera starts with the first running reader
and stops with the last, and a change of configuration while readers run is refused with a
:class:`~qudi.util.instream.errors.StreamBusyError` naming them. The hub is a
:class:`~qudi.util.instream.contracts.ReaderHost`, the contract a HubReader needs of its owner.

It is a subclass that changes only how the ring is made and sized (the hub's ``_make_ring``,
``min_readable`` and ``min_pump_chunk`` seam) and how it is configured. :data:`image_hubs`, a
:class:`~qudi.util.instream.transport.registry.HubRegistry` of image hubs, keeps one hub per
camera module of this process; :func:`join_image_hub` is how a consumer module gets its place
in it.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from qudi.util.instream.arrays import check_count, check_positive_number
from qudi.util.instream.enums import member_name
from qudi.util.instream.errors import StreamBusyError, StreamStoppedError
from qudi.util.instream.hub import HubReader, StreamHub, check_poll_rate
from qudi.util.instream.ring import StreamInfo, StreamRing
from qudi.util.instream.transport.registry import HubRegistry, LocalHub

__all__ = [
    "IMAGE_KIND",
    "ImageHub",
    "ImageHubRegistry",
    "ImageSource",
    "JoinedImageHub",
    "image_hubs",
    "join_image_hub",
]

IMAGE_KIND = "image"  # StreamInfo.extra["kind"] of a camera stream


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


class ImageHub(StreamHub):
    """Shares one camera among any number of readers through one ring and one pump thread.

    A :class:`StreamHub` of the camera (seen through :class:`_PumpFeed`) whose ring is made
    by :func:`image_ring` and sized in frames (no 1024-sample floor, pump chunks of single
    frames); configuring it takes a camera's arguments.

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

    min_readable = 2
    min_pump_chunk = 1

    def __init__(
        self,
        camera: ImageSource,
        *,
        name: str,
        shared: bool = True,
        max_poll_rate: float = 30.0,
        ring_seconds: float = 1.0,
    ):
        check_poll_rate(max_poll_rate)
        seconds = check_positive_number(ring_seconds, "ring_seconds")
        self._camera = camera  # before the first ring is made
        super().__init__(
            _PumpFeed(camera),
            name=name,
            shared=shared,
            max_poll_rate=max_poll_rate,
            min_ring_seconds=seconds,
        )

    @property
    def camera(self) -> ImageSource:
        return self._camera

    @property
    def readable_frames(self) -> int:
        """The most frames one blocking read may wait for."""
        return self._readable

    def measured_rate(self) -> float:
        """Frames per second moved into the ring over the last second (0.0 when stopped)."""
        return self.stats().measured_rate

    def configure(  # type: ignore[override]  # a camera's arguments, not a channel stream's
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
        camera = self._camera
        if frame_buffer_size is None:
            camera_size = int(camera.frame_buffer_size)
            size = min(camera_size, self._readable)
        else:
            size = camera_size = check_count(
                frame_buffer_size, 1 << 30, "frame_buffer_size", "2**30 frames", minimum=1
            )
        mode = member_name(streaming_mode)
        with self._lock:
            self._require_open()
            self._end_ended_run()
            change = self._frame_change(rate, size, mode)
            if change is None:
                return
            running = self.running_readers
            if running:
                raise StreamBusyError(running, f"{change} of stream '{self.name}'")
            # in the order of the feed's configure, which undoes a change the ring cannot take
            previous = ((), camera.streaming_mode, camera.frame_buffer_size, camera.frame_rate)
            camera.configure(rate, camera_size, streaming_mode)
            self._replace_ring(size, previous)
            self._requested_capacity = size

    def hold_seconds(self, seconds: float) -> None:
        """Make the ring hold at least ``seconds`` of frames from now on (it never shrinks).

        The ring is replaced at once if no reader runs; otherwise the request counts from the
        next configuration change.
        """
        seconds = check_positive_number(seconds, "ring_seconds")
        with self._lock:
            if seconds <= self._min_ring_seconds:
                return
            self._min_ring_seconds = seconds
            if self.running_readers or self._ring.closed:
                return
            old = self._ring
            if self._shared:
                old.close()
            self._use_ring(*self._new_ring())
            old.close()

    def __enter__(self) -> ImageHub:
        return self

    # -------------------------------------------------------------------------- internals
    def _make_ring(self, capacity: int) -> StreamRing:
        return image_ring(self._camera, capacity, shared=self._shared, name=self.name)

    def _frame_change(self, rate: float, size: int, mode: object) -> str | None:
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


class ImageHubRegistry(HubRegistry[ImageHub]):
    """The image hubs of this process, one per camera, shared by all its consumers."""


image_hubs = ImageHubRegistry()


class JoinedImageHub(LocalHub):
    """One consumer's place in a camera's :class:`ImageHub`; :meth:`leave` gives it up."""

    def __init__(self, hub: ImageHub, member: str, registry: ImageHubRegistry):
        super().__init__(hub, member, registry)
        self._image_hub = hub
        self._left = False

    @property
    def hub(self) -> ImageHub:
        return self._image_hub

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> HubReader:
        if self._left:
            raise StreamStoppedError(f"consumer '{self._member}' left stream '{self.name}'")
        return super().open_reader(name, allow_overwrite=allow_overwrite)

    def configure(  # type: ignore[override]  # a camera's arguments
        self, frame_rate: float, frame_buffer_size: int | None, streaming_mode: Any
    ) -> None:
        self._image_hub.configure(frame_rate, frame_buffer_size, streaming_mode)

    def leave(self) -> None:
        """Give up this place; a second call does nothing."""
        if not self._left:
            self._left = True
            super().leave()


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
