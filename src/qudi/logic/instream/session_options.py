"""SessionRecordingOptions: the logic's session-recording options and ``add_marker``, as a mixin.

Mixed into ``TimeSeriesReaderLogic`` before ``LogicBase`` (qudi gathers config options through
``dir(cls)``, so a mixin's count like the class's own); it keeps the logic's class short:

* ``recording_format``: ``'single'`` (default: one stream per file, as before) or
  ``'session'`` (the logic's stream plus ``recording_streams`` in one SWMR session file, with
  time tables, gaps and markers; see docs/recording.md);
* ``recording_streams``: names of other streams to record with the logic's own: a shared
  stream on this host, or a streamer module of this qudi that a buffer has joined.

The mixin expects the logic's ``_recording`` (a
:class:`~qudi.logic.instream.recording.TraceRecording`) and ``_lock``.
"""

from __future__ import annotations

from qudi.core.configoption import ConfigOption

__all__ = ["SessionRecordingOptions"]


class SessionRecordingOptions:
    """Config options ``recording_format``, ``recording_streams`` and :meth:`add_marker`."""

    _recording_format = ConfigOption("recording_format", default="single")
    _recording_streams = ConfigOption("recording_streams", default=[])

    def check_recording_options(self) -> None:
        """Check the options (in ``on_activate``); ValueError names a bad one."""
        self._recording.configure(self._recording_format, self._recording_streams)

    def recording_attributes(self) -> dict:
        """The file attributes the logic adds: its trace settings and its name."""
        return {
            **self.trace_settings,
            "averaged_channels": self.averaged_channel_names or [""],
            "logic": self.module_name,
        }

    def add_marker(self, text: str) -> dict:
        """Note ``text`` now in the running session recording's markers table.

        Callable from Jupyter over qudi's remote connection (``logic.add_marker("pump on")``).

        Returns
        -------
        dict
            ``time`` (host monotonic s), ``sample_index`` (the next sample of the logic's own
            stream) and ``text``.

        Raises
        ------
        RuntimeError
            No session recording runs (or ``recording_format`` is not ``'session'``).
        TypeError, ValueError
            ``text`` is no str, empty, over 256 bytes of UTF-8 or has a NUL; nothing is noted.
        """
        with self._lock:
            return self._recording.add_marker(text)
