"""LslOutlet: a qudi stream published as a Lab Streaming Layer outlet (an interfuse).

Example config (copy into the ``hardware:`` section; needs ``pip install 'qudi-instream[lsl]'``)::

    lsl_out:
        module.Class: 'instream.lsl_outlet.LslOutlet'
        options:
            stream_name: 'qudi APD'      # optional: the LSL stream's name (default: module name)
            stream_type: 'qudi'          # optional: its type (LSL's content type, e.g. 'EEG')
            source_id: null              # optional: unique id; default qudi-instream:<host>:<name>
                                         # (an inlet that lost the outlet finds it again by it)
            push_rate: 30.0              # optional: reads of the stream and pushes per second
            max_buffered: 60             # optional: s the outlet keeps for a slow inlet
            start_on_activation: True    # optional: publish at once, or on start_publishing()
        connect:
            streamer: 'lsl_buffer'       # any DataInStreamInterface; a DataInStreamBuffer
                                         # makes the outlet one consumer among the others

The outlet describes the stream as LSL tools expect it: channel count, the nominal rate (0,
LSL's irregular rate, for a RANDOM stream), the channel format from the stream's dtype
(float32, float64, int8 to int64 as they are; float16 and unsigned types widened exactly), and
the channel names and units in the XML description (``desc/channels/channel/label|unit``).

Samples carry host monotonic times, the clock of ``pylsl.local_clock()``, from the stream's
own time base: when the connected streamer's ring is on this host (a ``DataInStreamBuffer``
names it), the fitted clock of its time table gives each CONSTANT sample's time by its ring
index (pushed once per chunk: LSL derives the others from the rate) and each TIMESTAMP
sample's time from its stamp (pushed per sample); :meth:`LslOutlet.time_uncertainty` says how
well the time base knew each. Otherwise (a stream from another host) the times are estimated
from the first samples read (:attr:`LslOutlet.time_origin`). Samples this outlet loses (its
buffer fell behind) leave a gap of the same length in the LSL times.

A marker stream (a ``DataInStreamBuffer`` of an ``instream.markers.MarkerStream``: records of
``MARKER_DTYPE``) becomes an LSL marker stream: one ``cf_string`` channel ``marker`` at LSL's
irregular rate, one sample per marker, stamped with the marker's time (host monotonic
seconds, which is ``pylsl.local_clock()``'s clock). Use ``stream_type: 'Markers'``, what LSL
tools look for::

    lsl_markers:
        module.Class: 'instream.lsl_outlet.LslOutlet'
        options:
            stream_name: 'qudi markers'
            stream_type: 'Markers'
        connect:
            streamer: 'marker_buffer'    # a DataInStreamBuffer of the MarkerStream
"""

from __future__ import annotations

import bisect
import math
import socket
import threading
from typing import Any

from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.core.module import Base

from qudi.util.instream.arrays import option_error
from qudi.util.instream.enums import member_name
from qudi.util.instream.lsl_markers import MarkerPublisher, is_marker_dtype, marker_outlet_info
from qudi.util.instream.lsl_publisher import LslPublisher, OutletClock, outlet_info
from qudi.util.instream.lsl_support import load_pylsl
from qudi.util.instream.ring import StreamRing
from qudi.util.instream.stream_clock import StreamClock

__all__ = ["LslOutlet"]

PUSH_RATE_LIMITS = (1.0, 1000.0)  # Hz


