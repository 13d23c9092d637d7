"""RemoteHub: a hub in another process on this host, controlled through its share, read from
shared memory; and :func:`join_remote_stream`, which picks that path or ZeroMQ.

Control calls go to the hub's :class:`~qudi.util.instream.transport.share.StreamShare` (over
rpyc, as plain values: see :mod:`~qudi.util.instream.transport.rpc`); the samples come straight
from the hub's shared ring, zero copy. From another host the same share is read through a
:class:`~qudi.util.instream.transport.subscribed.SubscribedHub`.

A consumer's place is named. Joining under a name this process already holds on the same
streamer (a notebook cell run again after it failed half-way) gives the earlier place up
first, so the new join does not fail on its own leftover.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from qudi.util.instream.errors import StreamError, StreamFaultError, StreamNotFoundError
from qudi.util.instream.hub import HubReader
from qudi.util.instream.ring import RingState, StreamRing
from qudi.util.instream.transport.curve import ClientKeys
from qudi.util.instream.transport.rpc import call, configure_share, stream_id
from qudi.util.instream.transport.subscribed import SubscribedHub

__all__ = ["TRANSPORTS", "RemoteHub", "join_remote_stream"]

log = logging.getLogger(__name__)

TRANSPORTS = ("auto", "shared_memory", "zmq")


class RemoteHub:
    """A hub in another process on this host, seen through its share.

    :meth:`open_reader` gives a :class:`HubReader` with the same API and policies as the
    readers of a local hub: this class is their
    :class:`~qudi.util.instream.contracts.ReaderHost`, standing in for the remote hub. Use it
    in a ``with`` block to leave it however the block ends.
    """

    def __init__(self, share: Any):
        self._share = share
        self.name = str(share.stream_name)
        self._ring = _attach(self.name, str(share.stream_id))
        self._readers: list[HubReader] = []
        self._closed = False

    @classmethod
    def join(cls, streamer: Any, consumer: str, max_poll_rate: float = 30.0) -> RemoteHub:
        """Join the stream of ``streamer``, a qudi-instream module in another process on this
        host (e.g. from a qudi namespace over rpyc), as ``consumer``.

        A place of the same name that this process holds on this streamer is given up first.
        If the join fails, nothing stays joined.
        """
        return _join(streamer, consumer, max_poll_rate, RemoteHub)

    @property
    def ring(self) -> StreamRing:
        return self._ring

    @property
    def closed(self) -> bool:
        """True once this consumer left the hub (:meth:`close`)."""
        return self._closed

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> HubReader:
        """A new (stopped) reader, as :meth:`StreamHub.open_reader` gives.

        Raises
        ------
        StreamError
            If this consumer left the hub.
        """
        if self._closed:
            raise StreamError(f"stream '{self.name}' was left (closed); join it again")
        reader = HubReader(self, name, allow_overwrite)  # this hub stands in for the remote one
        self._readers.append(reader)
        return reader

    def configure(
        self,
        active_channels: Sequence[str],
        streaming_mode: Any,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Configure the remote hub (same rules as a local one: a no-op, or
        ``StreamBusyError`` naming the running consumers in ``running_readers``); a refused
        configuration changes nothing."""
        ring_id = configure_share(
            self._share, active_channels, streaming_mode, channel_buffer_size, sample_rate
        )
        self._follow(ring_id)

    def close(self) -> None:
        """Leave the remote hub and unmap the ring; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        for reader in self._readers:
            reader.end_for_good()
        try:
            call(self._share, "close")
        finally:
            self._ring.close()

    def leave(self) -> None:
        """Give up this consumer's place: :meth:`close`."""
        self.close()

    def __enter__(self) -> RemoteHub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------- the ReaderHost contract of HubReader
    def start_reader(self, reader: HubReader) -> None:
        """Count the consumer as running remotely and let ``reader`` join the run, from the
        sample at which the share counted it (not from where the ring is by now)."""
        ring_id, run_epoch, first = call(self._share, "start_from")
        self._follow(str(ring_id))
        same_run = int(run_epoch) == self._ring.run_epoch
        reader.join_run(self._ring, int(first) if same_run and int(first) >= 0 else None)

    def stop_reader(self, reader: HubReader) -> None:
        """Stop counting the consumer remotely."""
        reader.leave_run()
        call(self._share, "stop")

    def forget_reader(self, reader: HubReader) -> None:
        """Stop ``reader``; the place stays until :meth:`close`."""
        if not self._closed:
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


