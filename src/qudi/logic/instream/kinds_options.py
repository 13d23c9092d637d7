"""StreamKindsView: what kind of stream the logic shows, as a mixin of its public properties.

Mixed into ``TimeSeriesReaderLogic`` (it keeps the logic's class short). A stream declares its
kinds in its description (``stream_extra``: ``digital_channels``, ``kind`` and
``event_channels``; see docs/processing.md):

* ``digital_channel_names``: active channels that are digital lines (0/1): the GUI draws them as
  step traces stacked in lanes; the logic never averages them nor shows them as counts per
  second, and oversampling keeps a point high if the line was high at all in it;
* ``event_channel_names``: for an event stream, its event channels, each shown as a rate trace
  (c/s) whose bins the trace settings choose; None for a stream of samples;
* ``trace_channel_names``, ``trace_averaged_names``: the channels of the trace's curves (the
  active channels, or an event stream's channels) and of its moving averages, as
  ``sigDataChanged`` keys them.

The mixin expects the logic's ``_setup`` (a :class:`~qudi.logic.instream.trace_setup.TraceSetup`).
"""

from __future__ import annotations

__all__ = ["StreamKindsView"]


class StreamKindsView:
    """The stream's kinds as the trace shows them; see the module docstring."""

    @property
    def digital_channel_names(self) -> list[str]:
        """Active channels the stream declares digital lines (0/1)."""
        return self._setup.digital

    @property
    def event_channel_names(self) -> list[str] | None:
        """An event stream's channels (each a rate trace in c/s); None for samples."""
        return self._setup.event_channels

    @property
    def trace_channel_names(self) -> list[str]:
        """The curves of the trace, as ``sigDataChanged`` keys them."""
        return self._setup.shown

    @property
    def trace_averaged_names(self) -> list[str]:
        """The curves with a moving average (an event stream's: all or none of them)."""
        events, averaged = self._setup.event_channels, self._setup.averaged
        return averaged if events is None else (events if averaged else [])
