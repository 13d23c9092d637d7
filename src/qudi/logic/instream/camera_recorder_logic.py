"""CameraRecorderLogic: records a camera stream to HDF5 files, one chunk per frame.

Example config (copy into the ``logic:`` section)::

    camera_recorder_logic:
        module.Class: 'instream.camera_recorder_logic.CameraRecorderLogic'
        options:
            compression: null        # optional: null, 'gzip' or 'lzf' (lossless, per frame)
            shuffle: False           # optional: HDF5's byte shuffle before compression
        connect:
            camera: 'camera_buffer_recorder'   # an instream.camera_buffer.ImageStreamBuffer

Each recording drains its buffer's own cursor from a recorder thread
(:class:`~qudi.util.instream.image_recorder.ImageRecorder`): memory stays flat, a crash leaves
a file that opens, and lost frames are never hidden (with the buffer's ``allow_overwrite:
False``, the default, the first loss ends the recording with status ``failed``; with True,
every gap is noted in ``/gaps``). Files go to qudi's data directory of this module unless a
path is given: ``<data dir>/camera_<YYYYmmdd-HHMMSS-ffffff>.h5``.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from PySide6 import QtCore
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.core.module import LogicBase

from qudi.util.instream.arrays import option_error
from qudi.util.instream.image_recorder import COMPRESSIONS, ImageRecorder, ImageRecordingSummary

__all__ = ["CameraRecorderLogic"]


class CameraRecorderLogic(LogicBase):
    """Records a camera stream; see the module docstring for its config."""

    _camera = Connector(name="camera", interface="ImageStreamInterface")
    _compression = ConfigOption("compression", default=None)
    _shuffle = ConfigOption("shuffle", default=False)

    sigRecordingChanged = QtCore.Signal(bool, str)  # recording, file path

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._recorder: ImageRecorder | None = None
        self._last: ImageRecordingSummary | None = None

    def on_activate(self) -> None:
        if self._compression not in COMPRESSIONS:
            raise option_error("compression", self._compression, f"use one of {list(COMPRESSIONS)}")
        if not isinstance(self._shuffle, bool) or (self._shuffle and self._compression is None):
            raise option_error("shuffle", self._shuffle, "use False, or True with a compression")

    def on_deactivate(self) -> None:
        self.stop_recording()

    @property
    def recording(self) -> bool:
        recorder = self._recorder
        return recorder is not None and recorder.running

    @property
    def frames_recorded(self) -> int:
        recorder = self._recorder
        return recorder.frames_written if recorder is not None else 0

    @property
    def last_recording(self) -> ImageRecordingSummary | None:
        """The summary of the recording that ended last."""
        return self._last

    def start_recording(self, path: str | os.PathLike | None = None) -> str:
        """Start this recorder's stream and record it to ``path`` (a new file); returns it.

        Raises
        ------
        RuntimeError
            While a recording runs.
        FileExistsError, FileNotFoundError
            For a ``path`` that exists, or whose directory does not.
        """
        if self.recording:
            raise RuntimeError(f"a recording to '{self._recorder.path}' runs; stop it first")
        if path is None:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            directory = Path(self.module_default_data_dir)
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"camera_{stamp}.h5"
        camera = self._camera()
        options = {"compression": self._compression, "shuffle": self._shuffle}
        camera.start_stream()
        try:
            recorder = camera.open_recorder(path, on_finished=self._finished, **options)
            recorder.start()
        except BaseException:
            camera.stop_stream()
            raise
        self._recorder = recorder
        self.module_state.lock()
        self.sigRecordingChanged.emit(True, str(recorder.path))
        return str(recorder.path)

    def stop_recording(self) -> ImageRecordingSummary | None:
        """Stop the recording (what arrived before the call is recorded); returns its summary."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        try:
            summary = recorder.stop()
        finally:
            self._camera().stop_stream()
            if self.module_state() == "locked":
                self.module_state.unlock()
        self._last = summary
        self.sigRecordingChanged.emit(False, str(recorder.path))
        return summary

    def _finished(self, summary: ImageRecordingSummary) -> None:
        """In the recorder's thread: a recording that ended by itself (loss, stream end)."""
        self._last = summary
        if summary.error is not None:
            self.log.warning(f"the recording to '{summary.path}' ended: {summary.error}")
