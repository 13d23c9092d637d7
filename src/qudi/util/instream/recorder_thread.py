"""ThreadedRecorder: the lifecycle every recorder shares, written once.

A recorder writes one file from one thread of its own. :meth:`~ThreadedRecorder.stop` asks
the thread to record what was published before the call and to close the file, and waits for
it; :meth:`~ThreadedRecorder.wait` waits for an end by itself (a size limit, the stream's
end, an error); a ``with`` block starts and stops it. The thread runs the subclass's
``_record`` (which returns why the recording ended), keeps an exception as ``_error`` and
logs it, always finishes the file (``_finish``), and then calls ``on_finished`` with the
summary. :class:`~qudi.util.instream.recorder.StreamRecorder`,
:class:`~qudi.util.instream.session_recorder.SessionRecorder` and
:class:`~qudi.util.instream.image_recorder.ImageRecorder` share this; what they write and
their messages are their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = ["ThreadedRecorder"]

SummaryT = TypeVar("SummaryT")
RecorderT = TypeVar("RecorderT", bound="ThreadedRecorder[Any]")

DEFAULT_STOP_TIMEOUT_S = 10.0


class ThreadedRecorder(Generic[SummaryT]):
    """Start once, stop on request, wait, ``with``: one writer thread and its file.

    A subclass sets the class attributes below, calls ``super().__init__()``, has
    ``_path``, ``_status`` (``"not started"`` before :meth:`start`; a
    ``RecordingStatus`` equals its value), ``_error``, ``_on_finished``, :attr:`running`
    and :meth:`summary`, starts its thread with :meth:`_start_thread`, and writes
    ``_record() -> status`` and ``_finish(status)`` (which must close the file).
    """

    _log: logging.Logger = logging.getLogger(__name__)
    _thread_prefix = "instream-recorder"  # the thread is named <prefix>-<file name>
    _kind = "recorder"  # stop()'s time-out: "the <kind> of '<path>' did not finish ..."
    _stop_timeout_hint = ""  # said after that
    _failure_log = "recording to '%s' stopped: %s"
    _callback_log = "the on_finished callback of '%s' failed"
    _failed_status: Any = "failed"
    _raise_on_stop_timeout = True  # else stop() returns the summary so far after the time-out
    _raise_error_on_exit = True  # a with block re-raises the recording's error

    _path: Path
    _status: Any
    _error: BaseException | None
    _on_finished: Callable[[SummaryT], None] | None

    def __init__(self) -> None:
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:  # pragma: no cover - every subclass says
        raise NotImplementedError

    def summary(self) -> SummaryT:  # pragma: no cover - every subclass says
        raise NotImplementedError

    def start(self) -> None:  # pragma: no cover - every subclass says
        raise NotImplementedError

    # ----------------------------------------------------------------------- public API
    def stop(self, timeout: float | None = DEFAULT_STOP_TIMEOUT_S) -> SummaryT:
        """Record what was published until now, close the file, return the summary.

        Harmless on a recording that ended by itself (or never started).

        Parameters
        ----------
        timeout : float or None, optional
            Seconds to wait for the thread (None: no limit).

        Raises
        ------
        TimeoutError
            The thread did not finish in time (the disk stalls); it still closes the file
            as soon as its last write returns. (Not by every recorder: see
            ``_raise_on_stop_timeout``.)
        """
        self._stop_requested.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive() and self._raise_on_stop_timeout:
                raise TimeoutError(
                    f"the {self._kind} of '{self._path}' did not finish within {timeout} s"
                    f"{self._stop_timeout_hint}"
                )
        return self.summary()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the recording ends by itself; True if it has (the file is closed).

        Parameters
        ----------
        timeout : float or None, optional
            Seconds to wait (None: no limit).
        """
        thread = self._thread
        if thread is None:
            return not self.running
        thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self: RecorderT) -> RecorderT:
        if self._status == "not started":
            self.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        summary = self.stop()
        error = getattr(summary, "error", None)
        if self._raise_error_on_exit and exc_type is None and error is not None:
            raise error

    # ------------------------------------------------------------------ the writer thread
    def _start_thread(self) -> None:
        """Start the writer thread (once, from :meth:`start`)."""
        self._thread = threading.Thread(
            target=self._run, name=f"{self._thread_prefix}-{self._path.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        status = self._failed_status
        try:
            status = self._record()
        except Exception as exc:  # kept for the owner: .error, the summary, the file
            self._error = exc
            self._log.error(self._failure_log, self._path, exc)
        finally:
            self._finish(status)
        if self._on_finished is not None:
            try:
                self._on_finished(self.summary())
            except Exception:
                self._log.exception(self._callback_log, self._path)

    def _record(self) -> Any:  # pragma: no cover - every subclass says
        raise NotImplementedError

    def _finish(self, status: Any) -> None:  # pragma: no cover - every subclass says
        raise NotImplementedError
