"""ImageStreamInterface: the contract of a camera that streams frames into qudi.

A sibling of :class:`~qudi.interface.instream_interface.DataInStreamInterface`, not an
extension of it with a ``sample_shape``. Why a sibling:

- qudi's ``Connector`` matches modules by interface *class name*. A camera that claimed to be
  a ``DataInStreamInterface`` would connect to every consumer of channel streams (the
  time-series logic, qudi-iqo-modules' logic and GUI), which would take a 512 x 512 frame for
  262 144 channels and ask for a million-sample buffer (512 GiB of frames). A sibling name
  makes that wiring mistake impossible: configs connect cameras to image consumers only.
- The channel contract's words do not fit frames: ``active_channels`` with a unit each,
  ``channel_buffer_size`` "per channel", flat interleaved buffers, ``read_single_point``. A
  frame stream has a frame shape, a pixel type and unit, a frame rate and a frame buffer.
- The data path *is* the same: a frame stream rides the same ring (one frame per sample, a
  float64 time per frame) and its readers have the same policies (per-consumer overwrite or
  raise, exact lost counts, timeouts, reference-counted start and stop, busy errors that name
  who runs; see :mod:`qudi.util.instream.image_hub`). A camera's ROI statistics *are* a
  channel stream: ``instream.camera_roi.ImageRoiStreamer`` turns frames into one.

Conventions: frames are ``[frames, height, width]`` C-contiguous arrays (axis 0 is time; a
flat buffer of the same size is accepted); reads consume; blocking reads take a ``timeout``
in seconds; every frame has a time (float64 seconds since the run's start), so the timing is
always ``SampleTiming.TIMESTAMP``; frames lost are never hidden (reads raise, and
:attr:`~ImageStreamInterface.lost_frames` counts them).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable

import numpy as np
from qudi.core.module import Base
from qudi.util.constraints import ScalarConstraint

from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream import arrays
from qudi.util.instream.arrays import check_count

__all__ = ["ImageStreamConstraints", "ImageStreamInterface", "check_frame_buffers"]


class ImageStreamConstraints:
    """What a streaming camera can do: frame shape, pixel type and unit, rates, buffers.

    Parameters
    ----------
    frame_shape : tuple of int
        ``(height, width)`` of every frame, in pixels.
    data_type : type, numpy.dtype or str
        The pixels' numpy type (stored as a scalar type, e.g. ``np.uint16``).
    frame_rate : qudi.util.constraints.ScalarConstraint
        Allowed frame rates in frames per second.
    frame_buffer_size : qudi.util.constraints.ScalarConstraint
        Allowed device buffer sizes, in frames.
    streaming_modes : iterable of StreamingMode, int or str
        The modes the camera supports (default: CONTINUOUS only).
    pixel_unit : str
        The pixels' unit (default ``counts``).

    Raises
    ------
    TypeError, ValueError
        For a shape that is not two positive integers, or constraints of the wrong kind.
    """

    def __init__(
        self,
        frame_shape: tuple[int, int],
        data_type: type | np.dtype | str,
        frame_rate: ScalarConstraint,
        frame_buffer_size: ScalarConstraint,
        streaming_modes: Iterable[StreamingMode | int | str] = (StreamingMode.CONTINUOUS,),
        pixel_unit: str = "counts",
    ):
        shape = tuple(frame_shape)
        if len(shape) != 2 or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in shape
        ):
            raise ValueError(f"frame_shape must be (height, width) in pixels, got {frame_shape!r}")
        for name, value in (("frame_rate", frame_rate), ("frame_buffer_size", frame_buffer_size)):
            if not isinstance(value, ScalarConstraint):
                raise TypeError(f"{name} must be a qudi.util.constraints.ScalarConstraint")
        self._frame_shape = (int(shape[0]), int(shape[1]))
        self._data_type = np.dtype(data_type).type
        self._frame_rate = frame_rate
        self._frame_buffer_size = frame_buffer_size
        self._streaming_modes = [StreamingMode.coerce(m, "streaming mode") for m in streaming_modes]
        self._pixel_unit = str(pixel_unit)

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return self._frame_shape

    @property
    def data_type(self) -> type:
        """numpy scalar type of the pixels (e.g. ``np.uint16``)."""
        return self._data_type

    @property
    def frame_rate(self) -> ScalarConstraint:
        """Allowed frame rates in frames per second."""
        return self._frame_rate

    @property
    def frame_buffer_size(self) -> ScalarConstraint:
        """Allowed device buffer sizes, in frames."""
        return self._frame_buffer_size

    @property
    def streaming_modes(self) -> list[StreamingMode]:
        return list(self._streaming_modes)

    @property
    def pixel_unit(self) -> str:
        return self._pixel_unit


def check_frame_buffers(
    frame_buffer: object,
    timestamp_buffer: object,
    frame_shape: tuple[int, int],
    dtype: np.dtype | type,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """A read call's buffers, checked under the interface's argument names.

    Returns the frames as a ``[frames, H, W]`` view, the timestamps (or None) and how many
    frames fit in both. Raises ``TypeError``/``ValueError`` naming the argument otherwise.
    """
    return arrays.check_read_buffers(
        frame_buffer,
        timestamp_buffer,
        tuple(frame_shape),
        np.dtype(dtype),
        True,
        names=("frame_buffer", "timestamp_buffer"),
    )


class ImageStreamInterface(Base):
    """A camera (or interfuse) that streams frames into qudi; see the module docstring.

    A streaming module is ``locked`` from :meth:`start_stream` until :meth:`stop_stream`.
    """

    @property
    @abstractmethod
    def constraints(self) -> ImageStreamConstraints:
        """What the camera can do."""

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(height, width)`` of every frame."""
        return self.constraints.frame_shape

    @property
    @abstractmethod
    def frame_rate(self) -> float:
        """The configured frame rate in frames per second, as the camera set it."""

    @property
    @abstractmethod
    def frame_buffer_size(self) -> int:
        """Device buffer size in frames (FINITE: the frames to acquire)."""

    @property
    @abstractmethod
    def streaming_mode(self) -> StreamingMode:
        """The configured streaming mode."""

    @property
    @abstractmethod
    def available_frames(self) -> int:
        """Frames a read could return now without waiting."""

    @property
    def lost_frames(self) -> int:
        """Frames lost since the stream started (optional: 0 if none can be lost silently)."""
        return 0

    def _show_streaming(self, streaming: bool) -> None:
        """Lock the module while it streams and unlock it when it stops (safe to repeat)."""
        locked = self.module_state() == "locked"
        if streaming and not locked:
            self.module_state.lock()
        elif locked and not streaming:
            self.module_state.unlock()

    @abstractmethod
    def configure(
        self,
        frame_rate: float,
        frame_buffer_size: int,
        streaming_mode: StreamingMode | int | str = StreamingMode.CONTINUOUS,
    ) -> None:
        """Configure the stream while it is stopped; a refused call changes nothing.

        Raises
        ------
        TypeError, ValueError
            Naming the argument, its value and what is valid.
        """

    @abstractmethod
    def start_stream(self) -> None:
        """Start acquiring (harmless while running)."""

    @abstractmethod
    def stop_stream(self) -> None:
        """Stop acquiring; frames already acquired stay readable."""

    @abstractmethod
    def read_frames_into_buffer(
        self,
        frame_buffer: np.ndarray,
        frames: int,
        timestamp_buffer: np.ndarray | None = None,
        timeout: float | None = None,
    ) -> None:
        """Block until ``frames`` frames are copied into ``frame_buffer`` (``[n, H, W]`` or
        flat, C-contiguous, of ``constraints.data_type``) and their times into
        ``timestamp_buffer`` (float64, optional).

        Raises ``TimeoutError`` when ``timeout`` (s) expires (nothing consumed), and an error
        when the stream stops or fails while waiting.
        """

    @abstractmethod
    def read_available_frames_into_buffer(
        self, frame_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        """Read the frames available now, never more than fit; returns how many."""

    def read_frames(self, frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Read into new arrays: ``(frames[n, H, W], times[n])``; None reads what is there.

        Raises ``ValueError`` for more frames than ``frame_buffer_size`` (read in parts).
        """
        if frames is None:
            frames = self.available_frames
        else:
            frames = check_count(
                frames, int(self.frame_buffer_size), "frames", "frame_buffer_size (read in parts)"
            )
        data = np.empty((frames, *self.frame_shape), self.constraints.data_type)
        times = np.empty(frames)
        if frames:
            self.read_frames_into_buffer(data, frames, times)
        return data, times

    @abstractmethod
    def read_latest_frame(self) -> tuple[np.ndarray, float | None]:
        """The newest frame ``(frame[H, W], time | None)`` without consuming anything."""
