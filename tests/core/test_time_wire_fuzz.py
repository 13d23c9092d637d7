"""Fuzzing the TIME messages of the ZeroMQ wire (a publisher's run start and time-table rows).

* :func:`read_time` on random and mutated frames: a :class:`WireError` or a message whose rows
  keep every promise (in order, after the run's first index, finite host times); never
  another exception.
* Live: a subscriber of a raw PUB whose genuine publisher announces TIME messages and runs a
  real clock service gets hostile TIME messages of its own session between the genuine
  ones: each is rejected and counted, the samples arrive exactly, and the ring's time table
  holds the genuine rows only, on this host's clock within the reported bound.
* The clock service answers no hostile probe and goes on; the offset estimate's bound holds
  the true offset for any probe delays (asymmetric too) and any drift within the assumed one.
"""

from __future__ import annotations

import json
import struct
import threading
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qudi.util.instream.network import CONTROL, DATA, HEADER, MAGIC, VERSION, StreamSubscriber
from qudi.util.instream.time_table import ROW_DTYPE
from qudi.util.instream.timebase import RunStart
from qudi.util.instream.transport.clock_sync import TimeServer
from qudi.util.instream.transport.wire import (
    SENDS_TIME,
    TIME,
    TIME_RUN,
    WireError,
    pack_time,
    read_header,
    read_time,
)

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 10.0
SESSION = 11
FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DESCRIPTION = {
    "dtype": "<f8",
    "sample_shape": [1],
    "timestamps": False,
    "capacity": 1024,
    "channel_names": ["a"],
    "channel_units": ["V"],
    "sample_rate": 10.0,
    "sample_timing": "CONSTANT",
    "extra": {},
}


class Frame:
    """What a zmq frame offers read_time (its bytes)."""

    def __init__(self, raw: bytes):
        self.bytes = raw


def header(kind=TIME, *, flags=0, session=SESSION, generation=1, epoch=1, first=0, count=0):
    return HEADER.pack(MAGIC, VERSION, kind, flags, session, generation, epoch, first, count)


def rows_of(index, host, device) -> bytes:
    rows = np.empty(len(index), ROW_DTYPE)
    rows["index"], rows["host"], rows["device"] = index, host, device
    return rows.tobytes()


def record(mono=100.0, utc=1.7e9, call=0.0, spread=0.0, tick=0, port=0) -> bytes:
    return TIME_RUN.pack(mono, utc, call, spread, tick, port)


floats = st.floats(width=64)
u16, u64 = st.integers(0, 2**16 - 1), st.integers(0, 2**64 - 1)


@st.composite
def bad_time(draw):
    """TIME frames (after the header) that no genuine publisher sends, and their header."""
    count = draw(st.integers(1, 5))
    index = np.arange(1, count + 1) * 5
    good_rows = rows_of(index, 100.0 + index / 10, (index - 1) / 10)
    choice = draw(
        st.sampled_from(
            ["frames", "record", "times", "count", "rows", "order", "host", "first", "flags"]
        )
    )
    head = header(count=count)
    if choice == "frames":
        extra = draw(st.lists(st.binary(max_size=60), max_size=4).filter(lambda f: len(f) != 2))
        return [head, *extra]
    if choice == "record":
        raw = draw(st.binary(max_size=100).filter(lambda raw: len(raw) != TIME_RUN.size))
        return [head, raw, good_rows]
    if choice == "times":
        values = [draw(floats) for _ in range(4)]
        bad = draw(st.sampled_from([np.nan, np.inf, -np.inf, -1.0]))
        values[draw(st.integers(0 if bad != -1.0 else 2, 3))] = bad
        return [head, record(*values), good_rows]
    if choice == "count":
        return [header(count=draw(st.integers(2**16 + 1, 2**64 - 1))), record(), good_rows]
    if choice == "rows":
        raw = draw(st.binary(max_size=200).filter(lambda raw: len(raw) != 24 * count))
        return [head, record(), raw]
    if choice == "order":
        shuffled = index[::-1] if count > 1 else np.array([0])
        return [head, record(), rows_of(shuffled, np.zeros(count), np.zeros(count))]
    if choice == "host":
        host = np.full(count, draw(st.sampled_from([np.nan, np.inf, -np.inf])))
        return [head, record(), rows_of(index, host, np.zeros(count))]
    if choice == "first":  # rows not after the run's first index, or beyond 2**62
        first = draw(st.sampled_from([int(index[0]), int(index[0]) + 1, 2**62 + 1]))
        return [header(count=count, first=first), record(), good_rows]
    return [header(count=count, flags=draw(st.integers(2, 2**16 - 1))), record(), good_rows]


