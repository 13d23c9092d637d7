"""TraceSetup: the trace settings and channels a logic holds for its stream, kept as in force.

At activation, :meth:`TraceSetup.restore` takes the saved settings, or falls back. The logic
asks for settings (:meth:`TraceSetup.apply`): they are checked, the new trace is
built (so a window that does not fit in memory changes nothing), the streamer is configured,
and only then are they adopted. What the logic shows and saves is :meth:`TraceSetup.in_force`:
the adopted settings at the rate the stream really has, since another consumer of a shared
stream may have set it while this logic was idle.

Kinds of stream (from the stream's description, ``declared_extra``): channels it declares
``digital_channels`` are 0/1 lines, never averaged nor shown as counts per second; an event
stream (``kind: events``) shows one rate trace per event channel
(:class:`~qudi.logic.instream.event_trace.EventRateTrace`), its trace settings choosing the
bins (``data_rate`` x ``oversampling_factor`` bins per second) and never the stream's rate,
which stays the event rate the streamer has.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qudi.logic.instream.event_trace import EventRateTrace, event_channels_of
from qudi.logic.instream.frames import FrameReader
from qudi.logic.instream.settings import (
    TRACE_SETTING_KEYS,
    PointLimit,
    TraceSettings,
    checked_trace_settings,
    default_settings,
    in_force,
)
from qudi.logic.instream.stream_setup import (
    build_trace,
    configure_stream,
    shown_units,
    timing_name,
)
from qudi.logic.instream.trace import TraceBuilder
from qudi.util.instream import StreamBusyError
from qudi.util.instream.hub import declared_extra
from qudi.util.instream.raw_scaling import scaled_units, scaling_of

__all__ = ["SetupOptions", "TraceSetup"]

DEFAULT_WINDOW_S = 6.0
EVENT_BIN_RATES = (1e-3, 1e6)  # bins per second an event stream's rate trace may have


@dataclass(frozen=True)
class SetupOptions:
    """The logic's config options that shape its stream and trace."""

    channel_buffer_size: int
    max_trace_bytes: int
    max_frame_rate: float
    count_units: tuple[str, ...]
    calc_digital_freq: bool

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> SetupOptions:
        """From the logic's checked config options, by their config keys."""
        return cls(
            int(options["channel_buffer_size"]),
            int(options["max_trace_bytes"]),
            float(options["max_frame_rate"]),
            tuple(options["count_units"]),
            bool(options["calc_digital_freq"]),
        )


