"""StreamShare: the owner's side of a consumer in another process, called over RPC.

A consumer in another process (a second qudi over qudi's remote modules, or a notebook) asks
the process that owns a source for a :class:`StreamShare`: a place among the readers of the
source's hub. Starting it starts the source if no one else runs, and the source stops when the
last consumer anywhere stops. The samples never travel with the calls: on the same host the
consumer attaches to the shared ring by name; on another host the share publishes the stream
over ZeroMQ while the consumer runs.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from qudi.util.instream.hub import HubReader, StreamHub
from qudi.util.instream.stream_format import encode_description
from qudi.util.instream.transport.curve import ServerKeys
from qudi.util.instream.transport.publisher import DEFAULT_ADDRESS, StreamPublisher
from qudi.util.instream.transport.registry import hubs, module_hub
from qudi.util.instream.transport.rpc import answer, stream_id

__all__ = ["StreamShare", "share_module_stream"]


def share_module_stream(
    streamer: Any,
    consumer: str,
    max_poll_rate: float,
    publish_address: str = DEFAULT_ADDRESS,
    keys: ServerKeys | None = None,
    insecure: bool = False,
) -> StreamShare:
    """A :class:`StreamShare` of ``streamer``'s hub for ``consumer`` in another process;
    ``publish_address``, ``keys`` and ``insecure`` are its publisher's (see
    :class:`~qudi.util.instream.transport.publisher.StreamPublisher`).

    Raises
    ------
    ValueError
        If ``consumer`` is a consumer of this stream already (nothing changes then).
    """
    hub = module_hub(streamer, consumer, max_poll_rate)
    try:
        return StreamShare(
            hub,
            consumer,
            on_close=functools.partial(hubs.leave, hub, consumer),
            publish_address=publish_address,
            keys=keys,
            insecure=insecure,
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
    share then also publishes the stream over ZeroMQ on ``publish_address`` while it runs,
    with CURVE ``keys`` if given (see
    :class:`~qudi.util.instream.transport.publisher.StreamPublisher` for ``insecure``).
    """

    def __init__(
        self,
        hub: StreamHub,
        consumer: str,
        on_close: Callable[[], None] | None = None,
        publish_address: str = DEFAULT_ADDRESS,
        keys: ServerKeys | None = None,
        insecure: bool = False,
    ):
        self._keys, self._insecure = keys, insecure
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

    def start_from(self) -> tuple[str, int, int]:
        """:meth:`start`, and where the consumer's run begins: ``(ring id, run epoch, sample)``.

        A consumer in another process reads from that sample on, as a local reader does from
        its start call, not from wherever the ring is when this answer reaches it (a round
        trip later: samples, or a marker, written meanwhile would be missed). The sample is
        ``-1`` when the consumer was running already (its start is long past).
        """
        was_running = self._reader.running
        self._reader.start()
        first = -1 if was_running else self._reader.position
        return self.stream_id, self._hub.ring.run_epoch, first

    def start_publishing(self) -> str:
        """:meth:`start`, and publish the stream over ZeroMQ; returns the endpoint."""
        self._reader.start()
        if not self._publishers:
            self._publishers.append(self._new_publisher())
        return self._publishers[0].endpoint

    def publish_security(self) -> str:
        """``'curve <public key>'`` if the stream is published with CURVE keys, else
        ``'plain'`` (so a consumer can say at once which keys it lacks; the handshake is what
        verifies them)."""
        return "plain" if self._keys is None else f"curve {self._keys.public.decode()}"

    def describe(self) -> str:
        """The stream's format and meaning, as JSON (see :meth:`StreamRing.description`)."""
        return encode_description(self._hub.ring.description()).decode()

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
        ``('error', exception class name, message[, details])`` (see
        :mod:`~qudi.util.instream.transport.rpc`).

        No exception crosses the RPC connection: a traceback sent back would keep this share
        alive (its frames reference it) past the death of the caller's process.
        """
        return answer(self, method, *args)

    def _new_publisher(self) -> StreamPublisher:
        """A publisher on the port the last one had, so a subscriber's endpoint stays valid."""
        name = f"{self.consumer} zmq"
        keys, insecure = self._keys, self._insecure
        try:
            publisher = StreamPublisher(
                self._hub, self._bind_address, name=name, keys=keys, insecure=insecure
            )
        except zmq.ZMQError:  # the port was taken meanwhile: any free one
            publisher = StreamPublisher(
                self._hub, self._publish_address, name=name, keys=keys, insecure=insecure
            )
        self._bind_address = publisher.endpoint
        return publisher