@FUZZ
@given(bad_time())
def test_hostile_time_frames_are_refused_with_a_wire_error(frames):
    head = read_header([Frame(frames[0])])
    with pytest.raises(WireError):
        read_time(head, [Frame(f) for f in frames])


@FUZZ
@given(
    st.integers(0, 2**16 - 1),
    u64,
    st.integers(0, 8),
    st.lists(st.binary(max_size=120), min_size=0, max_size=4),
    st.binary(max_size=48 * 3),
)
def test_random_time_frames_are_refused_or_keep_every_promise(flags, first, count, rest, blob):
    frames = [header(flags=flags, first=first, count=count), *rest]
    if len(rest) == 2 and len(blob) >= TIME_RUN.size:
        frames[1] = blob[: TIME_RUN.size]  # a run record of the right size, random values
    try:
        message = read_time(read_header([Frame(frames[0])]), [Frame(f) for f in frames])
    except WireError:
        return
    rows = message.rows
    assert len(rows) == count and message.run.first_index == first <= 2**62
    assert np.isfinite(rows["host"]).all() and not np.isinf(rows["device"]).any()
    assert (np.diff(rows["index"]) >= 0).all() and (rows["index"] > first).all()
    assert message.run.host_uncertainty >= 0 and message.run.start_call >= 0


def test_a_packed_time_message_reads_back():
    run = RunStart(3, 40, 12.5, 1.7e9, 0.001, 777, 2e-4)
    rows = np.frombuffer(rows_of([45, 50], [13.0, 13.5], [0.4, np.nan]), ROW_DTYPE)
    frames = [Frame(f) for f in pack_time(SESSION, 2, run, 4321, rows)]
    message = read_time(read_header(frames), frames)
    assert message.run == run and message.port == 4321 and message.stream == (SESSION, 2)
    assert message.rows.tobytes() == rows.tobytes()  # NaN and all


# ---------------------------------------------------------------------------- live stream
class Genuine:
    """The followed publisher: heartbeats announcing TIME, samples of a ramp, TIME rows."""

    def __init__(self, socket, port):
        self.socket, self.port = socket, port
        self.next = 0
        self.sent = 0
        self.start = time.monotonic()
        self.rows: list[tuple[int, float, float]] = []

    def heartbeat(self) -> None:
        frames = [header(CONTROL, flags=1, first=self.next, count=SENDS_TIME)]
        self.send([*frames, json.dumps(DESCRIPTION).encode(), b""])

    def samples(self, count=5) -> None:
        data = np.arange(self.next, self.next + count, dtype=np.float64).tobytes()
        self.send([header(DATA, first=self.next, count=count), data])
        self.next += count
        self.rows.append((self.next, self.start + self.next / 10 + 1e-3, (self.next - 1) / 10))
        run = RunStart(1, 0, self.start, 1.7e9)
        rows = np.frombuffer(rows_of(*zip(*self.rows[-3:], strict=True)), ROW_DTYPE)
        self.send(pack_time(SESSION, 1, run, self.port, rows))

    def send(self, frames) -> None:
        self.socket.send_multipart(frames)
        self.sent += 1


@pytest.fixture
def stream():
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 0)
    server = None
    made = {}
    try:
        port = socket.bind_to_random_port("tcp://127.0.0.1")
        server = TimeServer(context, f"tcp://127.0.0.1:{port}", "fuzz", None)
        genuine = Genuine(socket, server.port)

        def subscribe():
            made["sub"] = StreamSubscriber(
                f"tcp://127.0.0.1:{port}", allow_overwrite=True, capacity=1 << 16,
                receive_hwm=100_000, silence_timeout=30.0,
            )  # fmt: skip

        maker = threading.Thread(target=subscribe)
        maker.start()
        while maker.is_alive():
            genuine.heartbeat()
            maker.join(0.02)
        sub = made["sub"]
        base = sub.stats().messages_received - genuine.sent
        yield genuine, sub, lambda: base + genuine.sent
    finally:
        if "sub" in made:
            made["sub"].close()
        if server is not None:
            server.close()
        socket.close(linger=0)
        context.term()


def wait_until(condition, what):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {TIMEOUT} s")
        time.sleep(0.001)


