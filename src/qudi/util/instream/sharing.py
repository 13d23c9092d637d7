"""Consumers of a hub in other processes: the face of the owner's and the consumer's side.

The process that owns a source keeps one hub per source in :data:`hubs`. A consumer in another
process asks it for a :class:`StreamShare` (control over RPC) and reads the samples by a faster
path: shared memory through a :class:`RemoteHub` on the same host, ZeroMQ through a
:class:`SubscribedHub` from another; :func:`join_remote_stream` picks the path. The code lives
in :mod:`qudi.util.instream.transport`; this module keeps the names configs, notebooks and
docs import::

    from qudi.util.instream.sharing import RemoteHub
"""

from __future__ import annotations

from qudi.util.instream.transport.registry import (
    HubRegistry,
    LocalHub,
    hubs,
    join_module_hub,
    module_hub,
)
from qudi.util.instream.transport.remote import TRANSPORTS, RemoteHub, join_remote_stream
from qudi.util.instream.transport.rpc import REMOTE_METHODS, stream_id
from qudi.util.instream.transport.share import StreamShare, share_module_stream
from qudi.util.instream.transport.subscribed import SubscribedHub, SubscribedReader

__all__ = [
    "REMOTE_METHODS",
    "TRANSPORTS",
    "HubRegistry",
    "LocalHub",
    "RemoteHub",
    "StreamShare",
    "SubscribedHub",
    "SubscribedReader",
    "hubs",
    "join_module_hub",
    "join_remote_stream",
    "module_hub",
    "share_module_stream",
    "stream_id",
]
