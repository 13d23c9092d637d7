"""DataInStreamSync: several streamers as one stream, on the primary streamer's clock.

Example config (copy into the ``hardware:`` section)::

    instream_sync:
        module.Class: 'instream.sync.DataInStreamSync'
        options:
            allow_overwrite: False   # optional: False raises on lost samples, True skips them
            max_poll_rate: 100.0     # optional: reads of each streamer per second (Hz, 1 to
                                     # 1000); faster polls time slow streams better
            missing: 'wait'          # optional: 'wait' (a read waits for every secondary to
                                     # reach the primary's times) or 'nan' (NaN, counted)
            shared_clock: null       # optional: a name, if all streamers run on one hardware
                                     # clock their own configs do not declare
            start_trigger: null      # optional: a name, if they also start on one trigger
        connect:
            primary_streamer: 'instream_dummy'     # its samples set the time axis
            secondary_streamer: 'wavemeter_dummy'
            # secondary_streamer_2: ...            # optional, up to three secondaries
            # secondary_streamer_3: ...

The channels are the primary's followed by each secondary's, in connector order; a
secondary's channel whose name another stream has too is called ``<module name>.<channel>``.
Each read returns the primary's next samples and, for every secondary, its values at the
times those samples were taken, linearly interpolated between the secondary's two samples
around each time (an :class:`~qudi.util.instream.aligned_reader.AlignedReader`): exactly when
the streamers declare one clock (the dummies' ``shared_clock`` option, an NI card's shared
sample clock) or the config does, otherwise by offset and drift fitted from the streams' time
tables. Edge values are never held: see ``missing``. The data type is float64 (NaN needs it);
the sample rate and timing are the primary's. :attr:`alignment_uncertainty` says how well
each secondary is placed (seconds, 0 when exact).

The streamers are read through the same shared hubs as ``DataInStreamBuffer``\\ s read them,
so other consumers of those streamers go on undisturbed. Configuring the sync configures the
primary's rate and buffer size; the secondaries keep their own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector

from qudi.hardware.instream.buffer import is_remote
from qudi.hardware.instream.source_streamer import KeptSettingsStreamer
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    StreamingMode,
    StreamRequest,
)
from qudi.util.instream.aligned_reader import MISSING_POLICIES, AlignedReader
from qudi.util.instream.arrays import as_channel_names, option_error
from qudi.util.instream.contracts import JoinedHub, StreamReader
from qudi.util.instream.errors import StreamStoppedError
from qudi.util.instream.hub import MAX_POLL_RATE, MIN_POLL_RATE, check_poll_rate
from qudi.util.instream.sharing import join_module_hub, join_remote_stream
from qudi.util.instream.timebase import SampleClock

__all__ = ["DataInStreamSync", "merged_channel_names"]

_SECONDARIES = ("secondary_streamer", "secondary_streamer_2", "secondary_streamer_3")


def merged_channel_names(streams: list[tuple[str, list[str]]]) -> list[list[str]]:
    """Each stream's channel names in the merged stream: the first stream's as they are, a
    later stream's prefixed ``<stream>.`` where another stream has the same name."""
    counts: dict[str, int] = {}
    for _, names in streams:
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    merged = [list(streams[0][1])] if streams else []
    for stream, names in streams[1:]:
        merged.append([f"{stream}.{n}" if counts[n] > 1 else n for n in names])
    return merged


