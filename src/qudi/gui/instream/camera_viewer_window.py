"""CameraViewerWindow: the widgets of the camera viewer (image with levels/LUT, ROIs, status).

No logic here: :mod:`qudi.gui.instream.camera_viewer_gui` wires it to the viewer logic. The
image is a pyqtgraph ``ImageView`` (histogram with adjustable levels and colour map), shown
row-major (row 0 at the top, as cameras and numpy index images); regions of interest are
``RectROI`` handles in pixel coordinates (x = column, y = row).
"""

from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

__all__ = ["CameraViewerWindow"]

_ROI_COLOURS = ("#ffb000", "#00c0ff", "#ff4080", "#80ff40")
_HISTOGRAM_INTERVAL_S = 0.25


class CameraViewerWindow(QtWidgets.QMainWindow):
    """Image, toolbar (start/stop, record, auto levels) and a status line."""

    def __init__(self, title: str):
        super().__init__()
        self.setWindowTitle(title)
        self.resize(760, 700)
        self.image_view = pg.ImageView()
        self.image_view.ui.roiBtn.hide()  # its ROI plots a profile; ours feed a time series
        self.image_view.ui.menuBtn.hide()
        self.image_view.setColorMap(pg.colormap.get("viridis"))  # the histogram's menu changes it
        # The histogram is recomputed a few times a second, not for every image: it costs
        # several times the drawing of the image itself (see benchmarks/frames.py).
        self._histogram = self.image_view.ui.histogram
        self.image_view.imageItem.sigImageChanged.disconnect(self._histogram.imageChanged)
        self._histogram_due = 0.0
        self._shape: tuple[int, ...] | None = None
        self.setCentralWidget(self.image_view)
        toolbar = self.addToolBar("camera")
        toolbar.setObjectName("camera_toolbar")
        self.action_start = QtGui.QAction("Start", self, checkable=True)
        self.action_record = QtGui.QAction("Record", self, checkable=True)
        self.action_auto_levels = QtGui.QAction("Auto levels", self, checkable=True)
        self.action_auto_levels.setChecked(True)
        for action in (self.action_start, self.action_record, self.action_auto_levels):
            toolbar.addAction(action)
        self.status_label = QtWidgets.QLabel("stopped")
        self.status_label.setObjectName("camera_status")
        self.statusBar().addPermanentWidget(self.status_label, 1)
        self.rois: dict[str, pg.RectROI] = {}

    def show_image(self, image, auto_levels: bool) -> None:
        """Show ``image`` ``[rows, columns]``; levels follow it if ``auto_levels``."""
        now = time.monotonic()
        if image.shape != self._shape:  # the first image: ImageView sets everything up
            self._shape = image.shape
            self.image_view.setImage(image, autoRange=False, autoLevels=True, axes={"y": 0, "x": 1})
            self._histogram_due = 0.0
        else:  # then only the image item (x is the column: the transposed view, no copy)
            item = self.image_view.imageItem
            item.setImage(image.T, autoLevels=False)
            if auto_levels:
                sample = image[::4, ::4]
                low, high = float(sample.min()), float(sample.max())
                item.setLevels((low, high if high > low else low + 1))
        if now >= self._histogram_due:
            self._histogram.imageChanged(autoLevel=False)  # histogram, and region = levels
            self._histogram_due = now + _HISTOGRAM_INTERVAL_S

    def fit_view(self, shape: tuple[int, int]) -> None:
        """Show the whole frame."""
        rows, columns = shape
        self.image_view.getView().setRange(xRange=(0, columns), yRange=(0, rows), padding=0.02)

    def add_roi(self, name: str, region, moved) -> None:
        """A handle for region ``name`` = ``(row, column, height, width)``; ``moved(name,
        region)`` is called when the user has dragged or resized it."""
        row, column, rows, columns = region
        colour = _ROI_COLOURS[len(self.rois) % len(_ROI_COLOURS)]
        roi = pg.RectROI((column, row), (columns, rows), pen=pg.mkPen(colour, width=2), snapSize=1)
        roi.translateSnap = roi.scaleSnap = True
        label = pg.TextItem(name, color=colour, anchor=(0, 1))
        label.setParentItem(roi)
        self.image_view.getView().addItem(roi)
        roi.sigRegionChangeFinished.connect(lambda r, n=name: moved(n, self.roi_region(n)))
        self.rois[name] = roi

    def roi_region(self, name: str) -> tuple[int, int, int, int]:
        roi = self.rois[name]
        x, y = roi.pos()
        width, height = roi.size()
        return int(round(y)), int(round(x)), max(1, int(round(height))), max(1, int(round(width)))

    def set_roi_region(self, name: str, region) -> None:
        row, column, rows, columns = region
        roi = self.rois[name]
        roi.setPos((column, row), finish=False, update=False)
        roi.setSize((columns, rows), finish=False)

    def show_status(self, text: str) -> None:
        self.status_label.setText(text)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt's name)
        return QtCore.QSize(760, 700)
