"""DataInStreamBuffer: one consumer's view of a shared stream, as a DataInStreamInterface.

Example config (copy into the ``hardware:`` section; one buffer per consumer)::

    stream_buffer1:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        options:
            allow_overwrite: False   # optional: False raises on lost samples, True skips them
            max_poll_rate: 30.0      # optional: most reads of the streamer per second (Hz,
                                     # 1 to 1000)
            transport: 'auto'        # optional, for a streamer in another qudi: 'auto',
                                     # 'shared_memory' (same host) or 'zmq' (any host)
            publish_address: 'tcp://127.0.0.1:*'  # optional: where consumers on other hosts
                                                  # get this buffer's stream (ZeroMQ)
            # optional, for a streamer on another host that publishes with CURVE keys:
            # subscribe_key: '~/qudi/instream_keys/laptop.key_secret'  # this host's key pair
            # publisher_key: '~/qudi/instream_keys/daq-pc.key'  # the streamer host's public key
        connect:
            streamer: 'instream_dummy'

    filtered_buffer:             # a consumer with its own filter chain (docs/processing.md)
        module.Class: 'instream.buffer.DataInStreamBuffer'
        options:
            filters:             # optional, in order; this buffer's channels, units, dtype
                                 # and rate are what the chain gives
                - iir: {btype: 'lowpass', cutoff: 2.0, order: 4}  # Hz; or sos: [[...]]
                - decimate: {factor: 5}  # anti-aliased: the rate is the stream's / 5
                # more: scale: {gain: 2.0, offset: 0.0, unit: 'mV'}, cast: 'float32',
                # notch: {frequency: 50.0, quality: 30}, channels: ['APD']
        connect:
            streamer: 'instream_dummy'

All buffers connected to the same streamer share one :class:`StreamHub`: one ring in shared
memory, one pump thread. Each buffer is a cursor on that ring, so a consumer costs no copy of
the stream. The streamer runs while any buffer streams and stops with the last one; its
configuration can change only while no buffer streams (or when the change is none at all).

The streamer may live in another qudi (a remote module, see cfg/instream_remote_*.cfg). Then
only control calls (configure, start, stop) travel over qudi's remote connection; the samples
come through shared memory on the same host, or over ZeroMQ from another host, where the
streamer's own ``publish_address`` option says on which address it publishes. The counting
holds across processes: the streamer stops when the last consumer anywhere stops.

Across hosts the stream is authenticated and encrypted (CURVE) when the streamer has the
options ``publish_key`` and ``allowed_clients``; this buffer then needs ``subscribe_key`` (its
host's NAME.key_secret, whose NAME.key is in the streamer's ``allowed_clients`` folder) and
``publisher_key`` (the streamer host's NAME.key), made with
``python -m qudi.util.instream.keys new NAME``. The same options as a streamer's
(``publish_key``, ``allowed_clients``, ``insecure``) apply to this buffer's own
``publish_address``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Any

import numpy as np
import rpyc
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.util.constraints import ScalarConstraint
from qudi.util.network import netobtain

from qudi.hardware.instream.buffer_filters import BufferFilters
from qudi.hardware.instream.reader_consumer import ReaderConsumer
from qudi.hardware.instream.stream_sharing import SharedStreamer
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    StreamingMode,
    check_read_buffers,
)
from qudi.util.instream.arrays import as_channel_names, check_count
from qudi.util.instream.contracts import JoinedHub, StreamReader
from qudi.util.instream.enums import member_name
from qudi.util.instream.hub import MAX_POLL_RATE, MIN_POLL_RATE, check_poll_rate
from qudi.util.instream.network import ClientKeys
from qudi.util.instream.sharing import (
    TRANSPORTS,
    StreamShare,
    join_module_hub,
    join_remote_stream,
    share_module_stream,
)

__all__ = ["DataInStreamBuffer"]


def is_remote(module: object) -> bool:
    """True for a module that qudi's remote modules connected from another process.

    qudi's connectors hand out a weakref proxy, which hides the rpyc netref's type; the
    netref's connection attribute (``____conn__``) still answers through it."""
    return isinstance(module, rpyc.BaseNetref) or getattr(module, "____conn__", None) is not None


def _scalar_copy(remote) -> ScalarConstraint:
    return ScalarConstraint(
        default=remote.default,
        bounds=tuple(remote.bounds),
        increment=remote.increment,
        enforce_int=remote.enforce_int,
    )


def _dtype_copy(remote: object) -> np.dtype:
    """A remote module's ``data_type`` (a numpy scalar type or a whole dtype, structured
    records too) as this process's own numpy dtype, taken by value as qudi's ``netobtain``
    takes it: a structured dtype keeps its fields (the remote type's name would not)."""
    return np.dtype(netobtain(remote))


