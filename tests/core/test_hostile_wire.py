"""The ZeroMQ wire against hostile peers: a raw PUB socket (or a child process) on loopback.

Each test reproduces a finding of ``HOSTILE_FINDINGS.md`` (D3, D4, D6, D10 "Wire") with a real
subscriber: a forged index must not kill the stream, two sessions on one endpoint must lose
nothing uncounted, peers must not choose the memory of either side, and a flood of bad messages
must not flood the log.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time

import numpy as np
import pytest
import zmq

from qudi.util.instream import StreamOverrunError, StreamRing, StreamTimeoutError
from qudi.util.instream.errors import StreamCapacityError
from qudi.util.instream.network import (
    CONTROL,
    DATA,
    HEADER,
    MAGIC,
    VERSION,
    Gap,
    StreamPublisher,
    StreamSubscriber,
)

TIMEOUT = 10.0
SPAWN = multiprocessing.get_context("spawn")
CLOSED = 3
DESCRIPTION = {
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
EIGHT_CHANNELS = {
    **DESCRIPTION,
    "sample_shape": [8],
    "channel_names": [f"ch{i}" for i in range(8)],
    "channel_units": ["V"] * 8,
}
linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")


def wait_until(condition, timeout=TIMEOUT, what="condition"):
    """Poll a condition that has no event to wait on (another thread's counters)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.002)


def control(session=7, generation=1, state=1, next_index=0, description=None, raw=None):
    header = HEADER.pack(MAGIC, VERSION, CONTROL, state, session, generation, 1, next_index, 0)
    body = raw if raw is not None else json.dumps(description or DESCRIPTION).encode()
    return [header, body, b""]


def data(first, count, session=7, generation=1, channels=2):
    header = HEADER.pack(MAGIC, VERSION, DATA, 0, session, generation, 1, first, count)
    index = np.arange(first, first + count, dtype=np.float64)
    return [header, np.repeat(index[:, None], channels, axis=1).tobytes()]


def send_until(socket, frames, condition, what, timeout=TIMEOUT):
    """Send ``frames`` again and again until ``condition()`` (a peer that joins late, or a
    subscriber that waits for the followed stream to go quiet, gets one of them)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        socket.send_multipart(frames)
        time.sleep(0.02)


def received(sub) -> int:
    return sub.stats().messages_received


@pytest.fixture
def raw_stream():
    """A factory: a raw PUB socket (no send limit) and a subscriber of session 7 on it."""
    context = zmq.Context()
    made = []

    def make(description=None, **options):
        socket = context.socket(zmq.PUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDHWM, 0)
        port = socket.bind_to_random_port("tcp://127.0.0.1")
        made.append(socket)
        result = {}

        def subscribe():
            try:
                result["sub"] = StreamSubscriber(f"tcp://127.0.0.1:{port}", **options)
            except Exception as exc:
                result["error"] = exc

        maker = threading.Thread(target=subscribe)
        maker.start()
        while maker.is_alive():  # the subscriber's constructor waits for a description
            socket.send_multipart(control(description=description))
            maker.join(0.02)
        if "error" in result:
            raise result["error"]
        made.append(result["sub"])
        return socket, result["sub"]

    yield make
    for thing in reversed(made):
        thing.close()
    context.term()


def read(sub, n):
    out = np.empty((n, 2))
    sub.read_into(out, timeout=TIMEOUT)
    return out[:, 0]


# ------------------------------------------------------------------------ D3: forged indices
def test_a_data_index_near_2_64_is_rejected_and_the_stream_goes_on(raw_stream):
    socket, sub = raw_stream()
    socket.send_multipart(data(0, 10))
    socket.send_multipart(data(2**64 - 10**6, 10))  # with the followed stream's own session
    socket.send_multipart(data(10, 10))
    np.testing.assert_array_equal(read(sub, 20), np.arange(20))
    assert sub.lost == 0 and sub.gaps == () and sub.rejected == 1


def test_a_forged_jump_ahead_is_undone_by_the_publishers_next_heartbeat(raw_stream):
    socket, sub = raw_stream()
    socket.send_multipart(data(0, 10))
    np.testing.assert_array_equal(read(sub, 10), np.arange(10))
    socket.send_multipart(data(10**9, 10))  # forged: as plausible as a real jump, so believed
    socket.send_multipart(data(10, 10))  # the publisher's own: now behind what arrived
    socket.send_multipart(control(next_index=20))  # its heartbeat: behind too, so a resync
    socket.send_multipart(data(20, 10))
    with pytest.raises(StreamOverrunError) as caught:  # the forged gap, counted, once
        read(sub, 10)
    assert caught.value.lost == 10**9 - 10
    np.testing.assert_array_equal(read(sub, 10), np.arange(10**9, 10**9 + 10))  # forged data
    np.testing.assert_array_equal(read(sub, 10), np.arange(20, 30))  # the stream goes on
    assert sub.stats().resyncs == 1 and sub.rejected == 1  # samples 10..19 "arrived twice"


@pytest.mark.parametrize("next_index", [2**64 - 5, 2**62 + 5, 2**62 - 5])
def test_a_control_index_that_overflows_after_a_resync_is_rejected(raw_stream, next_index):
    socket, sub = raw_stream()
    socket.send_multipart(data(0, 100))
    wait_until(lambda: sub.available == 100, what="100 samples")
    socket.send_multipart(control(state=CLOSED, next_index=100, raw=b"{}"))  # session 7 ends
    socket.send_multipart(control(session=8))  # a new publisher: local index 100 is its 0
    wait_until(lambda: sub.stats().resyncs == 1, what="session 8 followed")
    socket.send_multipart(control(session=8, next_index=next_index))  # 100 + it passes 2**62
    socket.send_multipart(data(0, 10, session=8))
    values = read(sub, 110)
    np.testing.assert_array_equal(values, np.r_[np.arange(100), np.arange(10)])
    assert sub.rejected == 1 and sub.lost == 0 and sub.gaps == ()


# ---------------------------------------------------------------- D6: two sessions, one socket
def test_a_second_session_on_the_endpoint_takes_nothing_from_the_followed_one(raw_stream):
    """Reproduces finding D6: 200 samples of the followed session vanished with lost == 0."""
    socket, sub = raw_stream()
    socket.send_multipart(data(0, 100))
    socket.send_multipart(control(session=8, next_index=0))  # another publisher's heartbeat
    socket.send_multipart(data(0, 50, session=8))
    socket.send_multipart(data(100, 200))  # the followed session goes on meanwhile
    socket.send_multipart(control(next_index=300))
    socket.send_multipart(data(300, 10))
    np.testing.assert_array_equal(read(sub, 310), np.arange(310))
    assert sub.lost == 0 and sub.gaps == ()
    assert sub.rejected == 2  # session 8's two messages, counted


def test_a_session_followed_again_counts_what_it_sent_meanwhile_as_a_gap(raw_stream):
    socket, sub = raw_stream(allow_overwrite=True)
    socket.send_multipart(data(0, 100))
    wait_until(lambda: sub.available == 100, what="100 samples")
    # session 7 goes quiet; session 8 is followed once 7 has been silent long enough
    send_until(socket, control(session=8), lambda: sub.stats().resyncs == 1, "session 8 followed")
    socket.send_multipart(data(0, 50, session=8))
    wait_until(lambda: sub.available == 150, what="150 samples")
    # session 8 goes quiet in turn; 7 comes back, 200 samples further on
    send_until(socket, control(next_index=300), lambda: len(sub.gaps) == 1, "session 7 again")
    socket.send_multipart(data(300, 10))
    out = np.empty((160, 2))
    assert sub.read_into(out, timeout=TIMEOUT) == 160
    expected = np.r_[np.arange(100), np.arange(50), 300 + np.arange(10)]
    np.testing.assert_array_equal(out[:, 0], expected)
    assert sub.gaps == (Gap(150, 200, 100),)
    assert sub.lost == 200  # counted, not vanished


# ---------------------------------------------------------------------- D10: the wire's words
def test_twenty_thousand_bad_messages_give_a_few_log_records_and_no_tracebacks(raw_stream, caplog):
    socket, sub = raw_stream(receive_hwm=100_000)
    too_deep = b"[" * 1000 + b"]" * 1000  # JSON nested beyond what the parser takes
    before = received(sub)
    with caplog.at_level(logging.INFO, logger="qudi.util.instream"):
        for _ in range(20_000):
            socket.send_multipart(control(raw=too_deep))
        wait_until(lambda: received(sub) >= before + 20_000, timeout=60, what="20 000 messages")
        socket.send_multipart(data(0, 10))
        np.testing.assert_array_equal(read(sub, 10), np.arange(10))  # the stream is intact
    records = [r for r in caplog.records if r.name.startswith("qudi.util.instream")]
    assert sub.rejected == 20_000
    assert len(records) <= 40, f"{len(records)} log records for 20 000 bad messages"
    assert [r for r in records if r.exc_info] == []
    assert "nests deeper than it can be read" in records[0].getMessage()


def test_counting_what_is_available_does_not_slow_down_with_many_gaps(raw_stream):
    socket, sub = raw_stream(receive_hwm=100_000, capacity=200_000)
    gaps = 50_000
    before = received(sub)
    for first in range(0, 2 * gaps, 2):  # one sample of two arrives: 50 000 gaps
        socket.send_multipart(data(first, 1))
    wait_until(lambda: received(sub) >= before + gaps, timeout=60, what="the messages")
    assert sub.stats().gaps == gaps - 1 and sub.available == gaps
    started = time.perf_counter()
    for _ in range(200):
        assert sub.available == gaps
    per_call = (time.perf_counter() - started) / 200
    assert per_call < 0.5e-3, f"available took {per_call * 1e3:.2f} ms with {gaps} gaps"


@pytest.mark.parametrize(
    ("description", "said"),
    [
        (b"null", "None, not an object"),
        (b"[]", "[], not an object"),
        (b"{not json", "not JSON"),
        (b'"a stream"', "'a stream', not an object"),
    ],
)
def test_a_subscriber_that_got_no_usable_description_says_what_it_got(description, said):
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        port = socket.bind_to_random_port("tcp://127.0.0.1")
        outcome = {}

        def subscribe():
            try:
                StreamSubscriber(f"tcp://127.0.0.1:{port}", timeout=1.0).close()
            except Exception as exc:
                outcome["error"] = exc

        maker = threading.Thread(target=subscribe)
        maker.start()
        while maker.is_alive():
            socket.send_multipart(control(raw=description))
            maker.join(0.02)
    finally:
        socket.close(linger=0)
        context.term()
    error = outcome.get("error")
    assert isinstance(error, StreamTimeoutError), error
    assert said in str(error) and "messages arrived" in str(error)


# ------------------------------------------------------------- D4: memory the peers choose
def _rss_peak_reset() -> int:
    """Reset this process's peak resident memory to now (Linux); returns it, in bytes."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _rss_peak()


def _rss_peak() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _subscribe_giant_topics(endpoint: str, sockets: int, size: int, report, stop) -> None:
    """A child process: SUB sockets that each subscribe a ``size``-byte topic; reports how
    many the publisher disconnected."""
    context = zmq.Context()
    made, disconnected = [], 0
    for _ in range(sockets):
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RECONNECT_IVL, -1)  # a refused peer stays refused
        monitor = sub.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sub.connect(endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, os.urandom(size))  # no prefix shared with the others
        if monitor.poll(3000):
            disconnected += 1
        made.append((sub, monitor))
    report.put(disconnected)
    stop.wait(60)
    for sub, monitor in made:
        sub.disable_monitor()
        monitor.close(linger=0)
        sub.close(linger=0)
    context.term()


