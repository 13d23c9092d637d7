"""ImageStreamBuffer: one consumer's view of a shared camera stream, as an ImageStreamInterface.

Example config (copy into the ``hardware:`` section; one buffer per consumer)::

    camera_buffer1:
        module.Class: 'instream.camera_buffer.ImageStreamBuffer'
        options:
            allow_overwrite: False   # optional: False raises on lost frames, True skips them
            max_poll_rate: 30.0      # optional: most reads of the camera per second (1 to 1000)
            ring_seconds: 1.0        # optional: seconds of frames the shared ring holds at least
                                     # (the largest any consumer of the camera asks for)
        connect:
            camera: 'camera_dummy'

The frame counterpart of ``instream.buffer.DataInStreamBuffer``: all buffers (and ROI
streamers) on the same camera share one :class:`~qudi.util.instream.image_hub.ImageHub`: one
ring of frames in shared memory, one pump thread. Each buffer is a cursor on that ring, so a
consumer costs no copy of the stream; a slow one loses frames (counted exactly, raised unless
``allow_overwrite``) and holds back nobody. The camera runs while any consumer streams and
stops with the last; its configuration changes only while none streams (or when the change is
none), otherwise ``StreamBusyError`` names those that stream. :attr:`stream_name` is the name
another process on this host attaches to (``qudi.util.instream.attach(name)``, zero copy).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector

from qudi.hardware.instream.reader_consumer import ReaderConsumer
from qudi.interface.image_stream_interface import (
    ImageStreamConstraints,
    ImageStreamInterface,
    check_frame_buffers,
)
from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream.arrays import check_count, check_positive_number, option_error
from qudi.util.instream.enums import member_name
from qudi.util.instream.hub import MAX_POLL_RATE, MIN_POLL_RATE, HubReader, check_poll_rate
from qudi.util.instream.image_hub import JoinedImageHub, join_image_hub
from qudi.util.instream.image_recorder import ImageRecorder

__all__ = ["ImageStreamBuffer", "checked_consumer_options"]


def checked_consumer_options(allow_overwrite: object, max_poll_rate: object, ring_seconds: object):
    """The options every consumer of a camera stream has, checked (``option_error`` otherwise)."""
    if not isinstance(allow_overwrite, bool):
        raise option_error("allow_overwrite", allow_overwrite, "use True or False")
    try:
        check_poll_rate(max_poll_rate)
    except ValueError:
        raise option_error(
            "max_poll_rate",
            max_poll_rate,
            f"use a number of Hz from {MIN_POLL_RATE:g} to {MAX_POLL_RATE:g}",
        ) from None
    try:
        check_positive_number(ring_seconds, "ring_seconds")
    except (TypeError, ValueError):
        raise option_error(
            "ring_seconds", ring_seconds, "use a positive number of seconds"
        ) from None


class ImageStreamBuffer(ReaderConsumer[JoinedImageHub, HubReader], ImageStreamInterface):
    """One consumer's buffered view of a camera; see the module docstring for its config."""

    _camera = Connector(name="camera", interface="ImageStreamInterface")
    _allow_overwrite = ConfigOption("allow_overwrite", default=False)
    _max_poll_rate = ConfigOption("max_poll_rate", default=30.0)
    _ring_seconds = ConfigOption("ring_seconds", default=1.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    def on_activate(self) -> None:
        checked_consumer_options(self._allow_overwrite, self._max_poll_rate, self._ring_seconds)
        hub = join_image_hub(
            self._camera(),
            self.module_name,
            float(self._max_poll_rate),
            ring_seconds=float(self._ring_seconds),
        )
        self._open_consumer(hub, self._allow_overwrite)

    def on_deactivate(self) -> None:
        self._close_consumer()  # stops the camera too, if this was its last running consumer

    # ---------------------------------------------------------------------------- extras
    @property
    def stream_name(self) -> str:
        """Name of the shared frame stream: ``qudi.util.instream.attach(name)`` from any
        process on this host reads it, zero copy."""
        return self._active_hub().name

    @property
    def lost_frames(self) -> int:
        """Frames this buffer lost because its consumer read too slowly."""
        return self._active_reader().lost

    @property
    def allow_overwrite(self) -> bool:
        return self._active_reader().allow_overwrite

    @property
    def measured_frame_rate(self) -> float:
        """Frames per second that reached the shared ring over the last second."""
        return self._active_hub().hub.measured_rate()

    def open_recorder(self, path: str | os.PathLike, **options: Any) -> ImageRecorder:
        """An :class:`~qudi.util.instream.image_recorder.ImageRecorder` (not started) that
        drains this buffer's own cursor into the new HDF5 file ``path``, from its own thread:
        this buffer's consumer is then the recorder (read nothing else from it meanwhile).
        ``options`` are the recorder's (``compression``, ``shuffle``, ``max_frames``, ...)."""
        return ImageRecorder(self._active_reader(), path, **options)

    @property
    def running_consumers(self) -> list[str]:
        """The consumers of the camera that stream now."""
        return self._active_hub().hub.running_readers

    # --------------------------------------------------------------------------- settings
    @property
    def constraints(self) -> ImageStreamConstraints:
        return self._camera().constraints

    @property
    def frame_rate(self) -> float:
        return float(self._camera().frame_rate)

    @property
    def frame_buffer_size(self) -> int:
        """Frames one blocking read may wait for (this consumer may fall about this far
        behind before it loses frames)."""
        return self._active_hub().hub.readable_frames

    @property
    def streaming_mode(self) -> StreamingMode:
        return StreamingMode.coerce(member_name(self._camera().streaming_mode))

    @property
    def available_frames(self) -> int:
        return self._active_reader().available

    def configure(
        self,
        frame_rate: float,
        frame_buffer_size: int,
        streaming_mode: StreamingMode | int | str = StreamingMode.CONTINUOUS,
    ) -> None:
        """Configure the shared stream. The running configuration is always accepted; a
        different one raises ``StreamBusyError`` naming the consumers that stream."""
        mode = StreamingMode.coerce(streaming_mode, "streaming_mode")
        self._active_hub().configure(frame_rate, frame_buffer_size, mode)

    # ----------------------------------------------------------------------- acquisition
    # start_stream / stop_stream: ReaderConsumer's (the camera stops with its last consumer)
    def read_frames_into_buffer(
        self,
        frame_buffer: np.ndarray,
        frames: int,
        timestamp_buffer: np.ndarray | None = None,
        timeout: float | None = None,
    ) -> None:
        """Block until ``frames`` new frames are copied into ``frame_buffer``.

        Raises ``StreamTimeoutError`` (nothing consumed), ``StreamStoppedError``,
        ``StreamFaultError`` (the camera failed) or ``StreamOverrunError`` (frames lost).
        """
        out, stamps, room = self._checked(frame_buffer, timestamp_buffer)
        count = check_count(frames, room, "frames", "what fits")
        self._active_reader().read_into(out, count, timeout=timeout, timestamps=stamps)

    def read_available_frames_into_buffer(
        self, frame_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        out, stamps, _ = self._checked(frame_buffer, timestamp_buffer)
        return self._active_reader().read_available_into(out, timestamps=stamps)

    def read_latest_frame(self) -> tuple[np.ndarray, float | None]:
        """The newest frame in the stream (nothing consumed); the camera's own if none yet."""
        ring = self._active_hub().ring
        if ring.write_index == 0:
            return self._camera().read_latest_frame()
        frames, stamps = self._active_reader().latest(1, with_timestamps=True)
        return frames[0], float(stamps[0])

    def _checked(self, frame_buffer, timestamp_buffer):
        ring = self._active_hub().ring
        return check_frame_buffers(frame_buffer, timestamp_buffer, ring.sample_shape, ring.dtype)
