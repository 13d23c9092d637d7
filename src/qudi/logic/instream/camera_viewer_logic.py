"""CameraViewerLogic: the newest image of a camera stream at a bounded frame rate, and its health.

Example config (copy into the ``logic:`` section)::

    camera_viewer_logic:
        module.Class: 'instream.camera_viewer_logic.CameraViewerLogic'
        options:
            max_frame_rate: 30                  # optional: images shown per second (1 to 120)
            start_viewing_on_activation: False  # optional: start at once
        connect:
            camera: 'camera_buffer_viewer'      # an instream.camera_buffer.ImageStreamBuffer
            roi_streamer: 'camera_roi'          # optional: its regions are shown and moved

A timer in the logic's thread takes, up to ``max_frame_rate`` times a second, every frame its
buffer holds (the buffer's cursor keeps up with the stream) and shows the newest: a slow
screen drops frames to draw, never frames of the stream. Give its buffer
``allow_overwrite: True``: a viewer that cannot keep up (a busy machine) then skips frames
and counts them instead of stopping. ``sigImageUpdated(image, status)`` carries a copy of the
newest frame and ``status``: ``frame_time`` (s since the camera's start) and
``first_frame_time`` (of this run's first frame),
``shown_rate`` (images shown per second), ``stream_rate`` (frames per second arriving),
``frames_lost`` (by this viewer's buffer) and ``frames_seen`` (this run).
"""

from __future__ import annotations

import collections
import time

import numpy as np
from PySide6 import QtCore
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.core.module import LogicBase

from qudi.util.instream.arrays import option_error

__all__ = ["CameraViewerLogic"]

_QUEUED = QtCore.Qt.ConnectionType.QueuedConnection
_DRAIN_FRAMES = 8  # frames taken per read while draining
_RATE_WINDOW_S = 1.0


class CameraViewerLogic(LogicBase):
    """Shows a camera stream; see the module docstring for its config."""

    _camera = Connector(name="camera", interface="ImageStreamInterface")
    _roi_streamer = Connector(name="roi_streamer", interface="DataInStreamInterface", optional=True)
    _max_frame_rate = ConfigOption("max_frame_rate", default=30)
    _start_on_activation = ConfigOption("start_viewing_on_activation", default=False)

    sigImageUpdated = QtCore.Signal(object, dict)  # image [H, W], status
    sigViewingChanged = QtCore.Signal(bool)
    _sigStart = QtCore.Signal(int)
    _sigStop = QtCore.Signal()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._timer: QtCore.QTimer | None = None
        self._scratch = np.empty(0)
        self._times = np.empty(0)
        self._image: np.ndarray | None = None
        self._status: dict = {}
        self._shown: collections.deque = collections.deque()
        self._seen = 0
        self._first_time: float | None = None

    def on_activate(self) -> None:
        rate = self._max_frame_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 1 <= rate <= 120:
            raise option_error(
                "max_frame_rate", rate, "use a number of images per second, 1 to 120"
            )
        if not isinstance(self._start_on_activation, bool):
            raise option_error(
                "start_viewing_on_activation", self._start_on_activation, "use True or False"
            )
        camera = self._camera()
        shape = tuple(camera.frame_shape)
        self._scratch = np.empty((_DRAIN_FRAMES, *shape), camera.constraints.data_type)
        self._times = np.empty(_DRAIN_FRAMES)
        self._image = np.zeros(shape, camera.constraints.data_type)
        self._status = self._new_status(None, None)
        self._timer = QtCore.QTimer(interval=max(1, round(1000 / rate)))
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)  # coarse ones run 5 % late
        self._timer.timeout.connect(self._show_next, _QUEUED)
        self._sigStart.connect(self._timer.start, _QUEUED)
        self._sigStop.connect(self._timer.stop, _QUEUED)
        if self._start_on_activation:
            QtCore.QTimer.singleShot(0, self.start_viewing)

    def on_deactivate(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer.timeout.disconnect()
            self._sigStart.disconnect()
            self._sigStop.disconnect()
            self._timer = None
        try:
            self._camera().stop_stream()
        finally:
            self._scratch = np.empty(0)

    # ------------------------------------------------------------------------- public API
    @property
    def viewing(self) -> bool:
        return self.module_state() == "locked"

    @property
    def image(self) -> np.ndarray | None:
        """The newest image shown (a copy owned by the logic)."""
        return self._image

    @property
    def status(self) -> dict:
        return dict(self._status)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self._camera().frame_shape)

    @property
    def rois(self) -> dict[str, tuple[int, ...]]:
        """The ROI streamer's regions (name -> row, column, height, width); none without one."""
        streamer = self._roi_streamer()
        return dict(streamer.rois) if streamer is not None else {}

    def set_roi(self, name: str, region) -> None:
        """Move region ``name`` of the ROI streamer (see ``ImageRoiStreamer.set_roi``)."""
        streamer = self._roi_streamer()
        if streamer is None:
            raise RuntimeError(
                "this viewer has no ROI streamer connected (connector 'roi_streamer')"
            )
        streamer.set_roi(name, [int(v) for v in region])

    def start_viewing(self) -> None:
        """Start the camera stream (for this viewer) and show its frames; harmless if viewing."""
        if self.viewing:
            return
        self._camera().start_stream()
        self.module_state.lock()
        self._shown.clear()
        self._seen = 0
        self._first_time = None
        self._sigStart.emit(self._timer.interval() if self._timer is not None else 33)
        self.sigViewingChanged.emit(True)

    def stop_viewing(self) -> None:
        """Stop showing (and this viewer's stream; the camera stops with its last consumer)."""
        if not self.viewing:
            return
        self._sigStop.emit()
        try:
            self._camera().stop_stream()
        finally:
            self.module_state.unlock()
            self.sigViewingChanged.emit(False)

    # -------------------------------------------------------------------------- internals
    def _show_next(self) -> None:
        """Runs in the logic's thread: drain the buffer, show the newest frame."""
        if not self.viewing:
            return
        camera = self._camera()
        newest = None
        try:
            while True:
                got = camera.read_available_frames_into_buffer(self._scratch, self._times)
                if got:
                    if self._first_time is None:
                        self._first_time = float(self._times[0])
                    newest = got - 1
                    self._seen += got
                    self._image = self._scratch[newest].copy()
                    stamp = float(self._times[newest])
                if got < len(self._scratch):
                    break
        except Exception as exc:
            self.log.error(f"the camera stream stopped: {exc}")
            self.stop_viewing()
            return
        if newest is None:
            return
        now = time.monotonic()
        self._shown.append(now)
        while self._shown and self._shown[0] < now - _RATE_WINDOW_S:
            self._shown.popleft()
        self._status = self._new_status(self._image, stamp)
        self.sigImageUpdated.emit(self._image, dict(self._status))

    def _new_status(self, image: np.ndarray | None, stamp: float | None) -> dict:
        camera = self._camera()
        return {
            "frame_time": stamp,
            "first_frame_time": self._first_time,
            "shown_rate": len(self._shown) / _RATE_WINDOW_S,
            "stream_rate": float(getattr(camera, "measured_frame_rate", camera.frame_rate)),
            "frames_lost": int(camera.lost_frames),
            "frames_seen": self._seen,
        }
