"""SimulatedCameraSource: a clock-paced fake camera that behaves like a streaming device.

Frames "arrive" as wall-clock time passes, at the configured frame rate, into a device
buffer of ``frame_buffer_size`` frames. No thread runs: what has arrived is computed from the
clock whenever the source is asked, and frames are made (by a
:class:`~qudi.util.instream.image_frames.SimulatedCamera`) only when read, straight into the
reader's buffer. If frames are not read before the buffer would overflow, the acquisition
stops at that moment, as a real camera's does, and the next read raises
:class:`CameraOverflowError`; nothing is overwritten, returned twice or made up. Every frame
carries its index since the source was made in its first 8 bytes
(:func:`~qudi.util.instream.image_frames.frame_indices`) and its time in seconds since the
run's start in the timestamp buffer. ``FINITE`` runs stop by themselves after
``frame_buffer_size`` frames. The qudi module ``instream.camera_dummy`` is a thin layer on it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qudi.util.instream.arrays import check_count, check_read_buffers, check_timeout
from qudi.util.instream.errors import StreamTimeoutError
from qudi.util.instream.image_frames import SimulatedCamera

__all__ = ["CameraFormat", "CameraOverflowError", "SimulatedCameraSource"]

MAX_FRAME_RATE = 10_000.0
MIN_FRAME_RATE = 0.1


class CameraOverflowError(RuntimeError):
    """The camera's frame buffer filled up: the acquisition stopped."""


@dataclass(frozen=True)
class CameraFormat:
    """What a consumer needs to know of the frames: pixel type and unit."""

    data_type: type
    pixel_unit: str = "counts"


