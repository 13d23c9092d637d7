"""ScopeOptions: the time-series logic's triggered ("scope") view, as a mixin.

Mixed into ``TimeSeriesReaderLogic`` before ``LogicBase``. While the logic reads and the
scope is enabled, every chunk the logic's frame reads also goes to a
:class:`~qudi.logic.instream.scope.Scope` (one hook line in ``_read_frame``: no second reader
of the stream), which cuts windows of ``pre`` + ``post`` samples around each trigger and
keeps the newest ``windows`` of them; each frame that brings windows (or changes the counts)
emits ``sigScopeChanged`` with a :class:`~qudi.logic.instream.scope.ScopeView`
``(t, {channel: windows [k, pre + post]}, {channel: average}, stats)``.

A new trace (a run's start, a settings change) starts the scope anew: its sample indices
count from the run's first sample, as the trace's x axis. Samples the streamer reports lost
(a buffer with ``allow_overwrite: True`` that skipped ahead: its ``lost_samples``) are a gap
before the frame's first chunk; windows they tear are counted as missed.

From a script or Jupyter::

    logic.set_scope_settings(source="level", channel="sine", level=0.0, edge="rising",
                             pre=200, post=800, windows=20, enabled=True)
    t, windows, average, stats = logic.scope_windows

With ``source="event"`` an event stream on the optional connector ``trigger_events`` triggers
the windows, each event at the sample taken at its time (see
:mod:`qudi.logic.instream.scope_events`).

The settings (see ``scope_settings``) are saved as the status variable ``scope_settings``.
The mixin expects the logic's ``_lock``, ``_streamer``, ``_builder``, ``log`` and its public
``active_channel_names``, ``sampling_rate`` and ``module_name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PySide6 import QtCore
from qudi.core.statusvariable import StatusVar

from qudi.logic.instream.scope import Scope, ScopeView, empty_view
from qudi.logic.instream.scope_events import ScopeEventOptions
from qudi.logic.instream.scope_settings import checked_scope_settings, restored_scope_settings
from qudi.logic.instream.stream_setup import timing_name
from qudi.util.instream.hub import declared_extra
from qudi.util.instream.raw_scaling import scaling_of

__all__ = ["ScopeOptions"]


class ScopeOptions(ScopeEventOptions):
    """``set_scope_settings``, ``scope_settings``, ``scope_windows``, ``start_scope``,
    ``stop_scope``, ``sigScopeChanged`` and ``sigScopeSettingsChanged`` (and, inherited, the
    event source: connector ``trigger_events``)."""

    sigScopeChanged = QtCore.Signal(object)  # ScopeView
    sigScopeSettingsChanged = QtCore.Signal(dict)

    _saved_scope_settings = StatusVar("scope_settings", default=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        markers = getattr(self, "sigMarkersChanged", None)  # MarkerOptions' (x, text) in view
        if markers is not None:
            markers.connect(self._scope_markers, QtCore.Qt.ConnectionType.DirectConnection)

    # ------------------------------------------------------------------------- public
    @property
    def scope_settings(self) -> dict[str, Any]:
        """The triggered view's settings in force (a copy)."""
        with self._lock:
            return dict(self._scope_state()[0])

    @property
    def scope_windows(self) -> ScopeView:
        """``(t, {channel: windows}, {channel: average}, stats)`` now (copies)."""
        with self._lock:
            settings, scope, reason = self._scope_state()
            if scope is None:
                return empty_view(reason or ("stopped" if settings["enabled"] else "disabled"))
            return self._scope_view(scope)

    def set_scope_settings(self, settings: Mapping[str, Any] | None = None, **kwargs) -> dict:
        """Change the triggered view's settings (see ``scope_settings`` for the keys).

        Everything is checked first; a refused change changes nothing. A change starts the
        scope anew (its kept windows and counts are cleared).

        Returns
        -------
        dict
            The settings in force.

        Raises
        ------
        ValueError
            A bad or unknown setting (the message names it, its value and what is valid).
        """
        changes = {**(dict(settings) if settings is not None else {}), **kwargs}
        with self._lock:
            current = self._scope_state()[0]
            constraints = self._streamer().constraints
            channels = list(constraints.channel_units)
            events = self.trigger_event_channels
            new = checked_scope_settings(current, changes, channels, self.sampling_rate, events)
            self._scope_event_refusal(new)  # events only where they can be placed
            self._scope_settings_in_force = new
            self._saved_scope_settings = dict(new)
            self._scope_restart()
            self.sigScopeSettingsChanged.emit(dict(new))
            self.sigScopeChanged.emit(self.scope_windows)
            return dict(new)

    def start_scope(self) -> dict:
        """Enable the triggered view (it cuts windows while the logic reads)."""
        return self.set_scope_settings(enabled=True)

    def stop_scope(self) -> dict:
        """Disable the triggered view (its windows stay shown until it starts again)."""
        return self.set_scope_settings(enabled=False)

    # ---------------------------------------------------------------- the frame's hook
    def _feed_scope(self, blocks: list) -> None:
        """Hand the chunks the frame read to the scope (called with the logic's lock held)."""
        settings, scope, _ = self._scope_state()
        if not settings["enabled"]:
            return
        if getattr(self, "_builder", None) is not self._scope_trace:  # a new trace: anew
            scope = self._scope_restart()
        if scope is not None and blocks and blocks[0][0].dtype.names is not None:
            scope, self._scope = None, None  # event records: no samples to cut windows of
            self._scope_why = "the triggered view needs a stream of samples, not of records"
        if scope is None:  # it cannot trigger (the reason is in its view's stats)
            return
        lost = getattr(self._streamer(), "lost_samples", None)
        gap = 0
        if isinstance(lost, int):
            gap = max(0, lost - self._scope_lost) if self._scope_lost is not None else 0
            self._scope_lost = lost
        before = self._scope_counts(scope)
        self._scope_events_take(gap + sum(len(data) for data, _ in blocks))
        if self._scope is None:  # the event stream failed (its state says why)
            self.sigScopeChanged.emit(self.scope_windows)
            return
        windows = 0
        for data, _ in blocks:
            windows += scope.feed(data, gap)
            gap = 0
        if gap:  # a gap with no chunk after it yet: it ends what came before
            scope.feed(np.empty((0, len(scope.channels))), gap)
        if windows or self._scope_counts(scope) != before:  # not for samples: views copy
            self.sigScopeChanged.emit(self._scope_view(scope))

    @QtCore.Slot(object)
    def _scope_markers(self, shown: list) -> None:
        """Markers in the trace window ``(x, text)``: each new one triggers (if the scope
        triggers on markers) at sample ``round(x * sample_rate)`` of the run."""
        with self._lock:
            scope = getattr(self, "_scope", None)
            if scope is None or scope.settings["source"] != "marker":
                return
            near = max(scope.pre + scope.post, round(0.05 * scope.sample_rate))
            for x, text in shown:
                index = round(float(x) * scope.sample_rate)
                if any(t == text and abs(i - index) <= near for i, t in self._scope_marked):
                    continue  # the same marker again (its place moves a little each frame)
                self._scope_marked.append((index, text))
                scope.add_marker(index, text)

    # ------------------------------------------------------------------------ internals
    def _scope_state(self) -> tuple[dict[str, Any], Scope | None, str | None]:
        """The settings in force (restored from the status variable at first use), the
        running scope and why none runs."""
        if getattr(self, "_scope_settings_in_force", None) is None:
            channels = list(self._streamer().constraints.channel_units)
            settings, why = restored_scope_settings(
                self._saved_scope_settings, channels, self.sampling_rate, self._event_names()
            )
            if why:
                self.log.warning(f"saved scope settings not usable ({why}); using defaults")
            self._scope_settings_in_force = settings
            self._scope, self._scope_trace, self._scope_why = None, None, None
            self._scope_lost = None
        return self._scope_settings_in_force, self._scope, self._scope_why

    def _scope_restart(self) -> Scope | None:
        """A new scope for the trace in force (None if disabled or it cannot trigger)."""
        settings = self._scope_settings_in_force
        self._scope, self._scope_why = None, None
        self._scope_events_close()  # a new scope: its events are placed anew
        self._scope_trace = getattr(self, "_builder", None)
        self._scope_lost = None
        self._scope_marked: list[tuple[int, str]] = []  # markers handed to this scope
        if not settings["enabled"]:
            return None
        channels = list(self.active_channel_names)
        try:
            timing = timing_name(self._streamer().constraints)
            if settings["source"] == "marker" and timing != "CONSTANT":
                raise ValueError(
                    f"markers trigger the view on streams of CONSTANT timing only (this one "
                    f"is {timing}: its samples have no index a marker's time gives)"
                )
            raw = scaling_of(declared_extra(self._streamer()), channels)
            self._scope = Scope(settings, channels, self.sampling_rate, self.module_name, raw)
            self._scope_events_restart(settings, self.sampling_rate)
        except ValueError as why:  # e.g. the trigger channel is not active now
            self._scope, self._scope_why = None, str(why)
            self.log.warning(f"the triggered view cannot run: {why}")
        lost = getattr(self._streamer(), "lost_samples", None)
        self._scope_lost = lost if isinstance(lost, int) else None
        return self._scope

    def _scope_view(self, scope: Scope) -> ScopeView:
        """The scope's view, its stats with the event source's counts."""
        view = scope.view()
        view.stats.update(self._scope_event_counts())
        return view

    def _scope_counts(self, scope: Scope) -> dict[str, Any]:
        """The scope's counts without the samples read (which change with every chunk)."""
        stats = {**scope.stats, **self._scope_event_counts()}
        stats.pop("samples")
        stats.pop("events", None)  # records read: they too change with every chunk
        return stats

    def _event_names(self) -> list[str] | None:
        """The trigger event stream's channels, None if there is none (or it cannot say)."""
        try:
            return self.trigger_event_channels
        except Exception as error:  # noqa: BLE001 - e.g. its module is not active yet
            self.log.warning(f"the trigger event stream's channels are unknown: {error}")
            return None
