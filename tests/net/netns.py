"""Network namespaces joined by veth pairs: real links between real processes on one machine.

:class:`Star` puts a publisher's namespace in the middle and each subscriber in a namespace of
its own, joined to the middle by a veth pair (subnet ``10.<net>.<k>.0/24``: the publisher is
``.1``, subscriber k ``.2``). Links can be shaped with ``tc``: a token-bucket rate limit
(``tbf``) always, ``netem`` delay, jitter and loss only where the kernel has the ``sch_netem``
module (:func:`netem_missing` says why not). Where netem is missing, :meth:`Star.drop` loses a
fraction of a link's TCP packets with an nftables random-drop rule instead (NOT netem; needs
the ``nft`` tool, :func:`nftables_missing` says why not). Every namespace is deleted by
:meth:`Star.close`, which fixtures call however a test ends.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

PEERS = Path(__file__).with_name("peers.py")
RELAY = Path(__file__).with_name("relay.py")  # a userspace delay, NOT netem
_serial = itertools.count()


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def namespaces_missing() -> str | None:
    """Why network namespaces cannot be made here (None if they can)."""
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"qiprobe{os.getpid()}"
    made = ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"'ip netns add' fails here: {made.stderr.strip()}"
    ip("netns", "del", name, check=False)
    return None


def netem_missing() -> str | None:
    """Why ``tc qdisc ... netem`` cannot shape a link here (None if it can)."""
    name = f"qinetem{os.getpid()}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        tried = subprocess.run(
            ["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
             "delay", "1ms"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if tried.returncode != 0:
            return (
                "this kernel has no netem qdisc (sch_netem), so no delay, jitter or loss can be "
                f"put on a link: tc said {tried.stderr.strip()!r}"
            )
        return None
    finally:
        ip("netns", "del", name, check=False)


def nftables_missing() -> str | None:
    """Why :meth:`Star.drop` cannot drop packets here (None if it can): the ``nft`` tool must
    exist and load a table inside a namespace."""
    if shutil.which("nft") is None:
        return "the nftables tool 'nft' is not installed (scripts/setup.sh installs it)"
    name = f"qinft{os.getpid()}"
    ip("netns", "add", name)
    try:
        tried = subprocess.run(
            ["ip", "netns", "exec", name, "nft", "add", "table", "inet", "probe"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if tried.returncode != 0:
            return f"nftables cannot load a table in a namespace: {tried.stderr.strip()!r}"
        return None
    finally:
        ip("netns", "del", name, check=False)


class Peer:
    """A peer process whose JSON lines on stdout are read by a thread (waits never hang)."""

    def __init__(self, command: list[str]):
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.errors: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_errors, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line.rstrip())

    def line(self, timeout: float) -> dict:
        """The next JSON line the peer printed.

        Raises
        ------
        AssertionError
            If none came within ``timeout`` seconds, or the peer ended (with its stderr).
        """
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no line from the peer within {timeout} s: {self.errors[-5:]}"
            ) from None
        if line is None:
            self.process.wait(10)
            raise AssertionError(f"the peer ended ({self.process.returncode}): {self.errors[-8:]}")
        return json.loads(line)

    def finish(self, timeout: float = 30.0) -> dict:
        """Ask the peer to end (SIGTERM) and return its last line."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.line(timeout)

    def signal(self, number: int) -> None:
        """Send a signal to the peer process itself (not to 'ip netns exec', which execs it)."""
        self.process.send_signal(number)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        for thread in self._threads:
            thread.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def local_peer(*args: str) -> Peer:
    """A peer process (tests/net/peers.py) in this namespace (loopback runs)."""
    return Peer([sys.executable, str(PEERS), *args])


