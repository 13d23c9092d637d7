"""ScopeEventOptions: an event stream as the triggered view's trigger source, as a mixin.

A base of :class:`~qudi.logic.instream.scope_options.ScopeOptions` (so the time-series logic
gets it by naming that mixin; qudi gathers the connector through ``dir(cls)``):

* optional connector ``trigger_events``: a ``DataInStreamBuffer`` of an event streamer (records
  ``(time, channel, value)``, e.g. ``instream.event_dummy.InStreamEventDummy``; photon
  arrivals, TTL edges), this logic's own consumer of that stream::

      time_series_logic:
          module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
          connect:
              streamer: 'analog_buffer'
              trigger_events: 'trigger_event_buffer'   # optional

* :attr:`ScopeEventOptions.trigger_event_channels`: the event stream's channel names, None
  when nothing is connected;
* scope settings ``source='event'``, ``event_channels`` (``[]``: every channel) and
  ``event_threshold`` (None, or the least ``value`` that triggers): each chosen event triggers
  a window at the logic's sample taken at the event's time (placed as markers are: see
  :mod:`qudi.logic.instream.event_placement`), with the view's ``pre``/``post``/``holdoff``
  and counts. The view's stats add ``events`` (read), ``events_lost`` (lost by the event
  buffer: a warning is logged when it grows), ``event_triggers`` (placed), ``events_waiting``
  and ``events_dropped`` (see ``EventPlacement``).

The event buffer streams while the logic reads with the event source enabled, and stops with
it. Only streams of ``CONSTANT`` timing whose buffers share rings on this host can be
triggered so; a setting of ``source='event'`` elsewhere is refused, naming what is valid.
The mixin expects the logic's ``_lock``, ``_streamer``, ``log``, ``module_state`` and
``sigStatusChanged``, and the scope mixin's ``_scope`` and ``_scope_why``.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore
from qudi.core.connector import Connector

from qudi.logic.instream.event_placement import EventPlacement
from qudi.logic.instream.event_trace import event_channels_of
from qudi.logic.instream.stream_setup import timing_name
from qudi.util.instream.events import EVENT_DTYPE

__all__ = ["ScopeEventOptions"]

_VALID_ELSEWHERE = "use one of ['level', 'digital', 'marker']"


class ScopeEventOptions:
    """Connector ``trigger_events`` and the triggered view's event source; see the module
    docstring."""

    _trigger_events = Connector(
        name="trigger_events", interface="DataInStreamInterface", optional=True
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._scope_placement: EventPlacement | None = None
        self._scope_events_counted: dict[str, int] = {}  # the last placement's, once closed
        self._scope_events_lost = 0  # lost events already warned about
        self.sigStatusChanged.connect(
            self._scope_events_follow_status, QtCore.Qt.ConnectionType.DirectConnection
        )

    @property
    def trigger_event_channels(self) -> list[str] | None:
        """The channels of the event stream on ``trigger_events`` (None: none connected, or
        it streams no events)."""
        events = self._trigger_events()
        if events is None:
            return None
        return event_channels_of(dict(events.stream_extra))

    # ------------------------------------------------------------------------ internals
    def _scope_event_refusal(self, settings: dict[str, Any]) -> None:
        """Refuse ``source='event'`` where events cannot be placed (ValueError names why)."""
        if settings["source"] != "event":
            return
        events = self._trigger_events()
        if events is None or events.constraints.data_type != EVENT_DTYPE:
            raise ValueError(
                "scope setting 'source' is 'event': the 'trigger_events' connector's module "
                f"streams no event records; {_VALID_ELSEWHERE}"
            )
        timing = timing_name(self._streamer().constraints)
        if timing != "CONSTANT":
            raise ValueError(
                f"scope setting 'source' is 'event': events trigger the view on streams of "
                f"CONSTANT timing only (this one is {timing}: its samples have no index an "
                f"event's time gives); {_VALID_ELSEWHERE}"
            )
        for role, module in (("streamer", self._streamer()), ("trigger_events", events)):
            if getattr(module, "stream_name", None) is None:
                raise ValueError(
                    f"scope setting 'source' is 'event': the '{role}' connector's stream is "
                    "not a ring on this host (connect a DataInStreamBuffer of a streamer on "
                    f"this host), so events cannot be placed on samples; {_VALID_ELSEWHERE}"
                )

    def _scope_events_restart(self, settings: dict[str, Any], sample_rate: float) -> None:
        """After the scope was made anew: place events for it if it triggers on them and
        the logic reads (else let go of the event stream). ValueError: they cannot be."""
        self._scope_events_close()
        self._scope_events_counted = {}
        if settings["source"] != "event" or self.module_state() != "locked":
            return
        self._scope_event_refusal(settings)  # restored settings: the streams may have changed
        events = self._trigger_events()
        channels = self.trigger_event_channels
        if events is None or channels is None:
            raise ValueError("no event stream is connected to 'trigger_events'")
        try:
            events.start_stream()
        except Exception as error:  # noqa: BLE001 - said in the view's state, not raised
            raise ValueError(f"the trigger event stream could not start: {error}") from error
        try:
            self._scope_placement = EventPlacement(
                events,
                self._streamer(),
                sample_rate,
                channels,
                settings["event_channels"],
                settings["event_threshold"],
            )
        except BaseException:
            events.stop_stream()
            raise
        self._scope_events_lost = 0

    def _scope_events_take(self, samples: int) -> None:
        """A frame took ``samples`` (lost ones included): hand the events placed to the
        scope; a failing event stream stops the view (its state says why)."""
        placement, scope = self._scope_placement, self._scope
        if placement is None or scope is None:
            return
        try:
            placement.note_samples(samples)
            scope.add_triggers(placement.take())
        except Exception as error:  # noqa: BLE001 - the view stops, the trace goes on
            self._scope, self._scope_why = None, f"the trigger event stream failed: {error}"
            self.log.error(f"the triggered view stopped: {self._scope_why}")
            self._scope_events_close()
            return
        lost = placement.counts["events_lost"]
        if lost > self._scope_events_lost:
            self.log.warning(
                f"the trigger event stream lost {lost - self._scope_events_lost} events (its "
                f"buffer fell behind; {lost} in all): triggers among them are not seen"
            )
            self._scope_events_lost = lost

    def _scope_event_counts(self) -> dict[str, int]:
        """The event counts of the view now (or as its event stream stopped)."""
        placement = self._scope_placement
        return dict(self._scope_events_counted if placement is None else placement.counts)

    def _scope_events_close(self) -> None:
        placement, self._scope_placement = self._scope_placement, None
        if placement is None:
            return
        self._scope_events_counted = dict(placement.counts)
        placement.close()
        events = self._trigger_events()
        if events is not None:
            try:
                events.stop_stream()
            except Exception as error:  # noqa: BLE001 - going away: nothing left to stop
                self.log.warning(f"could not stop the trigger event stream: {error}")

    @QtCore.Slot(bool, bool)
    def _scope_events_follow_status(self, running: bool, _recording: bool) -> None:
        if not running:
            with self._lock:
                self._scope_events_close()
