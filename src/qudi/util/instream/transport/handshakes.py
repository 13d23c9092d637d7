"""HandshakeWatch: why a subscriber's connection to a publisher was refused, from ZeroMQ's events.

A refused CURVE handshake is silent on the data socket (nothing arrives). ZeroMQ reports it
on the socket's monitor, which this class reads without blocking, so a receiver that waited
in vain can say *why*: its key is not in the publisher's allow-list, or the two sides' keys
do not fit (a plain subscriber of a CURVE publisher, the reverse, or the wrong server key).
"""

from __future__ import annotations

import contextlib

import zmq
from zmq.utils.monitor import recv_monitor_message

__all__ = ["HandshakeWatch"]

_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
)
_MISMATCH = (
    "the keys of the two sides do not fit (a subscriber without keys and a publisher with "
    "them, or the reverse, or a server key that is not the publisher's)"
)


class HandshakeWatch:
    """The handshake events of one socket. Read from one thread only; :meth:`close` before
    the socket's context ends."""

    def __init__(self, socket: zmq.Socket):
        self.failures = 0
        self.succeeded = 0
        self.last_failure: str | None = None
        self._socket = socket
        self._monitor = socket.get_monitor_socket(_EVENTS)

    def check(self) -> None:
        """Take the events that came (never blocks)."""
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind, value = event["event"], event["value"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.succeeded += 1
                continue
            self.failures += 1
            if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self.last_failure = (
                    f"the publisher refused this subscriber's key (status {value}): its public "
                    "key file is not in the publisher's allowed_clients folder"
                )
            else:
                self.last_failure = f"the handshake failed (ZeroMQ code {value:#x}): {_MISMATCH}"

    def close(self) -> None:
        """Stop watching and close the monitor socket."""
        with contextlib.suppress(zmq.ZMQError):
            self._socket.disable_monitor()
        self._monitor.close(linger=0)
