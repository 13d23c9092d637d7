"""SubscribedHub: a hub on another host, controlled through its share, read over ZeroMQ.

Control calls go to the hub's :class:`~qudi.util.instream.transport.share.StreamShare` (over
rpyc); while the hub's one reader, a :class:`SubscribedReader`, runs, the share publishes the
stream and a :class:`~qudi.util.instream.transport.subscriber.StreamSubscriber` refills a
local ring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from qudi.util.instream.errors import StreamError, StreamStoppedError, StreamTimeoutError
from qudi.util.instream.ring import RingState, StreamRing
from qudi.util.instream.stream_format import decode_description, parse_description
from qudi.util.instream.transport.curve import ClientKeys
from qudi.util.instream.transport.rpc import call, configure_share
from qudi.util.instream.transport.subscriber import StreamSubscriber

__all__ = ["SubscribedHub", "SubscribedReader"]


class SubscribedHub:
    """A hub on another host, seen through its share. Serves one reader (see
    :meth:`open_reader`).

    While the reader runs, the share publishes and a :class:`StreamSubscriber` refills a local
    ring; while it is stopped, :attr:`ring` is an empty ring of the stream's format. Use it in
    a ``with`` block to leave it however the block ends. ``keys`` are the subscriber's CURVE
    keys, for a share that publishes with keys.
    """

    name = None  # no stream in this host's shared memory

    def __init__(self, share: Any, keys: ClientKeys | None = None):
        self._share = share
        self._keys = keys
        self._idle_ring = _idle_ring(str(call(share, "describe")))
        self._reader: SubscribedReader | None = None
        self._closed = False

    @property
    def ring(self) -> StreamRing:
        subscriber = self._reader.subscriber if self._reader is not None else None
        return self._idle_ring if subscriber is None else subscriber.ring

    @property
    def closed(self) -> bool:
        """True once this consumer left the hub (:meth:`close`)."""
        return self._closed

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> SubscribedReader:
        """The hub's one reader (stopped).

        Raises
        ------
        StreamError
            If the hub has a reader already, or was left.
        """
        if self._closed:
            raise StreamError("this remote stream was left (closed); join it again")
        if self._reader is not None:
            raise StreamError(f"this remote stream already has a reader ('{self._reader.name}')")
        self._reader = SubscribedReader(self._share, name, allow_overwrite, self._keys)
        return self._reader

    def configure(
        self,
        active_channels: Sequence[str],
        streaming_mode: Any,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Configure the remote hub (same rules as a local one: no-op or ``StreamBusyError``,
        which carries ``running_readers``)."""
        configure_share(
            self._share, active_channels, streaming_mode, channel_buffer_size, sample_rate
        )
        idle = _idle_ring(str(call(self._share, "describe")))
        self._idle_ring.close()
        self._idle_ring = idle

    def close(self) -> None:
        """End the reader's subscription, leave the remote hub, release the idle ring. A second
        call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._reader is not None:
                self._reader.close()
            call(self._share, "close")
        finally:
            self._idle_ring.close()

    def leave(self) -> None:
        """Give up this consumer's place: :meth:`close`."""
        self.close()

    def __enter__(self) -> SubscribedHub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SubscribedReader:
    """The reader of a :class:`SubscribedHub`: starting it starts the remote source (if no
    one else runs) and a fresh subscriber. Reads, ``available``, ``lost`` and the loss
    policies are those of :class:`StreamSubscriber`."""

    def __init__(
        self, share: Any, name: str, allow_overwrite: bool, keys: ClientKeys | None = None
    ):
        self._share = share
        self._keys = keys
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
        """Receive new samples from now on; harmless while running.

        Raises
        ------
        StreamError
            If no stream arrives from the remote publisher (saying what to check); the remote
            consumer is stopped again then.
        """
        if self.running:
            return
        self._end_subscription()
        _check_keys(self._share, self._keys)
        endpoint = str(call(self._share, "start_publishing"))
        try:
            self._subscriber = StreamSubscriber(
                endpoint, name=self.name, allow_overwrite=self.allow_overwrite, keys=self._keys
            )
        except StreamTimeoutError as exc:
            call(self._share, "stop")
            raise StreamError(f"{_unreachable(endpoint)} ({exc})") from exc
        except BaseException:
            with contextlib.suppress(Exception):  # the subscriber's error is the one to see
                call(self._share, "stop")
            raise

    def stop(self) -> None:
        """Stop receiving; the remote source stops if no other consumer runs."""
        self._end_subscription()
        call(self._share, "stop")

    def close(self) -> None:
        self._end_subscription()

    def read_into(
        self,
        out: np.ndarray,
        n: int | None = None,
        *,
        timeout: float | None = None,
        timestamps: np.ndarray | None = None,
    ) -> int:
        return self._running_subscriber().read_into(out, n, timeout=timeout, timestamps=timestamps)

    def read_available_into(self, out: np.ndarray, *, timestamps: np.ndarray | None = None) -> int:
        return self._running_subscriber().read_available_into(out, timestamps=timestamps)

    def latest(self, n: int, *, with_timestamps: bool = False) -> Any:
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


def _idle_ring(description: str) -> StreamRing:
    """A small empty private ring with the format of a remote stream."""
    (dtype, shape, has_timestamps), info, _ = parse_description(
        decode_description(description.encode())
    )
    ring = StreamRing(1024, shape, dtype, timestamps=has_timestamps, info=info)
    ring.mark_stopped()
    return ring


def _check_keys(share: Any, keys: ClientKeys | None) -> None:
    """Say at once which keys a consumer lacks for the share's publisher (what the share
    says is not trusted: a wrong answer only costs this error, the handshake verifies).

    Raises
    ------
    StreamError
        If the share publishes with CURVE and ``keys`` is None or trusts another server key,
        or publishes plain and ``keys`` is given.
    """
    try:
        said = str(call(share, "publish_security"))
    except (StreamError, ValueError):  # a share of an older version: the handshake tells
        return
    kind, _, public = said.partition(" ")
    how = (
        "give this consumer ClientKeys (a DataInStreamBuffer: the options 'subscribe_key', "
        "its own NAME.key_secret file, and 'publisher_key', the streamer host's NAME.key file)"
    )
    if kind == "curve" and keys is None:
        raise StreamError(f"the streamer publishes with CURVE keys (server key {public}): {how}")
    if kind == "curve" and keys is not None and public.encode() != keys.server:
        raise StreamError(
            f"the streamer publishes with server key {public}, but this consumer trusts "
            f"{keys.server.decode()}: copy the streamer host's NAME.key file and name it in "
            "the option 'publisher_key'"
        )
    if kind == "plain" and keys is not None:
        raise StreamError(
            "the streamer publishes without keys, but this consumer has keys: give the "
            "streamer the options 'publish_key' and 'allowed_clients', or drop this consumer's"
        )


def _unreachable(endpoint: str) -> str:
    host = urlsplit(endpoint).hostname or ""
    advice = (
        "it publishes on loopback only: set the option 'publish_address' of the streamer in "
        "its qudi config to an address this host can reach (e.g. 'tcp://192.168.1.5:*')"
        if host.startswith("127.") or host in ("localhost", "::1")
        else "check that this host can reach it (firewall, address)"
    )
    return f"no stream arrived from the remote streamer's publisher at {endpoint}: {advice}"
