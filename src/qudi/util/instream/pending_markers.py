"""PendingMarkers: marker rows handed to a running one-stream recording, written by its thread.

A one-stream recording's file belongs to its recorder's thread while it records, so a marker
cannot be written where it is made (the logic's thread, a GUI, Jupyter over qudi remote).
It is queued here instead; the recorder's thread writes the queued rows into the file's
``/markers`` table (:class:`~qudi.util.instream.session_file.MarkerTable`) just before each
flush of the samples and once more as it finishes. A killed process thus loses at most the
markers of the last flush interval, as it loses the samples; a finished recording has every
marker handed over, once.

The table exists only once the queue is :meth:`~PendingMarkers.keep`-ing markers (its
logic has a marker stream): it is created at the first write after that, even empty.
"""

from __future__ import annotations

import threading

import h5py

from qudi.util.instream.session_file import MarkerTable, checked_marker_text

__all__ = ["PendingMarkers"]


class PendingMarkers:
    """Marker rows (host monotonic time, sample index, text) waiting for the recorder's thread.

    :meth:`put` may be called from any thread; :meth:`write_into` only from the thread that
    owns the file. After the last write (``final=True``) the queue takes nothing more.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple[float, int, bytes]] = []
        self._kept = False
        self._closed = False
        self._table: MarkerTable | None = None
        self.handed = 0  # rows put
        self.written = 0  # rows in the file's table

    @property
    def kept(self) -> bool:
        """Whether the recording keeps markers (:meth:`keep` was called)."""
        return self._kept

    @property
    def closed(self) -> bool:
        """True once the recording wrote its last rows: it takes no more."""
        return self._closed

    def keep(self) -> None:
        """From now on the recording keeps markers: its file gets a markers table."""
        self._kept = True

    def put(self, time_s: float, sample_index: int, text: str) -> None:
        """Queue one marker for the next flush.

        Raises
        ------
        TypeError, ValueError
            ``text`` is no str, empty, over 256 bytes of UTF-8 or has a NUL; nothing is queued.
        RuntimeError
            The recording keeps no markers, or has ended (its file is closed).
        """
        encoded = checked_marker_text(text)
        with self._lock:
            if not self._kept:
                raise RuntimeError("this recording keeps no markers (no marker stream)")
            if self._closed:
                raise RuntimeError("the recording has ended: its file takes no more markers")
            self._rows.append((float(time_s), int(sample_index), encoded))
            self.handed += 1

    def write_into(self, parent: h5py.Group, *, final: bool = False) -> int:
        """Append the queued rows to ``parent``'s markers table (created on the first write
        once :meth:`keep` was called); returns how many. ``final``: the last write, after it
        :meth:`put` refuses. The caller flushes the file."""
        with self._lock:
            rows, self._rows = self._rows, []
            if final:
                self._closed = True
            kept = self._kept
        if not kept:
            return 0
        if self._table is None:
            self._table = MarkerTable(parent)
        self._table.extend(rows)
        self.written += len(rows)
        return len(rows)
