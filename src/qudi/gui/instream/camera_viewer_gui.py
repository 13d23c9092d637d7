"""CameraViewerGui: a live camera image with levels/LUT, ROIs, frame rates and lost frames.

Example config (copy into the ``gui:`` section)::

    camera_viewer_gui:
        module.Class: 'instream.camera_viewer_gui.CameraViewerGui'
        connect:
            viewer_logic: 'camera_viewer_logic'
            recorder_logic: 'camera_recorder_logic'   # optional: the Record button

The window shows the newest image of its ``CameraViewerLogic`` (which bounds the frame rate
shown), its histogram with adjustable levels and colour map ("Auto levels" makes the levels
follow each image), and a status line: images shown per second, frames per second arriving,
frames this viewer lost and frames seen. The viewer logic's regions of interest (those of its
ROI streamer) are drawn as handles: drag or resize one, and the ROI streamer's channel in the
time-series window follows at once. "Record" starts and stops a recording of the recorder
logic (its own consumer of the stream); the status line then says where it goes.
"""

from __future__ import annotations

from PySide6 import QtCore
from qudi.core.connector import Connector
from qudi.core.module import GuiBase

from qudi.gui.instream.camera_viewer_window import CameraViewerWindow

__all__ = ["CameraViewerGui"]

_QUEUED = QtCore.Qt.ConnectionType.QueuedConnection


def status_text(status: dict, recording: str | None) -> str:
    """The status line for a viewer status (see ``CameraViewerLogic``)."""
    text = (
        f"shown {status.get('shown_rate', 0.0):.1f} fps · stream "
        f"{status.get('stream_rate', 0.0):.1f} fps · lost {status.get('frames_lost', 0)} · "
        f"frames {status.get('frames_seen', 0)}"
    )
    return f"{text} · recording to {recording}" if recording else text


class CameraViewerGui(GuiBase):
    """Live view of a ``CameraViewerLogic``; see the module docstring."""

    _viewer_logic = Connector(name="viewer_logic", interface="CameraViewerLogic")
    _recorder_logic = Connector(
        name="recorder_logic", interface="CameraRecorderLogic", optional=True
    )

    sigStartViewing = QtCore.Signal()
    sigStopViewing = QtCore.Signal()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._mw: CameraViewerWindow | None = None
        self._connections: list[tuple[object, object]] = []
        self._recording: str | None = None
        self._first_image = True
        self._status: dict = {}

    def on_activate(self) -> None:
        logic = self._viewer_logic()
        mw = self._mw = CameraViewerWindow(title=f"qudi: {self.module_name}")
        self._connect(self.sigStartViewing, logic.start_viewing, _QUEUED)
        self._connect(self.sigStopViewing, logic.stop_viewing, _QUEUED)
        self._connect(logic.sigImageUpdated, self._show_image, _QUEUED)
        self._connect(logic.sigViewingChanged, self._show_viewing, _QUEUED)
        self._connect(mw.action_start.triggered, self._start_stop_clicked)
        self._connect(mw.action_record.triggered, self._record_clicked)
        recorder = self._recorder_logic()
        mw.action_record.setEnabled(recorder is not None)
        if recorder is not None:
            self._connect(recorder.sigRecordingChanged, self._show_recording, _QUEUED)
        for name, region in logic.rois.items():
            mw.add_roi(name, region, self._roi_moved)
        if logic.image is not None:
            mw.show_image(logic.image, True)
        mw.fit_view(logic.frame_shape)
        self._show_viewing(logic.viewing)
        self.show()

    def on_deactivate(self) -> None:
        for signal, slot in reversed(self._connections):
            signal.disconnect(slot)
        self._connections.clear()
        self._mw.close()
        self._mw.deleteLater()
        self._mw = None

    def show(self) -> None:
        self._mw.show()
        self._mw.raise_()
        self._mw.activateWindow()

    @property
    def window(self) -> CameraViewerWindow:
        """The main window (for scripts and tests)."""
        return self._mw

    # -------------------------------------------------------------------------- internals
    def _connect(self, signal, slot, kind=QtCore.Qt.ConnectionType.AutoConnection) -> None:
        signal.connect(slot, kind)
        self._connections.append((signal, slot))

    def _show_image(self, image, status: dict) -> None:
        mw = self._mw
        if mw is None:
            return
        mw.show_image(image, self._first_image or mw.action_auto_levels.isChecked())
        self._first_image = False
        self._status = status
        mw.show_status(status_text(status, self._recording))

    def _show_viewing(self, viewing: bool) -> None:
        mw = self._mw
        mw.action_start.setChecked(viewing)
        mw.action_start.setText("Stop" if viewing else "Start")
        if not viewing:
            mw.show_status("stopped · " + status_text(self._status, self._recording))

    def _start_stop_clicked(self, checked: bool) -> None:
        (self.sigStartViewing if checked else self.sigStopViewing).emit()

    def _record_clicked(self, checked: bool) -> None:
        recorder = self._recorder_logic()
        try:
            if checked:
                recorder.start_recording()
            else:
                recorder.stop_recording()
        except Exception as exc:
            self.log.error(f"recording: {exc}")
            self._mw.action_record.setChecked(recorder.recording)

    def _show_recording(self, recording: bool, path: str) -> None:
        self._recording = path if recording else None
        self._mw.action_record.setChecked(recording)
        self._mw.show_status(status_text(self._status, self._recording))

    def _roi_moved(self, name: str, region) -> None:
        logic = self._viewer_logic()
        try:
            logic.set_roi(name, region)
        except (KeyError, ValueError) as exc:  # outside the frame: back to where it is
            self._mw.show_status(f"region '{name}' not moved: {exc}")
            self._mw.set_roi_region(name, logic.rois[name])