def test_hostile_time_messages_are_counted_and_only_genuine_rows_reach_the_table(stream):
    genuine, sub, expected = stream
    receiver = sub.receiver
    genuine.heartbeat()
    genuine.samples()  # its TIME message names the clock service: the probes start
    wait_until(lambda: receiver.remote_time.offset is not None, "a clock probe's answer")
    hostile = 0

    @FUZZ
    @given(st.lists(bad_time(), min_size=1, max_size=4))
    def check(messages):
        nonlocal hostile
        for frames in messages:
            genuine.heartbeat()
            genuine.socket.send_multipart(frames)
            hostile += 1
            genuine.samples()
        wait_until(lambda: sub.stats().messages_received >= expected() + hostile, "messages")
        assert sub.rejected == hostile

    check()
    out = np.empty((genuine.next, 1))
    assert sub.read_into(out, timeout=TIMEOUT) == genuine.next
    np.testing.assert_array_equal(out[:, 0], np.arange(genuine.next))
    assert receiver.remote_time.active
    table = sub.ring.time_table
    rows, _ = table.rows()
    truth = {index: host for index, host, _ in genuine.rows}
    assert len(rows) > 10 and set(rows.index.tolist()) <= set(truth)
    run = table.run()
    # one host, one monotonic clock: each mapped time is the genuine one within the bound
    error = np.abs(rows.host - np.array([truth[int(i)] for i in rows.index]))
    assert error.max() <= run.host_uncertainty and run.host_uncertainty < 0.05
    assert abs(run.monotonic_start - genuine.start) <= run.host_uncertainty


def test_struct_sizes_are_what_the_docstring_says():
    assert TIME_RUN.size == 48 and ROW_DTYPE.itemsize == 24 and struct.calcsize("<d") == 8


# --------------------------------------------------------------------- the clock service
@pytest.fixture
def clock_service():
    """A publisher's clock service and a raw DEALER connected to it."""
    context = zmq.Context()
    server = TimeServer(context, "tcp://127.0.0.1:1", "fuzz", None)
    peer = context.socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    peer.connect(f"tcp://127.0.0.1:{server.port}")
    try:
        yield server, peer
    finally:
        peer.close(linger=0)
        server.close()
        context.term()


def probe_answered(peer, probe_id: int) -> float:
    """Send a genuine probe; the publisher's time it answers with."""
    peer.send(struct.pack("<4sQ", b"QIZT", probe_id))
    assert peer.poll(int(TIMEOUT * 1000)), "no answer to a genuine probe"
    magic, answered, when = struct.unpack("<4sQd", peer.recv())
    assert magic == b"QIZT" and answered == probe_id
    return when


@FUZZ
@given(st.lists(st.lists(st.binary(max_size=80), min_size=1, max_size=3), max_size=6))
def test_hostile_probes_get_no_answer_and_the_service_goes_on(clock_service, messages):
    server, peer = clock_service
    for frames in messages:
        if len(frames) == 1 and len(frames[0]) == 12 and frames[0].startswith(b"QIZT"):
            continue  # that one is a genuine probe
        peer.send_multipart(frames)
    before = time.monotonic()
    when = probe_answered(peer, 42)
    assert before <= when <= time.monotonic()  # one host: its monotonic time, in between
    assert not peer.poll(0)  # nothing else was answered


@FUZZ
@given(
    st.floats(-1e6, 1e6),  # the true offset at t = 0 (another host's clock origin)
    st.floats(-199.0, 199.0),  # ppm the two clocks drift apart (within the assumed 200)
    st.lists(
        st.tuples(st.floats(0, 0.05), st.floats(0, 0.05), st.floats(0.01, 1.0)),
        min_size=1,
        max_size=30,
    ),  # per probe: delay out, delay back (any asymmetry), time to the next probe
    st.floats(0, 30.0),  # how long after the last probe the estimate is asked
)
def test_the_offset_estimate_always_bounds_the_true_offset(offset, ppm, probes, later):
    from qudi.util.instream.transport.clock_sync import OffsetEstimate

    estimate = OffsetEstimate()

    def true_offset(local):  # local = remote + offset(local)
        return offset + ppm * 1e-6 * local

    now = 100.0
    for out, back, gap in probes:
        t0 = now
        instant = t0 + out  # the publisher reads its clock then (local time)
        remote = instant - true_offset(instant)
        t3 = instant + back
        estimate.add(t0, remote, t3)
        now = t3 + gap
    asked = now + later
    found, bound = estimate.offset(asked)
    assert abs(found - true_offset(asked)) <= bound + 1e-9 * (1 + abs(offset))
