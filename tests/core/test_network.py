"""ZeroMQ transport: real sockets on loopback, real threads.

The subscriber is checked end to end against ramps (every sample's value is its index), so
any lost, repeated or misplaced sample shows. Slow subscribers are made slow on purpose by
holding their receive thread, which makes ZeroMQ drop messages at the high-water marks.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from qudi.util.instream import (
    RingState,
    StreamFaultError,
    StreamHub,
    StreamInfo,
    StreamOverrunError,
    StreamRing,
    StreamStoppedError,
    StreamTimeoutError,
    network,
)
from qudi.util.instream.network import Gap, StreamPublisher, StreamSubscriber
from qudi.util.instream.simulated import SimulatedSource
from qudi.util.instream.transport import receiver

from .sources import HandFedSource

TIMEOUT = 10.0


def wait_until(condition, timeout=TIMEOUT, what="condition"):
    """Poll a condition that has no event to wait on (another thread's counters)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.002)


def resident_bytes() -> int:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ramp_ring(capacity=1 << 16, channels=8, timestamps=False):
    info = StreamInfo(tuple(f"ch{i}" for i in range(channels)), ("V",) * channels, 1e5)
    return StreamRing(capacity, (channels,), timestamps=timestamps, info=info)


def write_ramp(ring, first, count):
    index = np.arange(first, first + count, dtype=np.float64)
    data = np.repeat(index[:, None], ring.sample_shape[0], axis=1)
    ring.write(data, index / 1e5 if ring.has_timestamps else None)


def hold_receiver(subscriber):
    """Make the subscriber's receive thread stop at the next message until released."""
    held, release = threading.Event(), threading.Event()
    receiver = subscriber.receiver
    handle = receiver._handle

    def slow_handle(frames):
        if not release.is_set():
            held.set()
            release.wait(TIMEOUT)
        handle(frames)

    receiver._handle = slow_handle
    return held, release


@pytest.fixture
def hand_hub():
    source = HandFedSource(channels=("a", "b"), sample_rate=1000.0, buffer_size=100_000)
    with StreamHub(source, name="net_hub", shared=False, max_poll_rate=200.0) as hub:
        hub.configure(["a", "b"], "CONTINUOUS", 100_000, 1000.0)  # feeds fit in the ring
        yield hub, source


# ---------------------------------------------------------------------------- basics
def test_publisher_binds_to_loopback_with_a_real_port_by_default():
    with ramp_ring() as ring, StreamPublisher(ring) as publisher:
        match = re.fullmatch(r"tcp://127\.0\.0\.1:(\d+)", publisher.endpoint)
        assert match and int(match.group(1)) > 0


def test_ramp_arrives_end_to_end_without_loss():
    source = SimulatedSource([f"ch{i}" for i in range(4)], sample_rate=200e3)
    with StreamHub(source, name="net_ramp", shared=False, max_poll_rate=100.0) as hub:
        with StreamPublisher(hub) as publisher, StreamSubscriber(publisher.endpoint) as sub:
            assert source.is_running  # the publisher is a running consumer of the hub
            start = sub.position
            out = np.empty((20_000, 4))
            for block in range(10):
                sub.read_into(out, timeout=TIMEOUT)
                first = start + block * len(out)
                expected = np.arange(first, first + len(out), dtype=np.float64)
                np.testing.assert_array_equal(out, np.repeat(expected[:, None], 4, axis=1))
            assert sub.lost == 0 and sub.gaps == () and publisher.lost == 0
            assert sub.stats().rejected == 0
        assert not source.is_running  # the publisher was the hub's last running reader


def test_a_ring_attached_by_name_can_be_published(stream_name):
    with StreamRing(4096, (2,), shared=True, name=stream_name) as ring:
        attached = StreamRing.attach(stream_name)
        try:
            with (
                StreamPublisher(attached) as publisher,
                StreamSubscriber(publisher.endpoint) as sub,
            ):
                write_ramp(ring, 0, 3000)
                out = np.empty((3000, 2))
                sub.read_into(out, timeout=TIMEOUT)
                np.testing.assert_array_equal(out[:, 0], np.arange(3000))
        finally:
            attached.close()


def test_timestamps_arrive_aligned_with_their_samples():
    source = HandFedSource(channels=("a",), timing="TIMESTAMP")
    with StreamHub(source, name="net_ts", shared=False, max_poll_rate=200.0) as hub:
        hub.configure(["a"], "CONTINUOUS", 10_000, 1000.0)  # the feed fits in the ring
        with (
            StreamPublisher(hub) as publisher,
            StreamSubscriber(publisher.endpoint, capacity=10_000) as sub,
        ):
            assert sub.ring.has_timestamps
            source.feed(5000)
            data, stamps = np.empty(5000), np.empty(5000)
            sub.read_into(data, timeout=TIMEOUT, timestamps=stamps)
            np.testing.assert_array_equal(data, np.arange(5000))
            np.testing.assert_array_equal(stamps, data / source.sample_rate)
            newest, newest_stamps = sub.latest(10, with_timestamps=True)
            np.testing.assert_array_equal(newest[:, 0], np.arange(4990, 5000))
            np.testing.assert_array_equal(newest_stamps, newest[:, 0] / source.sample_rate)


def test_late_joiner_gets_the_description_and_the_data_from_its_start(hand_hub):
    hub, source = hand_hub
    with StreamPublisher(hub, heartbeat=0.1) as publisher:
        source.feed(3000)
        wait_until(lambda: publisher.stats().samples_sent == 3000, what="3000 samples sent")
        with StreamSubscriber(publisher.endpoint, name="late") as sub:
            assert sub.description["channel_names"] == ["a", "b"]
            assert sub.description["channel_units"] == ["V", "V"]
            assert sub.ring.info.sample_rate == 1000.0
            assert sub.ring.dtype == np.float64 and sub.ring.sample_shape == (2,)
            assert sub.position == 3000  # starts with what is published after it joined
            source.feed(100)
            out = np.empty((100, 2))
            sub.read_into(out, timeout=TIMEOUT)
            np.testing.assert_array_equal(out[:, 1], np.arange(3000, 3100))


def test_bad_settings_are_refused_before_anything_starts():
    with ramp_ring() as ring:
        with pytest.raises(ValueError, match="send_hwm"):
            StreamPublisher(ring, send_hwm=0)
        with pytest.raises(ValueError, match="chunk_samples"):
            StreamPublisher(ring, chunk_samples=0)
        with pytest.raises(TypeError, match="StreamHub or a StreamRing"):
            StreamPublisher(np.zeros(3))
    with pytest.raises(ValueError, match="capacity"):
        StreamSubscriber("tcp://127.0.0.1:1", capacity=0)


def test_subscriber_without_publisher_times_out_clearly():
    with pytest.raises(StreamTimeoutError, match="no stream description"):
        StreamSubscriber("tcp://127.0.0.1:1", timeout=0.3)


# ------------------------------------------------------------------------ slow subscribers
def publish_while_held(ring, publisher, subscriber, total, chunk=1 << 14):
    """Write a ramp of ``total`` samples while the subscriber's receiver is held."""
    held, release = hold_receiver(subscriber)
    write_ramp(ring, ring.write_index, chunk)
    assert held.wait(TIMEOUT)
    for first in range(ring.write_index, total, chunk):
        write_ramp(ring, first, chunk)
        # pace the writer to the publisher so most data is sent (and dropped by ZeroMQ)
        wait_until(lambda: publisher.stats().samples_sent + publisher.lost >= ring.write_index)
    release.set()
    return ring.write_index


def test_slow_subscriber_raises_overrun_with_exact_counts_then_resumes():
    with ramp_ring(capacity=1 << 17) as ring:
        with (
            StreamPublisher(ring, send_hwm=2, chunk_samples=4096) as publisher,
            StreamSubscriber(publisher.endpoint, receive_hwm=2, capacity=1 << 22) as sub,
        ):
            start = sub.position
            final = publish_while_held(ring, publisher, sub, total=1 << 21)
            wait_until(  # every sample arrived or is known to be lost (heartbeats tell)
                lambda: sub.stats().samples_received + sub.stats().samples_missed >= final - start
            )
            received = lost = overruns = 0
            out = np.empty((50_000, 8))
            while sub.position < final:
                position = sub.position
                n = min(len(out), final - position)
                try:
                    sub.read_into(out, n, timeout=1.0)  # all there: no read may wait
                    got = n
                except StreamOverrunError as error:
                    overruns += 1
                    got = error.delivered
                    assert error.gap_start == position + got
                    assert error.resume_position == error.gap_start + error.lost
                    assert sub.position == error.resume_position
                    lost += error.lost
                np.testing.assert_array_equal(out[:got, 3], np.arange(position, position + got))
                received += got
            assert overruns > 0, "ZeroMQ dropped nothing: the subscriber was not slow"
            assert received + lost == final - start
            assert lost == sub.lost == sum(gap.lost for gap in sub.gaps)
            for gap in sub.gaps:  # no restart: local and remote indices agree
                assert gap.local_index == gap.remote_index
            assert sub.stats().samples_received == received


def test_slow_subscriber_with_overwrite_allowed_counts_and_reads_on():
    with ramp_ring(capacity=1 << 17) as ring:
        with (
            StreamPublisher(ring, send_hwm=2, chunk_samples=4096) as publisher,
            StreamSubscriber(
                publisher.endpoint, allow_overwrite=True, receive_hwm=2, capacity=1 << 22
            ) as sub,
        ):
            start = sub.position
            final = publish_while_held(ring, publisher, sub, total=1 << 21)
            wait_until(  # every sample arrived or is known to be lost (heartbeats tell)
                lambda: sub.stats().samples_received + sub.stats().samples_missed >= final - start
            )
            values = []
            out = np.empty((1 << 16, 8))
            while sub.position < final:
                got = sub.read_available_into(out)
                assert got or sub.position == final
                values.append(out[:got, 0].copy())
            values = np.concatenate(values)
            assert sub.gaps and sub.lost > 0
            assert len(values) + sub.lost == final - start
            assert np.all(np.diff(values) >= 1)  # in order, nothing repeated
            assert len(np.unique(values)) == len(values)


def test_publisher_falling_behind_counts_its_loss_and_it_shows_downstream_as_a_gap():
    with ramp_ring(capacity=1024, channels=2) as ring:
        with StreamPublisher(ring, heartbeat=0.1) as publisher:
            with StreamSubscriber(publisher.endpoint) as sub:
                gate = threading.Event()
                drain = publisher._drain
                publisher._drain = lambda *args: gate.wait(TIMEOUT) and drain(*args)
                write_ramp(ring, 0, 5000)  # the publisher's ring holds 1024 of them
                gate.set()
                out = np.empty((1024, 2))
                with pytest.raises(StreamOverrunError) as caught:
                    sub.read_into(out, timeout=TIMEOUT)
                assert caught.value.lost == 5000 - 1024 == publisher.lost
                assert caught.value.delivered == 0
                sub.read_into(out, timeout=TIMEOUT)
                np.testing.assert_array_equal(out[:, 0], np.arange(5000 - 1024, 5000))
                assert sub.gaps == (Gap(0, 3976, 0),)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc (Linux)")
def test_publisher_memory_stays_bounded_while_a_subscriber_stalls():
    chunk = 4096  # x 8 channels x 8 bytes = 256 KiB per message
    with ramp_ring(capacity=1 << 19) as ring:  # 32 MiB
        with StreamPublisher(ring, send_hwm=4, chunk_samples=chunk) as publisher:
            context = zmq.Context()
            stalled = context.socket(zmq.SUB)  # connects, subscribes, never reads
            try:
                stalled.setsockopt(zmq.RCVHWM, 1)
                stalled.setsockopt(zmq.SUBSCRIBE, b"")
                stalled.connect(publisher.endpoint)
                assert stalled.poll(int(TIMEOUT * 1000))  # subscribed: messages reach it
                burst = ring.capacity // 2
                write_ramp(ring, 0, ring.capacity)  # touch every page of the ring first
                wait_until(lambda: publisher.stats().samples_sent + publisher.lost >= ring.capacity)
                rss_before = resident_bytes()
                total = 256 << 20  # bytes published to the stalled subscriber
                while ring.write_index * 64 < total + ring.capacity * 64:
                    write_ramp(ring, ring.write_index, burst)
                    wait_until(
                        lambda: publisher.stats().samples_sent + publisher.lost >= ring.write_index
                    )
                rss_growth = resident_bytes() - rss_before
                stats = publisher.stats()
            finally:
                stalled.close(linger=0)
                context.term()
    chunk_bytes = chunk * 8 * 8
    assert stats.messages_sent >= total // chunk_bytes // 2  # it really published
    # what zmq holds of ours zero-copy is capped; beyond it sends copy into zmq's own
    # messages, which the HWM bounds; 256 MiB went out, growth must stay far below that
    assert stats.peak_queued_bytes <= publisher._queue_limit + chunk * (64 + 8)
    assert rss_growth < 48 << 20, f"publisher grew by {rss_growth / 2**20:.0f} MiB"


# ----------------------------------------------------------------- state, faults, lifetime
def test_stop_ends_a_blocked_read_and_a_restart_resumes():
    with ramp_ring(channels=2) as ring, StreamPublisher(ring, heartbeat=0.1) as publisher:
        with StreamSubscriber(publisher.endpoint) as sub:
            outcome = {}

            def blocked_read():
                try:
                    sub.read_into(np.empty((100, 2)), timeout=TIMEOUT)
                except Exception as exc:
                    outcome["error"] = exc

            reader = threading.Thread(target=blocked_read)
            reader.start()
            write_ramp(ring, 0, 40)
            wait_until(lambda: sub.available == 40, what="40 samples received")
            started = time.monotonic()
            ring.mark_stopped()
            reader.join(TIMEOUT)
            assert time.monotonic() - started < TIMEOUT / 2
            assert isinstance(outcome.get("error"), StreamStoppedError)
            assert "40 of 100" in str(outcome["error"])
            ring.mark_running()
            wait_until(lambda: sub.ring.state is RingState.RUNNING, what="the restart arrived")
            write_ramp(ring, 40, 60)
            out = np.empty((100, 2))
            sub.read_into(out, timeout=TIMEOUT)  # the samples before the stop are kept
            np.testing.assert_array_equal(out[:, 0], np.arange(100))


def test_a_vanished_publisher_counts_as_stopped_after_the_silence_timeout():
    with ramp_ring(channels=2) as ring:
        publisher = StreamPublisher(ring, heartbeat=0.05)
        with StreamSubscriber(publisher.endpoint, silence_timeout=0.5) as sub:
            write_ramp(ring, 0, 10)
            wait_until(lambda: sub.available == 10, what="10 samples received")
            publisher.close()  # gone without a word, as if its host died
            with pytest.raises(StreamStoppedError, match="10 of 20"):
                sub.read_into(np.empty((20, 2)), timeout=TIMEOUT)
            out = np.empty((10, 2))
            sub.read_into(out, timeout=TIMEOUT)  # what arrived is still there
            np.testing.assert_array_equal(out[:, 0], np.arange(10))


def test_source_fault_reaches_the_subscribers_read(hand_hub):
    hub, source = hand_hub
    with StreamPublisher(hub) as publisher, StreamSubscriber(publisher.endpoint) as sub:
        outcome = {}

        def blocked_read():
            try:
                sub.read_into(np.empty((100, 2)), timeout=TIMEOUT)
            except Exception as exc:
                outcome["error"] = exc

        reader = threading.Thread(target=blocked_read)
        reader.start()
        source.fail_next_read(RuntimeError("card unplugged"))
        reader.join(TIMEOUT)
        error = outcome.get("error")
        assert isinstance(error, StreamFaultError), error
        assert "card unplugged" in str(error)
        # a new run (another reader starts the hub) is published again
        restarter = hub.open_reader("restarter")
        restarter.start()
        wait_until(lambda: publisher._reader.running, what="the publisher rejoined")
        # until the new run's start reaches it, the subscriber's stream stands faulted and a
        # read says so at once
        wait_until(lambda: sub.running, what="the subscriber saw the new run")
        source.feed(50)
        out = np.empty((50, 2))
        sub.read_into(out, timeout=TIMEOUT)
        assert np.all(np.diff(out[:, 0]) == 1)
        restarter.close()


def test_close_ends_blocked_reads_and_releases_threads_and_the_port():
    ring = ramp_ring(channels=2)
    publisher = StreamPublisher(ring)
    endpoint = publisher.endpoint
    sub = StreamSubscriber(endpoint)
    outcome = {}

    def blocked_read():
        try:
            sub.read_into(np.empty((10, 2)), timeout=TIMEOUT)
        except Exception as exc:
            outcome["error"] = exc

    reader = threading.Thread(target=blocked_read)
    reader.start()
    wait_until(lambda: reader.is_alive())
    sub.close()
    reader.join(TIMEOUT)
    assert isinstance(outcome.get("error"), StreamStoppedError)
    publisher.close()
    publisher.close()  # harmless twice
    ring.close()
    context = zmq.Context()  # the port is free again: the socket was really closed
    socket = context.socket(zmq.PUB)
    try:
        socket.bind(endpoint)
    finally:
        socket.close(linger=0)
        context.term()
    # the leak fixture checks that no instream-publisher/-subscriber thread is left


def test_publisher_restart_is_followed_without_a_false_gap():
    with ramp_ring(channels=2) as first_ring:
        first = StreamPublisher(first_ring, heartbeat=0.05)
        endpoint = first.endpoint
        with StreamSubscriber(endpoint, silence_timeout=30) as sub:
            write_ramp(first_ring, 0, 100)
            out = np.empty((100, 2))
            sub.read_into(out, timeout=TIMEOUT)
            first.close()
            with (
                ramp_ring(channels=2) as second_ring,
                StreamPublisher(second_ring, endpoint, heartbeat=0.05),
            ):
                wait_until(lambda: sub.stats().resyncs == 1, what="the new publisher followed")
                write_ramp(second_ring, 0, 100)  # its indices start over at 0
                sub.read_into(out, timeout=TIMEOUT)
                np.testing.assert_array_equal(out[:, 0], np.arange(100))
                assert sub.position == 200 and sub.lost == 0 and sub.gaps == ()


def test_a_new_stream_format_faults_the_subscriber_instead_of_mixing_formats():
    with ramp_ring(channels=2) as first_ring:
        first = StreamPublisher(first_ring, heartbeat=0.05)
        endpoint = first.endpoint
        with StreamSubscriber(endpoint, silence_timeout=30) as sub:
            first.close()
            with ramp_ring(channels=3) as other, StreamPublisher(other, endpoint, heartbeat=0.05):
                with pytest.raises(StreamFaultError, match="format changed"):
                    sub.read_into(np.empty((10, 2)), timeout=TIMEOUT)
                with pytest.raises(StreamStoppedError):
                    sub.read_into(np.empty((10, 2)), timeout=TIMEOUT)


def test_a_consumer_slower_than_the_local_ring_gets_the_usual_overrun():
    with ramp_ring(capacity=1 << 14, channels=2) as ring, StreamPublisher(ring) as publisher:
        with StreamSubscriber(publisher.endpoint, capacity=1000) as sub:
            write_ramp(ring, 0, 3000)
            wait_until(lambda: sub.stats().samples_received == 3000, what="3000 received")
            out = np.empty((1000, 2))
            with pytest.raises(StreamOverrunError) as caught:
                sub.read_into(out, timeout=TIMEOUT)
            assert (caught.value.lost, caught.value.resume_position) == (2000, 2000)
            sub.read_into(out, timeout=TIMEOUT)
            np.testing.assert_array_equal(out[:, 1], np.arange(2000, 3000))
            assert sub.lost == 2000 and sub.gaps == ()  # lost here, not on the way


# --------------------------------------------------------------------------- hostile input
def control_frames(session=7, generation=1, state=1, next_index=0, description=None):
    description = description or {
        "dtype": "<f8",
        "sample_shape": [2],
        "timestamps": False,
        "capacity": 1024,
        "channel_names": ["a", "b"],
        "channel_units": ["V", "V"],
        "sample_rate": 10.0,
        "sample_timing": "CONSTANT",
        "extra": {},
    }
    header = network.HEADER.pack(
        network.MAGIC, network.VERSION, network.CONTROL, state, session, generation, 1,
        next_index, 0,
    )  # fmt: skip
    return [header, json.dumps(description).encode(), b""]


def data_frames(first, count, session=7, generation=1, magic=network.MAGIC, data=None):
    header = network.HEADER.pack(
        magic, network.VERSION, network.DATA, 0, session, generation, 1, first, count
    )
    if data is None:
        index = np.arange(first, first + count, dtype=np.float64)
        data = np.repeat(index[:, None], 2, axis=1).tobytes()
    return [header, data]


@pytest.fixture
def hand_made_stream():
    """A raw PUB socket the test writes messages into by hand, and a subscriber on it."""
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    made = {}
    try:
        port = socket.bind_to_random_port("tcp://127.0.0.1")
        maker = threading.Thread(
            target=lambda: made.update(sub=StreamSubscriber(f"tcp://127.0.0.1:{port}"))
        )
        maker.start()
        while maker.is_alive():  # the subscriber's constructor waits for a description
            socket.send_multipart(control_frames())
            maker.join(0.02)
        yield socket, made["sub"]
    finally:
        if "sub" in made:
            made["sub"].close()
        socket.close(linger=0)
        context.term()


def test_malformed_messages_are_rejected_and_logged_without_harm(hand_made_stream, caplog):
    socket, sub = hand_made_stream
    with caplog.at_level(logging.WARNING, logger=receiver.__name__):
        bad = [
            data_frames(0, 10, magic=b"XXXX"),  # wrong magic
            [b"QIZM\x01"],  # truncated header
            data_frames(0, 10, data=b"\0" * 100),  # 100 bytes for 10 samples
            data_frames(0, 10)[:1],  # data frame missing
            data_frames(0, 10) + [b"extra"],  # timestamps where the stream has none
            data_frames(0, 0, data=b""),  # no samples
            [data_frames(0, 1)[0][:4] + b"\x09" + data_frames(0, 1)[0][5:], b""],  # version 9
            control_frames(session=8, description={"dtype": "|O"}),  # objects: never
            [control_frames()[0], b"{not json", b""],  # on the followed stream
        ]
        for frames in bad:
            socket.send_multipart(frames)
        socket.send_multipart(data_frames(0, 10))  # a good one after the garbage
        out = np.empty((10, 2))
        sub.read_into(out, timeout=TIMEOUT)
    np.testing.assert_array_equal(out[:, 0], np.arange(10))
    assert sub.rejected == len(bad)
    assert sub.lost == 0 and sub.gaps == () and sub.available == 0
    rejected_logs = [r for r in caplog.records if "rejected a message" in r.message]
    assert len(rejected_logs) == len(bad)
    assert any("wrong magic" in r.message for r in rejected_logs)
    assert any("version 9" in r.message for r in rejected_logs)


def test_a_gap_arriving_during_a_blocked_read_ends_it_with_what_came_before(hand_made_stream):
    socket, sub = hand_made_stream
    socket.send_multipart(data_frames(0, 10))
    wait_until(lambda: sub.available == 10, what="10 samples received")
    outcome = {}
    out = np.full((15, 2), -1.0)

    def blocked_read():
        try:
            sub.read_into(out, timeout=TIMEOUT)
        except Exception as exc:
            outcome["error"] = exc

    reader = threading.Thread(target=blocked_read)
    reader.start()
    started = time.monotonic()
    # a heartbeat says the publisher is at 20: samples 10 to 19 were sent and never came
    socket.send_multipart(control_frames(next_index=20))
    reader.join(TIMEOUT)
    assert time.monotonic() - started < TIMEOUT / 2  # woken by the gap, not by the timeout
    error = outcome.get("error")
    assert isinstance(error, StreamOverrunError), error
    assert (error.delivered, error.lost, error.gap_start, error.resume_position) == (10, 10, 10, 20)
    np.testing.assert_array_equal(out[:10, 0], np.arange(10))
    assert sub.gaps == (Gap(10, 10, 10),)
    socket.send_multipart(data_frames(20, 10))
    sub.read_into(out, 10, timeout=TIMEOUT)
    np.testing.assert_array_equal(out[:10, 0], np.arange(20, 30))


TRANSPORT_FILES = sorted(Path(receiver.__file__).parent.glob("*.py")) + [Path(network.__file__)]


@pytest.mark.parametrize("path", TRANSPORT_FILES, ids=lambda path: path.name)
def test_the_transport_never_unpickles_or_evaluates(path):
    """No name in the transports' code (docstrings aside) can deserialise objects or run code."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.name for alias in node.names)
            names.add(getattr(node, "module", None) or "")
    forbidden = {"pickle", "cPickle", "dill", "marshal", "shelve", "eval", "exec", "compile"}
    forbidden |= {"recv_pyobj", "send_pyobj", "recv_serialized", "frombuffer_object"}
    assert not names & forbidden
    json_loads = [
        node for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "loads"
    ]
    assert all(node.value.id == "json" for node in json_loads)
    if path.name == "wire.py":  # received descriptions are read by the one JSON codec
        assert "decode_description" in names
