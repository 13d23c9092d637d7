"""CURVE on the ZeroMQ transport: right keys stream, every other key gets nothing, revocation.

Real sockets on loopback, real key files made by the package's own command, real threads.
Ramps (every sample's value is its index) show any lost, repeated or misplaced sample.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qudi.util.instream import StreamError, StreamHub, StreamInfo, StreamRing, StreamTimeoutError
from qudi.util.instream.keys import KeyFileError, load_secret_key, main, new_keys
from qudi.util.instream.network import (
    ClientKeys,
    ServerKeys,
    StreamPublisher,
    StreamSubscriber,
    is_loopback,
)
from qudi.util.instream.sharing import StreamShare, SubscribedHub
from qudi.util.instream.simulated import SimulatedSource

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 10.0


def wait_until(condition, timeout=TIMEOUT, what="condition"):
    """Poll a condition that has no event to wait on (another thread's counters)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.002)


def ramp_ring(capacity=1 << 16, channels=2):
    info = StreamInfo(tuple(f"ch{i}" for i in range(channels)), ("V",) * channels, 1e5)
    ring = StreamRing(capacity, (channels,), info=info)
    ring.mark_running()
    return ring


def write_ramp(ring, count):
    first = ring.write_index
    index = np.arange(first, first + count, dtype=np.float64)
    ring.write(np.repeat(index[:, None], ring.sample_shape[0], axis=1))


class Keys:
    """Key pairs made by the package's own code: a server, three clients, an allow-list."""

    def __init__(self, folder):
        self.folder = folder
        self.allowed = folder / "allowed"
        self.allowed.mkdir()
        for name in ("server", "other_server", "alice", "bob", "eve"):
            new_keys(name, folder)
        for name in ("alice", "bob"):
            shutil.copy(folder / f"{name}.key", self.allowed)

    def server(self) -> ServerKeys:
        return ServerKeys.from_files(self.folder / "server.key_secret", self.allowed)

    def client(self, name, server="server") -> ClientKeys:
        return ClientKeys.from_files(
            self.folder / f"{name}.key_secret", self.folder / f"{server}.key"
        )


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path)


def read_all(sub, until_position):
    """Everything ``sub`` (overwrite allowed) delivers up to a publisher position, once its
    receiver has that far (samples, or gaps where they never came)."""
    wait_until(lambda: sub.receiver.ring.write_index >= until_position, what="the end")
    out = np.empty((until_position - sub.position, 2))
    count = sub.read_available_into(out)
    assert sub.position == until_position
    return out[:count, 0]


def assert_exact_with_gaps(values, gaps, start, end):
    """``values`` are the ramp from ``start`` to ``end`` with exactly the gaps cut out."""
    expected = np.arange(start, end, dtype=np.float64)
    keep = np.ones(len(expected), bool)
    for gap in gaps:
        keep[gap.remote_index - start : gap.remote_index - start + gap.lost] = False
    np.testing.assert_array_equal(values, expected[keep])


# ------------------------------------------------------------------------- key files
def test_new_keys_are_owner_only_and_load_back(tmp_path):
    folder = tmp_path / "new_folder"
    public, secret = new_keys("daq-pc", folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(public.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == ["daq-pc.key", "daq-pc.key_secret"]
    pair = load_secret_key(secret, "publish_key")
    assert len(pair[0]) == 40 and len(pair[1]) == 40
    with pytest.raises(FileExistsError, match="daq-pc.key exists already"):
        new_keys("daq-pc", folder)
    with pytest.raises(ValueError, match="key name '../x'"):
        new_keys("../x", folder)


def test_the_documented_command_makes_a_key_pair(tmp_path, capsys):
    assert main(["new", "lab-laptop", "--dir", str(tmp_path)]) == 0
    said = capsys.readouterr().out
    assert str(tmp_path / "lab-laptop.key") in said and "keep it on this host" in said
    assert main(["show", str(tmp_path / "lab-laptop.key")]) == 0
    shown = capsys.readouterr().out.strip().encode()
    assert shown == load_secret_key(tmp_path / "lab-laptop.key_secret", "x")[0]
    assert main(["new", "lab-laptop", "--dir", str(tmp_path)]) == 1  # never overwrites


def test_a_secret_key_others_may_read_is_refused_saying_how_to_fix_it(tmp_path):
    _, secret = new_keys("host", tmp_path)
    os.chmod(secret, 0o644)
    with pytest.raises(KeyFileError, match=r"option 'publish_key'.*mode 0644.*chmod 600"):
        load_secret_key(secret, "publish_key")


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("missing.key_secret", None, "no key file at"),
        ("junk.key_secret", "hello", "is not a key file made by"),
        ("host.key", "public", "holds no secret key"),
    ],
)
def test_a_wrong_key_file_is_refused_naming_the_option(tmp_path, name, content, said):
    public, _ = new_keys("host", tmp_path)
    path = tmp_path / name
    if content == "hello":
        path.write_text("hello")
        os.chmod(path, 0o600)
    elif content == "public":
        path = public
    with pytest.raises(KeyFileError, match=f"option 'subscribe_key'.*{said}"):
        load_secret_key(path, "subscribe_key")