@linux_only
def test_giant_subscriptions_are_refused_and_the_publishers_memory_stays_flat(spawn_process):
    report, stop = SPAWN.Queue(), SPAWN.Event()
    sockets, size = 8, 2 << 20  # 16 MiB of subscriptions: ~500 MiB in zmq's trie if taken
    with StreamRing(1 << 14, 2) as ring, StreamPublisher(ring, heartbeat=0.05) as publisher:
        before = _rss_peak_reset()
        spawn_process(_subscribe_giant_topics, publisher.endpoint, sockets, size, report, stop)
        try:
            disconnected = report.get(timeout=60)
            growth = _rss_peak() - before
            with StreamSubscriber(publisher.endpoint) as sub:  # and it still publishes
                ring.write(np.arange(20.0).reshape(10, 2))
                assert sub.read_into(np.empty((10, 2)), timeout=TIMEOUT) == 10
        finally:
            stop.set()
    assert disconnected == sockets
    assert growth < 32 << 20, f"the publisher grew by {growth / 2**20:.0f} MiB"


def _publish_a_giant_frame(port, go, stop, samples: int) -> None:
    """A child process: a raw PUB of session 7 that sends, once told, one data frame of
    ``samples`` samples (more than a subscriber takes), then goes on with a normal stream."""
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 0)
    port.value = socket.bind_to_random_port("tcp://127.0.0.1")
    while not go.wait(0.02):
        socket.send_multipart(control())
    socket.send_multipart(data(0, 10))
    socket.send_multipart(data(10, samples))
    after = 10 + samples
    while not stop.wait(0.02):
        socket.send_multipart(control(next_index=after))
        socket.send_multipart(data(after, 10))
    socket.close(linger=0)
    context.term()