# The places this process holds, by (streamer, consumer name): a join under a name held here
# gives the earlier place up first. Weak: a place nobody references is left by its share.
_places: weakref.WeakValueDictionary[tuple[str, str], RemoteHub | SubscribedHub] = (
    weakref.WeakValueDictionary()
)
_places_lock = threading.Lock()


def join_remote_stream(
    streamer: Any,
    consumer: str,
    max_poll_rate: float = 30.0,
    transport: str = "auto",
    keys: ClientKeys | None = None,
) -> RemoteHub | SubscribedHub:
    """Join the stream of ``streamer``, a qudi-instream module in another process, as
    ``consumer``: through shared memory when it runs on this host, else over ZeroMQ.

    Parameters
    ----------
    streamer
        The module (a qudi remote module or an rpyc netref of it) with ``share_stream``.
    consumer
        This consumer's name among the stream's consumers. A place of that name which this
        process holds on the same streamer is given up first (and logged).
    max_poll_rate
        Most reads of the source per second, if this consumer starts its pump.
    transport
        ``'auto'``, ``'shared_memory'`` or ``'zmq'``.
    keys
        CURVE keys for a streamer that publishes with keys (used over ZeroMQ only).

    Raises
    ------
    ValueError, TypeError
        For a transport not in :data:`TRANSPORTS`, or a streamer that cannot be shared.
    StreamError
        If the stream cannot be reached by the transport asked for. Nothing stays joined.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r} is not one of {list(TRANSPORTS)}")
    opener = functools.partial(_open, transport=transport, keys=keys)
    return _join(streamer, consumer, max_poll_rate, opener)


_Hub = TypeVar("_Hub", bound="RemoteHub | SubscribedHub")


def _join(
    streamer: Any, consumer: str, max_poll_rate: float, open_hub: Callable[[Any], _Hub]
) -> _Hub:
    """Ask ``streamer`` for a share and open a hub on it; if that fails, leave the share."""
    share_stream = getattr(streamer, "share_stream", None)
    if share_stream is None:
        raise TypeError(
            f"module '{streamer.module_name}' is not a qudi-instream streamer (it has no "
            "share_stream): put an 'instream.buffer.DataInStreamBuffer' next to it in its "
            "qudi and join that buffer instead"
        )
    key = (str(getattr(streamer, "module_uuid", "")), str(consumer))
    with _places_lock:
        _give_up_earlier_place(key)
        share = share_stream(consumer, max_poll_rate)
        try:
            hub = open_hub(share)
        except BaseException:
            with contextlib.suppress(Exception):  # the join's own error is the one to see
                call(share, "close")
            raise
        if key[0]:
            _places[key] = hub
        return hub


def _open(share: Any, *, transport: str, keys: ClientKeys | None) -> RemoteHub | SubscribedHub:
    if transport == "zmq":
        return SubscribedHub(share, keys)
    try:
        return RemoteHub(share)
    except StreamError:
        if transport == "shared_memory":
            raise
        return SubscribedHub(share, keys)  # not on this host


def _give_up_earlier_place(key: tuple[str, str]) -> None:
    earlier = _places.pop(key, None) if key[0] else None
    if earlier is None or earlier.closed:
        return
    log.warning(
        "consumer '%s' joins the stream again from this process: its earlier place is given up "
        "(its readers are closed)",
        key[1],
    )
    try:
        earlier.close()
    except Exception as exc:  # its qudi may be gone: the new join says what is wrong
        log.warning("consumer '%s': leaving its earlier place failed: %s", key[1], exc)


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
