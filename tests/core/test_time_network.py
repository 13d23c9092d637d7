"""Time over ZeroMQ: the declared sample clock travels with the description, and the
publisher's run start and time-table rows with TIME messages; the subscriber maps them onto
its host's clock by an offset it measures with round-trip probes (one host here: the true
offset is 0, so every mapped time can be checked against the truth)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zmq

from qudi.util.instream.aligned_reader import AlignedReader
from qudi.util.instream.alignment import FITTED
from qudi.util.instream.hub import StreamHub
from qudi.util.instream.network import (
    CONTROL,
    DATA,
    HEADER,
    MAGIC,
    VERSION,
    StreamPublisher,
    StreamSubscriber,
)
from qudi.util.instream.simulated import SimulatedSource
from qudi.util.instream.simulated_clock import SimulatedClock, shared_clock
from qudi.util.instream.time_table import ROW_DTYPE
from qudi.util.instream.timebase import RunStart, SampleClock
from qudi.util.instream.transport import remote_time
from qudi.util.instream.transport.wire import SENDS_TIME, pack_time

TIMEOUT = 10.0


def wait_until(condition, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.005)


def test_the_sample_clock_crosses_zeromq(stream_name):
    lab = shared_clock(f"{stream_name}-net", tick_rate=1000.0)
    source = SimulatedSource(["ramp"], sample_rate=1000.0, clock=SimulatedClock(shared=lab))
    with StreamHub(source, name=stream_name, shared=False) as hub:
        assert hub.ring.info.sample_clock == SampleClock("shared", lab.name, 1000.0)
        with StreamPublisher(hub) as publisher, StreamSubscriber(publisher.endpoint) as sub:
            sub.read_into(np.empty((100, 1)), timeout=10.0)
            assert sub.ring.info.sample_clock == hub.ring.info.sample_clock
            # the start tick is the publisher's (its run record crosses too)
            wait_until(lambda: sub.clock.refresh() is not None, "the publisher's rows")
            assert sub.clock.run.start_tick == hub.ring.time_table.run().start_tick is not None


def test_a_subscriber_gets_the_publishers_run_and_rows_on_its_clock(stream_name):
    clock = SimulatedClock(start_offset=0.02, drift_ppm=100.0)
    source = SimulatedSource(["ramp"], sample_rate=2000.0, clock=clock)
    with StreamHub(source, name=stream_name, shared=False, max_poll_rate=100.0) as hub:
        here = hub.open_reader("here")
        here.start()
        with StreamPublisher(hub) as publisher, StreamSubscriber(publisher.endpoint) as sub:
            out = np.empty((2000, 1))
            for _ in range(2):  # a second of samples
                sub.read_into(out, timeout=TIMEOUT)
            receiver = sub.receiver
            assert receiver.remote_time.active and receiver.rejected == 0
            offset, bound = receiver.remote_time.offset
            assert abs(offset) <= bound < 0.01  # one host: the true offset is 0
            wait_until(lambda: len(sub.clock.refresh() and sub.clock.rows) >= 20, "20 rows")
            theirs, _ = hub.ring.time_table.rows()
            mine = sub.clock.rows
            run, their_run = sub.clock.run, hub.ring.time_table.run()
            # the publisher's rows, not arrival times here: same indices (the subscriber's
            # indices are the publisher's), host times within the run's bound
            common, at_mine, at_theirs = np.intersect1d(
                mine.index, theirs.index, return_indices=True
            )
            assert len(common) >= 20
            error = np.abs(mine.host[at_mine] - theirs.host[at_theirs])
            assert error.max() <= run.host_uncertainty
            np.testing.assert_array_equal(mine.device[at_mine], theirs.device[at_theirs])
            assert run.first_index == their_run.first_index and run.utc_start == their_run.utc_start
            assert abs(run.monotonic_start - their_run.monotonic_start) <= run.host_uncertainty
            # every sample's time, against the simulated card's truth
            ramp = out[:, 0]  # the publisher's index of each sample
            local = np.arange(sub.position - len(out), sub.position)
            truth = clock.true_time(ramp - their_run.first_index)
            got = sub.clock.time_of(local)
            assert np.all(np.abs(got - truth) <= sub.clock.uncertainty_of(local))
            assert float(sub.clock.uncertainty_of(local[-1])) < 5e-3
        here.close()


def test_a_remote_stream_lines_up_with_a_local_one(stream_name):
    """The wavemeter is published (another host, as far as the reader knows), the counter is
    local: the AlignedReader fits both against this host's clock, the remote one through the
    publisher's rows and the measured offset, and the error stays inside the uncertainty."""
    fast, slow = 1000.0, 10.0
    p_clock = SimulatedClock()
    s_clock = SimulatedClock(start_offset=0.05, drift_ppm=100.0)
    counter = SimulatedSource(["ramp"], sample_rate=fast, clock=p_clock)
    wavemeter = SimulatedSource(["ramp"], sample_rate=slow, clock=s_clock)
    with (
        StreamHub(counter, name=f"{stream_name}_p", max_poll_rate=100.0) as p_hub,
        StreamHub(wavemeter, name=f"{stream_name}_s", shared=False, max_poll_rate=100.0) as s_hub,
        StreamPublisher(s_hub) as publisher,
        StreamSubscriber(publisher.endpoint, allow_overwrite=True) as remote,
    ):
        primary = p_hub.open_reader("aligned")
        primary.start()
        reader = AlignedReader(primary, {"wavemeter": remote}, missing="wait")
        covered = chunks = 0
        for _ in range(12):
            chunk = reader.read(250, timeout=TIMEOUT)
            got = chunk.secondary["wavemeter"][:, 0]  # the wavemeter's publisher index
            ok = np.isfinite(got)
            if ok.any():
                truth = (p_clock.true_time(chunk.index[ok]) - s_clock.true_time(0)) * slow
                error = np.abs(got[ok] - truth * s_clock.speed).max() / slow
                covered += error <= chunk.uncertainty["wavemeter"]
                chunks += 1
        assert remote.receiver.remote_time.active
        assert chunk.method["wavemeter"] == FITTED and chunks >= 10
        assert covered >= 0.8 * chunks  # about 95 % honest; a busy machine may cost a chunk
        assert chunk.uncertainty["wavemeter"] >= remote.ring.time_table.run().host_uncertainty > 0
        primary.close()


