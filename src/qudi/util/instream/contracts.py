"""The contracts between the stream core's parts, written down as ``typing.Protocol``\\ s.

* :class:`StreamSource`: what a hub's pump reads (the shape of qudi's ``DataInStreamInterface``).
* :class:`StreamCursor`: what every reader has, wherever its samples come from
  (:class:`~qudi.util.instream.reader.RingReader`, a hub's reader, a ZeroMQ subscriber).
* :class:`StreamReader`: a cursor that is started and stopped: what a hub hands a consumer.
* :class:`ReaderHost`: what a :class:`~qudi.util.instream.hub.HubReader` needs of its owner
  (a :class:`~qudi.util.instream.hub.StreamHub`, or a
  :class:`~qudi.util.instream.sharing.RemoteHub` standing in for one in another process).
* :class:`JoinedHub`: one consumer's place in a hub of any kind (local, remote, subscribed):
  what a consumer such as the qudi buffer module uses, and how it leaves.
* :class:`ClockedSource`: a source that declares what ticks its samples (optional: a source
  without ``sample_clock`` runs on its own internal clock).
* :class:`TimedCursor`: a cursor whose ring (and so its time table) it can name: what an
  :class:`~qudi.util.instream.aligned_reader.AlignedReader` reads.

Nothing here runs; the classes name the methods each side may call, so that the parts talk
through these names only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from qudi.util.instream.hub import HubReader
    from qudi.util.instream.ring import StreamRing

__all__ = [
    "ClockedSource",
    "JoinedHub",
    "ReaderHost",
    "StreamCursor",
    "StreamReader",
    "StreamSource",
    "TimedCursor",
]


class StreamSource(Protocol):
    """What the hub needs of a source: the shape of qudi's ``DataInStreamInterface``.

    The pump asks ``available_samples``, then reads that many with
    ``read_data_into_buffer(view, n)``, ``n`` an exact count that fits the ring's free region.
    A source without ``read_data_into_buffer`` (a minimal one, not a qudi module) is read with
    ``read_available_data_into_buffer(view)`` and must then fill no more than ``view`` holds.
    """

    @property
    def constraints(self) -> Any: ...  # .channel_units, .data_type, .sample_timing

    @property
    def active_channels(self) -> Sequence[str]: ...

    @property
    def sample_rate(self) -> float: ...

    @property
    def channel_buffer_size(self) -> int: ...

    @property
    def streaming_mode(self) -> Any: ...

    @property
    def available_samples(self) -> int: ...

    def configure(
        self,
        active_channels: Sequence[str],
        streaming_mode: Any,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> Any: ...

    def start_stream(self) -> None: ...

    def stop_stream(self) -> None: ...

    def read_available_data_into_buffer(
        self, data_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int: ...


class StreamCursor(Protocol):
    """What every reader has: a position in one stream, a loss policy, and three reads.

    See :class:`~qudi.util.instream.reader.RingReader` for what each member means.
    """

    name: str
    allow_overwrite: bool

    @property
    def running(self) -> bool: ...

    @property
    def available(self) -> int: ...

    @property
    def lost(self) -> int: ...

    @property
    def fill(self) -> float: ...

    @property
    def position(self) -> int: ...

    def read_into(
        self,
        out: np.ndarray,
        n: int | None = None,
        *,
        timeout: float | None = None,
        timestamps: np.ndarray | None = None,
    ) -> int: ...

    def read_available_into(
        self, out: np.ndarray, *, timestamps: np.ndarray | None = None
    ) -> int: ...

    def latest(self, n: int, *, with_timestamps: bool = False) -> Any: ...

    def close(self) -> None: ...


class TimedCursor(StreamCursor, Protocol):
    """A cursor that names its ring: the ring's description and time table say when each
    sample was taken (see :class:`~qudi.util.instream.stream_clock.StreamClock`)."""

    @property
    def ring(self) -> StreamRing: ...


class ClockedSource(StreamSource, Protocol):
    """A source that declares its sample clock, read by the hub when it makes the stream's
    ring and again after each start (for the run's start tick).

    ``sample_clock`` is a :class:`~qudi.util.instream.timebase.SampleClock` or a mapping of
    its fields (``kind``: ``'internal'``, ``'external'`` or ``'shared'``; ``source``: the
    terminal or shared clock's name; ``tick_rate``; ``start_trigger``; ``start_tick``). An NI
    streamer on an external clock says ``{'kind': 'external', 'source': '/Dev1/PFI0'}``; two
    tasks on ``/Dev1/ai/SampleClock`` both say ``{'kind': 'shared', 'source':
    '/Dev1/ai/SampleClock', 'start_trigger': '/Dev1/ai/StartTrigger'}``.
    """

    @property
    def sample_clock(self) -> Any: ...


class StreamReader(StreamCursor, Protocol):
    """A cursor that runs only between :meth:`start` and :meth:`stop`: a hub's reader, whose
    start may start the source and whose stop may stop it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ReaderHost(Protocol):
    """What a :class:`~qudi.util.instream.hub.HubReader` calls on its owner, and nothing else.

    The host in turn moves the reader only through the reader's own methods
    (``join_run``, ``leave_run``, ``rebind``, ``end_for_good``).
    """

    @property
    def ring(self) -> StreamRing:
        """The ring the host's readers read now (a reconfigured hub replaces it)."""
        ...

    def start_reader(self, reader: HubReader) -> None:
        """Count ``reader`` as running (starting the source if it is the first) and make it
        join the current run."""
        ...

    def stop_reader(self, reader: HubReader) -> None:
        """Stop counting ``reader`` (the source stops when no reader runs)."""
        ...

    def forget_reader(self, reader: HubReader) -> None:
        """Stop ``reader`` and let it go for good."""
        ...

    def fault_of_run(self, run_epoch: int) -> BaseException | None:
        """The source's exception that ended run ``run_epoch``, None if it did not fail."""
        ...

    def run_end(self, run_epoch: int, fallback: int) -> int:
        """Index where run ``run_epoch`` ended, ``fallback`` if the host does not know."""
        ...


class JoinedHub(Protocol):
    """One consumer's place in a hub: :class:`~qudi.util.instream.sharing.LocalHub`,
    :class:`~qudi.util.instream.sharing.RemoteHub` or
    :class:`~qudi.util.instream.sharing.SubscribedHub`."""

    @property
    def name(self) -> str | None:
        """The stream's shared-memory name on this host (None if it has none here).

        Read only: an attribute or a property satisfies it."""
        ...

    @property
    def ring(self) -> StreamRing:
        """The ring this consumer's reader reads (its format and meaning)."""
        ...

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> StreamReader: ...

    def configure(
        self,
        active_channels: Sequence[str],
        streaming_mode: Any,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None: ...

    def leave(self) -> None:
        """Give up this place (a consumer's reader should be closed first); the hub closes
        when its last consumer leaves."""
        ...
