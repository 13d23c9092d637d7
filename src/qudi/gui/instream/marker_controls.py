"""MarkerControls: the window's marker field and button, and the markers drawn on its plots.

"Add marker" (or Enter in the field) calls the logic's ``add_marker(text)`` directly: it is
callable from any thread and returns at once, so the answer (or the refusal) is shown at once.
A refusal (no marker stream nor session recording, a bad text) is never raised into Qt: the
status bar says why, and the field turns red with the reason as its tooltip until the next
marker is accepted. The logic's ``sigMarkersChanged`` (queued) hands the markers inside the
trace window to the plot's marker lines. A logic without markers (qudi-iqo-modules') leaves
the field and button disabled.
"""

from __future__ import annotations

from PySide6 import QtCore

from qudi.gui.instream.time_series_window import TimeSeriesWindow
from qudi.gui.instream.trace_plot import TracePlot

__all__ = ["MarkerControls"]

_QUEUED = QtCore.Qt.ConnectionType.QueuedConnection
_REFUSED_STYLE = "background-color: #5a1e1e;"
_MESSAGE_MS = 10_000


class MarkerControls:
    """Connects a window's marker field to a logic, and the logic's markers to the plot.

    Parameters
    ----------
    window : TimeSeriesWindow
        The window (its ``marker_text_edit`` and ``action_add_marker``).
    plot : TracePlot
        Whose ``markers`` draw the lines.
    logic : TimeSeriesReaderLogic
        The logic (``add_marker``, ``sigMarkersChanged``, ``markers_in_view`` if it has them).
    log : logging.Logger
        Where a refusal is noted (a warning).
    """

    def __init__(self, window: TimeSeriesWindow, plot: TracePlot, logic, log):
        self._window, self._plot, self._logic, self._log = window, plot, logic, log
        self._connections: list[tuple[object, object]] = []
        usable = callable(getattr(logic, "add_marker", None))
        window.marker_text_edit.setEnabled(usable)
        window.action_add_marker.setEnabled(usable)
        if not usable:
            window.marker_text_edit.setToolTip("this logic takes no markers")
            return
        self._connect(window.action_add_marker.triggered, self.add_marker)
        self._connect(window.marker_text_edit.returnPressed, self.add_marker)
        changed = getattr(logic, "sigMarkersChanged", None)
        if changed is not None:
            self._connect(changed, self.show_markers, _QUEUED)
            self.show_markers(getattr(logic, "markers_in_view", []))

    def _connect(self, signal, slot, kind=QtCore.Qt.ConnectionType.AutoConnection) -> None:
        signal.connect(slot, kind)
        self._connections.append((signal, slot))

    def disconnect(self) -> None:
        """Undo every connection (on the GUI's deactivation)."""
        for signal, slot in reversed(self._connections):
            signal.disconnect(slot)
        self._connections.clear()

    @QtCore.Slot()
    def add_marker(self) -> None:
        """Note the field's text as a marker; a refusal is shown, never raised."""
        edit, bar = self._window.marker_text_edit, self._window.statusBar()
        text = edit.text()
        try:
            marker = self._logic.add_marker(text)
        except Exception as error:
            reason = f"marker not added: {type(error).__name__}: {error}"
            edit.setStyleSheet(_REFUSED_STYLE)
            edit.setToolTip(reason)
            bar.showMessage(reason, _MESSAGE_MS)
            self._log.warning(reason)
            return
        edit.setStyleSheet("")
        edit.setToolTip("")
        edit.clear()
        when = marker.get("time") if isinstance(marker, dict) else None
        at = f" at {when:.3f} s" if isinstance(when, float) else ""
        bar.showMessage(f"marker {text!r} added{at}", _MESSAGE_MS)

    @QtCore.Slot(object)
    def show_markers(self, markers) -> None:
        """Draw these ``(x, text)`` markers on every plot."""
        self._plot.markers.set_markers(markers or [])