# -------------------------------------------------------------------------- addresses
@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("tcp://127.0.0.1:*", True),
        ("tcp://127.0.0.5:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://lo:*", True),
        ("ipc:///tmp/x", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.5:5555", False),
        ("tcp://eth0:*", False),
    ],
)
def test_loopback_addresses_are_told_apart(address, loopback):
    assert is_loopback(address) is loopback


def test_publishing_beyond_loopback_without_keys_is_refused_saying_how_to_make_keys():
    with ramp_ring() as ring:
        with pytest.raises(ValueError, match=r"python -m qudi\.util\.instream\.keys new NAME"):
            StreamPublisher(ring, "tcp://0.0.0.0:*")
    assert not [t for t in threading.enumerate() if t.name.startswith("instream-")]


def test_insecure_publishing_beyond_loopback_is_warned_every_time(caplog):
    with ramp_ring() as ring, caplog.at_level(logging.WARNING):
        for _ in range(2):
            StreamPublisher(ring, "tcp://0.0.0.0:*", insecure=True).close()
    warned = [r for r in caplog.records if "WITHOUT authentication" in r.getMessage()]
    assert len(warned) == 2


# ---------------------------------------------------------------------------- streams
class Relay:
    """A TCP relay on loopback that records every byte from the publisher to a subscriber."""

    def __init__(self, target_port):
        self.seen = bytearray()
        self._target = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self._target))
            for a, b, record in ((client, upstream, False), (upstream, client, True)):
                t = threading.Thread(target=self._pipe, args=(a, b, record), daemon=True)
                t.start()
                self._threads.append(t)

    def _pipe(self, source, sink, record):
        source.settimeout(0.1)
        with source:
            while not self._stop.is_set():
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                if record:
                    self.seen += data
                try:
                    sink.sendall(data)
                except OSError:
                    return

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._server.close()


@pytest.mark.parametrize("curve", [True, False])
def test_with_keys_the_ramp_arrives_exactly_and_the_wire_shows_none_of_it(keys, curve):
    marker = 123456.0  # this sample value, as raw bytes on the wire, shows a plain stream
    with ramp_ring() as ring:
        publisher = StreamPublisher(ring, keys=keys.server() if curve else None)
        relay = Relay(int(publisher.endpoint.rsplit(":", 1)[1]))
        try:
            client = keys.client("alice") if curve else None
            with StreamSubscriber(f"tcp://127.0.0.1:{relay.port}", keys=client) as sub:
                start = sub.position
                ring.write(np.full((5000, 2), marker))
                write_ramp(ring, 20_000)
                out = np.empty((25_000, 2))
                sub.read_into(out, timeout=TIMEOUT)
                np.testing.assert_array_equal(out[5000:, 0], np.arange(start + 5000, 25_000))
                assert sub.lost == 0 and sub.gaps == () and sub.rejected == 0
        finally:
            relay.close()
            publisher.close()
    assert len(relay.seen) > 25_000 * 16  # the relay saw the stream go through
    assert (np.float64(marker).tobytes() * 4 in relay.seen) is not curve


@pytest.mark.parametrize(
    ("client", "server", "said"),
    [
        ("eve", "server", "refused this subscriber's key"),
        (None, None, "keys of the two sides do not fit"),
        ("alice", "other_server", "keys of the two sides do not fit"),
    ],
)
def test_a_wrong_key_gets_nothing_and_says_why_while_the_others_stream_on(
    keys, client, server, said
):
    with ramp_ring() as ring, StreamPublisher(ring, keys=keys.server()) as publisher:
        with StreamSubscriber(publisher.endpoint, keys=keys.client("alice")) as alice:
            wrong = keys.client(client, server) if client else None
            with pytest.raises(StreamTimeoutError, match=said):
                StreamSubscriber(publisher.endpoint, keys=wrong, timeout=2.0)
            start = alice.position
            write_ramp(ring, 10_000)
            out = np.empty((10_000 - start, 2))
            alice.read_into(out, timeout=TIMEOUT)
            np.testing.assert_array_equal(out[:, 0], np.arange(start, 10_000))
            assert alice.lost == 0
        if client == "eve":
            assert publisher.stats().refused >= 1


