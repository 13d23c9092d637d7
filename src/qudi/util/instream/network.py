"""The ZeroMQ transport's face: publish a stream to other hosts, refill a local ring there.

The code lives in :mod:`qudi.util.instream.transport` (:mod:`~.transport.publisher`,
:mod:`~.transport.receiver`, :mod:`~.transport.subscriber`, :mod:`~.transport.wire`); this
module keeps the names scripts, notebooks and docs import::

    from qudi.util.instream.network import StreamPublisher, StreamSubscriber

With CURVE keys (made by ``python -m qudi.util.instream.keys new NAME``), a publisher takes
``keys=ServerKeys.from_files(secret_file, allowed_folder)`` and a subscriber
``keys=ClientKeys.from_files(secret_file, server_public_file)``.
"""

from __future__ import annotations

from typing import Any

from qudi.util.instream.ring import StreamRing
from qudi.util.instream.stream_format import parse_description
from qudi.util.instream.transport.curve import MAKE_KEYS, ClientKeys, ServerKeys, is_loopback
from qudi.util.instream.transport.gaps import Gap
from qudi.util.instream.transport.publisher import (
    DEFAULT_ADDRESS,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_SEND_HWM,
    MAX_SUBSCRIPTION_BYTES,
    PublisherStats,
    StreamPublisher,
)
from qudi.util.instream.transport.receiver import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_RING_BYTES,
    RemoteSourceError,
    StreamReceiver,
)
from qudi.util.instream.transport.subscriber import StreamSubscriber, SubscriberStats
from qudi.util.instream.transport.wire import (
    CONTROL,
    DATA,
    HAS_TIMESTAMPS,
    HEADER,
    MAGIC,
    VERSION,
)

__all__ = [
    "CONTROL",
    "DATA",
    "DEFAULT_ADDRESS",
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_HEARTBEAT_S",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_RING_BYTES",
    "DEFAULT_SEND_HWM",
    "MAKE_KEYS",
    "HAS_TIMESTAMPS",
    "HEADER",
    "MAGIC",
    "MAX_SUBSCRIPTION_BYTES",
    "VERSION",
    "ClientKeys",
    "Gap",
    "PublisherStats",
    "RemoteSourceError",
    "ServerKeys",
    "StreamPublisher",
    "StreamReceiver",
    "StreamSubscriber",
    "SubscriberStats",
    "describe_ring",
    "is_loopback",
    "parse_description",
]


def describe_ring(ring: StreamRing) -> dict[str, Any]:
    """The stream's format and meaning as JSON-ready values (what a subscriber is told); the
    same as :meth:`StreamRing.description`."""
    return ring.description()
