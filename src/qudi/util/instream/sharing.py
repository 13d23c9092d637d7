"""Consumers of a hub in other processes: control over RPC, samples from shared memory.

The process that owns a source keeps one hub per source in :data:`hubs`. A consumer in another
process (a second qudi, over qudi's remote modules) asks that process for a
:class:`StreamShare`: a place among the hub's readers. Starting it starts the source if no one
else runs, and the source stops when the last consumer anywhere stops. The samples never travel
with the calls: on the same host the consumer attaches to the shared ring by name and reads it
through a :class:`RemoteHub`, at memory speed.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from qudi.util.instream.errors import StreamError, StreamFaultError, StreamNotFoundError
from qudi.util.instream.hub import HubReader, StreamHub
from qudi.util.instream.ring import RingState, StreamRing

__all__ = [
    "HubRegistry",
    "RemoteHub",
    "StreamShare",
    "hubs",
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


def share_module_stream(streamer: Any, consumer: str, max_poll_rate: float) -> StreamShare:
    """A :class:`StreamShare` of ``streamer``'s hub for ``consumer`` in another process."""
    hub = module_hub(streamer, consumer, max_poll_rate)
    try:
        return StreamShare(hub, consumer, on_close=functools.partial(hubs.leave, hub, consumer))
    except BaseException:
        hubs.leave(hub, consumer)
        raise


def _close_share(reader: HubReader, on_close: Callable[[], None] | None) -> None:
    try:
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
    """

    def __init__(self, hub: StreamHub, consumer: str, on_close: Callable[[], None] | None = None):
        self._hub = hub
        # this reader is never read: it only gives the remote consumer its place in the count
        self._reader = hub.open_reader(consumer, allow_overwrite=True)
        self._closer = weakref.finalize(self, _close_share, self._reader, on_close)

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

    def stop(self) -> None:
        """Stop counting this consumer; the source stops if no other consumer runs."""
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


class RemoteHub:
    """A hub in another process on this host, seen through its :class:`StreamShare`.

    Control calls go to the share; samples come straight from the shared ring, zero copy.
    :meth:`open_reader` gives a :class:`HubReader` with the same API and policies as the
    readers of a local hub.
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
        share_stream = getattr(streamer, "share_stream", None)
        if share_stream is None:
            raise TypeError(
                f"module '{streamer.module_name}' is not a qudi-instream streamer (it has no "
                "share_stream): put an 'instream.buffer.DataInStreamBuffer' next to it in its "
                "qudi and join that buffer instead"
            )
        share = share_stream(consumer, max_poll_rate)
        try:
            return cls(share)
        except BaseException:
            share.close()
            raise

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
        mode = getattr(streaming_mode, "name", streaming_mode)  # a name crosses packages
        ring_id = self._share.configure(
            tuple(str(ch) for ch in active_channels),
            mode,
            int(channel_buffer_size),
            float(sample_rate),
        )
        self._follow(str(ring_id))

    def close(self) -> None:
        """Leave the remote hub and unmap the ring."""
        for reader in self._readers:
            reader._closed = True
        try:
            self._share.close()
        finally:
            self._ring.close()

    # ----------------------------------------------------- used by HubReader (like StreamHub)
    def _start_reader(self, reader: HubReader) -> None:
        self._follow(str(self._share.start()))
        reader._joined_run(self._ring)

    def _stop_reader(self, reader: HubReader) -> None:
        reader._started = False
        self._share.stop()

    def _forget_reader(self, reader: HubReader) -> None:
        self._stop_reader(reader)

    def _fault_of_run(self, run_epoch: int) -> BaseException | None:
        ring = self._ring
        if ring.closed or ring.state is not RingState.FAULTED or ring.run_epoch != run_epoch:
            return None
        return StreamFaultError(ring.fault_message)

    def _follow(self, ring_id: str) -> None:
        """Attach to the ring the hub uses now, if a new configuration replaced it."""
        if ring_id == stream_id(self._ring) and not self._ring.closed:
            return
        new_ring = _attach(self.name, ring_id)
        self._ring.close()
        self._ring = new_ring
        for reader in self._readers:  # like StreamHub._replace_ring: no place in the new ring
            reader._ring = new_ring
            reader._position = 0
            reader._run_epoch = -1
            reader._started = False


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
