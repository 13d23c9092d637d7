"""CameraInterfaceStreamer: any qudi ``CameraInterface`` camera as a frame stream.

Example config (copy into the ``hardware:`` section)::

    camera_streamer:
        module.Class: 'instream.camera_interfuse.CameraInterfaceStreamer'
        options:
            frame_rate: 10.0         # optional: frames per second grabbed (0.1 to 1000)
            frame_buffer_size: 16    # optional: frames held until the consumers' pump reads them
            data_type: 'float64'     # optional: numpy type the frames are converted to
        connect:
            camera: 'camera_dummy'   # e.g. qudi-iqo-modules' 'camera.camera_dummy.CameraDummy'

qudi-iqo-modules' ``CameraInterface`` hands out one frame at a time to one caller
(``get_acquired_data``: the last acquired image, ``[rows, columns]``). This interfuse grabs
frames from such a camera in its own thread (``instream-camera-<module name>``) at the frame
rate, in live mode if the camera supports it and by single acquisitions otherwise, and offers
them as an ``ImageStreamInterface`` stream: put ``instream.camera_buffer.ImageStreamBuffer``\\ s
and ``instream.camera_roi.ImageRoiStreamer``\\ s on it and every consumer gets every frame.
The frame shape is the camera's ``get_size()`` ``(width, height)`` as ``(height, width)``.
Each frame's time is when it was grabbed (seconds since the start). If the consumers' pump
does not take the frames in time, the buffer overflows and the grabbing stops (the next read
raises), as a streaming camera's would; nothing is dropped silently.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.util.constraints import ScalarConstraint

from qudi.interface.image_stream_interface import (
    ImageStreamConstraints,
    ImageStreamInterface,
    check_frame_buffers,
)
from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream.arrays import check_count, check_timeout, option_error
from qudi.util.instream.errors import StreamTimeoutError

__all__ = ["CameraInterfaceStreamer"]

RATE_LIMITS = (0.1, 1000.0)
BUFFER_LIMITS = (2, 4096)
_JOIN_TIMEOUT_S = 10.0


class CameraInterfaceStreamer(ImageStreamInterface):
    """A ``CameraInterface`` camera as a frame stream; see the module docstring."""

    _camera = Connector(name="camera", interface="CameraInterface")
    _rate_option = ConfigOption("frame_rate", default=10.0)
    _buffer_option = ConfigOption("frame_buffer_size", default=16)
    _data_type = ConfigOption("data_type", default="float64")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._constraints: ImageStreamConstraints | None = None
        self._rate = 10.0
        self._buffer = 16
        self._frames: collections.deque = collections.deque()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._fault: BaseException | None = None
        self._start = 0.0

    def on_activate(self) -> None:
        rate, size = self._rate_option, self._buffer_option
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise option_error("frame_rate", rate, "use a number of frames per second")
        if not RATE_LIMITS[0] <= rate <= RATE_LIMITS[1]:
            raise option_error("frame_rate", rate, f"use {RATE_LIMITS[0]} to {RATE_LIMITS[1]}")
        low, high = BUFFER_LIMITS
        if isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high:
            raise option_error("frame_buffer_size", size, f"use a whole number {low} to {high}")
        try:
            dtype = np.dtype(self._data_type)
        except TypeError:
            dtype = np.dtype(object)
        if dtype.kind not in "uif":
            raise option_error("data_type", self._data_type, "use a numpy number type")
        width, height = (int(n) for n in self._camera().get_size())
        self._constraints = ImageStreamConstraints(
            frame_shape=(height, width),
            data_type=dtype,
            frame_rate=ScalarConstraint(default=10.0, bounds=RATE_LIMITS, increment=0.0),
            frame_buffer_size=ScalarConstraint(
                default=16, bounds=BUFFER_LIMITS, increment=1, enforce_int=True
            ),
            pixel_unit="counts",
        )
        self._rate, self._buffer = float(rate), size

    def on_deactivate(self) -> None:
        self.stop_stream()

    # --------------------------------------------------------------------------- settings
    @property
    def constraints(self) -> ImageStreamConstraints:
        if self._constraints is None:
            raise RuntimeError(f"'{self.module_name}' is not active")
        return self._constraints

    @property
    def frame_rate(self) -> float:
        return self._rate

    @property
    def frame_buffer_size(self) -> int:
        return self._buffer

    @property
    def streaming_mode(self) -> StreamingMode:
        return StreamingMode.CONTINUOUS

    @property
    def available_frames(self) -> int:
        """Frames grabbed and not yet read; raises the grabbing thread's error once."""
        with self._lock:
            if self._fault is not None:
                fault, self._fault = self._fault, None
                raise fault
            return len(self._frames)

    def configure(
        self,
        frame_rate: float,
        frame_buffer_size: int,
        streaming_mode: StreamingMode | int | str = StreamingMode.CONTINUOUS,
    ) -> None:
        mode = StreamingMode.coerce(streaming_mode, "streaming_mode")
        if mode != StreamingMode.CONTINUOUS:
            raise ValueError(f"streaming_mode {mode.name} is not supported: CONTINUOUS only")
        if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)):
            raise TypeError(f"frame_rate must be a number of frames per second, got {frame_rate!r}")
        if not RATE_LIMITS[0] <= frame_rate <= RATE_LIMITS[1]:
            raise ValueError(
                f"frame_rate must be {RATE_LIMITS[0]} to {RATE_LIMITS[1]}, got {frame_rate!r}"
            )
        low, high = BUFFER_LIMITS
        size = check_count(frame_buffer_size, high, "frame_buffer_size", str(high), minimum=low)
        if self._thread is not None:
            raise RuntimeError("cannot configure while streaming; stop first")
        self._rate, self._buffer = float(frame_rate), size

    # ----------------------------------------------------------------------- acquisition
    def start_stream(self) -> None:
        if self._thread is not None:
            return
        camera = self._camera()
        live = bool(camera.support_live_acquisition())
        if live:
            camera.start_live_acquisition()
        with self._lock:
            self._frames.clear()
            self._fault = None
        self._stop.clear()
        self._start = time.monotonic()
        self._thread = threading.Thread(
            target=self._grab, args=(live,), name=f"instream-camera-{self.module_name}", daemon=True
        )
        self._thread.start()
        self._show_streaming(True)

    def stop_stream(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        if thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
        try:
            self._camera().stop_acquisition()
        finally:
            self._show_streaming(False)

    def read_frames_into_buffer(
        self,
        frame_buffer: np.ndarray,
        frames: int,
        timestamp_buffer: np.ndarray | None = None,
        timeout: float | None = None,
    ) -> None:
        out, stamps, room = check_frame_buffers(
            frame_buffer, timestamp_buffer, self.frame_shape, self.constraints.data_type
        )
        count = check_count(frames, min(room, self._buffer), "frames", "what fits (and the buffer)")
        limit = check_timeout(timeout)
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._frames) >= count or self._ended(), limit):
                raise StreamTimeoutError(f"{count} frames did not arrive within {limit} s")
            if len(self._frames) < count and self._fault is not None:
                fault, self._fault = self._fault, None
                raise fault
            if len(self._frames) < count:
                raise RuntimeError(f"the camera stopped with {len(self._frames)} of {count} frames")
            for k in range(count):
                frame, stamp = self._frames.popleft()
                out[k] = frame
                if stamps is not None:
                    stamps[k] = stamp

    def read_available_frames_into_buffer(
        self, frame_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        out, stamps, room = check_frame_buffers(
            frame_buffer, timestamp_buffer, self.frame_shape, self.constraints.data_type
        )
        count = min(self.available_frames, room)
        if count:
            self.read_frames_into_buffer(out, count, stamps)
        return count

    def read_latest_frame(self) -> tuple[np.ndarray, float | None]:
        with self._lock:
            if self._frames:
                frame, stamp = self._frames[-1]
                return frame.copy(), stamp
        return self._converted(self._camera().get_acquired_data()), None

    # -------------------------------------------------------------------------- internals
    def _ended(self) -> bool:
        """No more frames come: stopped, or the grabbing thread failed."""
        thread = self._thread
        return self._fault is not None or thread is None or not thread.is_alive()

    def _converted(self, data: object) -> np.ndarray:
        frame = np.asarray(data)
        if frame.shape != self.frame_shape:
            raise ValueError(
                f"camera '{self._camera().get_name()}' returned a frame of shape {frame.shape}; "
                f"its get_size() says {self.frame_shape[::-1]} (width, height)"
            )
        return np.ascontiguousarray(frame, dtype=self.constraints.data_type)

    def _grab(self, live: bool) -> None:
        """The grabbing thread: one frame per period, until stopped or failed."""
        camera = self._camera()
        period = 1.0 / self._rate
        next_time = self._start
        try:
            while not self._stop.is_set():
                if not live:
                    camera.start_single_acquisition()
                frame = self._converted(camera.get_acquired_data())
                stamp = time.monotonic() - self._start
                with self._lock:
                    if len(self._frames) >= self._buffer:
                        raise OverflowError(
                            f"the frame buffer of {self._buffer} frames overflowed at "
                            f"{self._rate:g} frames/s: the grabbing stopped"
                        )
                    self._frames.append((frame, stamp))
                    self._lock.notify_all()
                next_time = max(next_time + period, time.monotonic())
                self._stop.wait(next_time - time.monotonic())
        except Exception as exc:  # kept for the next read: nothing fails silently
            with self._lock:
                self._fault = exc
                self._lock.notify_all()