@linux_only
def test_a_giant_data_frame_is_refused_and_the_subscribers_memory_stays_flat(spawn_process):
    port, go, stop = SPAWN.Value("i", 0), SPAWN.Event(), SPAWN.Event()
    samples = (96 << 20) // 16  # a 96 MiB frame: more than the default 64 MiB a frame may have
    spawn_process(_publish_a_giant_frame, port, go, stop, samples)
    wait_until(lambda: port.value != 0, timeout=60, what="the child's port")
    try:
        # the refused frame ends the connection: the subscriber connects again after 1 s
        with StreamSubscriber(f"tcp://127.0.0.1:{port.value}", silence_timeout=1.0) as sub:
            before = _rss_peak_reset()
            go.set()
            np.testing.assert_array_equal(read(sub, 10), np.arange(10))
            # silence, then a new connection: the next heartbeat tells what never arrived
            wait_until(lambda: sub.stats().gaps == 1, what="the stream back")
            with pytest.raises(StreamOverrunError) as caught:  # the frame's samples: a gap
                read(sub, 10)
            assert caught.value.lost == samples
            # the samples after the gap arrive (on a loaded machine the silence may have marked
            # the stream stopped until they do, and a read then would end at once)
            wait_until(lambda: sub.available >= 10, what="the samples after the gap")
            np.testing.assert_array_equal(read(sub, 10), 10 + samples + np.arange(10))
            growth = _rss_peak() - before
    finally:
        stop.set()
    assert growth < 32 << 20, f"the subscriber grew by {growth / 2**20:.0f} MiB"


