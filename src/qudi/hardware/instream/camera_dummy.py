"""ImageStreamDummy: a simulated streaming camera for demos and tests, with no thread of its own.

Example config (copy into the ``hardware:`` section)::

    camera_dummy:
        module.Class: 'instream.camera_dummy.ImageStreamDummy'
        options:
            frame_shape: [512, 512]     # optional: (height, width) in pixels, 8 to 4096 each
            data_type: 'uint16'         # optional: any numpy integer or float type
            frame_rate: 100.0           # optional: frames per second at activation (0.1 to 10 000)
            frame_buffer_size: 64       # optional: frames the camera's own buffer holds
            seed: null                  # optional: an integer gives the same images each run

Frames show a Gaussian spot moving on a Lissajous path over a readout offset of 100 counts,
with shot noise (Poisson) and read noise (3 counts rms). They arrive as wall-clock time passes
at the frame rate, into a buffer of ``frame_buffer_size`` frames; not read in time, the buffer
overflows: the acquisition stops at that moment and the next read raises, as a real camera's
would. Every frame carries its index in its first 8 bytes (pixels ``(0, 0)`` to ``(0, 3)`` of
a uint16 frame, little-endian; read it back with ``qudi.util.instream.image_frames
.frame_indices``), so consumers can prove they saw every frame exactly once, and its time in
seconds since the start in the timestamp buffer.

Consumers read the camera through ``instream.camera_buffer.ImageStreamBuffer`` (one per
consumer) or ``instream.camera_roi.ImageRoiStreamer``: they share one ring of frames.
"""

from __future__ import annotations

import threading

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.util.constraints import ScalarConstraint

from qudi.interface.image_stream_interface import (
    ImageStreamConstraints,
    ImageStreamInterface,
    check_frame_buffers,
)
from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream.arrays import check_count, option_error
from qudi.util.instream.camera_source import (
    MAX_FRAME_RATE,
    MIN_FRAME_RATE,
    SimulatedCameraSource,
)

__all__ = ["ImageStreamDummy"]

FRAME_SIDE_LIMITS = (8, 4096)
FRAME_BUFFER_LIMITS = (2, 4096)


