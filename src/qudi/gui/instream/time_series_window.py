"""The main window of the time series GUI: plot, value readout, toolbar, settings docks.

The window only builds and lays out widgets; the GUI module (time_series_gui.py) wires them to
the logic.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

__all__ = ["TimeSeriesWindow", "show_text"]

# Grid lines are opaque and dim instead of translucent: Qt's raster engine strokes a
# translucent line as a polygon and blends every pixel it covers; with pyqtgraph's translucent
# grid one paint of a two-plot window took ~50 ms of CPU under Xvfb, with this one ~18 ms
# (measured while bringing benchmarks/gui_idle.py down).
_GRID_ALPHA = 0.22  # the grid's colour: this much of the foreground over the background
_GRID_LEVELS = 1  # major and minor grid lines (pyqtgraph fades a third level, opaque cannot)
_REFUSAL_STYLE = "color: #ff5050;"


def _grid_colour() -> QtGui.QColor:
    """An opaque colour that looks like pyqtgraph's translucent grid on the plot background
    (qudi sets the background from its style)."""
    background = pg.mkColor(pg.getConfigOption("background"))
    foreground = pg.mkColor(pg.getConfigOption("foreground"))
    mixed = [
        round(b + _GRID_ALPHA * (f - b))
        for b, f in zip(background.getRgb()[:3], foreground.getRgb()[:3], strict=True)
    ]
    return QtGui.QColor(*mixed)


def _legend_colour() -> QtGui.QColor:
    """The legend's background: opaque, a little darker than the plot's (Qt blends a
    translucent one in its thread pool on every paint, and the paint waits for it)."""
    return pg.mkColor(pg.getConfigOption("background")).darker(130)


def show_text(label: QtWidgets.QLabel, text: str) -> None:
    """Set a label's text only if it changes (an unchanged text costs no layout or paint)."""
    if label.text() != text:
        label.setText(text)


