"""SessionRecordingOptions: the logic's session-recording options, as a mixin.

Mixed into ``TimeSeriesReaderLogic`` before ``LogicBase`` (qudi gathers config options through
``dir(cls)``, so a mixin's count like the class's own); it keeps the logic's class short:

* ``recording_format``: ``'single'`` (default: one stream per file, as before) or
  ``'session'`` (the logic's stream plus ``recording_streams`` in one SWMR session file, with
  time tables, gaps and markers; see docs/recording.md);
* ``recording_streams``: names of other streams to record with the logic's own: a shared
  stream on this host, or a streamer module of this qudi that a buffer has joined.

Markers (``add_marker``, into the session's markers table) are the marker mixin's
(:mod:`qudi.logic.instream.marker_options`), a base of this one: the logic gets both by
naming this mixin among its bases.

The mixin expects the logic's ``_recording`` (a
:class:`~qudi.logic.instream.recording.TraceRecording`) and ``_lock``.
"""

from __future__ import annotations

from qudi.core.configoption import ConfigOption

from qudi.logic.instream.marker_options import MarkerOptions

__all__ = ["SessionRecordingOptions"]


class SessionRecordingOptions(MarkerOptions):
    """Config options ``recording_format`` and ``recording_streams`` (and, inherited, the
    markers: connector ``markers``, ``add_marker``, ``sigMarkersChanged``)."""

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