DESCRIPTION = {
    "dtype": "<f8", "sample_shape": [1], "timestamps": False, "capacity": 1024,
    "channel_names": ["a"], "channel_units": ["V"], "sample_rate": 10.0,
    "sample_timing": "CONSTANT", "extra": {},
}  # fmt: skip


class RawPublisher:
    """A PUB socket speaking the wire by hand: an older publisher, or one whose clock service
    does not answer."""

    def __init__(self, announce_time: bool, time_port: int = 0):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.announce, self.time_port = announce_time, time_port
        self.next = 0

    def heartbeat(self):
        count = SENDS_TIME if self.announce else 0
        head = HEADER.pack(MAGIC, VERSION, CONTROL, 1, 5, 1, 1, self.next, count)
        self.socket.send_multipart([head, json.dumps(DESCRIPTION).encode(), b""])

    def samples(self, count=5):
        head = HEADER.pack(MAGIC, VERSION, DATA, 0, 5, 1, 1, self.next, count)
        data = np.arange(self.next, self.next + count, dtype=np.float64)
        self.socket.send_multipart([head, data.tobytes()])
        self.next += count
        if self.announce:
            rows = np.array([(self.next, time.monotonic(), (self.next - 1) / 10)], ROW_DTYPE)
            run = RunStart(1, 0, time.monotonic(), time.time())
            self.socket.send_multipart(pack_time(5, 1, run, self.time_port, rows))

    def close(self):
        self.socket.close(linger=0)
        self.context.term()


def subscribe_to(raw: RawPublisher) -> StreamSubscriber:
    import threading

    made = {}
    maker = threading.Thread(
        target=lambda: made.setdefault(
            "sub", StreamSubscriber(f"tcp://127.0.0.1:{raw.port}", allow_overwrite=True)
        )
    )
    maker.start()
    while maker.is_alive():
        raw.heartbeat()
        maker.join(0.02)
    return made["sub"]


def test_a_publisher_that_sends_no_time_gets_arrival_rows():
    raw = RawPublisher(announce_time=False)
    sub = subscribe_to(raw)
    try:
        for _ in range(10):
            raw.heartbeat()
            raw.samples()
        wait_until(lambda: sub.receiver.received >= 50, "the samples")
        assert not sub.receiver.remote_time.active and sub.receiver.rejected == 0
        wait_until(lambda: len(sub.ring.time_table.rows()[0]) >= 10, "rows of arrival")
    finally:
        sub.close()
        raw.close()


def test_a_clock_service_that_never_answers_falls_back_to_arrival_rows(monkeypatch):
    monkeypatch.setattr(remote_time, "SETTLE_TIMEOUT_S", 0.3)
    with zmq.Context() as context, context.socket(zmq.PULL) as deaf:  # takes, never answers
        deaf.setsockopt(zmq.LINGER, 0)
        raw = RawPublisher(
            announce_time=True, time_port=deaf.bind_to_random_port("tcp://127.0.0.1")
        )
        sub = subscribe_to(raw)
        try:
            raw.heartbeat()
            raw.samples()
            wait_until(lambda: sub.receiver.remote_time.active, "the announcement")
            assert len(sub.ring.time_table.rows()[0]) == 0  # rows wait for the offset
            time.sleep(0.35)  # the settle timeout itself is what is tested
            deadline = time.monotonic() + TIMEOUT
            while sub.receiver.remote_time.active and time.monotonic() < deadline:
                raw.heartbeat()
                raw.samples()
                time.sleep(0.02)
            assert not sub.receiver.remote_time.active
            raw.samples()
            wait_until(lambda: len(sub.ring.time_table.rows()[0]) >= 1, "rows of arrival")
        finally:
            sub.close()
            raw.close()