class DataInStreamSync(KeptSettingsStreamer, DataInStreamInterface):
    """Several streamers as one stream on the primary's clock; see the module docstring."""

    _primary = Connector(name="primary_streamer", interface="DataInStreamInterface")
    _secondary = Connector(name="secondary_streamer", interface="DataInStreamInterface")
    _secondary_2 = Connector(
        name="secondary_streamer_2", interface="DataInStreamInterface", optional=True
    )
    _secondary_3 = Connector(
        name="secondary_streamer_3", interface="DataInStreamInterface", optional=True
    )
    _allow_overwrite = ConfigOption("allow_overwrite", default=False)
    _max_poll_rate = ConfigOption("max_poll_rate", default=100.0)
    _missing = ConfigOption("missing", default="wait")
    _shared_clock = ConfigOption("shared_clock", default=None)
    _start_trigger = ConfigOption("start_trigger", default=None)
    _configure_refusal = "cannot configure the sync while it streams; stop it first"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hubs: list[JoinedHub] = []
        self._readers: list[StreamReader] = []
        self._names: list[list[str]] = []  # per stream, as the merged stream calls them
        self._units: dict[str, str] = {}
        self._aligned: AlignedReader | None = None
        self._last_uncertainty: dict[str, float] = {}

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        self._check_options()
        rate = float(self._max_poll_rate)
        streamers = [self._primary()] + [
            c() for c in (self._secondary, self._secondary_2, self._secondary_3) if c.is_connected
        ]
        try:
            for streamer in streamers:
                if is_remote(streamer):
                    hub = join_remote_stream(streamer, self.module_name, rate, "auto", None)
                else:
                    hub = join_module_hub(streamer, self.module_name, rate)
                self._hubs.append(hub)
                self._readers.append(
                    hub.open_reader(self.module_name, allow_overwrite=self._allow_overwrite)
                )
        except BaseException:
            self.on_deactivate()
            raise
        self._refresh_channels()
        self._active_names = [name for names in self._names for name in names]

    def on_deactivate(self) -> None:
        readers, hubs = self._readers, self._hubs
        self._readers, self._hubs, self._aligned = [], [], None
        for reader in readers:
            reader.close()
        for hub in hubs:
            hub.leave()

    def _check_options(self) -> None:
        if not isinstance(self._allow_overwrite, bool):
            raise option_error("allow_overwrite", self._allow_overwrite, "use True or False")
        try:
            check_poll_rate(self._max_poll_rate)
        except ValueError:
            raise option_error(
                "max_poll_rate",
                self._max_poll_rate,
                f"use a number of Hz from {MIN_POLL_RATE:g} to {MAX_POLL_RATE:g}",
            ) from None
        if self._missing not in MISSING_POLICIES:
            raise option_error("missing", self._missing, f"use one of {list(MISSING_POLICIES)}")
        for key in ("shared_clock", "start_trigger"):
            value = getattr(self, f"_{key}")
            if value is not None and (not isinstance(value, str) or not value):
                raise option_error(key, value, "use a name, or null")
        if self._start_trigger is not None and self._shared_clock is None:
            raise option_error(
                "start_trigger",
                self._start_trigger,
                "a start trigger lines streams up only on one clock: set shared_clock too",
            )

    def _refresh_channels(self) -> None:
        streams = []
        units: dict[str, str] = {}
        for hub, connector in zip(self._hubs, self._connector_names(), strict=False):
            info = hub.ring.info
            streams.append((connector, list(info.channel_names)))
        self._names = merged_channel_names(streams)
        for hub, names in zip(self._hubs, self._names, strict=True):
            info = hub.ring.info
            for name, unit in zip(names, info.channel_units or [""] * len(names), strict=True):
                units[name] = unit
        self._units = units

    def _connector_names(self) -> list[str]:
        modules = [self._primary] + [
            c for c in (self._secondary, self._secondary_2, self._secondary_3) if c.is_connected
        ]
        return [str(getattr(c(), "module_name", f"stream{i}")) for i, c in enumerate(modules)]

    # --------------------------------------------------------------------------- settings
    @property
    def constraints(self) -> DataInStreamConstraints:
        primary = self._primary().constraints
        return DataInStreamConstraints(
            channel_units=dict(self._units),
            sample_timing=primary.sample_timing,
            streaming_modes=[StreamingMode.CONTINUOUS],
            data_type=np.float64,
            channel_buffer_size=primary.channel_buffer_size,
            sample_rate=primary.sample_rate,
        )

    @property
    def available_samples(self) -> int:
        aligned = self._aligned
        return aligned.available if aligned is not None else self._primary_reader().available

    @property
    def sample_rate(self) -> float:
        return float(self._primary().sample_rate)

    @property
    def channel_buffer_size(self) -> int:
        return self._hubs[0].ring.capacity if self._hubs else 0

    @property
    def alignment_uncertainty(self) -> dict[str, float]:
        """Per secondary streamer (by module name): the uncertainty (s) of where its samples
        fall on the primary's time axis, as of the last read (0.0 when exact)."""
        return dict(self._last_uncertainty)

    def _checked_request(
        self, active_channels, streaming_mode, channel_buffer_size, sample_rate
    ) -> StreamRequest:
        """``configure``: channels (any of the merged ones, in the order given) and the
        primary's rate and buffer size (the primary checks those); refused while streaming
        or for unknown channels (nothing changes then)."""
        known = [name for names in self._names for name in names]
        channels = as_channel_names(active_channels, known=known)
        mode = StreamingMode.coerce(streaming_mode, "streaming_mode")
        if mode != StreamingMode.CONTINUOUS:
            raise ValueError(f"streaming_mode {mode.name}: the sync streams CONTINUOUS only")
        return StreamRequest(tuple(channels), mode, channel_buffer_size, sample_rate)

    def _apply_request(self, source: StreamReader, request: StreamRequest) -> None:
        primary = self._hubs[0]
        primary.configure(
            list(primary.ring.info.channel_names),
            StreamingMode.CONTINUOUS,
            request.buffer_size,
            request.rate,
        )
        self._refresh_channels()
        super()._apply_request(source, request)

    # ----------------------------------------------------------------------- acquisition
    def _start_source(self, source: StreamReader) -> None:
        """``start_stream``: start every streamer's reader (and the streamers, where they
        are the first); harmless while streaming."""
        for reader in self._readers:
            reader.start()
        clocks = self._declared_clocks()
        secondaries = dict(zip(self._connector_names()[1:], self._readers[1:], strict=True))
        self._aligned = AlignedReader(
            self._readers[0], secondaries, missing=self._missing, clocks=clocks
        )

    def stop_stream(self) -> None:
        """Stop this consumer's readers; each streamer stops with its last consumer."""
        with self._state_lock:
            for reader in self._readers:
                reader.stop()
            self._aligned = None
            self._show_streaming(False)

    def _read_available(self, data, stamps, room: int) -> int:
        """``read_available_data_into_buffer``: the aligned samples there are now."""
        count = min(self.available_samples, room)
        if count > 0:
            self._read_samples(data, stamps, count, 0.0)
        return max(0, count)

    def read_data(
        self, samples_per_channel: int | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(data [samples, channels], timestamps | None)``; all available if no count."""
        count = self.available_samples if samples_per_channel is None else samples_per_channel
        data = np.empty((count, len(self._active_names)), np.float64)
        stamps = np.empty(count) if self._timestamped else None
        if count:
            self._read_samples(data, stamps, count, None)
        return data, stamps

    def read_single_point(self) -> tuple[np.ndarray, np.float64 | None]:
        """The newest sample of each channel (nothing consumed; each stream's own newest)."""
        values: dict[str, float] = {}
        for reader, names in zip(self._readers, self._names, strict=True):
            newest = np.asarray(reader.latest(1)).reshape(-1, len(names))
            row = newest[-1] if len(newest) else np.full(len(names), np.nan)
            values.update(zip(names, row.astype(np.float64), strict=True))
        return np.array([values[n] for n in self._active_names]), None

    # -------------------------------------------------------------------------- internals
    @property
    def _timestamped(self) -> bool:
        return self._hubs[0].ring.has_timestamps if self._hubs else False

    def _active_source(self) -> StreamReader:
        return self._primary_reader()

    def _primary_reader(self) -> StreamReader:
        if not self._readers:
            raise StreamStoppedError(f"'{self.module_name}' is not active: activate it first")
        return self._readers[0]

    def _declared_clocks(self) -> dict[str, SampleClock]:
        if self._shared_clock is None:
            return {}
        clock = SampleClock("shared", self._shared_clock, start_trigger=self._start_trigger or "")
        return {name: clock for name in ["primary", *self._connector_names()[1:]]}

    def _has_timestamps(self, source: StreamReader) -> bool:
        return self._timestamped

    def _data_dtype(self) -> np.dtype:
        return np.dtype(np.float64)

    def _read_samples(self, data: np.ndarray, stamps, count: int, timeout: float | None) -> None:
        """``read_data_into_buffer``: block until ``count`` aligned samples are in ``data``
        (float64). Raises ``StreamTimeoutError`` (nothing consumed), ``StreamStoppedError``
        (not streaming, or a secondary stopped with ``missing: 'wait'``),
        ``StreamFaultError``."""
        aligned = self._aligned
        if aligned is None:
            raise StreamStoppedError(f"'{self.module_name}' is not streaming: start it first")
        chunk = aligned.read(count, timeout=timeout)
        columns: dict[str, np.ndarray] = {}
        sources = [chunk.primary.reshape(count, -1).astype(np.float64)]
        sources += [chunk.secondary[name] for name in aligned.secondary_names]
        for names, values in zip(self._names, sources, strict=True):
            columns.update({name: values[:, k] for k, name in enumerate(names)})
        for k, name in enumerate(self._active_names):
            data[:count, k] = columns[name]
        if stamps is not None:
            stamps[:count] = chunk.device_time
        self._last_uncertainty = dict(chunk.uncertainty)