class LslOutlet(Base):
    """Publishes its connected stream as an LSL outlet; see the module docstring."""

    _streamer = Connector(name="streamer", interface="DataInStreamInterface")
    _stream_name = ConfigOption("stream_name", default=None)
    _stream_type = ConfigOption("stream_type", default="qudi")
    _source_id = ConfigOption("source_id", default=None)
    _push_rate = ConfigOption("push_rate", default=30.0)
    _max_buffered = ConfigOption("max_buffered", default=60)
    _start_on_activation = ConfigOption("start_on_activation", default=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pylsl: Any = None
        self._outlet: Any = None
        self._publisher: LslPublisher | MarkerPublisher | None = None
        self._clock: OutletClock | None = None
        self._ring: StreamRing | None = None  # the stream's ring, attached for its time base
        self._lock = threading.Lock()

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        for key in ("stream_name", "stream_type", "source_id"):
            value = getattr(self, f"_{key}")
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise option_error(key, value, "use a non-empty string (or leave it out)")
        rate = self._push_rate
        low, high = PUSH_RATE_LIMITS
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not low <= rate <= high:
            raise option_error("push_rate", rate, f"use a number of Hz from {low:g} to {high:g}")
        buffered = self._max_buffered
        if isinstance(buffered, bool) or not isinstance(buffered, int) or buffered < 1:
            raise option_error("max_buffered", buffered, "use a whole number of seconds >= 1")
        if not isinstance(self._start_on_activation, bool):
            raise option_error("start_on_activation", self._start_on_activation, "True or False")
        self._pylsl = load_pylsl()
        if self._start_on_activation:
            self.start_publishing()

    def on_deactivate(self) -> None:
        self.stop_publishing()

    # ------------------------------------------------------------------------- public API
    @property
    def stream_name(self) -> str:
        """The LSL stream's name."""
        return self._stream_name or self.module_name

    @property
    def source_id(self) -> str:
        """The LSL stream's source_id (an inlet that lost the outlet finds it again by it)."""
        return self._source_id or f"qudi-instream:{socket.gethostname()}:{self.stream_name}"

    @property
    def publishing(self) -> bool:
        """Whether the outlet exists and its thread pushes."""
        publisher = self._publisher
        return publisher is not None and publisher.running

    @property
    def samples_pushed(self) -> int:
        """Samples pushed since publishing started."""
        publisher = self._publisher
        return 0 if publisher is None else publisher.pushed

    @property
    def lost_samples(self) -> int:
        """Samples of the stream this outlet never pushed (it read too slowly)."""
        publisher = self._publisher
        return 0 if publisher is None else publisher.lost

    @property
    def uses_stream_time_base(self) -> bool:
        """Whether the LSL times come from the stream's time base (else: estimated; a marker
        stream's are the markers' own times)."""
        clock = self._clock
        return clock is not None and clock.uses_time_base

    @property
    def publishes_markers(self) -> bool:
        """Whether the outlet is an LSL marker stream (its streamer streams markers)."""
        return isinstance(self._publisher, MarkerPublisher)

    def time_uncertainty(self, index: int) -> float:
        """The uncertainty (s) the stream's time base gave for the LSL time of the stream's
        sample ``index`` (a ring index, as in the time base) when it was pushed; inf while the
        time base had too few rows to say, NaN if the times are estimated or the sample was
        not pushed recently."""
        clock = self._clock
        if clock is None or not clock.uses_time_base:
            return float("nan")
        pushes = list(clock.pushed_uncertainty)
        at = bisect.bisect_left([last for last, _ in pushes], index)
        return pushes[at][1] if at < len(pushes) else float("nan")

    @property
    def time_origin(self) -> tuple[float, float] | None:
        """``(origin, uncertainty)`` in host monotonic seconds: LSL time of stream time 0
        (see the module docstring); None before the first samples were pushed."""
        clock = self._clock
        if clock is None or clock.origin is None:
            return None
        return clock.origin, clock.origin_uncertainty

    def start_publishing(self) -> None:
        """Start the connected stream, create the outlet and push (harmless if publishing).

        Raises
        ------
        ValueError
            If LSL cannot carry the stream's dtype; nothing starts.
        """
        with self._lock:
            if self._publisher is not None:
                return
            streamer = self._streamer()
            constraints = streamer.constraints
            if is_marker_dtype(constraints.data_type):
                self._start_markers(streamer)
                return
            channels = list(streamer.active_channels)
            units = [constraints.channel_units.get(ch, "") for ch in channels]
            timing = member_name(constraints.sample_timing)
            rate = float(streamer.sample_rate)
            info, pushed = outlet_info(
                self._pylsl,
                self.stream_name,
                self._stream_type,
                self.source_id,
                channels,
                units,
                0.0 if timing == "RANDOM" else rate,
                constraints.data_type,
            )
            streamer.start_stream()
            try:
                self._clock = self._outlet_clock(streamer, rate, timing == "TIMESTAMP")
                self._outlet = self._pylsl.StreamOutlet(info, max_buffered=self._max_buffered)
                period = 1.0 / float(self._push_rate)
                room = max(1024, math.ceil(2 * rate * period))
                self._publisher = LslPublisher(
                    self.module_name,
                    streamer,
                    self._outlet,
                    constraints.data_type,
                    pushed,
                    len(channels),
                    self._clock,
                    period,
                    room,
                )
            except BaseException:
                self._outlet = None
                self._release_ring()
                streamer.stop_stream()
                raise

    def _start_markers(self, streamer: Any) -> None:
        """Publish a marker stream: one string sample per marker, at the marker's time."""
        info = marker_outlet_info(self._pylsl, self.stream_name, self._stream_type, self.source_id)
        streamer.start_stream()
        try:
            self._outlet = self._pylsl.StreamOutlet(info, max_buffered=self._max_buffered)
            self._publisher = MarkerPublisher(
                self.module_name, streamer, self._outlet, 1.0 / float(self._push_rate)
            )
        except BaseException:
            self._outlet = None
            streamer.stop_stream()
            raise

    def _outlet_clock(self, streamer: Any, rate: float, timestamped: bool) -> OutletClock:
        """The clock of the pushes: the stream's own time base when the streamer's ring is
        on this host (a ``DataInStreamBuffer`` names it: ``stream_name``), else estimated."""
        name = getattr(streamer, "stream_name", None)
        if not isinstance(name, str):
            return OutletClock(rate, timestamped)
        try:
            ring = StreamRing.attach(name)
        except Exception:  # noqa: BLE001 - no shared ring here: estimate the times instead
            return OutletClock(rate, timestamped)
        self._ring = ring
        try:
            stream_clock = StreamClock(ring)
        except ValueError:  # a ring without a time table
            return OutletClock(rate, timestamped)

        def locate() -> int | None:
            """Ring index of the next sample the streamer will give this outlet."""
            for _ in range(100):  # the pump writes between the two looks only rarely
                before = ring.write_index
                waiting = int(streamer.available_samples)
                if ring.write_index == before:
                    return before - waiting
            return None

        return OutletClock(rate, timestamped, stream_clock, locate)

    def _release_ring(self) -> None:
        ring, self._ring = self._ring, None
        if ring is not None:
            ring.close()

    def stop_publishing(self) -> None:
        """Stop pushing, destroy the outlet (LSL tools see it go) and stop this consumer."""
        with self._lock:
            publisher, self._publisher = self._publisher, None
            outlet, self._outlet = self._outlet, None
            if publisher is None:
                return
            try:
                publisher.stop()
            finally:
                del outlet  # the last reference: pylsl destroys the liblsl outlet now
                self._release_ring()
                self._streamer().stop_stream()
