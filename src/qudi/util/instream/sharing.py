"""Consumers of a hub in other processes: control over RPC, samples by a faster path.

The process that owns a source keeps one hub per source in :data:`hubs`. A consumer in another
process (a second qudi, over qudi's remote modules, or a notebook) asks that process for a
:class:`StreamShare`: a place among the hub's readers. Starting it starts the source if no one
else runs, and the source stops when the last consumer anywhere stops. The samples never travel
with the calls: on the same host the consumer attaches to the shared ring by name and reads it
through a :class:`RemoteHub`, at memory speed; on another host the share publishes the stream
over ZeroMQ while the consumer runs, and a :class:`SubscribedHub` receives it.
:func:`join_remote_stream` picks the path.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import zmq

from qudi.util.instream.enums import member_name
from qudi.util.instream.errors import (
    StreamBusyError,
    StreamError,
    StreamFaultError,
    StreamFormatError,
    StreamNotFoundError,
    StreamStoppedError,
    StreamTimeoutError,
)
from qudi.util.instream.hub import HubReader, StreamHub
from qudi.util.instream.network import DEFAULT_ADDRESS, StreamPublisher, StreamSubscriber
from qudi.util.instream.ring import RingState, StreamRing
from qudi.util.instream.stream_format import parse_description

__all__ = [
    "HubRegistry",
    "LocalHub",
    "RemoteHub",
    "StreamShare",
    "SubscribedHub",
    "SubscribedReader",
    "TRANSPORTS",
    "join_remote_stream",
    "hubs",
    "join_module_hub",
    "module_hub",
    "share_module_stream",
    "stream_id",
]


def stream_id(ring: StreamRing) -> str:
    """The unique id a hub gives each ring it creates (a replaced ring keeps its name)."""
    return str(ring.info.extra.get("stream_id", ""))


class HubRegistry:
    """The hubs of this process, one per source, shared by all consumers of that source."""

    def __init__(self):
        self._lock = threading.Lock()
        self._hubs: dict[object, tuple[StreamHub, set[str]]] = {}

    def join(
        self, key: object, member: str, open_hub: Callable[[], StreamHub], max_poll_rate: float
    ) -> StreamHub:
        """The hub for ``key`` (opened on first use), with ``member`` counted among its users."""
        with self._lock:
            if key not in self._hubs:
                self._hubs[key] = (open_hub(), set())
            hub, members = self._hubs[key]
            if member in members:
                raise ValueError(f"stream '{hub.name}' already has a consumer named '{member}'")
            members.add(member)
            # one pump serves all consumers: poll as often as the most demanding one asks
            hub.max_poll_rate = max(hub.max_poll_rate, max_poll_rate)
            return hub

    def leave(self, hub: StreamHub, member: str) -> None:
        """The last member to leave closes the hub (its thread and shared memory)."""
        with self._lock:
            for key, (known, members) in list(self._hubs.items()):
                if known is hub:
                    members.discard(member)
                    if not members:
                        del self._hubs[key]
                        hub.close()


hubs = HubRegistry()


def module_hub(streamer: Any, member: str, max_poll_rate: float) -> StreamHub:
    """The hub of qudi streamer module ``streamer`` in this process, ``member`` counted in.

    The stream is named ``<module name>_<process id>``, unique on the host.
    """
    return hubs.join(
        streamer.module_uuid,
        member,
        lambda: StreamHub(
            streamer, name=f"{streamer.module_name}_{os.getpid()}", max_poll_rate=max_poll_rate
        ),
        max_poll_rate,
    )


class LocalHub:
    """One consumer's place in a hub of this process, counted by a :class:`HubRegistry`.

    The consumer reads and configures the shared :class:`StreamHub` through it, and gives its
    place up with :meth:`leave` (the last consumer to leave closes the hub). The counterpart
    of :class:`RemoteHub` and :class:`SubscribedHub` for a hub in this process.
    """

    def __init__(self, hub: StreamHub, member: str, registry: HubRegistry):
        self._hub = hub
        self._member = member
        self._registry = registry

    @property
    def hub(self) -> StreamHub:
        """The hub shared with the other consumers (for its stats, say)."""
        return self._hub

    @property
    def name(self) -> str:
        return self._hub.name

    @property
    def ring(self) -> StreamRing:
        return self._hub.ring

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> HubReader:
        """A new (stopped) reader on the hub (see :meth:`StreamHub.open_reader`)."""
        return self._hub.open_reader(name, allow_overwrite=allow_overwrite)

    def configure(
        self,
        active_channels: Sequence[str],
        streaming_mode: Any,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Configure the shared hub (see :meth:`StreamHub.configure`)."""
        self._hub.configure(active_channels, streaming_mode, channel_buffer_size, sample_rate)

    def leave(self) -> None:
        """Give up this consumer's place; a second call does nothing."""
        self._registry.leave(self._hub, self._member)