class TimeSeriesWindow(QtWidgets.QMainWindow):
    """Plot with legend, current-value readout, acquisition toolbar, settings docks, status bar.

    Parameters
    ----------
    title : str
        The window title (the GUI module gives ``"qudi: <module name>"``).
    parent : QWidget, optional
        Parent widget.
    """

    def __init__(self, title: str = "qudi: time series", parent=None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("time_series_window")
        self.resize(1100, 700)
        self._build_actions()
        self._build_toolbar()
        self._build_central_widget()
        self._build_trace_settings_dock()
        self._build_channel_dock()
        self._build_status_bar()

    # -------------------------------------------------------------------------- widgets
    def _build_actions(self) -> None:
        self.action_start = QtGui.QAction("Start", self)
        self.action_start.setCheckable(True)
        self.action_start.setToolTip("Start or stop reading the stream")
        self.action_record = QtGui.QAction("Record", self)
        self.action_record.setCheckable(True)
        self.action_record.setToolTip("Record every raw sample to HDF5")
        self.action_snapshot = QtGui.QAction("Snapshot", self)
        self.action_snapshot.setToolTip("Save the trace window as a data file with a thumbnail")
        self.action_freeze_y = QtGui.QAction("Freeze y", self)
        self.action_freeze_y.setCheckable(True)
        self.action_freeze_y.setToolTip("Keep the y range as it is now")
        self.action_autoscale = QtGui.QAction("Autoscale", self)
        self.action_autoscale.setToolTip("Fit both axes to the data and follow it again")
        self.action_plot_per_channel = QtGui.QAction("Plot per channel", self)
        self.action_plot_per_channel.setCheckable(True)
        self.action_plot_per_channel.setToolTip(
            "Each channel on a plot of its own (off: channels of one unit share a plot and "
            "its y axis). Click a curve's line in a legend to hide or show it."
        )
        self.action_add_marker = QtGui.QAction("Add marker", self)
        self.action_add_marker.setToolTip(
            "Note the text as a marker now: a labelled line on every plot of the session, "
            "kept in its recordings (Enter in the field does the same)"
        )
        self.action_close = QtGui.QAction("Close", self)
        self.action_close.setShortcut(QtGui.QKeySequence("Ctrl+Q"))
        self.action_close.triggered.connect(self.close)
        menu = self.menuBar().addMenu("File")
        menu.addAction(self.action_close)

    def _build_toolbar(self) -> None:
        toolbar = QtWidgets.QToolBar("Acquisition", self)
        toolbar.setObjectName("acquisition_toolbar")
        toolbar.addAction(self.action_start)
        toolbar.addAction(self.action_record)
        toolbar.addSeparator()
        self.name_tag_edit = QtWidgets.QLineEdit(toolbar)
        self.name_tag_edit.setPlaceholderText("snapshot name tag")
        self.name_tag_edit.setMaximumWidth(180)
        toolbar.addWidget(self.name_tag_edit)
        toolbar.addAction(self.action_snapshot)
        toolbar.addSeparator()
        toolbar.addAction(self.action_freeze_y)
        toolbar.addAction(self.action_autoscale)
        toolbar.addAction(self.action_plot_per_channel)
        toolbar.addSeparator()
        self.marker_text_edit = QtWidgets.QLineEdit(toolbar)
        self.marker_text_edit.setPlaceholderText("marker text")
        self.marker_text_edit.setMaximumWidth(180)
        toolbar.addWidget(self.marker_text_edit)
        toolbar.addAction(self.action_add_marker)
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    def _build_central_widget(self) -> None:
        central = QtWidgets.QWidget(self)
        layout = QtWidgets.QVBoxLayout(central)
        readout = QtWidgets.QHBoxLayout()
        self.readout_channel_combo = QtWidgets.QComboBox(central)
        self.readout_channel_combo.setToolTip("Channel whose newest value is shown")
        self.readout_kind_combo = QtWidgets.QComboBox(central)
        self.readout_kind_combo.addItems(["raw", "averaged"])
        self.readout_label = QtWidgets.QLabel("—", central)
        font = self.readout_label.font()
        font.setPointSize(28)
        font.setBold(True)
        self.readout_label.setFont(font)
        self.readout_label.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
        )
        readout.addWidget(QtWidgets.QLabel("Current value of", central))
        readout.addWidget(self.readout_channel_combo)
        readout.addWidget(self.readout_kind_combo)
        readout.addWidget(self.readout_label, stretch=1)
        layout.addLayout(readout)
        # one plot per unit, stacked, x axes linked: see set_plot_units
        self.plot_widget = pg.GraphicsLayoutWidget(central)
        self.plot_items: dict[str, pg.PlotItem] = {}
        self.legends: dict[str, pg.LegendItem] = {}
        self.set_plot_units([""])
        layout.addWidget(self.plot_widget, stretch=1)
        self.setCentralWidget(central)

    def _build_trace_settings_dock(self) -> None:
        dock = QtWidgets.QDockWidget("Trace settings", self)
        dock.setObjectName("trace_settings_dock")
        widget = QtWidgets.QWidget(dock)
        form = QtWidgets.QFormLayout(widget)
        self.data_rate_spinbox = QtWidgets.QDoubleSpinBox(widget)
        self.data_rate_spinbox.setDecimals(4)  # data rate = sample rate / oversampling
        self.data_rate_spinbox.setSuffix(" Hz")
        self.oversampling_spinbox = QtWidgets.QSpinBox(widget)
        self.oversampling_spinbox.setRange(1, 1_000_000)
        self.average_width_spinbox = QtWidgets.QSpinBox(widget)
        self.average_width_spinbox.setRange(1, 1_000_001)
        self.average_width_spinbox.setSingleStep(2)  # the logic wants odd widths
        self.window_size_spinbox = QtWidgets.QDoubleSpinBox(widget)
        self.window_size_spinbox.setDecimals(4)
        self.window_size_spinbox.setRange(0.0001, 1e6)
        self.window_size_spinbox.setSuffix(" s")
        form.addRow("Data rate", self.data_rate_spinbox)
        form.addRow("Oversampling", self.oversampling_spinbox)
        form.addRow("Moving average width", self.average_width_spinbox)
        form.addRow("Window size", self.window_size_spinbox)
        self.trace_apply_button = QtWidgets.QPushButton("Apply", widget)
        form.addRow(self.trace_apply_button)
        self.trace_refusal_label = self._refusal_label(widget)
        form.addRow(self.trace_refusal_label)
        dock.setWidget(widget)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.trace_settings_dock = dock

    def _build_channel_dock(self) -> None:
        dock = QtWidgets.QDockWidget("Channels", self)
        dock.setObjectName("channel_settings_dock")
        widget = QtWidgets.QWidget(dock)
        layout = QtWidgets.QVBoxLayout(widget)
        self.channel_table = QtWidgets.QTableWidget(0, 2, widget)
        self.channel_table.setHorizontalHeaderLabels(["active", "averaged"])
        self.channel_table.verticalHeader().setVisible(False)
        self.channel_table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.channel_table)
        self.channel_apply_button = QtWidgets.QPushButton("Apply", widget)
        layout.addWidget(self.channel_apply_button)
        self.channel_refusal_label = self._refusal_label(widget)
        layout.addWidget(self.channel_refusal_label)
        dock.setWidget(widget)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.channel_dock = dock

    @staticmethod
    def _refusal_label(parent: QtWidgets.QWidget) -> QtWidgets.QLabel:
        """Why the last Apply was refused; hidden while empty."""
        label = QtWidgets.QLabel("", parent)
        label.setWordWrap(True)
        label.setStyleSheet(_REFUSAL_STYLE)
        label.setMaximumWidth(260)
        label.setVisible(False)
        return label

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.recording_label = QtWidgets.QLabel("", bar)
        self.health_label = QtWidgets.QLabel("", bar)
        self.lost_label = QtWidgets.QLabel("", bar)
        bar.addPermanentWidget(self.recording_label)
        bar.addPermanentWidget(self.health_label)
        bar.addPermanentWidget(self.lost_label)

    # -------------------------------------------------------------------------- plots
    @property
    def plot_item(self) -> pg.PlotItem:
        """The top plot."""
        return next(iter(self.plot_items.values()))

    @property
    def legend(self) -> pg.LegendItem:
        """The top plot's legend."""
        return next(iter(self.legends.values()))

    def set_plot_units(
        self,
        units: list[str],
        names: dict[str, str] | None = None,
        plot_units: dict[str, str] | None = None,
        lanes: list[str] = (),
    ) -> None:
        """One plot per key of ``units``, top to bottom in the given order, x axes linked to
        the top one; ``plot_items`` and ``legends`` are keyed by them.

        ``names`` gives the left axis' name per key ('value' if not given), ``plot_units``
        the unit of its axis (the key itself if not given: one plot per unit). The keys in
        ``lanes`` are plots of digital lanes: no legend (their axis names the lanes)."""
        names = names or {}
        plot_units = plot_units or {}
        grid, legend = _grid_colour(), _legend_colour()
        self.plot_widget.clear()
        self.plot_items = {}
        self.legends = {}
        top = None
        for row, unit in enumerate(units):
            plot = self.plot_widget.addPlot(row=row, col=0)
            plot.hideButtons()  # the toolbar's Autoscale does what pyqtgraph's "A" button did
            plot.showGrid(x=True, y=True)
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                axis.setStyle(tickAlpha=255, maxTickLevel=_GRID_LEVELS)  # see _grid_colour
                axis.setTickPen(pg.mkPen(grid))
            plot.setLabel(
                "left", names.get(unit, "value"), units=plot_units.get(unit, unit) or None
            )
            # the GUI hands over only the visible points, min/max-decimated to the plot's width
            # (qudi.gui.instream.decimate): spikes survive and drawing costs the same for any
            # window; pyqtgraph's own clipping and downsampling would redo that work, and was
            # slower at 10^6 points (benchmarks/gui_fps.py --compare prints both)
            plot.setClipToView(False)
            plot.setDownsampling(False)
            if top is None:
                top = plot
            else:
                plot.setXLink(top)
            self.plot_items[unit] = plot
            if unit in lanes:
                continue
            self.legends[unit] = plot.addLegend(
                offset=(10, 10), brush=pg.mkBrush(legend), pen=pg.mkPen(120, 120, 120)
            )
        # the time axis is labelled once, under the bottom plot; in plain seconds: an SI
        # prefix would be re-checked, and the label's HTML laid out anew, on every scroll
        for plot in self.plot_items.values():
            plot.setLabel("bottom", "time", units="s")
            plot.getAxis("bottom").enableAutoSIPrefix(False)
            if plot is not list(self.plot_items.values())[-1]:
                plot.getAxis("bottom").setStyle(showValues=False)
                plot.getAxis("bottom").showLabel(False)

    # ----------------------------------------------------------------- channel table
    def set_channels(
        self, available: list[str], active: list[str], averaged: list[str], digital=()
    ) -> None:
        """One row per available channel, checked as the logic has it; the "averaged" box of
        a ``digital`` line is greyed (a line is never averaged)."""
        self.channel_table.setRowCount(len(available))
        checkable = QtCore.Qt.ItemFlag.ItemIsUserCheckable | QtCore.Qt.ItemFlag.ItemIsEnabled
        for row, channel in enumerate(available):
            for column, chosen in ((0, active), (1, averaged)):
                item = self.channel_table.item(row, column)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    self.channel_table.setItem(row, column, item)
                line = column == 1 and channel in digital
                item.setFlags(QtCore.Qt.ItemFlag.NoItemFlags if line else checkable)
                item.setToolTip("a digital line is never averaged" if line else "")
                item.setText(channel if column == 0 else "")
                item.setData(QtCore.Qt.ItemDataRole.UserRole, channel)
                checked = QtCore.Qt.CheckState.Checked if channel in chosen else None
                item.setCheckState(checked or QtCore.Qt.CheckState.Unchecked)

    def digital_rows(self) -> list[str]:
        """The channels whose "averaged" box is greyed (digital lines)."""
        rows = range(self.channel_table.rowCount())
        items = [(self.channel_table.item(row, 0), self.channel_table.item(row, 1)) for row in rows]
        return [
            name.data(QtCore.Qt.ItemDataRole.UserRole)
            for name, box in items
            if box is not None and not box.flags() & QtCore.Qt.ItemFlag.ItemIsEnabled
        ]

    def checked_channels(self) -> tuple[list[str], list[str]]:
        """(active, averaged) as ticked in the table."""
        chosen: tuple[list[str], list[str]] = ([], [])
        for row in range(self.channel_table.rowCount()):
            for column in (0, 1):
                item = self.channel_table.item(row, column)
                if item.checkState() == QtCore.Qt.CheckState.Checked:
                    chosen[column].append(item.data(QtCore.Qt.ItemDataRole.UserRole))
        return chosen