def _constraints_copy(remote) -> DataInStreamConstraints:
    """A local copy of a remote module's constraints: reading them then costs no RPC round
    trip, and their enums and dtype are this process's own."""
    rate = remote.sample_rate
    return DataInStreamConstraints(
        channel_units={str(ch): str(unit) for ch, unit in remote.channel_units.items()},
        sample_timing=str(remote.sample_timing.name),
        streaming_modes=[str(mode.name) for mode in remote.streaming_modes],
        data_type=_dtype_copy(remote.data_type),
        channel_buffer_size=_scalar_copy(remote.channel_buffer_size),
        sample_rate=None if rate is None else _scalar_copy(rate),
    )


class DataInStreamBuffer(
    ReaderConsumer[JoinedHub, StreamReader], SharedStreamer, DataInStreamInterface
):
    """One consumer's buffered view of a streamer; see the module docstring for its config."""

    _streamer = Connector(name="streamer", interface="DataInStreamInterface")
    _allow_overwrite = ConfigOption("allow_overwrite", default=False)
    _max_poll_rate = ConfigOption("max_poll_rate", default=30.0)
    _transport = ConfigOption("transport", default="auto")
    # CURVE keys to subscribe to a streamer on another host that publishes with keys
    _subscribe_key = ConfigOption("subscribe_key", default=None)
    _publisher_key = ConfigOption("publisher_key", default=None)
    _filters = ConfigOption("filters", default=None)  # this consumer's filter chain

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # _hub: a LocalHub, RemoteHub or SubscribedHub
        self._constraints: DataInStreamConstraints | None = None  # a remote streamer's
        self._filter_chain = BufferFilters(None)  # what its consumer sees

    def on_activate(self) -> None:
        if not isinstance(self._allow_overwrite, bool):
            raise ValueError(
                f"option 'allow_overwrite' is {self._allow_overwrite!r}: use True or False"
            )
        rate = self._max_poll_rate
        try:
            check_poll_rate(rate)
        except ValueError:
            raise ValueError(
                f"option 'max_poll_rate' is {rate!r}: use a number of Hz from "
                f"{MIN_POLL_RATE:g} to {MAX_POLL_RATE:g} (how often the streamer is read)"
            ) from None
        if self._transport not in TRANSPORTS:
            raise ValueError(
                f"option 'transport' is {self._transport!r}: use one of {list(TRANSPORTS)}"
            )
        self.check_publish_address()  # now, not when a host joins
        self._filter_chain = BufferFilters(self._filters)  # refuses a bad spec
        keys = self._client_keys()
        streamer = self._streamer()
        self._constraints = None
        hub: JoinedHub
        if is_remote(streamer):
            self._constraints = _constraints_copy(streamer.constraints)
            consumer = f"{self.module_name}@{socket.gethostname()}:{os.getpid()}"
            hub = join_remote_stream(streamer, consumer, float(rate), self._transport, keys)
        else:
            hub = join_module_hub(streamer, self.module_name, float(rate))
        # the filter chain wraps the reader (and gives it back as it is without filters)
        self._open_consumer(hub, self._allow_overwrite, self._filter_chain.wrap)

    def _client_keys(self) -> ClientKeys | None:
        """The options ``subscribe_key`` and ``publisher_key``, read (both or neither)."""
        key, server = self._subscribe_key, self._publisher_key
        if key is None and server is None:
            return None
        if key is None or server is None:
            given, missing = (
                ("subscribe_key", "publisher_key")
                if server is None
                else ("publisher_key", "subscribe_key")
            )
            raise ValueError(
                f"option '{given}' is set but '{missing}' is not: subscribing with CURVE needs "
                "both, this host's NAME.key_secret file (subscribe_key) and the streamer "
                "host's NAME.key file (publisher_key)"
            )
        return ClientKeys.from_files(key, server, ("subscribe_key", "publisher_key"))

    def on_deactivate(self) -> None:
        self._close_consumer()  # stops the streamer too, if this was its last running buffer

    def share_stream(self, consumer: str, max_poll_rate: float = 30.0) -> StreamShare:
        """Let ``consumer`` in another process join the stream this buffer reads (the hub of
        this buffer's streamer), e.g. when that streamer is not a qudi-instream module."""
        address, keys, insecure = self.publish_security()
        return share_module_stream(
            self._streamer(), consumer, max_poll_rate, address, keys=keys, insecure=insecure
        )

    # ---------------------------------------------------------------------------- extras
    @property
    def stream_name(self) -> str | None:
        """Name of the shared stream: ``qudi.util.instream.attach(name)`` from any process on
        this host; None when the stream comes over ZeroMQ from another host."""
        return self._active_hub().name

    @property
    def stream_extra(self) -> dict:
        """What the stream's description carries beyond its format (raw codes: the scaling
        polynomials; digital lines); for a filtered view only what still holds after the
        filters (its digital lines while they stay 0/1)."""
        extra = dict(self._active_hub().ring.info.extra)
        extra.pop("stream_id", None)  # the ring's own, given anew to a ring made from this
        return self._filter_chain.extra(extra)

    @property
    def lost_samples(self) -> int:
        """Samples this buffer lost because its consumer read too slowly."""
        return self._active_reader().lost

    @property
    def allow_overwrite(self) -> bool:
        return self._active_reader().allow_overwrite

    # --------------------------------------------------------------------------- settings
    @property
    def constraints(self) -> DataInStreamConstraints:
        return self._filter_chain.constraints(self._constraints or self._streamer().constraints)

    @property
    def available_samples(self) -> int:
        return self._active_reader().available

    @property
    def sample_rate(self) -> float:
        return self._filter_chain.rate(self._streamer().sample_rate)

    @property
    def channel_buffer_size(self) -> int:
        """Samples per channel the shared ring holds (this consumer may fall this far behind)."""
        return self._active_hub().ring.capacity

    @property
    def streaming_mode(self) -> StreamingMode:
        # by name: also for a remote module's member, or another package's
        return StreamingMode.coerce(member_name(self._streamer().streaming_mode))

    @property
    def active_channels(self) -> list[str]:
        return self._filter_chain.channels(self._active_hub().ring)

    def configure(
        self,
        active_channels: Iterable[str],
        streaming_mode: StreamingMode | int,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Configure the shared stream. The running configuration is always accepted; a
        different one raises ``StreamBusyError`` naming the buffers that stream."""
        channels, rate = self._filter_chain.stream_request(
            as_channel_names(active_channels), sample_rate
        )  # a filtered consumer asks in filtered terms
        self._active_hub().configure(
            channels,
            StreamingMode.coerce(streaming_mode, "streaming_mode"),
            channel_buffer_size,
            rate,
        )
        self._reader = self._filter_chain.wrap(self._active_reader())  # for the new format

    # ----------------------------------------------------------------------- acquisition
    # start_stream / stop_stream: ReaderConsumer's (the streamer stops with its last buffer)
    def read_data_into_buffer(
        self,
        data_buffer: np.ndarray,
        samples_per_channel: int,
        timestamp_buffer: np.ndarray | None = None,
        timeout: float | None = None,
    ) -> None:
        """Block until ``samples_per_channel`` new samples are copied into ``data_buffer``.

        Raises ``StreamTimeoutError`` (nothing consumed), ``StreamStoppedError``,
        ``StreamFaultError`` (the streamer failed) or ``StreamOverrunError`` (samples lost).
        """
        data, stamps, room = self._checked_buffers(data_buffer, timestamp_buffer)
        count = check_count(samples_per_channel, room, "samples_per_channel", "what fits")
        self._active_reader().read_into(data, count, timeout=timeout, timestamps=stamps)

    def read_available_data_into_buffer(
        self, data_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        data, stamps, _ = self._checked_buffers(data_buffer, timestamp_buffer)
        return self._active_reader().read_available_into(data, timestamps=stamps)

    def _checked_buffers(
        self, data_buffer: np.ndarray, timestamp_buffer: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, int]:
        ring = self._active_hub().ring
        values, dtype = self._filter_chain.read_format(ring)  # what the filters give
        # timestamps are optional here: a consumer may read only the samples of any stream
        return check_read_buffers(
            data_buffer,
            timestamp_buffer,
            values,
            dtype,
            ring.has_timestamps,
            timestamps_required=False,
        )

    def read_single_point(self) -> tuple[np.ndarray, np.float64 | None]:
        """The newest sample in the stream (nothing is consumed); the streamer's own newest
        sample if the stream has none yet."""
        filtered = self._filter_chain.newest(self._active_reader())
        if filtered is not None:
            return filtered
        if self._active_hub().ring.write_index == 0:
            data, stamp = self._streamer().read_single_point()
            if self._constraints is not None:  # a remote module's: copied by value
                data = np.array(netobtain(data), dtype=self._constraints.dtype)
                stamp = None if stamp is None else np.float64(stamp)
            return data, stamp
        if self._active_hub().ring.has_timestamps:
            data, stamps = self._active_reader().latest(1, with_timestamps=True)
            return data[0], np.float64(stamps[0])
        return self._active_reader().latest(1)[0], None
