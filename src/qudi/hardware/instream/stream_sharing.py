"""SharedStreamer: the mixin that lets consumers in other processes and hosts join a streamer.

A qudi-instream extension of ``DataInStreamInterface``, kept out of the interface so that the
contract imports no transport. The package's own streamers mix it in before the interface::

    class InStreamDummy(SharedStreamer, DataInStreamInterface): ...

It adds the config options ``publish_address``, ``publish_key``, ``allowed_clients`` and
``insecure`` (qudi gathers config options through ``dir(cls)``, so a mixin's options count like
the class's own) and :meth:`share_stream`, which a ``DataInStreamBuffer`` in another qudi calls
over qudi's remote modules. Call :meth:`check_publish_address` in ``on_activate``, so a bad
address, a missing key, or an address other hosts reach without keys fails activation with a
message naming the option, not the first remote consumer.

Options (in the module's ``options:``)::

    publish_address: 'tcp://192.168.1.5:5555'   # default 'tcp://127.0.0.1:*': this host only
    publish_key: '~/qudi/instream_keys/daq-pc.key_secret'  # this host's CURVE key pair
    allowed_clients: '~/qudi/instream_keys/allowed'  # folder of the clients' NAME.key files
    insecure: False   # True: publish beyond loopback WITHOUT keys (warned at every start)

Make key pairs with ``python -m qudi.util.instream.keys new NAME`` (see docs/remote.md).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from typing import Any

from qudi.core.configoption import ConfigOption

from qudi.util.instream.arrays import option_error
from qudi.util.instream.network import DEFAULT_ADDRESS, MAKE_KEYS, ServerKeys, is_loopback
from qudi.util.instream.sharing import StreamShare, share_module_stream

__all__ = ["SharedStreamer", "checked_publish_address", "checked_publish_security"]

_ADDRESS = re.compile(r"tcp://(?P<host>[^:/\s\[\]]+):(?P<port>\*|\d+)")
_HELP = (
    "use 'tcp://<address of this host>:<port or *>', e.g. 'tcp://127.0.0.1:*' (this host "
    "only), 'tcp://192.168.1.5:5555' or 'tcp://eth0:*'"
)


def checked_publish_address(address: object) -> str:
    """Check the option ``publish_address``: a ZeroMQ TCP address this host can bind.

    Parameters
    ----------
    address : object
        The option's value: ``tcp://<host>:<port>`` where host is ``*`` (every interface), an
        IPv4 address or host name of this host, or a network interface name (``eth0``), and
        port is ``*`` (a free one) or 0 to 65535.

    Returns
    -------
    str
        ``address``, unchanged.

    Raises
    ------
    ValueError
        If ``address`` is no such address; the message names the option, the value and what
        is wrong with it. Whether the port is free is seen only when the stream is published.
    """
    match = _ADDRESS.fullmatch(address) if isinstance(address, str) else None
    if match is None:
        raise option_error("publish_address", address, _HELP)
    host, port = match["host"], match["port"]
    if port != "*" and not 0 <= int(port) <= 65535:
        raise option_error(
            "publish_address", address, f"port {port} does not exist: use 0 to 65535, or *"
        )
    problem = _host_problem(host)
    if problem:
        raise option_error("publish_address", address, f"{problem}; {_HELP}")
    return address


def checked_publish_security(
    address: str, publish_key: object, allowed_clients: object, insecure: object
) -> ServerKeys | None:
    """Check the options ``publish_key``, ``allowed_clients`` and ``insecure`` for publishing
    on ``address`` (already checked); returns the keys, or None to publish plain.

    Raises
    ------
    ValueError
        For ``insecure`` not True or False; only one of the two key options; a key file
        missing, of the wrong kind or readable by others; an ``allowed_clients`` that is no
        folder; and an address other hosts can reach without keys, unless ``insecure`` is
        True (the message says how to make keys).
    """
    if not isinstance(insecure, bool):
        raise option_error("insecure", insecure, "use True or False")
    if (publish_key is None) != (allowed_clients is None):
        given, missing = (
            ("publish_key", "allowed_clients")
            if allowed_clients is None
            else ("allowed_clients", "publish_key")
        )
        raise ValueError(
            f"option '{given}' is set but '{missing}' is not: CURVE needs both, this host's "
            "NAME.key_secret file (publish_key) and the folder of the clients' NAME.key files "
            "(allowed_clients)"
        )
    if publish_key is not None:
        return ServerKeys.from_files(
            publish_key,  # type: ignore[arg-type]
            allowed_clients,  # type: ignore[arg-type]
            ("publish_key", "allowed_clients"),
        )
    if not is_loopback(address) and not insecure:
        raise option_error(
            "publish_address",
            address,
            "other hosts can reach that address, and without keys anyone there could read the "
            f"stream. Make key pairs with '{MAKE_KEYS}' (one on this host, one on each client "
            "host), then set the options 'publish_key' (this host's NAME.key_secret file) and "
            "'allowed_clients' (a folder holding the clients' NAME.key files); or, only on a "
            "network you trust, set 'insecure: True'",
        )
    return None


def _host_problem(host: str) -> str | None:
    """Why this host cannot bind ``host`` (None if it can)."""
    if host == "*" or host in {name for _, name in socket.if_nameindex()}:
        return None
    try:
        ipaddress.IPv4Address(host)
        ip = host
    except ValueError:
        try:  # a host name, as ZeroMQ resolves it
            ip = socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0]
        except (OSError, UnicodeError):
            return f"{host!r} is neither an IPv4 address, a host name nor an interface here"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError as exc:
            return f"{host!r} is not an address of this host ({exc.strerror or exc})"
    return None


class SharedStreamer:
    """Mixin for a ``DataInStreamInterface`` module whose stream others may join.

    See the module docstring; it adds the option ``publish_address`` and :meth:`share_stream`.
    """

    # a consumer on another host reads the stream over ZeroMQ from this address; any other
    # than loopback needs the keys below (or insecure: True)
    _publish_address = ConfigOption("publish_address", default=DEFAULT_ADDRESS)
    # this host's CURVE key pair (a NAME.key_secret file), and the folder of the public key
    # files (NAME.key) of the client hosts allowed to subscribe; remove one to revoke it
    _publish_key = ConfigOption("publish_key", default=None)
    _allowed_clients = ConfigOption("allowed_clients", default=None)
    # publish beyond loopback without keys (any host that reaches it reads the stream)
    _insecure = ConfigOption("insecure", default=False)

    @property
    def publish_address(self) -> str:
        """Where the stream is published for consumers on other hosts.

        Returns
        -------
        str
            The option ``publish_address`` (loopback with a free port by default), checked.

        Raises
        ------
        ValueError
            If the option is no address this host can bind.
        """
        return checked_publish_address(self._publish_address)

    def check_publish_address(self) -> None:
        """Check the options ``publish_address``, ``publish_key``, ``allowed_clients`` and
        ``insecure`` now (in ``on_activate``), not when a host joins; warns when the stream
        is published beyond this host without keys (``insecure: True``).

        Raises
        ------
        ValueError
            If the address is no address this host can bind, a key option is wrong, or the
            address is reachable from other hosts and there are no keys (and no
            ``insecure: True``); see :func:`checked_publish_security`.
        """
        address = checked_publish_address(self._publish_address)
        keys = checked_publish_security(
            address, self._publish_key, self._allowed_clients, self._insecure
        )
        if keys is None and not is_loopback(address):
            _log_of(self).warning(
                "option 'insecure' is True: the stream is published on %s WITHOUT "
                "authentication or encryption; any host that reaches it can read it",
                address,
            )

    def publish_security(self) -> tuple[str, ServerKeys | None, bool]:
        """``(address, keys, insecure)`` to publish with, from the options, checked (key
        files read anew, so a key pair replaced since activation counts).

        Raises
        ------
        ValueError
            As :meth:`check_publish_address`.
        """
        address = self.publish_address
        keys = checked_publish_security(
            address, self._publish_key, self._allowed_clients, self._insecure
        )
        return address, keys, self._insecure

    def share_stream(self, consumer: str, max_poll_rate: float = 30.0) -> StreamShare:
        """Let ``consumer`` in another process join this module's shared stream.

        Called over qudi's remote modules by an ``instream.buffer.DataInStreamBuffer`` in
        another qudi: that buffer starts, stops and configures the stream through the returned
        share and reads the samples from shared memory (same host) or over ZeroMQ (published on
        option ``publish_address``), never through the remote call.

        Parameters
        ----------
        consumer : str
            The joining consumer's name, unique among this stream's consumers.
        max_poll_rate : float, optional
            Most reads of this module per second (Hz), if the share starts the stream's pump.

        Returns
        -------
        StreamShare
            The consumer's handle on the stream.
        """
        address, keys, insecure = self.publish_security()
        return share_module_stream(
            self, consumer, max_poll_rate, address, keys=keys, insecure=insecure
        )


def _log_of(module: object) -> Any:
    """The qudi module's own logger (its ``log``), or this file's."""
    return getattr(module, "log", None) or logging.getLogger(__name__)
