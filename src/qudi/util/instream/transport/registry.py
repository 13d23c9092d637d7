"""The owner's side: the hubs of this process, one per source, and each consumer's place in one.

The process that owns a source keeps one :class:`~qudi.util.instream.hub.StreamHub` per source
in :data:`hubs`, shared by all its consumers, and closes it when the last one leaves. A
consumer in this process holds a :class:`LocalHub`; one in another process holds a
:class:`~qudi.util.instream.transport.share.StreamShare`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from qudi.util.instream.hub import HubReader, StreamHub
from qudi.util.instream.ring import StreamRing

__all__ = ["HubRegistry", "LocalHub", "hubs", "join_module_hub", "module_hub"]

_Hub = TypeVar("_Hub", bound=StreamHub)


class HubRegistry(Generic[_Hub]):
    """The hubs of this process, one per source, shared by all consumers of that source.

    Generic in the kind of hub: :data:`hubs` holds the :class:`StreamHub` of each channel
    stream, :data:`~qudi.util.instream.image_hub.image_hubs` the ``ImageHub`` of each camera.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hubs: dict[object, tuple[_Hub, set[str]]] = {}

    def join(
        self, key: object, member: str, open_hub: Callable[[], _Hub], max_poll_rate: float
    ) -> _Hub:
        """The hub for ``key`` (opened on first use), with ``member`` counted among its users.

        Raises
        ------
        ValueError
            If ``member`` is a user of this hub already (nothing changes then).
        """
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

    def hub_of(self, key: object) -> _Hub | None:
        """The open hub for ``key``, if any (nobody is counted in: a source asking about its
        own readers, as a lossless replay does)."""
        with self._lock:
            entry = self._hubs.get(key)
            return None if entry is None else entry[0]

    def leave(self, hub: _Hub, member: str) -> None:
        """The last member to leave closes the hub (its thread and shared memory)."""
        with self._lock:
            for key, (known, members) in list(self._hubs.items()):
                if known is hub:
                    members.discard(member)
                    if not members:
                        del self._hubs[key]
                        hub.close()


hubs: HubRegistry[StreamHub] = HubRegistry()


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
    of :class:`~qudi.util.instream.transport.remote.RemoteHub` and
    :class:`~qudi.util.instream.transport.subscribed.SubscribedHub` for a hub in this process.
    """

    def __init__(self, hub: StreamHub, member: str, registry: HubRegistry[Any]):
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
