"""MarkerOptions: the logic's markers (connector ``markers``, ``add_marker``, markers in view).

Mixed into ``TimeSeriesReaderLogic`` before ``LogicBase`` (qudi gathers connectors through
``dir(cls)``; the signal lives here too, PySide collects it from the mixin):

* optional connector ``markers``: a :class:`~qudi.hardware.instream.markers.MarkerStream`, the
  session's marker stream that every connected logic shares;
* :meth:`MarkerOptions.add_marker`: a marker now, into the marker stream if connected (every
  logic on it sees it, and every running session recording of them stores it), else into
  this logic's running session recording;
* ``sigMarkersChanged(list)`` and :attr:`MarkerOptions.markers_in_view`: the markers inside
  the trace window as ``(x, text)``, x in the coordinates of ``sigDataChanged``'s x (see
  :mod:`qudi.logic.instream.marker_view` for how well the times meet; on an event stream's
  rate traces x is the events' time), emitted when the list changes;
* a recording stores every marker of the marker stream written while it records, at its
  time (its sample index is the logic's stream's sample taken then): a session's markers
  table, or a one-stream recording's (flushed with its samples by the recorder's thread,
  see :mod:`qudi.logic.instream.recording`).

The mixin follows the logic through its own signals (``sigNewRawData``, ``sigDataChanged``,
``sigStatusChanged``), connected once in ``__init__``; it expects the logic's ``_lock``,
``_recording`` (a :class:`~qudi.logic.instream.recording.TraceRecording`), ``_builder``
and ``_setup``.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from PySide6 import QtCore
from qudi.core.connector import Connector

from qudi.logic.instream.marker_view import MarkerAxis
from qudi.util.instream.markers import checked_marker_text

__all__ = ["MarkerOptions"]

_DIRECT = QtCore.Qt.ConnectionType.DirectConnection
KEPT_MARKERS = 10_000  # markers the logic keeps to place in its window


class MarkerOptions:
    """Connector ``markers``, :meth:`add_marker`, ``sigMarkersChanged`` and
    :attr:`markers_in_view`; see the module docstring."""

    sigMarkersChanged = QtCore.Signal(object)  # [(x, text), ...] inside the trace window

    _marker_stream = Connector(name="markers", interface="MarkerStream", optional=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._markers_seen = 0  # the marker stream's count handed over so far
        self._markers: deque[tuple[float, str]] = deque(maxlen=KEPT_MARKERS)
        self._in_view: list[tuple[float, str]] = []
        self._in_view_keys: list[tuple[float, str]] = []  # their (time, text)
        self._axis: MarkerAxis | None = None
        self._marker_warned = False  # the marker stream could not be read (said once)
        self._marker_stream_seen = ""  # the marker session whose markers _markers_seen counts
        self.sigNewRawData.connect(self._markers_note_block, _DIRECT)
        self.sigDataChanged.connect(self._markers_place, _DIRECT)
        self.sigStatusChanged.connect(self._markers_follow_status, _DIRECT)

    # ------------------------------------------------------------------------- public API
    @property
    def markers_in_view(self) -> list[tuple[float, str]]:
        """The markers inside the trace window as ``(x, text)``, oldest first (as the last
        ``sigMarkersChanged`` said)."""
        return list(self._in_view)

    def add_marker(self, text: str) -> dict:
        """Note ``text`` now: into the connected marker stream (every logic on it shows it,
        their session recordings store it), else into this logic's session recording.

        Callable from Jupyter over qudi's remote connection (``logic.add_marker("pump on")``).

        Returns
        -------
        dict
            ``time`` (host monotonic s) and ``text``; with a session recording running,
            ``sample_index`` too (the logic's stream's sample taken then).

        Raises
        ------
        TypeError, ValueError
            ``text`` is no str, empty, over 256 bytes of UTF-8 or has a NUL (the message shows
            it); nothing is written anywhere.
        RuntimeError
            Neither a marker stream is connected nor a session recording runs (the message
            says what to do).
        """
        checked_marker_text(text)
        with self._lock:
            stream = self._marker_stream()
            if stream is None:
                return self._recording.add_marker(text)
            marker = dict(stream.add_marker(text))
            handed = self._markers_pull()
            for entry in handed:
                if entry["time"] == marker["time"] and entry["text"] == marker["text"]:
                    marker["sample_index"] = entry["sample_index"]
            return marker

    # -------------------------------------------------------------------------- internals
    def _markers_pull(self) -> list[dict]:
        """Take the marker stream's new markers; hand those of the running session
        recording's time to it. What the recording noted, as its ``add_marker`` says."""
        stream = self._marker_stream()
        if stream is None:
            return []
        session = stream.marker_session
        if session != self._marker_stream_seen:  # a new activation: count from its start
            self._marker_stream_seen, self._markers_seen = session, 0
            self._markers.clear()
        new, self._markers_seen = stream.markers_since(self._markers_seen)
        new = [(float(when), str(text)) for when, text in new]
        self._markers.extend(new)
        recording = self._recording
        handed = []
        if recording.takes_markers:
            for when, text in new:
                if when >= recording.started_at:
                    handed.append(recording.add_marker(text, at=when))
        return handed

    def _markers_pull_locked(self) -> None:
        with self._lock:
            self._markers_pull()

    @QtCore.Slot(object, object)
    def _markers_note_block(self, data, stamps) -> None:
        axis = self._axis
        if axis is None:
            return
        builder = getattr(self, "_builder", None)
        if axis.builder is not builder:
            # a new trace while running: its settings changed, and the stream may have been
            # restarted for them (a new ring under the same name, another rate): a new axis
            axis.close()
            axis = self._axis = self._new_marker_axis()
        names = getattr(getattr(data, "dtype", None), "names", None) or ()
        if axis.events and stamps is None and "time" in names:
            stamps = data["time"].reshape(-1)  # event records carry their times
        axis.note_block(len(data), stamps, time.monotonic(), builder)

    def _new_marker_axis(self) -> MarkerAxis:
        """The axis of the run as the streamer is now (its timing, rate and ring), for the
        trace as it is now."""
        builder = getattr(self, "_builder", None)
        setup = self._setup
        events = setup.event_channels is not None
        axis_args = (setup.timing, self.sampling_rate, self._streamer(), builder)
        return MarkerAxis(*axis_args, events=events)

    @QtCore.Slot(bool, bool)
    def _markers_follow_status(self, running: bool, recording: bool) -> None:
        """A new run: a new axis (and the ring it follows); stopped: let go of it."""
        with self._lock:
            if recording:  # markers not yet handed over go in before it finishes
                self._recording.before_finish = self._markers_pull_locked
                if self._marker_stream() is not None:  # a one-stream recording keeps them too
                    self._recording.keep_markers()
            if running and self._axis is None:
                self._axis = self._new_marker_axis()
            elif not running and self._axis is not None:
                self._axis.close()
                self._axis = None

    @QtCore.Slot(object, object, object, object)
    def _markers_place(self, x, raw, x_avg, averaged) -> None:
        """After each new trace: the markers inside the window, emitted if they changed."""
        with self._lock:
            try:
                self._markers_pull()
                self._marker_warned = False
            except Exception as error:  # noqa: BLE001 - the stream went: no new markers
                if not self._marker_warned:  # once, not every frame
                    self.log.warning(f"could not read the marker stream: {error}")
                self._marker_warned = True
            axis, builder = self._axis, getattr(self, "_builder", None)
            count = int(getattr(builder, "count", 0))
            if axis is None or not count or not len(x):
                return
            markers = list(self._markers)
            if not markers and not self._in_view:
                return  # nothing to place, nothing to take away: the clock's fit is not free
            times = np.array([when for when, _ in markers], np.float64)
            oversampling = getattr(builder, "oversampling", 1)
            first = float(x[-1]) - (count - 1) * oversampling / axis.rate
            where = axis.x_of(times, first)
            inside = np.flatnonzero((where >= x[0]) & (where <= x[-1]))
            shown = [(float(where[i]), markers[i][1]) for i in inside]
            keys = [markers[i] for i in inside]
            # the clock's estimate moves a little with every frame: a move by less than half
            # a point is no change
            tolerance = 0.5 / max(float(getattr(builder, "data_rate", axis.rate)), 1e-12)
            moved = len(shown) != len(self._in_view) or any(
                abs(a[0] - b[0]) > tolerance for a, b in zip(shown, self._in_view, strict=True)
            )
            if keys != self._in_view_keys or moved:
                self._in_view, self._in_view_keys = shown, keys
                self.sigMarkersChanged.emit(list(shown))