class TraceSetup:
    """Settings and channel selection of one logic, as they meet its streamer.

    Parameters
    ----------
    streamer : callable
        Returns the streamer (the logic's connector).
    options : SetupOptions
        The logic's options.
    """

    def __init__(self, streamer: Callable[[], Any], options: SetupOptions):
        self._streamer = streamer
        self.options = options
        self._settings: TraceSettings | None = None  # adopted by apply() or take_stream()
        self._averaged: list[str] = []
        self._extra: Mapping[str, Any] = {}  # the stream's description extra (raw scaling)
        self._events: list[str] | None = None  # an event stream's channels (None: samples)

    # ---------------------------------------------------------------------- in force
    @property
    def active(self) -> list[str]:
        """The stream's active channels."""
        return list(self._streamer().active_channels)

    @property
    def averaged(self) -> list[str]:
        """The averaged channels among the active ones (never a digital line)."""
        active, lines = self.active, set(self.digital)
        return [ch for ch in self._averaged if ch in active and ch not in lines]

    @property
    def digital(self) -> list[str]:
        """The active channels the stream declares digital lines (0/1)."""
        declared = self._extra.get("digital_channels", [])
        return [ch for ch in self.active if ch in declared]

    @property
    def event_channels(self) -> list[str] | None:
        """An event stream's channels (each a rate trace), None for a stream of samples."""
        return None if self._events is None else list(self._events)

    @property
    def shown(self) -> list[str]:
        """The channels of the trace: the active ones, or an event stream's channels."""
        return self.active if self._events is None else list(self._events)

    @property
    def timing(self) -> str:
        """The stream's sample timing by name."""
        return timing_name(self._streamer().constraints)

    def in_force(self) -> TraceSettings:
        """The adopted settings at the rate the stream has now."""
        if self._settings is None:
            raise RuntimeError("no trace settings were adopted yet")
        if self._events is not None:  # its bins are this logic's own: nothing to follow
            return self._settings
        rate = float(self._streamer().sample_rate)
        return in_force(self._settings, rate, self._limit(self.active, self.averaged))

    def follow(self) -> TraceSettings:
        """Adopt what is in force (and drop averaged channels that are no longer active)."""
        self._settings, self._averaged = self.in_force(), self.averaged
        return self._settings

    def status(self, log: logging.Logger) -> dict[str, Any]:
        """The values of the logic's status variables, as in force.

        Empty (with a warning to ``log``) if the streamer cannot say (it went away): the
        logic then keeps what it last adopted.
        """
        try:
            settings = self.follow().as_dict()
            active, averaged = self.active, self.averaged
        except Exception as error:
            log.warning(f"could not read the settings in force: {error}")
            return {}
        return {**settings, "active_channels": active, "averaged_channels": averaged}

    def units(self, channels: Iterable[str]) -> dict[str, str]:
        """Units of ``channels`` as the trace shows them (counts per sample as ``c/s``; an
        event stream's channels are rates, ``c/s``)."""
        if self._events is not None:
            return dict.fromkeys(channels, "c/s")
        units = scaled_units(self._extra, self._streamer().constraints.channel_units)
        options = self.options
        to_rate, digital = options.calc_digital_freq, self.digital
        return shown_units(units, channels, options.count_units, to_rate, digital)

    # ----------------------------------------------------------------------- changes
    def restore(self, saved: Mapping[str, Any], log: logging.Logger):
        """At activation: the saved settings, else the streamer's defaults, else the stream as
        another consumer runs it; never fails for a saved value. Returns the new trace.

        Parameters
        ----------
        saved : mapping
            The logic's status variables by name (``trace_window_size``, ...,
            ``active_channels``, ``averaged_channels``), as a former session saved them.
        log : logging.Logger
            Where to warn about a saved value that is not used.

        Returns
        -------
        tuple
            The trace and its read block (see :meth:`apply`).
        """
        active, averaged = self._restored_channels(
            saved["active_channels"], saved["averaged_channels"]
        )
        width = saved["moving_average_width"]
        if isinstance(width, bool) or not isinstance(width, int) or width < 1 or width % 2 == 0:
            log.warning(f"moving_average_width {width!r} is not odd and positive: using 9")
            width = 9
        settings = {key: saved[key] for key in TRACE_SETTING_KEYS}
        settings["moving_average_width"] = width
        try:
            try:
                return self.apply(active, averaged, settings, running=False)
            except (ValueError, MemoryError) as invalid:  # saved settings not usable any more
                log.warning(f"saved trace settings not usable ({invalid}); using defaults")
                rate = self._streamer().constraints.sample_rate.default
                rate = rate if self._events is None else 50.0  # bins per second
                return self.apply(active, averaged, default_settings(rate), running=False)
        except StreamBusyError as busy:
            # another consumer streams with other settings: follow the stream as it is
            log.warning(f"{busy}; showing the stream with its current settings instead")
            return self.take_stream(averaged, width, saved["trace_window_size"])

    def _restored_channels(self, active: object, averaged: object) -> tuple[list[str], list[str]]:
        """Saved channel choices where the streamer still has them, else its own."""
        streamer = self._streamer()
        available = list(streamer.constraints.channel_units)
        if not isinstance(active, list) or not active or any(c not in available for c in active):
            active = list(streamer.active_channels) or available
        if not isinstance(averaged, list):
            return list(active), list(active)
        return list(active), [ch for ch in averaged if ch in active]

    def apply(
        self, active: Sequence[str], averaged: Sequence[str], settings: Mapping, *, running: bool
    ) -> tuple[TraceBuilder, FrameReader]:
        """Check, build the new trace, configure the streamer, then adopt: all or nothing.

        Parameters
        ----------
        active, averaged : sequence of str
            The channels, checked already (see ``settings.checked_channels``).
        settings : mapping
            The four trace settings.
        running : bool
            Whether the logic streams now (it pauses only if the streamer needs that). An idle
            logic's new trace shows a window of zeros until its first point, as
            qudi-iqo-modules' logic does; a running one's shows its real points only.

        Returns
        -------
        tuple
            The new trace and the read block for it.

        Raises
        ------
        ValueError
            A bad setting (see ``settings.checked_trace_settings``).
        MemoryError
            The new trace does not fit in memory.
        Exception
            What the streamer's ``configure`` raises (``StreamBusyError``).
        """
        streamer = self._streamer()
        self._look_at_stream(streamer)
        limit = self._limit(active, averaged)
        bounds = streamer.constraints.sample_rate.bounds if self._events is None else None
        if bounds is None:  # the bins of an event stream's rate trace
            checked = checked_trace_settings(settings, EVENT_BIN_RATES, limit, "the bin rates")
        else:
            checked = checked_trace_settings(settings, bounds, limit)
        builder = self._builder(active, averaged, checked, not running)  # MemoryError: no change
        buffer_size = self.options.channel_buffer_size
        rate = checked.sample_rate if self._events is None else float(streamer.sample_rate)
        configure_stream(streamer, active, rate, buffer_size, running)
        self._settings, self._averaged = checked, list(averaged)
        if self._events is None and not math.isclose(
            float(streamer.sample_rate), checked.sample_rate, rel_tol=1e-9
        ):
            del builder  # the streamer set another rate than asked: build for that one
            return self.new_trace(placeholder=not running)
        return builder, self._frame_reader(active, checked)

    def take_stream(
        self, averaged: Sequence[str], width: int, window: object
    ) -> tuple[TraceBuilder, FrameReader]:
        """Adopt the stream as another consumer runs it (oversampling 1); a new trace for it.

        ``window`` is the saved window length; an unusable one becomes 6 s.
        """
        seconds = DEFAULT_WINDOW_S
        if isinstance(window, (int, float)) and math.isfinite(window) and window > 0:
            seconds = float(window)
        self._look_at_stream(self._streamer())
        rate = float(self._streamer().sample_rate) if self._events is None else 50.0
        self._settings = TraceSettings(1, width, seconds, rate)
        self._averaged = list(averaged)
        return self.new_trace(placeholder=True)

    def new_trace(self, placeholder: bool = False) -> tuple[TraceBuilder, FrameReader]:
        """A new, empty trace for the stream in force, and its read block.

        ``placeholder``: show a window of zeros until the first point (see ``TraceBuilder``).
        """
        self._look_at_stream(self._streamer())
        settings = self.follow()
        active, averaged = self.active, self.averaged
        builder = self._builder(active, averaged, settings, placeholder)
        return builder, self._frame_reader(active, settings)

    # --------------------------------------------------------------------- internals
    def _look_at_stream(self, streamer) -> None:
        """What the stream declares: raw scaling, digital lines, events (see the docstring)."""
        self._extra = declared_extra(streamer)
        self._events = event_channels_of(self._extra)

    def _limit(self, channels: Sequence[str], averaged: Sequence[str]) -> PointLimit:
        timestamps = self.timing == "TIMESTAMP"
        if self._events is not None:  # each event channel is a curve (all averaged or none)
            channels, averaged = self._events, self._events if averaged else []
        return PointLimit(self.options.max_trace_bytes, len(channels), len(averaged), timestamps)

    def _builder(self, channels, averaged, settings: TraceSettings, placeholder):
        """The trace: a TraceBuilder, or for an event stream an EventRateTrace."""
        streamer, options = self._streamer(), self.options
        if self._events is not None:  # 'events' averaged: every event channel is
            return EventRateTrace(
                self._events,
                settings.data_rate,
                settings.trace_window_size,
                oversampling=settings.oversampling_factor,
                moving_average_width=settings.moving_average_width,
                averaged=self._events if averaged else [],
                placeholder=placeholder,
            )
        lines = set(self.digital)  # raw codes: shown in volts (scaled once)
        averaged = [ch for ch in averaged if ch not in lines]
        raw = scaling_of(self._extra, list(channels))
        units, to_rate = options.count_units, options.calc_digital_freq
        return build_trace(
            streamer.constraints,
            channels,
            averaged,
            settings,
            units,
            to_rate,
            placeholder,
            raw,
            [ch for ch in channels if ch in lines],
        )

    def _frame_reader(self, channels: Sequence[str], settings: TraceSettings) -> FrameReader:
        streamer = self._streamer()
        rate = settings.sample_rate if self._events is None else float(streamer.sample_rate)
        return FrameReader(
            len(channels),
            streamer.constraints.data_type,
            rate,
            self.options.max_frame_rate,
            self.timing == "TIMESTAMP",
        )