class Star:
    """A publisher namespace joined to ``subscribers`` namespaces by one veth pair each."""

    def __init__(self, subscribers: int):
        serial = next(_serial)
        self.tag = f"qi{os.getpid() % 100000}x{serial}"
        self.net = 100 + (os.getpid() + serial) % 150
        self.center = f"{self.tag}p"
        self.leaves = [f"{self.tag}s{k}" for k in range(subscribers)]
        self._made: list[str] = []
        self._processes: list[Peer] = []
        try:
            self._add(self.center)
            for k, leaf in enumerate(self.leaves, start=1):
                self._add(leaf)
                a, b = f"{self.tag}a{k}", f"{self.tag}b{k}"
                ip("link", "add", a, "type", "veth", "peer", "name", b)
                ip("link", "set", a, "netns", self.center)
                ip("link", "set", b, "netns", leaf)
                ip("-n", self.center, "addr", "add", f"10.{self.net}.{k}.1/24", "dev", a)
                ip("-n", leaf, "addr", "add", f"10.{self.net}.{k}.2/24", "dev", b)
                ip("-n", self.center, "link", "set", a, "up")
                ip("-n", leaf, "link", "set", b, "up")
        except BaseException:
            self.close()
            raise

    def _add(self, name: str) -> None:
        ip("netns", "add", name)
        self._made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def center_address(self, k: int) -> str:
        """The publisher's address on the link to subscriber ``k`` (1-based)."""
        return f"10.{self.net}.{k}.1"

    def link(self, k: int) -> tuple[str, str]:
        """(namespace, device) of the publisher's end of the link to subscriber ``k``."""
        return self.center, f"{self.tag}a{k}"

    def shape(self, k: int, *, rate: str = "100mbit", netem: str = "") -> None:
        """Rate-limit the link to subscriber ``k`` both ways (tbf); with ``netem`` (e.g.
        ``"delay 2ms 1ms loss 0.5%"``) add that below the limit, on a kernel that has it."""
        for namespace, device in (
            (self.center, f"{self.tag}a{k}"),
            (self.leaves[k - 1], f"{self.tag}b{k}"),
        ):
            tc = ["ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", device]
            if netem:
                subprocess.run([*tc, "root", "handle", "1:", "netem", *netem.split()], check=True)
                parent = ["parent", "1:1", "handle", "10:"]
            else:
                parent = ["root"]
            subprocess.run(
                [*tc, *parent, "tbf", "rate", rate, "burst", "64kb", "latency", "50ms"],
                check=True,
            )  # fmt: skip

    def _ends(self, k: int) -> dict[str, tuple[str, str]]:
        """The link to subscriber ``k`` by the direction its receiving end takes in:
        (namespace, device) of that end."""
        return {
            "to_subscriber": (self.leaves[k - 1], f"{self.tag}b{k}"),
            "to_publisher": (self.center, f"{self.tag}a{k}"),
        }

    def drop(self, k: int, percent: float) -> None:
        """Drop ``percent`` % of the TCP packets on the link to subscriber ``k``, each way, at
        random: an nftables ``numgen random`` rule on the input hook of each end's namespace,
        so a packet is lost after it was sent (as on a wire: the sender must notice and
        retransmit; a drop on the output hook would be reported to the sending socket). NOT
        netem: it drops, it neither delays nor reorders. :meth:`dropped` counts the drops.
        Both ends stop sending TCP segmentation-offload super-packets (``gso_max_segs 1``), so
        each packet is one wire-sized segment and ``percent`` is per segment, as on a wire."""
        if not 0 < percent < 100:
            raise ValueError(f"percent must be in (0, 100), got {percent!r}")
        per_100k = str(round(percent * 1000))
        for namespace, device in self._ends(k).values():
            ip("-n", namespace, "link", "set", device, "gso_max_segs", "1")
            nft = ["ip", "netns", "exec", namespace, "nft"]
            subprocess.run([*nft, "add", "table", "inet", f"qiloss{k}"], check=True)
            subprocess.run(
                [*nft, "add", "chain", "inet", f"qiloss{k}", "in",
                 "{ type filter hook input priority 0; }"],
                check=True,
            )  # fmt: skip
            subprocess.run(
                [*nft, "add", "rule", "inet", f"qiloss{k}", "in", "iifname", device,
                 "meta", "l4proto", "tcp", "numgen", "random", "mod", "100000", "<", per_100k,
                 "counter", "drop"],
                check=True,
            )  # fmt: skip

    def dropped(self, k: int) -> dict[str, int]:
        """How many packets :meth:`drop` has dropped so far on the link to subscriber ``k``,
        by direction (``to_subscriber``, ``to_publisher``)."""
        counts = {}
        for direction, (namespace, _) in self._ends(k).items():
            listed = subprocess.run(
                ["ip", "netns", "exec", namespace, "nft", "-j", "list", "table", "inet",
                 f"qiloss{k}"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            counts[direction] = sum(
                expr["counter"]["packets"]
                for item in json.loads(listed.stdout)["nftables"]
                if "rule" in item
                for expr in item["rule"]["expr"]
                if "counter" in expr
            )
        return counts

    def retransmitted(self, namespace: str) -> int:
        """TCP segments retransmitted in ``namespace`` so far (RetransSegs of its
        /proc/net/snmp, read from inside it)."""
        snmp = subprocess.run(
            ["ip", "netns", "exec", namespace, "cat", "/proc/net/snmp"],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
        names, values = (line.split()[1:] for line in snmp if line.startswith("Tcp:"))
        return int(values[names.index("RetransSegs")])

    def small_socket_buffers(self, namespace: str) -> None:
        """TCP buffers of at most 64 KiB (receive) and 256 KiB (send) in ``namespace``, so a
        stalled reader fills them within a short test (the defaults hold seconds of a stream).
        Written to /proc/sys from inside the namespace (no sysctl binary needed)."""
        code = (
            "open('/proc/sys/net/ipv4/tcp_rmem', 'w').write('4096 16384 65536');"
            "open('/proc/sys/net/ipv4/tcp_wmem', 'w').write('4096 16384 262144')"
        )
        subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", code], check=True)

    def set_link(self, k: int, up: bool) -> None:
        """Take the link to subscriber ``k`` down or up (the publisher's end)."""
        namespace, device = self.link(k)
        ip("-n", namespace, "link", "set", device, "up" if up else "down")

    def run(self, namespace: str, *args: str, script: Path = PEERS) -> Peer:
        """A peer process (tests/net/peers.py, or ``script``) in ``namespace``; killed by
        :meth:`close`."""
        peer = Peer(["ip", "netns", "exec", namespace, sys.executable, str(script), *args])
        self._processes.append(peer)
        return peer

    def close(self) -> None:
        """Kill what still runs, delete every namespace (and so their veth ends)."""
        for peer in self._processes:
            peer.kill()
        self._processes.clear()
        while self._made:
            ip("netns", "del", self._made.pop(), check=False)

    def __enter__(self) -> Star:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
