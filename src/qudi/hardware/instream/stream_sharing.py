"""SharedStreamer: the mixin that lets consumers in other processes and hosts join a streamer.

A qudi-instream extension of ``DataInStreamInterface``, kept out of the interface so that the
contract imports no transport. The package's own streamers mix it in before the interface::

    class InStreamDummy(SharedStreamer, DataInStreamInterface): ...

It adds the config option ``publish_address`` (qudi gathers config options through
``dir(cls)``, so a mixin's options count like the class's own) and :meth:`share_stream`, which a
``DataInStreamBuffer`` in another qudi calls over qudi's remote modules. Call
:meth:`check_publish_address` in ``on_activate``, so a bad address fails activation with a
message naming the option, not the first remote consumer.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from qudi.core.configoption import ConfigOption

from qudi.util.instream.arrays import option_error
from qudi.util.instream.network import DEFAULT_ADDRESS
from qudi.util.instream.sharing import StreamShare, share_module_stream

__all__ = ["SharedStreamer", "checked_publish_address"]

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

    # a consumer on another host reads the stream over ZeroMQ from this address (no
    # authentication: name another interface only on a trusted network)
    _publish_address = ConfigOption("publish_address", default=DEFAULT_ADDRESS)

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
        """Check the option ``publish_address`` now (in ``on_activate``), not when a host joins.

        Raises
        ------
        ValueError
            If the option is no address this host can bind.
        """
        checked_publish_address(self._publish_address)

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
        return share_module_stream(self, consumer, max_poll_rate, self.publish_address)
