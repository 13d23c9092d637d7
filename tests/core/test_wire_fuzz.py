"""Fuzzing the ZeroMQ wire: random messages from a raw PUB socket into a real subscriber.

Three boundaries, each against a subscriber on loopback, bounded to some seconds:

* Messages that are malformed, or of another session, arrive between the genuine messages of
  the followed stream: every one of them is rejected and counted, and the genuine stream
  arrives exactly (every sample, once, in order), with no gap and nothing lost.
* Messages of the followed session itself with random indices and counts (a forger who knows
  the session): the subscriber never crashes, hangs or grows, and the genuine publisher's next
  heartbeat and samples are read again (a forged index is undone by the next heartbeat).
* Random stream descriptions for a new subscriber: it follows them, or refuses them with an
  error of the package, at once or at its timeout; never another exception.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qudi.util.instream import (
    StreamFaultError,
    StreamFormatError,
    StreamTimeoutError,
)
from qudi.util.instream.errors import StreamCapacityError
from qudi.util.instream.network import CONTROL, DATA, HEADER, MAGIC, VERSION, StreamSubscriber
from qudi.util.instream.stream_format import parse_description

pytestmark = pytest.mark.timeout(120)  # a hang fails the test instead of the whole run
TIMEOUT = 10.0
SESSION = 7
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
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


def header(kind, *, magic=MAGIC, version=VERSION, flags=0, session=SESSION, generation=1,
           epoch=1, first=0, count=0) -> bytes:  # fmt: skip
    return HEADER.pack(magic, version, kind, flags, session, generation, epoch, first, count)


def ramp_bytes(first: int, count: int) -> bytes:
    index = np.arange(first, first + count, dtype=np.float64)
    return np.repeat(index[:, None], 2, axis=1).tobytes()


def wait_until(condition, timeout=TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.001)


class Genuine:
    """The followed publisher: a ramp in data messages of 5 samples, and its heartbeats."""

    def __init__(self, socket):
        self.socket = socket
        self.next = 0
        self.sent = 0  # messages

    def heartbeat(self, state=1) -> None:
        self.send(
            [header(CONTROL, flags=state, first=self.next), json.dumps(DESCRIPTION).encode(), b""]
        )

    def samples(self, count=5) -> None:
        self.send([header(DATA, first=self.next, count=count), ramp_bytes(self.next, count)])
        self.next += count

    def send(self, frames) -> None:
        self.socket.send_multipart(frames)
        self.sent += 1


@pytest.fixture
def stream():
    """A raw PUB (no send limit) with the genuine publisher on it, and a subscriber."""
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 0)
    made = {}
    try:
        port = socket.bind_to_random_port("tcp://127.0.0.1")
        genuine = Genuine(socket)

        def subscribe():
            made["sub"] = StreamSubscriber(
                f"tcp://127.0.0.1:{port}",
                allow_overwrite=True,
                capacity=1 << 16,
                receive_hwm=100_000,
                silence_timeout=30.0,
            )

        maker = threading.Thread(target=subscribe)
        maker.start()
        while maker.is_alive():  # the constructor waits for a description
            genuine.heartbeat()
            maker.join(0.02)
        sub = made["sub"]
        base = sub.stats().messages_received - genuine.sent  # heartbeats before it listened
        yield genuine, sub, lambda: base + genuine.sent
    finally:
        if "sub" in made:
            made["sub"].close()
        socket.close(linger=0)
        context.term()


def processed(sub, expected) -> None:
    """Wait until the subscriber has taken every message sent so far (PUB to SUB is in order)."""
    wait_until(lambda: sub.stats().messages_received >= expected(), what="all messages")


# ------------------------------------------------------------------- strategies: hostile
u8, u16, u32 = st.integers(0, 255), st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
indices = st.one_of(
    st.integers(0, 10**6),
    st.sampled_from([2**40 - 1, 2**40, 2**40 + 1, 2**62 - 8, 2**62, 2**62 + 1, 2**63, 2**64 - 1]),
    u64,
)
blobs = st.binary(max_size=200)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


not_an_object = st.one_of(
    blobs.filter(lambda raw: not _is_json_object(raw)),
    json_values.filter(lambda value: not isinstance(value, dict)).map(
        lambda value: json.dumps(value).encode()
    ),
    st.just(b"[" * 2000 + b"]" * 2000),
    st.just(b'{"sample_rate": NaN}'),
)

foreign_sessions = u64.filter(lambda session: session != SESSION)
garbage = st.lists(blobs, min_size=1, max_size=4).filter(lambda f: not f[0].startswith(b"QIZM"))
other_session = st.builds(
    lambda kind, flags, session, generation, first, count, frames: [
        header(kind, flags=flags, session=session, generation=generation, first=first, count=count),
        *frames,
    ],
    kind=u8,
    flags=u16,
    session=foreign_sessions,
    generation=u32,
    first=indices,
    count=indices,
    frames=st.lists(blobs | not_an_object | st.just(json.dumps(DESCRIPTION).encode()), max_size=3),
)
well_formed_foreign = st.one_of(
    st.builds(  # another publisher's heartbeat, with a stream description of its own
        lambda session, generation, state, next_index: [
            header(CONTROL, flags=state, session=session, generation=generation, first=next_index),
            json.dumps(DESCRIPTION).encode(),
            b"",
        ],
        foreign_sessions,
        u32,
        st.integers(0, 3),
        indices.filter(lambda index: index <= 2**62),
    ),
    st.builds(  # and its samples
        lambda session, first, count: [
            header(DATA, session=session, first=first, count=count),
            ramp_bytes(0, count),
        ],
        foreign_sessions,
        st.integers(0, 10**6),
        st.integers(1, 6),
    ),
)
bad_version_or_kind = st.builds(
    lambda version, kind, rest: [header(kind, version=version), *rest],
    version=u8.filter(lambda v: v != VERSION),
    kind=u8,
    rest=st.lists(blobs, max_size=3),
) | st.builds(
    lambda kind, rest: [header(kind), *rest],
    kind=u8.filter(lambda kind: kind not in (DATA, CONTROL, 3)),  # 3: TIME, test_time_wire_fuzz
    rest=st.lists(blobs, max_size=3),
)


@st.composite
def bad_data_of_the_session(draw):
    """Data messages of the followed session that no genuine publisher sends."""
    count = draw(st.integers(1, 6))
    choice = draw(st.sampled_from(["frames", "bytes", "empty", "beyond", "twice", "stamps"]))
    if choice == "frames":
        extra = draw(st.lists(blobs, max_size=3).filter(lambda frames: len(frames) != 1))
        return [header(DATA, first=0, count=count), *extra]
    if choice == "bytes":
        raw = draw(blobs.filter(lambda raw: len(raw) != 16 * count))
        return [header(DATA, first=0, count=count), raw]
    if choice == "empty":
        return [header(DATA, first=draw(indices), count=0), b""]
    if choice == "beyond":
        first = draw(st.integers(2**62 - count + 1, 2**64 - 1 - count))
        return [header(DATA, first=first, count=count), ramp_bytes(0, count)]
    if choice == "twice":  # the genuine publisher sent these at the start
        return [header(DATA, first=0, count=count), ramp_bytes(0, count)]
    stamps = draw(blobs)  # a timestamp frame the stream has none of
    return [header(DATA, flags=1, first=0, count=count), ramp_bytes(0, count), stamps]


@st.composite
def bad_control_of_the_session(draw):
    """Control messages of the followed session that no genuine publisher sends."""
    choice = draw(st.sampled_from(["frames", "state", "description", "beyond"]))
    good = json.dumps(DESCRIPTION).encode()
    if choice == "frames":
        frames = draw(st.lists(blobs, max_size=4).filter(lambda frames: len(frames) != 2))
        return [header(CONTROL, flags=1), *frames]
    if choice == "state":
        return [header(CONTROL, flags=draw(st.integers(4, 2**16 - 1))), good, b""]
    if choice == "beyond":
        return [header(CONTROL, flags=1, first=draw(st.integers(2**62 + 1, 2**64 - 1))), good, b""]
    return [header(CONTROL, flags=1), draw(not_an_object), draw(blobs)]


always_rejected = st.one_of(
    garbage, other_session, well_formed_foreign, bad_version_or_kind,
    bad_data_of_the_session(), bad_control_of_the_session(),
)  # fmt: skip


def test_malformed_and_foreign_messages_are_all_counted_and_the_stream_arrives_exactly(stream):
    genuine, sub, expected = stream
    genuine.samples(10)  # more than a forged duplicate repeats
    hostile_sent = 0

    @FUZZ
    @given(st.lists(always_rejected, min_size=1, max_size=8))
    def check(messages):
        nonlocal hostile_sent
        for frames in messages:
            genuine.heartbeat()  # the followed stream is alive: no other takes its place
            genuine.socket.send_multipart(frames)
            hostile_sent += 1
            genuine.samples()
        processed(sub, lambda: expected() + hostile_sent)
        assert sub.rejected == hostile_sent

    check()
    processed(sub, lambda: expected() + hostile_sent)
    out = np.empty((genuine.next, 2))
    assert sub.read_into(out, timeout=TIMEOUT) == genuine.next
    np.testing.assert_array_equal(out[:, 0], np.arange(genuine.next))  # every sample, once
    assert sub.lost == 0 and sub.gaps == () and len(sub.receiver.gaps) == 0
    assert sub.receiver.resyncs == 0


@st.composite
def forged_of_the_session(draw):
    """Well-formed messages of the followed session with indices and states it never sent."""
    if draw(st.booleans()):
        count = draw(st.integers(1, 8))
        first = draw(indices.filter(lambda first: first + count <= 2**62))
        values = draw(st.lists(st.floats(width=64), min_size=2 * count, max_size=2 * count))
        return [header(DATA, first=first, count=count), np.array(values).tobytes()]
    state = draw(st.integers(0, 3))
    next_index = draw(indices.filter(lambda index: index <= 2**62))
    description = b"{}" if state == 3 else json.dumps(DESCRIPTION).encode()
    return [header(CONTROL, flags=state, first=next_index), description, draw(blobs)]


def test_forged_indices_of_the_followed_session_never_stop_the_stream(stream):
    genuine, sub, expected = stream
    out = np.empty((1 << 14, 2))

    @FUZZ
    @given(st.lists(forged_of_the_session(), min_size=1, max_size=6))
    def check(messages):
        for frames in messages:
            genuine.send(frames)
        genuine.heartbeat()  # the publisher goes on: its heartbeat, then its samples
        first = genuine.next
        genuine.samples()
        processed(sub, expected)
        data = sub.latest(5)
        np.testing.assert_array_equal(data[:, 0], np.arange(first, first + 5))
        while True:  # never blocks, never raises an overrun (overwrite allowed)
            try:
                if sub.read_available_into(out) == 0:
                    break
            except StreamFaultError:
                pass  # a forged fault is reported once, like a real one
        assert sub.available == 0 and len(sub.receiver.gaps) == 0  # nothing piles up

    check()
    assert sub.receiver.ring.write_index < 2**63  # far from the end of the index space


# ---------------------------------------------------------------- descriptions, fresh each
fields = st.sampled_from(sorted(DESCRIPTION))
mutated_descriptions = st.one_of(
    st.builds(lambda key, value: {**DESCRIPTION, key: value}, fields, json_values),
    st.builds(lambda key: {k: v for k, v in DESCRIPTION.items() if k != key}, fields),
    st.builds(
        lambda extra: {**DESCRIPTION, **extra},
        st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    ),
    json_values.filter(lambda value: isinstance(value, dict)),
    st.builds(
        lambda capacity, shape: {**DESCRIPTION, "capacity": capacity, "sample_shape": shape,
                                 "channel_names": [], "channel_units": []},
        st.integers(-5, 2**70),
        st.lists(st.integers(-2, 2**40), max_size=4),
    ),
)  # fmt: skip


@settings(FUZZ, max_examples=25)
@given(description=mutated_descriptions)
def test_a_new_subscriber_follows_or_refuses_any_description_cleanly(description):
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    outcome = {}
    try:
        port = socket.bind_to_random_port("tcp://127.0.0.1")

        def subscribe():
            try:
                outcome["sub"] = StreamSubscriber(
                    f"tcp://127.0.0.1:{port}", timeout=0.3, max_ring_bytes=16 << 20
                )
            except Exception as exc:  # checked below
                outcome["error"] = exc

        maker = threading.Thread(target=subscribe)
        maker.start()
        body = json.dumps(description).encode()
        while maker.is_alive():
            socket.send_multipart([header(CONTROL, flags=1), body, b""])
            maker.join(0.02)
    finally:
        socket.close(linger=0)
        context.term()
    sub = outcome.get("sub")
    if sub is None:
        error = outcome["error"]
        assert isinstance(error, (StreamFormatError, StreamCapacityError, StreamTimeoutError)), (
            repr(error)
        )
        assert str(error)
        return
    try:
        (dtype, shape, has_timestamps), _, _ = parse_description(description)
        ring = sub.ring
        assert (ring.dtype, ring.sample_shape, ring.has_timestamps) == (
            dtype,
            shape,
            has_timestamps,
        )
        assert ring.nbytes <= (16 << 20) + 65536  # the local cap, and a header
    finally:
        sub.close()
