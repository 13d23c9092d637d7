"""Publishing a marker stream as an LSL marker stream: one string channel, irregular rate.

LSL tools (LabRecorder, mne-lsl, pyxdf) know markers as a stream of one ``cf_string`` channel
at LSL's irregular rate (0), one sample per marker, each stamped with its time.
:func:`marker_outlet_info` describes such a stream; :class:`MarkerPublisher` is the thread
that reads a stream of :data:`~qudi.util.instream.markers.MARKER_DTYPE` records (any
``DataInStreamInterface``, e.g. a ``DataInStreamBuffer`` of a ``MarkerStream``) and pushes
each marker with its own time: a marker's time is host monotonic seconds, the clock of
``pylsl.local_clock()``, so it needs no mapping. Plain Python and numpy; pylsl is passed in.
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType
from typing import Any

import numpy as np

from qudi.util.instream.lsl_support import write_channels
from qudi.util.instream.markers import MARKER_DTYPE, as_markers

__all__ = ["MarkerPublisher", "is_marker_dtype", "marker_outlet_info"]

_log = logging.getLogger(__name__)
_JOIN_TIMEOUT_S = 10.0
_ROOM = 1024  # markers read at most at once


def is_marker_dtype(dtype: object) -> bool:
    """Whether a stream of ``dtype`` is a marker stream (its records are markers)."""
    try:
        return np.dtype(dtype) == MARKER_DTYPE  # type: ignore[call-overload]
    except TypeError:
        return False


def marker_outlet_info(pylsl: ModuleType, name: str, stream_type: str, source_id: str) -> Any:
    """The ``StreamInfo`` of an LSL marker stream: one ``cf_string`` channel ``marker``,
    irregular rate."""
    info = pylsl.StreamInfo(name, stream_type, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id)
    write_channels(info, ["marker"], [""])
    info.desc().append_child_value("acquisition", "qudi-instream")
    return info


class MarkerPublisher:
    """The thread that reads marker records from ``source`` and pushes one LSL sample each.

    Parameters
    ----------
    name
        Names the thread (``instream-lsl-markers-<name>``).
    source
        A started ``DataInStreamInterface`` of marker records (TIMESTAMP timing).
    outlet
        A ``pylsl.StreamOutlet`` of :func:`marker_outlet_info`.
    period
        Seconds between reads of the source.
    """

    def __init__(self, name: str, source: Any, outlet: Any, period: float):
        self._source = source
        self._outlet = outlet
        self._period = float(period)
        self._data = np.empty((_ROOM, 1), MARKER_DTYPE)
        self._stamps = np.empty(_ROOM)
        self.pushed = 0
        self.lost = 0
        self.fault: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"instream-lsl-markers-{name}", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the thread still pushes."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Push what waits, end the thread and wait for it.

        Raises
        ------
        RuntimeError
            If the thread did not end within 10 s.
        """
        self._stop.set()
        self._thread.join(_JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError(f"{self._thread.name} did not stop within {_JOIN_TIMEOUT_S} s")
        self._outlet = None  # its owner destroys it by dropping the last reference

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                while self._push_once() == _ROOM:
                    pass  # a full read: more may wait
            except Exception as exc:  # noqa: BLE001 - the thread ends; its owner is told
                self.fault = exc
                _log.error("LSL marker outlet stopped: reading its stream failed: %s", exc)
                return
            if stopping:
                return
            self._stop.wait(self._period)

    def _push_once(self) -> int:
        """Read the markers waiting (at most a buffer) and push each; how many were read."""
        try:
            count = int(self._source.read_available_data_into_buffer(self._data, self._stamps))
        except Exception as exc:
            lost = getattr(exc, "lost", None)  # a StreamOverrunError: this outlet fell behind
            if not isinstance(lost, int):
                raise
            self.lost += lost
            _log.warning("LSL marker outlet fell behind its stream and lost %d markers", lost)
            return 0
        records = as_markers(self._data[:count])
        for when, text in zip(records["time"].tolist(), records["text"].tolist(), strict=True):
            self._outlet.push_sample([text.decode("utf-8")], when)
        self.pushed += count
        return count