def test_a_local_ring_is_sized_from_the_remote_capacity_only_up_to_a_local_cap(raw_stream, caplog):
    huge = {**DESCRIPTION, "sample_shape": [1], "channel_names": [], "channel_units": []}
    huge["capacity"] = 2**31  # 16 GiB of float64 asked for
    with caplog.at_level(logging.WARNING, logger="qudi.util.instream"):
        _, sub = raw_stream(description=huge)
    assert sub.ring.capacity * 8 <= 512 << 20
    assert any("max_ring_bytes" in r.getMessage() for r in caplog.records)
    _, small = raw_stream(description=huge, max_ring_bytes=1 << 20)
    assert small.ring.capacity == (1 << 20) // 8


def test_a_capacity_beyond_the_local_cap_is_refused_with_what_to_do(raw_stream):
    huge = EIGHT_CHANNELS
    with pytest.raises(StreamCapacityError, match="max_ring_bytes") as caught:
        raw_stream(description=huge, capacity=2**24)  # 1 GiB of 8 float64 channels
    assert "ask for at most 8 388 608 samples" in str(caught.value)


def test_a_message_of_a_hundred_thousand_frames_is_rejected_without_keeping_them(raw_stream):
    socket, sub = raw_stream()
    with open("/proc/self/statm") as statm:
        before = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    socket.send_multipart([control()[0]] + [b""] * 100_000)  # "huge frame counts"
    wait_until(lambda: sub.rejected == 1, what="the message rejected")
    assert "message of 100001 frames, at most 3 are read" in sub.receiver.last_rejection
    with open("/proc/self/statm") as statm:
        grown = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") - before
    # ZeroMQ queues a message's frames (64 bytes each) on both ends of this one process; the
    # receiver keeps three of them, never a list of 100 000 Python frames (about 30 MB more)
    assert grown < 24 << 20, f"grew by {grown / 2**20:.0f} MiB"
    send_until(socket, data(0, 10), lambda: sub.available >= 10, "the stream goes on")
    np.testing.assert_array_equal(read(sub, 10), np.arange(10))
