"""The thread that reads a qudi stream and pushes what it read into an LSL outlet.

:class:`LslPushThread` holds what every LSL push thread shares: the thread's lifecycle
(started on construction, :attr:`~LslPushThread.running`, :meth:`~LslPushThread.stop` with
its time-out), the fault kept when reading fails, and the count of what an overrun lost.
Its subclasses (``LslPublisher`` for samples, ``MarkerPublisher`` for markers) say when to
read and how to push. Plain Python and numpy; pylsl is passed in (see ``lsl_support``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

__all__ = ["LslPushThread"]

_JOIN_TIMEOUT_S = 10.0


class LslPushThread:
    """The thread that reads ``source`` into ``data`` (and ``stamps``) and pushes into ``outlet``.

    A subclass sets the class attributes that name it in log messages, sets its own state,
    then calls this ``__init__`` last (it starts the thread), and implements :meth:`_run`
    (when to read, with :meth:`_drain`) and :meth:`_push_once` (read, with :meth:`_read`,
    and push).
    """

    _log = logging.getLogger(__name__)
    _label = "LSL outlet"  # names the outlet in log messages
    _items = "samples"  # what an overrun lost, in log messages

    def __init__(self, thread_name: str, source: Any, outlet: Any, data: np.ndarray, stamps: Any):
        self._source = source
        self._outlet = outlet
        self._data = data
        self._stamps = stamps
        self.pushed = 0
        self.lost = 0
        self.fault: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the thread still pushes."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """End the thread and wait for it.

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
        raise NotImplementedError

    def _push_once(self) -> int:
        """Read what the source holds (at most a buffer) and push it; how many were read."""
        raise NotImplementedError

    def _drain(self, until_stop: bool) -> bool:
        """Push until a read comes back short (or, with ``until_stop``, the thread is stopped).

        If reading fails, keep the error as :attr:`fault`, log it, tell :meth:`_faulted` and
        return False: the thread should end.
        """
        room = len(self._data)
        try:
            while self._push_once() == room and not (until_stop and self._stop.is_set()):
                pass  # a full read: more may wait
        except Exception as exc:  # noqa: BLE001 - the thread ends; its owner is told
            self.fault = exc
            self._log.error("%s stopped: reading its stream failed: %s", self._label, exc)
            self._faulted(exc)
            return False
        return True

    def _faulted(self, exc: BaseException) -> None:
        """Called once when reading failed and the thread ends."""

    def _read(self) -> int:
        """Read what waits into the buffer; how many were read, 0 after an overrun.

        An overrun (a ``StreamOverrunError``: this outlet fell behind its stream) is counted
        in :attr:`lost`, told to :meth:`_overrun` and logged; any other error is raised.
        """
        try:
            return int(self._source.read_available_data_into_buffer(self._data, self._stamps))
        except Exception as exc:
            lost = getattr(exc, "lost", None)
            if not isinstance(lost, int):
                raise
            self.lost += lost
            self._overrun(lost)
            self._log.warning(
                "%s fell behind its stream and lost %d %s", self._label, lost, self._items
            )
            return 0

    def _overrun(self, lost: int) -> None:
        """Called when an overrun lost ``lost`` items."""