class SimulatedCameraSource:
    """A fake streaming camera; see the module docstring.

    Parameters
    ----------
    frame_shape, dtype, seed
        As for :class:`~qudi.util.instream.image_frames.SimulatedCamera`.
    frame_rate
        Frames per second (0.1 to 10 000).
    frame_buffer_size
        Frames the device buffer holds (at least 2).
    """

    def __init__(
        self,
        frame_shape: tuple[int, int],
        dtype: npt.DTypeLike = np.uint16,
        *,
        seed: int | None = None,
        frame_rate: float = 100.0,
        frame_buffer_size: int = 64,
    ):
        self.camera = SimulatedCamera(frame_shape, dtype, seed=seed)
        self.frame_shape = self.camera.frame_shape
        self.dtype = self.camera.dtype
        self._lock = threading.Lock()
        self._rate = 1.0
        self._buffer = 2
        self._finite = False
        self.configure(frame_rate, frame_buffer_size, "CONTINUOUS")
        self._running = False
        self._start = 0.0  # monotonic time of the run's first frame
        self._first = 0  # index of the run's first frame
        self._taken = 0  # frames of this run read so far
        self._end: int | None = None  # frames of this run that exist (overflow or finite end)
        self._overflowed = False
        self._fault: BaseException | None = None
        self._next_index = 0

    # ---------------------------------------------------------------------- settings
    @property
    def frame_rate(self) -> float:
        return self._rate

    @property
    def frame_buffer_size(self) -> int:
        return self._buffer

    @property
    def finite(self) -> bool:
        return self._finite

    @property
    def streaming_mode(self) -> str:
        """``"FINITE"`` or ``"CONTINUOUS"``."""
        return "FINITE" if self._finite else "CONTINUOUS"

    @property
    def constraints(self) -> CameraFormat:
        return CameraFormat(self.dtype.type)

    @property
    def running(self) -> bool:
        with self._lock:  # an overflow not seen yet is raised by the next read, not here
            return self._running and not self._finished()

    def configure(self, frame_rate: float, frame_buffer_size: int, streaming_mode: str) -> None:
        """Set rate, buffer and mode (``"CONTINUOUS"`` or ``"FINITE"``) while stopped.

        Raises
        ------
        ValueError, TypeError
            Naming the argument, its value and what is valid; nothing changes then.
        """
        rate = float(frame_rate) if isinstance(frame_rate, (int, float)) else math.nan
        if isinstance(frame_rate, bool) or not MIN_FRAME_RATE <= rate <= MAX_FRAME_RATE:
            raise ValueError(
                f"frame_rate must be a number of frames per second from {MIN_FRAME_RATE:g} to "
                f"{MAX_FRAME_RATE:g}, got {frame_rate!r}"
            )
        size = check_count(frame_buffer_size, 1 << 20, "frame_buffer_size", "2**20", minimum=2)
        mode = str(streaming_mode).upper()
        if mode not in ("CONTINUOUS", "FINITE"):
            raise ValueError(f"streaming_mode must be CONTINUOUS or FINITE, got {streaming_mode!r}")
        if getattr(self, "_running", False):
            raise RuntimeError("the camera streams: stop it before configuring it")
        self._rate, self._buffer, self._finite = rate, size, mode == "FINITE"

    # ----------------------------------------------------------------------- a run
    def start_stream(self) -> None:
        """Start a run (harmless while running)."""
        with self._lock:
            if self._running:
                return
            self._running = True
            self._start = time.monotonic()
            self._first = self._next_index
            self._taken = 0
            self._end = self._buffer if self._finite else None
            self._overflowed = False
            self._fault = None

    def stop_stream(self) -> None:
        """Stop the run; frames already arrived stay readable."""
        with self._lock:
            if self._running:
                self._check_overflow()
                if self._running:
                    self._stop_clock()

    def simulate_fault(self, error: BaseException) -> None:
        """Make the next read raise ``error`` (to try out error handling)."""
        self._fault = error

    @property
    def available_frames(self) -> int:
        """Frames waiting in the device buffer; raises once if it overflowed (or a fault was
        simulated), as a real camera's next call would."""
        with self._lock:
            return self._pending()

    def read_frames_into_buffer(
        self,
        frame_buffer: np.ndarray,
        frames: int,
        timestamp_buffer: np.ndarray | None = None,
        timeout: float | None = None,
    ) -> None:
        """Block until ``frames`` frames are there, then fill them into ``frame_buffer``.

        Raises
        ------
        TypeError, ValueError
            For refused buffers or counts (nothing is read).
        CameraOverflowError
            Once the buffer overflowed and its frames are read (the run stopped then).
        StreamTimeoutError
            If the frames did not arrive within ``timeout`` seconds (nothing is read).
        RuntimeError
            If the camera stopped with fewer frames left.
        """
        out, stamps, room = check_read_buffers(
            frame_buffer,
            timestamp_buffer,
            self.frame_shape,
            self.dtype,
            True,
            names=("frame_buffer", "timestamp_buffer"),
        )
        count = check_count(frames, min(room, self._buffer), "frames", "what fits (and the buffer)")
        limit = check_timeout(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            with self._lock:
                have = self._pending()
                if have >= count:
                    self._take(out[:count], None if stamps is None else stamps[:count])
                    return
                if not self._running or self._finished():
                    raise RuntimeError(
                        f"the camera is stopped with {have} of {count} requested frames left"
                    )
                wait = (self._taken + count) / self._rate - (time.monotonic() - self._start)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise StreamTimeoutError(
                    f"{count} frames did not arrive within {limit} s ({have} there); nothing "
                    "was read"
                )
            pause = max(wait, 1e-4)
            time.sleep(pause if deadline is None else min(pause, max(0.0, deadline - now)))

    def newest_frame(self) -> tuple[np.ndarray, float]:
        """The newest frame that arrived (a new array; nothing is consumed) and its time."""
        with self._lock:  # within the buffer: an overflow not seen yet is the next read's
            last = max(min(self._arrived(), self._taken + self._buffer), 1) - 1
        frame = np.empty((1, *self.frame_shape), self.dtype)
        self.camera.render(frame, self._first + last)
        return frame[0], last / self._rate

    # ------------------------------------------------------------------- internals
    def _arrived(self) -> int:
        """Frames of this run that have arrived so far (the buffer's end, after overflow)."""
        if not self._running:
            return self._end if self._end is not None else 0
        due = int((time.monotonic() - self._start) * self._rate)
        return due if self._end is None else min(due, self._end)

    def _finished(self) -> bool:
        return self._end is not None and self._arrived() >= self._end

    def _check_overflow(self) -> bool:
        """Stop the run at the moment the buffer filled, if it did (like a real camera);
        True the first time this is seen."""
        fresh = self._running and not self._overflowed and self._end is None
        if fresh and self._arrived() - self._taken > self._buffer:
            self._overflowed = True
            self._end = self._taken + self._buffer
            self._stop_clock()
            return True
        return False

    def _stop_clock(self) -> None:
        """End the run where it is: what arrived stays readable, nothing more comes."""
        self._end = self._arrived()
        self._running = False

    def _pending(self) -> int:
        """Frames waiting; raise a simulated fault or a fresh overflow (once)."""
        if self._fault is not None:
            fault, self._fault = self._fault, None
            self._stop_clock()
            raise fault
        if self._check_overflow():
            raise CameraOverflowError(self._overflow_message())
        return self._arrived() - self._taken

    def _overflow_message(self) -> str:
        return (
            f"the camera's buffer of {self._buffer} frames overflowed at "
            f"{self._rate:g} frames/s (read more often, or give it a larger frame_buffer_size); "
            "the acquisition stopped"
        )

    def _take(self, out: np.ndarray, stamps: np.ndarray | None) -> None:
        count = len(out)
        self.camera.render(out, self._first + self._taken)
        if stamps is not None:
            stamps[:] = (self._taken + np.arange(count)) / self._rate
        self._taken += count
        self._next_index = max(self._next_index, self._first + self._taken)
