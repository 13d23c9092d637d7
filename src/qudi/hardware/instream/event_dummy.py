"""InStreamEventDummy: simulated photon arrivals on several channels, streamed as event records.

Example config (copy into the ``hardware:`` section)::

    event_dummy:
        module.Class: 'instream.event_dummy.InStreamEventDummy'
        options:
            event_channels: ['APD 1', 'APD 2', 'APD 3', 'APD 4']
            event_rates: [2.5e5, 2.5e5, 2.5e5, 2.5e5]   # optional: mean events per second each
            seed: 0                                    # optional: an integer >= 0

It streams one column, ``events``, of :data:`~qudi.util.instream.events.EVENT_DTYPE` records
``(time, channel, value)``: ``time`` in seconds since the start, ``channel`` the index of the
arrival's channel in ``event_channels``, ``value`` 1.0 (a photon). Its ``sample_rate`` is the
mean number of events per second of all channels together, and ``configure`` with another rate
scales every channel's rate alike. Any number of ``DataInStreamBuffer`` consumers share it
through one ring as they share any streamer (a reader's ``lost`` counts events), and the
records' dtype is ``constraints.data_type`` (a structured numpy dtype, not a scalar type).
With ``allow_remote: True`` a buffer in another qudi joins it like any streamer of the
package (shared memory on this host, ZeroMQ from another: the ``publish_address`` options of
``instream.stream_sharing.SharedStreamer``), and the records keep their dtype there.
Arrivals are drawn as the clock passes, one millisecond at a time; events not read before its
buffer (``channel_buffer_size`` events) fills stop it, and the next read says so.
"""

from __future__ import annotations

import time

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.util.constraints import ScalarConstraint

from qudi.hardware.instream.source_streamer import SourceStreamer
from qudi.hardware.instream.stream_sharing import SharedStreamer
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    StreamingMode,
    StreamRequest,
)
from qudi.util.instream.arrays import check_count, option_error
from qudi.util.instream.events import EVENT_DTYPE, EventSource

__all__ = ["InStreamEventDummy"]

RATE_LIMITS = (1.0, 1e7)  # events per second, all channels
BUFFER_LIMITS = (1024, 2**28)  # events
_WAIT_STEP_S = 0.01


class InStreamEventDummy(SourceStreamer, SharedStreamer, DataInStreamInterface):
    """Poisson photon arrivals as a stream of event records; see the module docstring."""

    _event_channels = ConfigOption("event_channels", missing="error")
    _event_rates = ConfigOption("event_rates", default=None)
    _seed = ConfigOption("seed", default=0)
    _configure_refusal = "cannot configure the event dummy while it streams"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._source: EventSource | None = None
        self._constraints: DataInStreamConstraints | None = None

    def on_activate(self) -> None:
        channels = self._event_channels
        if (
            not isinstance(channels, list)
            or not channels
            or not all(isinstance(c, str) for c in channels)
            or len(set(channels)) != len(channels)
        ):
            raise option_error("event_channels", channels, "use a list of unique channel names")
        rates = self._event_rates
        if rates is None:
            rates = [1e5] * len(channels)
        ok = isinstance(rates, list) and len(rates) == len(channels)
        ok = ok and all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= r < 1e12 for r in rates
        )
        if not ok or not sum(rates) > 0:
            raise option_error(
                "event_rates",
                rates,
                f"use {len(channels)} mean event rates per second (>= 0, not all 0), one per "
                "channel in event_channels",
            )
        seed = self._seed
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise option_error("seed", seed, "use an integer >= 0")
        total = float(sum(rates))
        if not RATE_LIMITS[0] <= total <= RATE_LIMITS[1]:
            raise option_error(
                "event_rates",
                rates,
                f"their sum must be {RATE_LIMITS[0]:g} to {RATE_LIMITS[1]:g}/s",
            )
        self.check_publish_address()  # consumers in other qudi processes join it
        self._constraints = DataInStreamConstraints(
            channel_units={"events": ""},
            sample_timing="RANDOM",
            streaming_modes=[StreamingMode.CONTINUOUS],
            data_type=EVENT_DTYPE,  # structured: constraints keep the whole dtype
            channel_buffer_size=ScalarConstraint(
                default=1 << 22, bounds=BUFFER_LIMITS, increment=1, enforce_int=True
            ),
            sample_rate=ScalarConstraint(default=total, bounds=RATE_LIMITS, increment=0.0),
        )
        self._source = EventSource(channels, [float(r) for r in rates], seed=seed)

    def on_deactivate(self) -> None:
        if self._source is not None:
            self._source.stop_stream()
        self._source = None

    # --------------------------------------------------------------------------- settings
    @property
    def constraints(self) -> DataInStreamConstraints:
        if self._constraints is None:
            raise RuntimeError(f"'{self.module_name}' is not active; activate it first")
        return self._constraints

    @property
    def event_channels(self) -> list[str]:
        """The names of the channels, by the records' ``channel`` index."""
        return list(self._active_source().event_channels)

    @property
    def stream_extra(self) -> dict:
        """What a hub keeps with the stream: its kind and the event channels' names."""
        return {} if self._source is None else dict(self._source.stream_extra)

    @property
    def streaming_mode(self) -> StreamingMode:
        return StreamingMode.CONTINUOUS

    @property
    def active_channels(self) -> list[str]:
        return ["events"]

    def _checked_request(
        self, active_channels, streaming_mode, channel_buffer_size, sample_rate
    ) -> StreamRequest:
        """``configure``: only ``['events']``, CONTINUOUS; ``sample_rate`` is the total events
        per second. A ValueError for anything else (nothing changes)."""
        mode = StreamingMode.coerce(streaming_mode, "streaming_mode")
        size = check_count(
            channel_buffer_size,
            BUFFER_LIMITS[1],
            "channel_buffer_size",
            "the largest event buffer",
            minimum=BUFFER_LIMITS[0],
        )
        rate = self.constraints.sample_rate
        if not (isinstance(sample_rate, (int, float)) and rate.is_valid(sample_rate)):
            raise ValueError(
                f"sample_rate is {sample_rate!r}: use a total of {RATE_LIMITS[0]:g} to "
                f"{RATE_LIMITS[1]:g} events per second"
            )
        return StreamRequest(tuple(active_channels), mode, size, float(sample_rate))

    # ----------------------------------------------------------------------- acquisition
    def _read_samples(self, data, stamps, count: int, timeout: float | None) -> None:
        """``read_data_into_buffer``: wait until ``count`` events arrived and take them
        (records, flat)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        source = self._active_source()
        while source.available_samples < count:
            if not source.is_running:
                raise RuntimeError(
                    f"the event stream is not running and holds {source.available_samples} of "
                    f"{count} events: call start_stream() first"
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{count} events did not arrive within {timeout} s")
            time.sleep(_WAIT_STEP_S)
        source.read_data_into_buffer(data.reshape(-1), count)

    def _read_available(self, data, stamps, room: int) -> int:
        return self._active_source().read_available_data_into_buffer(data.reshape(-1))

    def read_single_point(self) -> tuple[np.ndarray, None]:
        """An empty record (events have no "current value"; read the stream for them)."""
        return np.zeros(1, EVENT_DTYPE), None

    # -------------------------------------------------------------------------- internals
    def _has_timestamps(self, source: EventSource) -> bool:
        return False
