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
from types import ModuleType
from typing import Any

import numpy as np

from qudi.util.instream.lsl_push import LslPushThread
from qudi.util.instream.lsl_support import write_channels
from qudi.util.instream.markers import MARKER_DTYPE, as_markers

__all__ = ["MarkerPublisher", "is_marker_dtype", "marker_outlet_info"]

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


class MarkerPublisher(LslPushThread):
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

    _log = logging.getLogger(__name__)  # logs as this module
    _label = "LSL marker outlet"
    _items = "markers"

    def __init__(self, name: str, source: Any, outlet: Any, period: float):
        self._period = float(period)
        data = np.empty((_ROOM, 1), MARKER_DTYPE)
        super().__init__(f"instream-lsl-markers-{name}", source, outlet, data, np.empty(_ROOM))

    def stop(self) -> None:
        """Push what waits, end the thread and wait for it.

        Raises
        ------
        RuntimeError
            If the thread did not end within 10 s.
        """
        super().stop()

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            if not self._drain(until_stop=False) or stopping:
                return
            self._stop.wait(self._period)

    def _push_once(self) -> int:
        """Read the markers waiting (at most a buffer) and push each; how many were read."""
        count = self._read()
        records = as_markers(self._data[:count])
        for when, text in zip(records["time"].tolist(), records["text"].tolist(), strict=True):
            self._outlet.push_sample([text.decode("utf-8")], when)
        self.pushed += count
        return count