def test_a_key_revoked_while_streaming_gets_nothing_more_and_the_others_lose_only_gaps(keys):
    with ramp_ring() as ring, StreamPublisher(ring, keys=keys.server(), heartbeat=0.05) as pub:
        alice = StreamSubscriber(pub.endpoint, keys=keys.client("alice"), allow_overwrite=True)
        bob = StreamSubscriber(pub.endpoint, keys=keys.client("bob"), allow_overwrite=True)
        with alice, bob:
            start = max(alice.position, bob.position)
            write_ramp(ring, start + 2000 - ring.write_index)
            wait_until(lambda: bob.receiver.received >= 2000 - bob.receiver.start_index)
            (keys.allowed / "bob.key").unlink()  # revoke bob while the stream runs
            while pub.stats().revocations == 0 or bob.receiver.handshake_failure is None:
                write_ramp(ring, 50)  # the stream goes on meanwhile
                time.sleep(0.002)
                assert ring.write_index < 40_000, "the revocation took effect too late"
            bob_had, alice_had = bob.receiver.received, alice.receiver.received
            while alice.receiver.received == alice_had:  # alice is connected again
                write_ramp(ring, 50)
                time.sleep(0.002)
                assert ring.write_index < 60_000, "alice did not stream on"
            write_ramp(ring, 10_000)
            end = ring.write_index
            values = read_all(alice, end)
            assert bob.receiver.received == bob_had  # nothing since it was refused
            assert "refused this subscriber's key" in bob.receiver.handshake_failure
            assert_exact_with_gaps(values, alice.gaps, alice_start(alice, values), end)
            assert len(values) + sum(g.lost for g in alice.gaps) == end - alice_start(alice, values)
            assert pub.stats().refused >= 1 and alice.rejected == 0


def alice_start(sub, values):
    """The publisher index of the first sample ``sub`` read (its values are their indices)."""
    return int(values[0]) if len(values) else sub.position


FUZZ = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(garbage=st.lists(st.binary(min_size=1, max_size=4096), min_size=1, max_size=4))
def test_garbage_handshakes_never_stop_a_curve_publisher(tmp_path_factory, garbage):
    keys = Keys(tmp_path_factory.mktemp("keys"))
    with ramp_ring() as ring, StreamPublisher(ring, keys=keys.server()) as publisher:
        port = int(publisher.endpoint.rsplit(":", 1)[1])
        for blob in garbage:  # hostile peers: ZMTP-ish or random bytes, then gone
            with socket.create_connection(("127.0.0.1", port)) as peer:
                peer.sendall(b"\xff" + bytes(8) + b"\x7f\x03\x00CURVE" + blob)
        with StreamSubscriber(publisher.endpoint, keys=keys.client("alice")) as alice:
            start = alice.position
            write_ramp(ring, 3000)
            out = np.empty((3000 - start, 2))
            alice.read_into(out, timeout=TIMEOUT)
            np.testing.assert_array_equal(out[:, 0], np.arange(start, 3000))


# ----------------------------------------------------- a share that publishes with keys
@pytest.mark.parametrize(
    ("client", "server", "said"),
    [
        (None, None, "the streamer publishes with CURVE keys"),
        ("alice", "other_server", "but this consumer trusts"),
    ],
)
def test_a_consumer_without_the_right_keys_is_told_at_start_and_nothing_runs(
    keys, stream_name, client, server, said
):
    source = SimulatedSource(("ramp",), sample_rate=50_000.0)
    with StreamHub(source, name=stream_name, max_poll_rate=200.0) as hub:
        share = StreamShare(hub, "far away", keys=keys.server())
        wrong = keys.client(client, server) if client else None
        with SubscribedHub(share, wrong) as remote:
            reader = remote.open_reader("far away")
            with pytest.raises(StreamError, match=said):
                reader.start()
            assert not hub.running and hub.running_readers == []


def test_a_consumer_with_the_right_keys_streams_from_a_share(keys, stream_name):
    source = SimulatedSource(("ramp",), sample_rate=50_000.0)
    with StreamHub(source, name=stream_name, max_poll_rate=200.0) as hub:
        share = StreamShare(hub, "far away", keys=keys.server())
        assert share.publish_security() == f"curve {keys.server().public.decode()}"
        with SubscribedHub(share, keys.client("alice")) as remote:
            reader = remote.open_reader("far away")
            reader.start()
            data = np.empty((20_000, 1))
            reader.read_into(data, timeout=TIMEOUT)
            np.testing.assert_array_equal(np.diff(data[:, 0]), 1)
            reader.stop()
