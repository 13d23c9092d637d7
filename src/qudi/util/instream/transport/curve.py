"""CURVE on the ZeroMQ transport: who may subscribe, and which publisher a subscriber trusts.

The publisher is a CURVE server: it holds a key pair (:class:`ServerKeys`) and a folder of the
public key files of the clients it allows. A ZAP handler (pyzmq's authenticator, in a thread
of the publisher's own ZeroMQ context) asks an :class:`AllowList` at every handshake; the
folder is read again whenever it changes, so a key file removed there is refused from the
next handshake on, and :class:`CurveGuard` tells the publisher to drop the connections it has
(each client then handshakes again: the revoked one is refused, the others go on after a
reconnection, and what they missed meanwhile is a gap that their receiver reports).

A subscriber is a CURVE client (:class:`ClientKeys`): its key pair and the publisher's public
key, which it verifies in the handshake; a publisher with another key gets no connection.

Without keys the transport is plain, which :func:`is_loopback` addresses allow; binding
anything else in plain needs an explicit ``insecure=True`` (see
:class:`~qudi.util.instream.transport.publisher.StreamPublisher`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from qudi.util.instream.keys import load_public_key, load_secret_key, public_keys_in

__all__ = [
    "MAKE_KEYS",
    "AllowList",
    "ClientKeys",
    "CurveGuard",
    "ServerKeys",
    "is_loopback",
]

log = logging.getLogger(__name__)

#: The command that makes a key pair (named in every message about missing keys).
MAKE_KEYS = "python -m qudi.util.instream.keys new NAME"
_DOMAIN = "qudi-instream"


def is_loopback(address: str) -> bool:
    """True for a ZeroMQ address that only this host can reach (``tcp://127.x.x.x:...``,
    ``localhost``, the ``lo`` interface, ``ipc://``, ``inproc://``)."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    if not address.startswith("tcp://"):
        return False
    host = address[len("tcp://") :].rpartition(":")[0].strip("[]")
    if host in ("lo", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:  # a host name, as ZeroMQ would resolve it
        return all(
            ipaddress.ip_address(info[4][0]).is_loopback
            for info in socket.getaddrinfo(host, None, socket.AF_INET)
        )
    except (OSError, UnicodeError):
        return False


@dataclass(frozen=True)
class ServerKeys:
    """A publisher's key pair (Z85) and the folder of the public key files it allows."""

    public: bytes
    secret: bytes
    allowed: Path

    @classmethod
    def from_files(
        cls,
        secret_file: str | os.PathLike[str],
        allowed_folder: str | os.PathLike[str],
        options: tuple[str, str] = ("secret_file", "allowed_folder"),
    ) -> ServerKeys:
        """Read the keys; ``options`` name the two in error messages (config option names).

        Raises
        ------
        KeyFileError
            For a missing or unsafe secret key file, or an allow-list that is no folder.
        """
        public, secret = load_secret_key(secret_file, options[0])
        folder = Path(allowed_folder).expanduser()
        public_keys_in(folder, options[1])  # a folder, now: not at the first handshake
        return cls(public, secret, folder)


@dataclass(frozen=True)
class ClientKeys:
    """A subscriber's key pair (Z85) and the public key of the publisher it trusts."""

    public: bytes
    secret: bytes
    server: bytes

    @classmethod
    def from_files(
        cls,
        secret_file: str | os.PathLike[str],
        server_file: str | os.PathLike[str],
        options: tuple[str, str] = ("secret_file", "server_file"),
    ) -> ClientKeys:
        """Read the keys; ``options`` name the two in error messages (config option names).

        Raises
        ------
        KeyFileError
            For a missing or unsafe secret key file, or a server key file without a key.
        """
        public, secret = load_secret_key(secret_file, options[0])
        return cls(public, secret, load_public_key(server_file, options[1]))

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client of the trusted publisher (before it connects)."""
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server


class AllowList:
    """The clients a publisher allows: the public key files in a folder, read again whenever
    the folder changes. The ZAP handler calls :meth:`callback` at each handshake."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.accepted = self.refused = 0
        self._lock = threading.Lock()
        self._keys: dict[bytes, str] = {}
        self._seen: object = None
        self._revocation = False  # a key was removed and nobody asked yet (take_revocation)
        self.reload()

    def _signature(self) -> object:
        try:
            return tuple(
                sorted((entry.name, entry.stat().st_mtime_ns) for entry in os.scandir(self.folder))
            )
        except OSError:
            return None  # gone: nobody is allowed

    def reload(self) -> set[bytes]:
        """Read the folder again if it changed; returns the keys no longer allowed."""
        signature = self._signature()
        with self._lock:
            if signature == self._seen:
                return set()
            try:
                keys = public_keys_in(self.folder, "allowed_clients")
            except ValueError:
                keys = {}
            removed = set(self._keys) - set(keys)
            self._keys, self._seen = keys, signature
            self._revocation = self._revocation or bool(removed)
        for key in removed:
            log.warning("publisher: client key %s is no longer allowed", key.decode())
        return removed

    def take_revocation(self) -> bool:
        """True once after keys were removed (whichever thread read the folder then)."""
        self.reload()
        with self._lock:
            revoked, self._revocation = self._revocation, False
        return revoked

    def callback(self, domain: str, key: bytes) -> bool:
        """Allow ``key`` (Z85)? Reads the folder first if it changed."""
        self.reload()
        with self._lock:
            allowed = key in self._keys
            if allowed:
                self.accepted += 1
            else:
                self.refused += 1
        if not allowed and (self.refused <= 10 or self.refused % 1000 == 0):
            log.warning(
                "publisher: refused a subscriber with key %s (not in %s); %d refused so far",
                key.decode(),
                self.folder,
                self.refused,
            )
        return allowed


class CurveGuard:
    """The CURVE server side of one publisher socket: its ZAP handler and allow-list.

    Make it on the publisher's context before binding, :meth:`apply` it to the socket, ask
    :meth:`revoked` now and then (a True means: drop the connections), :meth:`close` it
    after the socket.
    """

    def __init__(self, context: zmq.Context, keys: ServerKeys, name: str):
        self.keys = keys
        self.allow_list = AllowList(keys.allowed)
        self._auth = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.zap"))
        self._auth.start()
        if self._auth.thread is not None:
            self._auth.thread.name = f"instream-zap-{name}"
        self._auth.configure_curve_callback(_DOMAIN, credentials_provider=self.allow_list)

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE server that asks this guard's ZAP handler (before binding)."""
        sock.curve_server = True
        sock.curve_publickey = self.keys.public
        sock.curve_secretkey = self.keys.secret
        sock.zap_domain = _DOMAIN.encode()

    def revoked(self) -> bool:
        """True if a client key was removed from the allow-list since the last call."""
        return self.allow_list.take_revocation()

    def close(self) -> None:
        """Stop the ZAP handler's thread."""
        self._auth.stop()