def join_module_hub(streamer: Any, member: str, max_poll_rate: float) -> LocalHub:
    """``member``'s place in the hub of qudi streamer module ``streamer`` in this process (see
    :func:`module_hub`)."""
    return LocalHub(module_hub(streamer, member, max_poll_rate), member, hubs)


def share_module_stream(
    streamer: Any,
    consumer: str,
    max_poll_rate: float,
    publish_address: str = DEFAULT_ADDRESS,
) -> StreamShare:
    """A :class:`StreamShare` of ``streamer``'s hub for ``consumer`` in another process."""
    hub = module_hub(streamer, consumer, max_poll_rate)
    try:
        return StreamShare(
            hub,
            consumer,
            on_close=functools.partial(hubs.leave, hub, consumer),
            publish_address=publish_address,
        )
    except BaseException:
        hubs.leave(hub, consumer)
        raise


def _close_share(
    reader: HubReader, publishers: list[StreamPublisher], on_close: Callable[[], None] | None
) -> None:
    try:
        while publishers:
            publishers.pop().close()
        reader.close()  # stops the source if this was its last running consumer
    finally:
        if on_close is not None:
            on_close()


class StreamShare:
    """One remote consumer's place among a hub's readers; the consumer calls it over RPC.

    Methods take and return plain values (str, int, float, tuples of them), so each costs one
    round trip over rpyc and nothing is passed by reference. If the consumer's process dies,
    its RPC connection drops the last reference to the share, which then closes itself: the
    source stops unless another consumer still runs.

    A consumer on another host calls :meth:`start_publishing` instead of :meth:`start`: the
    share then also publishes the stream over ZeroMQ on ``publish_address`` while it runs.
    """

    def __init__(
        self,
        hub: StreamHub,
        consumer: str,
        on_close: Callable[[], None] | None = None,
        publish_address: str = DEFAULT_ADDRESS,
    ):
        self._hub = hub
        # this reader is never read: it only gives the remote consumer its place in the count
        self._reader = hub.open_reader(consumer, allow_overwrite=True)
        self._publish_address = self._bind_address = str(publish_address)
        self._publishers: list[StreamPublisher] = []  # at most one, while publishing
        self._closer = weakref.finalize(
            self, _close_share, self._reader, self._publishers, on_close
        )

    @property
    def consumer(self) -> str:
        return self._reader.name

    @property
    def stream_name(self) -> str:
        """Attach to this name on the hub's host: ``qudi.util.instream.attach(name)``."""
        return self._hub.ring.name

    @property
    def stream_id(self) -> str:
        return stream_id(self._hub.ring)

    @property
    def running(self) -> bool:
        return self._reader.running

    def start(self) -> str:
        """Count this consumer as running (starting the source if it is the first); returns
        the id of the ring to read, which changes when a new configuration replaced it."""
        self._reader.start()
        return self.stream_id

    def start_publishing(self) -> str:
        """:meth:`start`, and publish the stream over ZeroMQ; returns the endpoint."""
        self._reader.start()
        if not self._publishers:
            self._publishers.append(self._new_publisher())
        return self._publishers[0].endpoint

    def describe(self) -> str:
        """The stream's format and meaning, as JSON (see :meth:`StreamRing.description`)."""
        return json.dumps(self._hub.ring.description())

    def stop(self) -> None:
        """Stop counting this consumer (and publishing); the source stops if no other
        consumer runs."""
        while self._publishers:
            self._publishers.pop().close()
        self._reader.stop()

    def configure(
        self,
        active_channels: Sequence[str],
        streaming_mode: str | int,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> str:
        """Configure the hub as a local consumer would; returns the id of the ring to read."""
        self._hub.configure(list(active_channels), streaming_mode, channel_buffer_size, sample_rate)
        return self.stream_id

    def close(self) -> None:
        """Leave the hub for good (also done when the share is garbage-collected)."""
        self._closer()

    def call(self, method: str, *args: Any) -> tuple:
        """Run ``method`` for a caller in another process: ``('ok', result)`` or
        ``('error', exception class name, message)``.

        No exception crosses the RPC connection: a traceback sent back would keep this share
        alive (its frames reference it) past the death of the caller's process.
        """
        if method not in _REMOTE_METHODS:
            return ("error", "ValueError", f"{method!r} is not one of {list(_REMOTE_METHODS)}")
        try:
            return ("ok", getattr(self, method)(*args))
        except Exception as exc:
            return ("error", type(exc).__name__, str(exc))

    def _new_publisher(self) -> StreamPublisher:
        """A publisher on the port the last one had, so a subscriber's endpoint stays valid."""
        name = f"{self.consumer} zmq"
        try:
            publisher = StreamPublisher(self._hub, self._bind_address, name=name)
        except zmq.ZMQError:  # the port was taken meanwhile: any free one
            publisher = StreamPublisher(self._hub, self._publish_address, name=name)
        self._bind_address = publisher.endpoint
        return publisher


_REMOTE_METHODS = ("start", "start_publishing", "stop", "configure", "describe", "close")
_REMOTE_ERRORS = {
    cls.__name__: cls
    for cls in (
        StreamError,
        StreamBusyError,
        StreamStoppedError,
        StreamFaultError,
        StreamTimeoutError,
        StreamFormatError,
        StreamNotFoundError,
        ValueError,
        TypeError,
        RuntimeError,
    )
}


def _remote(share: Any, method: str, *args: Any) -> Any:
    """Call ``method`` of a share in another process; its error is raised here, as the same
    class where we know it (else as :class:`StreamError`)."""
    result = share.call(method, *args)
    if result[0] == "ok":
        return result[1]
    _, name, message = result
    known = _REMOTE_ERRORS.get(str(name))
    if known is None:
        raise StreamError(f"{name}: {message}")
    raise known.__new__(known, str(message))  # the message as given, without re-formatting


class RemoteHub:
    """A hub in another process on this host, seen through its :class:`StreamShare`.

    Control calls go to the share; samples come straight from the shared ring, zero copy.
    :meth:`open_reader` gives a :class:`HubReader` with the same API and policies as the
    readers of a local hub: this class is their
    :class:`~qudi.util.instream.contracts.ReaderHost`, standing in for the remote hub.
    """

    def __init__(self, share: Any):
        self._share = share
        self.name = str(share.stream_name)
        self._ring = _attach(self.name, str(share.stream_id))
        self._readers: list[HubReader] = []

    @classmethod
    def join(cls, streamer: Any, consumer: str, max_poll_rate: float = 30.0) -> RemoteHub:
        """Join the stream of ``streamer``, a qudi-instream module in another process on this
        host (e.g. from a qudi namespace over rpyc), as ``consumer``."""
        return join_remote_stream(streamer, consumer, max_poll_rate, "shared_memory")

    @property
    def ring(self) -> StreamRing:
        return self._ring

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> HubReader:
        reader = HubReader(self, name, allow_overwrite)  # the share stands in for the hub
        self._readers.append(reader)
        return reader

    def configure(
        self,
        active_channels: Sequence[str],
        streaming_mode: Any,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Configure the remote hub (same rules as a local one: no-op or ``StreamBusyError``)."""
        ring_id = _configure_share(
            self._share, active_channels, streaming_mode, channel_buffer_size, sample_rate
        )
        self._follow(str(ring_id))

    def close(self) -> None:
        """Leave the remote hub and unmap the ring."""
        for reader in self._readers:
            reader.end_for_good()
        try:
            _remote(self._share, "close")
        finally:
            self._ring.close()

    def leave(self) -> None:
        """Give up this consumer's place: :meth:`close`."""
        self.close()

    # ------------------------------------------------- the ReaderHost contract of HubReader
    def start_reader(self, reader: HubReader) -> None:
        """Count the consumer as running remotely and let ``reader`` join the run."""
        self._follow(str(_remote(self._share, "start")))
        reader.join_run(self._ring)

    def stop_reader(self, reader: HubReader) -> None:
        """Stop counting the consumer remotely."""
        reader.leave_run()
        _remote(self._share, "stop")

    def forget_reader(self, reader: HubReader) -> None:
        """Stop ``reader``; the place stays until :meth:`close`."""
        self.stop_reader(reader)

    def fault_of_run(self, run_epoch: int) -> BaseException | None:
        """The remote source's fault, if run ``run_epoch`` is the one that failed now."""
        ring = self._ring
        if ring.closed or ring.state is not RingState.FAULTED or ring.run_epoch != run_epoch:
            return None
        return StreamFaultError(ring.fault_message)

    def run_end(self, run_epoch: int, fallback: int) -> int:
        """Always ``fallback``: where a run two or more runs ago ended is not known here."""
        return fallback

    def _follow(self, ring_id: str) -> None:
        """Attach to the ring the hub uses now, if a new configuration replaced it."""
        if ring_id == stream_id(self._ring) and not self._ring.closed:
            return
        new_ring = _attach(self.name, ring_id)
        self._ring.close()
        self._ring = new_ring
        for reader in self._readers:  # as for a local hub: no place in the new ring
            reader.rebind(new_ring)


class SubscribedHub:
    """A hub on another host, seen through its :class:`StreamShare`: control calls go to the
    share, samples arrive over ZeroMQ. Serves one reader (see :meth:`open_reader`).

    While the reader runs, the share publishes and a :class:`StreamSubscriber` refills a local
    ring; while it is stopped, :attr:`ring` is an empty ring of the stream's format.
    """

    name = None  # no stream in this host's shared memory

    def __init__(self, share: Any):
        self._share = share
        self._idle_ring = _idle_ring(str(_remote(share, "describe")))
        self._reader: SubscribedReader | None = None

    @property
    def ring(self) -> StreamRing:
        subscriber = self._reader.subscriber if self._reader is not None else None
        return self._idle_ring if subscriber is None else subscriber.ring

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> SubscribedReader:
        if self._reader is not None:
            raise StreamError(f"this remote stream already has a reader ('{self._reader.name}')")
        self._reader = SubscribedReader(self, self._share, name, allow_overwrite)
        return self._reader

    def configure(
        self,
        active_channels: Sequence[str],
        streaming_mode: Any,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Configure the remote hub (same rules as a local one: no-op or ``StreamBusyError``)."""
        _configure_share(
            self._share, active_channels, streaming_mode, channel_buffer_size, sample_rate
        )
        self._idle_ring.close()
        self._idle_ring = _idle_ring(str(_remote(self._share, "describe")))

    def close(self) -> None:
        """End the reader's subscription, leave the remote hub, release the idle ring."""
        try:
            if self._reader is not None:
                self._reader.close()
            _remote(self._share, "close")
        finally:
            self._idle_ring.close()

    def leave(self) -> None:
        """Give up this consumer's place: :meth:`close`."""
        self.close()


class SubscribedReader:
    """The reader of a :class:`SubscribedHub`: starting it starts the remote source (if no
    one else runs) and a fresh subscriber. Reads, ``available``, ``lost`` and the loss
    policies are those of :class:`~qudi.util.instream.network.StreamSubscriber`."""

    def __init__(self, hub: SubscribedHub, share: Any, name: str, allow_overwrite: bool):
        self._hub = hub
        self._share = share
        self.name = name
        self.allow_overwrite = bool(allow_overwrite)
        self._subscriber: StreamSubscriber | None = None
        self._lost_before = 0  # lost by this reader's earlier subscribers
        self._position_before = 0  # where the last subscriber stopped

    @property
    def subscriber(self) -> StreamSubscriber | None:
        """The subscriber receiving the stream while this reader runs, else None."""
        return self._subscriber

    @property
    def position(self) -> int:
        """Index of the next sample to read (the last subscriber's, while stopped)."""
        subscriber = self._subscriber
        return self._position_before if subscriber is None else subscriber.position

    @property
    def running(self) -> bool:
        subscriber = self._subscriber
        return subscriber is not None and subscriber.ring.state is RingState.RUNNING

    @property
    def available(self) -> int:
        return 0 if self._subscriber is None else self._subscriber.available

    @property
    def lost(self) -> int:
        return self._lost_before + (0 if self._subscriber is None else self._subscriber.lost)

    @property
    def fill(self) -> float:
        return 0.0 if self._subscriber is None else self._subscriber.fill

    def start(self) -> None:
        """Receive new samples from now on; harmless while running."""
        if self.running:
            return
        self._end_subscription()
        endpoint = str(_remote(self._share, "start_publishing"))
        try:
            self._subscriber = StreamSubscriber(
                endpoint, name=self.name, allow_overwrite=self.allow_overwrite
            )
        except StreamTimeoutError as exc:
            _remote(self._share, "stop")
            raise StreamError(_unreachable(endpoint)) from exc

    def stop(self) -> None:
        """Stop receiving; the remote source stops if no other consumer runs."""
        self._end_subscription()
        _remote(self._share, "stop")

    def close(self) -> None:
        self._end_subscription()

    def read_into(self, out, n=None, *, timeout=None, timestamps=None) -> int:
        return self._running_subscriber().read_into(out, n, timeout=timeout, timestamps=timestamps)

    def read_available_into(self, out, *, timestamps=None) -> int:
        return self._running_subscriber().read_available_into(out, timestamps=timestamps)

    def latest(self, n: int, *, with_timestamps: bool = False):
        return self._running_subscriber().latest(n, with_timestamps=with_timestamps)

    def _running_subscriber(self) -> StreamSubscriber:
        if self._subscriber is None:
            raise StreamStoppedError(f"reader '{self.name}' is stopped")
        return self._subscriber

    def _end_subscription(self) -> None:
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            self._lost_before += subscriber.lost
            self._position_before = subscriber.position
            subscriber.close()


def join_remote_stream(
    streamer: Any, consumer: str, max_poll_rate: float = 30.0, transport: str = "auto"
) -> RemoteHub | SubscribedHub:
    """Join the stream of ``streamer``, a qudi-instream module in another process, as
    ``consumer``: through shared memory when it runs on this host, else over ZeroMQ.

    ``transport`` is ``'auto'``, ``'shared_memory'`` or ``'zmq'``.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r} is not one of {list(TRANSPORTS)}")
    share_stream = getattr(streamer, "share_stream", None)
    if share_stream is None:
        raise TypeError(
            f"module '{streamer.module_name}' is not a qudi-instream streamer (it has no "
            "share_stream): put an 'instream.buffer.DataInStreamBuffer' next to it in its "
            "qudi and join that buffer instead"
        )
    share = share_stream(consumer, max_poll_rate)
    try:
        if transport == "zmq":
            return SubscribedHub(share)
        try:
            return RemoteHub(share)
        except StreamError:
            if transport == "shared_memory":
                raise
            return SubscribedHub(share)  # not on this host
    except BaseException:
        _remote(share, "close")
        raise


TRANSPORTS = ("auto", "shared_memory", "zmq")


def _configure_share(share, active_channels, streaming_mode, channel_buffer_size, sample_rate):
    """Configure through a share with plain values; returns the id of the ring to read."""
    return _remote(
        share,
        "configure",
        tuple(str(ch) for ch in active_channels),
        member_name(streaming_mode),  # a name crosses packages and processes
        int(channel_buffer_size),
        float(sample_rate),
    )


def _idle_ring(description: str) -> StreamRing:
    """A small empty private ring with the format of a remote stream."""
    (dtype, shape, has_timestamps), info, _ = parse_description(json.loads(description))
    ring = StreamRing(1024, shape, dtype, timestamps=has_timestamps, info=info)
    ring.mark_stopped()
    return ring


def _unreachable(endpoint: str) -> str:
    host = urlsplit(endpoint).hostname or ""
    advice = (
        "it publishes on loopback only: set the option 'publish_address' of the streamer in "
        "its qudi config to an address this host can reach (e.g. 'tcp://192.168.1.5:*')"
        if host.startswith("127.") or host in ("localhost", "::1")
        else "check that this host can reach it (firewall, address)"
    )
    return f"no stream arrived from the remote streamer's publisher at {endpoint}: {advice}"


def _attach(name: str, expected_id: str) -> StreamRing:
    """Attach to ``name`` and make sure it is the ring the remote hub means."""
    try:
        ring = StreamRing.attach(name)
    except StreamNotFoundError as exc:
        raise StreamNotFoundError(
            f"stream '{name}' is not in this host's shared memory: the streamer runs on another "
            "host (or in a container with its own /dev/shm)"
        ) from exc
    if stream_id(ring) != expected_id:
        found = stream_id(ring)
        ring.close()
        raise StreamError(
            f"stream '{name}' in this host's shared memory has id {found!r}, not {expected_id!r}: "
            "it belongs to another process of the same name (another host's streamer?)"
        )
    return ring