class ImageStreamDummy(ImageStreamInterface):
    """A simulated streaming camera; see the module docstring for its example config."""

    _frame_shape_option = ConfigOption("frame_shape", default=[512, 512])
    _data_type = ConfigOption("data_type", default="uint16")
    _frame_rate_option = ConfigOption("frame_rate", default=100.0)
    _frame_buffer_option = ConfigOption("frame_buffer_size", default=64)
    _seed = ConfigOption("seed", default=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._source: SimulatedCameraSource | None = None
        self._constraints: ImageStreamConstraints | None = None
        self._state_lock = threading.Lock()

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        shape = self._checked_shape()
        dtype = self._checked_dtype()
        seed = self._seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise option_error("seed", seed, "use null or a whole number >= 0")
        constraints = ImageStreamConstraints(
            frame_shape=shape,
            data_type=dtype,
            frame_rate=ScalarConstraint(
                default=100.0, bounds=(MIN_FRAME_RATE, MAX_FRAME_RATE), increment=0.0
            ),
            frame_buffer_size=ScalarConstraint(
                default=64, bounds=FRAME_BUFFER_LIMITS, increment=1, enforce_int=True
            ),
            streaming_modes=(StreamingMode.CONTINUOUS, StreamingMode.FINITE),
            pixel_unit="counts",
        )
        rate = self._frame_rate_option
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise option_error("frame_rate", rate, "use a number of frames per second")
        if not MIN_FRAME_RATE <= rate <= MAX_FRAME_RATE:
            raise option_error(
                "frame_rate", rate, f"use {MIN_FRAME_RATE:g} to {MAX_FRAME_RATE:g} frames/s"
            )
        size = self._frame_buffer_option
        low, high = FRAME_BUFFER_LIMITS
        if isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high:
            raise option_error(
                "frame_buffer_size", size, f"use a whole number of frames {low} to {high}"
            )
        self._source = SimulatedCameraSource(
            shape, dtype, seed=seed, frame_rate=float(rate), frame_buffer_size=size
        )
        self._constraints = constraints

    def on_deactivate(self) -> None:
        self.stop_stream()
        self._source = None

    # --------------------------------------------------------------------------- settings
    @property
    def constraints(self) -> ImageStreamConstraints:
        if self._constraints is None:
            raise RuntimeError(f"camera '{self.module_name}' is not active")
        return self._constraints

    @property
    def frame_rate(self) -> float:
        return self._active_source().frame_rate

    @property
    def frame_buffer_size(self) -> int:
        return self._active_source().frame_buffer_size

    @property
    def streaming_mode(self) -> StreamingMode:
        finite = self._active_source().finite
        return StreamingMode.FINITE if finite else StreamingMode.CONTINUOUS

    @property
    def available_frames(self) -> int:
        try:
            return self._active_source().available_frames
        finally:
            self._unlock_if_stopped()

    def configure(
        self,
        frame_rate: float,
        frame_buffer_size: int,
        streaming_mode: StreamingMode | int | str = StreamingMode.CONTINUOUS,
    ) -> None:
        """Set frame rate, buffer size (frames) and mode; refused while streaming.

        Raises
        ------
        ValueError, TypeError
            Naming the argument, its value and what is valid; nothing changes then.
        RuntimeError
            While the camera streams.
        """
        source = self._active_source()
        mode = StreamingMode.coerce(streaming_mode, "streaming_mode")
        if mode not in self.constraints.streaming_modes:
            raise ValueError(f"streaming_mode {mode.name} is not supported: CONTINUOUS or FINITE")
        low, high = FRAME_BUFFER_LIMITS
        size = check_count(
            frame_buffer_size, high, "frame_buffer_size", f"{high} frames", minimum=low
        )
        with self._state_lock:
            if self.module_state() == "locked":
                raise RuntimeError("cannot configure the camera while it streams; stop it first")
            source.configure(frame_rate, size, mode.name)

    # ----------------------------------------------------------------------- acquisition
    def start_stream(self) -> None:
        """Start streaming (harmless while streaming)."""
        source = self._active_source()
        with self._state_lock:
            if self.module_state() == "locked":
                return
            source.start_stream()
            self._show_streaming(True)

    def stop_stream(self) -> None:
        """Stop streaming; frames already acquired stay readable."""
        with self._state_lock:
            if self._source is None:
                return
            self._source.stop_stream()
            self._show_streaming(False)

    def read_frames_into_buffer(
        self,
        frame_buffer: np.ndarray,
        frames: int,
        timestamp_buffer: np.ndarray | None = None,
        timeout: float | None = None,
    ) -> None:
        """Block until ``frames`` frames are read (see the interface); raises
        ``CameraOverflowError`` after an overflow, ``StreamTimeoutError`` on timeout."""
        source = self._active_source()
        try:
            source.read_frames_into_buffer(frame_buffer, frames, timestamp_buffer, timeout)
        finally:
            self._unlock_if_stopped()

    def read_available_frames_into_buffer(
        self, frame_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        source = self._active_source()
        out, stamps, room = check_frame_buffers(
            frame_buffer, timestamp_buffer, source.frame_shape, source.dtype
        )
        count = min(self.available_frames, room)
        if count:
            source.read_frames_into_buffer(out, count, stamps)
        return count

    def read_latest_frame(self) -> tuple[np.ndarray, float | None]:
        return self._active_source().newest_frame()

    def simulate_fault(self, message: str = "simulated camera failure") -> None:
        """Make the camera's next call fail with ``RuntimeError(message)``."""
        self._active_source().simulate_fault(RuntimeError(message))

    # -------------------------------------------------------------------------- internals
    def _active_source(self) -> SimulatedCameraSource:
        if self._source is None:
            raise RuntimeError(f"camera '{self.module_name}' is not active")
        return self._source

    def _unlock_if_stopped(self) -> None:
        """After an overflow or fault the camera has stopped: so does the module."""
        source = self._source
        if source is not None and not source.running and self.module_state() == "locked":
            with self._state_lock:
                self._show_streaming(False)

    def _checked_shape(self) -> tuple[int, int]:
        shape = self._frame_shape_option
        low, high = FRAME_SIDE_LIMITS
        valid = f"use [height, width] in pixels, each a whole number from {low} to {high}"
        if not isinstance(shape, (list, tuple)) or len(shape) != 2:
            raise option_error("frame_shape", shape, valid)
        if not all(
            isinstance(n, int) and not isinstance(n, bool) and low <= n <= high for n in shape
        ):
            raise option_error("frame_shape", shape, valid)
        return int(shape[0]), int(shape[1])

    def _checked_dtype(self) -> np.dtype:
        valid = "use a numpy integer or float type such as 'uint16', 'uint8' or 'float32'"
        try:
            dtype = np.dtype(self._data_type)
        except TypeError:
            raise option_error("data_type", self._data_type, valid) from None
        if dtype.kind not in "uif" or dtype.itemsize > 8:
            raise option_error("data_type", self._data_type, valid)
        return dtype
