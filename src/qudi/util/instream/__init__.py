"""The qudi-instream stream core: one ring per stream, a cursor per consumer, a pump per source.

numpy and the standard library only (no Qt, no qudi.core), so it works in any Python process.

>>> from qudi.util.instream import attach
>>> reader = attach("instream_dummy").reader("my_analysis")  # doctest: +SKIP
"""

from qudi.util.instream.errors import (
    StreamBusyError,
    StreamError,
    StreamFaultError,
    StreamFormatError,
    StreamNotFoundError,
    StreamOverrunError,
    StreamStoppedError,
    StreamTimeoutError,
)
from qudi.util.instream.hub import HubReader, HubStats, ReaderStats, StreamHub, StreamSource
from qudi.util.instream.reader import RingReader
from qudi.util.instream.ring import RingState, StreamInfo, StreamRing
from qudi.util.instream.shared_block import list_streams

__all__ = [
    "HubReader",
    "HubStats",
    "ReaderStats",
    "RingReader",
    "RingState",
    "StreamBusyError",
    "StreamError",
    "StreamFaultError",
    "StreamFormatError",
    "StreamHub",
    "StreamInfo",
    "StreamNotFoundError",
    "StreamOverrunError",
    "StreamRing",
    "StreamSource",
    "StreamStoppedError",
    "StreamTimeoutError",
    "attach",
    "list_streams",
]


def attach(name: str) -> StreamRing:
    """Attach (read-only, zero-copy) to the shared stream ``name`` running on this host."""
    return StreamRing.attach(name)