def test_the_clock_service_of_a_curve_publisher_answers_allowed_clients_only(stream_name, tmp_path):
    import shutil

    from qudi.util.instream.keys import new_keys
    from qudi.util.instream.network import ClientKeys, ServerKeys

    (tmp_path / "allowed").mkdir()
    new_keys("server", tmp_path)
    public, _ = new_keys("sub1", tmp_path)
    shutil.copy(public, tmp_path / "allowed")
    keys = ServerKeys.from_files(tmp_path / "server.key_secret", tmp_path / "allowed")
    client = ClientKeys.from_files(tmp_path / "sub1.key_secret", tmp_path / "server.key")
    source = SimulatedSource(["ramp"], sample_rate=1000.0, clock=SimulatedClock())
    with (
        StreamHub(source, name=stream_name, shared=False) as hub,
        StreamPublisher(hub, "tcp://127.0.0.1:*", keys=keys) as publisher,
        StreamSubscriber(publisher.endpoint, keys=client) as sub,
    ):
        sub.read_into(np.empty((100, 1)), timeout=TIMEOUT)
        wait_until(lambda: sub.receiver.remote_time.offset is not None, "a probe's answer")
        offset, bound = sub.receiver.remote_time.offset
        assert abs(offset) <= bound
        # a plain client of the CURVE clock service gets no answer (its handshake fails)
        with zmq.Context() as context, context.socket(zmq.DEALER) as plain:
            plain.setsockopt(zmq.LINGER, 0)
            plain.connect(f"tcp://127.0.0.1:{publisher.clock_port}")
            plain.send(b"QIZT" + bytes(8), zmq.NOBLOCK)
            assert not plain.poll(300)


def test_a_ring_without_time_rows_is_timed_as_it_arrives(stream_name):
    """A publisher of a ring its own writer fills without time rows announces no TIME: the
    subscriber times the samples as they arrive, as before."""
    from qudi.util.instream import StreamInfo, StreamRing

    ring = StreamRing(4096, (1,), info=StreamInfo(("a",), ("V",), 1000.0))
    try:
        ring.mark_running()
        with StreamPublisher(ring) as publisher, StreamSubscriber(publisher.endpoint) as sub:
            out = np.empty((100, 1))
            for k in range(5):
                ring.write(np.arange(k * 100, (k + 1) * 100, dtype=float)[:, None])
                sub.read_into(out, timeout=TIMEOUT)
            assert not sub.receiver.remote_time.active and sub.receiver.rejected == 0
            wait_until(lambda: sub.clock.refresh() is not None, "rows of arrival")
    finally:
        ring.close()


@pytest.mark.parametrize("bad", [-1, 65536, 1.5, True, "5556"])
def test_a_bad_clock_port_is_refused_naming_it(stream_name, bad):
    source = SimulatedSource(["ramp"], sample_rate=1000.0)
    with StreamHub(source, name=stream_name, shared=False) as hub:
        with pytest.raises(ValueError, match="clock_port must be a TCP port"):
            StreamPublisher(hub, clock_port=bad)
        assert not hub.ring.closed  # nothing was opened: the leak check finds no thread


def test_a_fixed_clock_port_or_none(stream_name):
    with zmq.Context() as context, context.socket(zmq.REP) as probe:
        port = probe.bind_to_random_port("tcp://127.0.0.1")
        probe.unbind(probe.getsockopt_string(zmq.LAST_ENDPOINT))  # a port that is free now
    source = SimulatedSource(["ramp"], sample_rate=1000.0, clock=SimulatedClock())
    with StreamHub(source, name=stream_name, shared=False) as hub:
        with StreamPublisher(hub, clock_port=port) as publisher:
            assert publisher.clock_port == port
            with StreamSubscriber(publisher.endpoint) as sub:
                sub.read_into(np.empty((100, 1)), timeout=TIMEOUT)
                wait_until(lambda: sub.receiver.remote_time.offset is not None, "an answer")
        with StreamPublisher(hub, clock_port=None) as publisher:
            assert publisher.clock_port == 0
            with StreamSubscriber(publisher.endpoint) as sub:
                sub.read_into(np.empty((100, 1)), timeout=TIMEOUT)
                assert not sub.receiver.remote_time.active  # timed as the samples arrive
                wait_until(lambda: sub.clock.refresh() is not None, "rows of arrival")
