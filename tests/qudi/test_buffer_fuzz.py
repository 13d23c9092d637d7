"""Hypothesis fuzz of DataInStreamBuffer: any options, any calls, only clear refusals (issue 21).

Options: each is valid or hostile (None, bools, huge ints, NaN, inf, text, lists, dicts);
activation either works or raises a ``ValueError`` that names the option. Calls: random
sequences of every public method with valid and hostile arguments (wrong dtypes and shapes,
huge counts, NaN/inf/negative timeouts, wrong types); each call works or raises a
``TypeError``/``ValueError`` naming the argument, or a ``StreamError`` with a message, and
every sample read continues the dummy's ramp: a refused call consumes and changes nothing.

Buffer and dummy are built without the module manager (as qudi does: constructor, connector,
then ``on_activate``), so each example costs milliseconds; ``max_examples`` keeps each test to
a few seconds.
"""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fuzzing import ADDRESSES, HOSTILE, mostly

from qudi.hardware.instream.buffer import DataInStreamBuffer
from qudi.hardware.instream.dummy import InStreamDummy
from qudi.util.instream.errors import StreamError, StreamOverrunError

REFUSALS = (TypeError, ValueError, StreamError)
CHANNELS = ["ramp", "sine", "counts", "noise"]
# the names a refusal of each call may give for what it refuses
ARGUMENTS = {
    "configure": ("active_channels", "streaming_mode", "channel_buffer_size", "sample_rate"),
    "read_available": ("data_buffer", "timestamp_buffer"),
    "read_into": ("data_buffer", "timestamp_buffer", "samples_per_channel", "timeout"),
    "read_data": ("samples_per_channel",),
}


def make_dummy() -> InStreamDummy:
    dummy = InStreamDummy(
        qudi_main_weakref=None,
        name="fuzzed_buffer_dummy",
        config={"channel_names": CHANNELS, "channel_units": ["samples", "V", "c", "V"],
                "channel_signals": CHANNELS, "seed": 1},
    )  # fmt: skip
    dummy.module_state.activate()
    return dummy


def make_buffer(dummy: InStreamDummy, options: dict) -> DataInStreamBuffer:
    buffer = DataInStreamBuffer(qudi_main_weakref=None, name="fuzzed_buffer", config=options)
    buffer._streamer.connect(dummy)
    return buffer


@st.composite
def buffer_options(draw) -> dict:
    valid = {
        "allow_overwrite": draw(st.booleans()),
        "max_poll_rate": draw(st.one_of(st.sampled_from([1, 30.0, 1000]), st.floats(1, 1000))),
        "transport": draw(st.sampled_from(["auto", "shared_memory", "zmq"])),
        "publish_address": draw(st.sampled_from(ADDRESSES)),
    }
    hostile = draw(st.sets(st.sampled_from(sorted(valid)), max_size=2))
    options = {key: draw(HOSTILE) if key in hostile else value for key, value in valid.items()}
    absent = draw(st.sets(st.sampled_from(sorted(valid)), max_size=2))  # defaults for these
    return {key: value for key, value in options.items() if key not in absent}


@settings(max_examples=80, deadline=None)
@given(buffer_options())
def test_any_options_activate_or_are_refused_naming_the_option(qudi_home, options):
    dummy = make_dummy()
    try:
        buffer = make_buffer(dummy, options)
        try:
            buffer.on_activate()
        except ValueError as error:
            assert any(f"option '{key}' is " in str(error) for key in options), str(error)
            assert dummy.module_state() == "idle"
            return
        buffer.on_deactivate()
        buffer.module_state.activate()  # as qudi does: the options known good, in its state
        try:
            assert buffer.module_state() == "idle"
            assert buffer.active_channels == dummy.active_channels
            assert buffer.allow_overwrite is options.get("allow_overwrite", False)
            data = np.empty((4, len(buffer.active_channels)), buffer.constraints.data_type)
            buffer.start_stream()
            assert dummy.module_state() == "locked"
            assert 0 <= buffer.read_available_data_into_buffer(data) <= 4
            buffer.stop_stream()
        finally:
            buffer.module_state.deactivate()
        assert dummy.module_state() == "idle"
    finally:
        dummy.module_state.deactivate()


# ------------------------------------------------------------------------ public methods
BAD_BUFFERS = ["columns", "float32", "int64", "readonly", "strided", "list", "3d", "none"]


@st.composite
def timeouts(draw):
    return draw(
        st.one_of(
            st.floats(0, 0.02),
            st.floats(0, 0.02),
            # no big finite timeout: a read waits as long as it is told to, and that is valid
            st.sampled_from([float("nan"), float("inf"), -1.0, -float("inf"), -1e300, "0.1"]),
            st.sampled_from([[0.01], np.float32(0.01), np.int64(0), True]),
        )
    )


@st.composite
def calls(draw) -> tuple:
    name = draw(
        st.sampled_from(
            ["configure", "start_stream", "stop_stream", "wait", "read_available", "read_into"]
            + ["read_data", "read_single_point", "available_samples"]
        )
    )
    if name == "configure":
        return (
            name,
            draw(mostly(st.lists(st.sampled_from(CHANNELS), min_size=1, unique=True))),
            draw(mostly(st.sampled_from([0, "CONTINUOUS", "continuous", np.int8(0)]))),
            draw(mostly(st.one_of(st.integers(128, 2**20), st.integers(10_000, 2**18)))),
            draw(mostly(st.one_of(st.sampled_from([1e4, 1e5]), st.floats(1e3, 1e6)))),
        )
    if name == "wait":
        return name, draw(st.floats(0, 0.01))
    if name == "read_available":
        kind = draw(st.sampled_from(["ok", "ok", "ok", "stamps", *BAD_BUFFERS]))
        return name, draw(st.integers(0, 600)), kind
    if name == "read_into":
        size = draw(st.integers(0, 600))
        count = draw(
            st.one_of(
                st.integers(0, size),
                st.integers(0, size),
                st.sampled_from([size + 1, 2**40, 2**64, -1, 1.0, "3", None, np.int32(1)]),
            )
        )
        kind = draw(st.sampled_from(["ok", "ok", "ok", "ok", "stamps", *BAD_BUFFERS]))
        return name, size, kind, count, draw(timeouts())
    if name == "read_data":  # a valid count could wait long: None (what is there) or refusals
        return name, draw(
            st.one_of(
                st.none(),
                st.integers(max_value=-1),
                st.sampled_from([2**20 + 1, 2**40, 2**64, 2**70]),
                HOSTILE.filter(lambda v: not isinstance(v, int) or isinstance(v, bool)),
            )
        )
    return (name,)


def make_buffers(kind: str, size: int, channels: int) -> tuple[object, object]:
    """A data buffer (and timestamp buffer) of ``kind``: ``ok`` fits, the others do not."""
    if kind == "ok":
        return np.empty((size, channels)), None
    if kind == "stamps":  # this stream has no timestamps: a buffer for them is refused
        return np.empty((size, channels)), np.empty(size)
    if kind == "columns":
        return np.empty((size, channels + 1)), None
    if kind == "float32":
        return np.empty((size, channels), np.float32), None
    if kind == "int64":
        return np.empty((size, channels), np.int64), None
    if kind == "readonly":
        data = np.empty((size, channels))
        data.flags.writeable = False
        return data, None
    if kind == "strided":
        return np.empty((size, 2 * channels))[:, ::2], None
    if kind == "list":
        return [[0.0] * channels] * size, None
    if kind == "3d":
        return np.empty((size, channels, 1)), None
    return None, None


class RampTracker:
    """Checks that every sample read continues the ramp of the current run."""

    def __init__(self):
        self.next = 0

    def check(self, buffer: DataInStreamBuffer, rows: np.ndarray) -> None:
        if "ramp" in buffer.active_channels and len(rows):
            ramp = rows[:, buffer.active_channels.index("ramp")]
            np.testing.assert_array_equal(ramp, np.arange(self.next, self.next + len(rows)))
        self.next += len(rows)


def state(buffer: DataInStreamBuffer) -> tuple:
    return (
        buffer.active_channels,
        buffer.sample_rate,
        buffer.channel_buffer_size,
        buffer.streaming_mode,
        buffer.module_state(),
    )


def call(buffer: DataInStreamBuffer, ramp: RampTracker, name: str, *args) -> None:
    channels = len(buffer.active_channels)
    if name == "configure":
        buffer.configure(*args)
    elif name == "start_stream":
        was_streaming = buffer.module_state() == "locked"
        buffer.start_stream()
        if not was_streaming:
            ramp.next = 0
    elif name == "stop_stream":
        buffer.stop_stream()
    elif name == "wait":
        time.sleep(*args)
    elif name == "read_available":
        size, kind = args
        data, stamps = make_buffers(kind, size, channels)
        read = buffer.read_available_data_into_buffer(data, stamps)
        assert kind == "ok" and 0 <= read <= size
        ramp.check(buffer, data[:read])
    elif name == "read_into":
        size, kind, count, timeout = args
        data, stamps = make_buffers(kind, size, channels)
        buffer.read_data_into_buffer(data, count, stamps, timeout=timeout)
        assert kind == "ok"
        ramp.check(buffer, data[:count])
    elif name == "read_data":
        data, stamps = buffer.read_data(*args)
        assert stamps is None and data.shape[1:] == (channels,)
        ramp.check(buffer, data)
    elif name == "read_single_point":
        sample, stamp = buffer.read_single_point()
        assert sample.shape == (channels,) and stamp is None
    else:
        assert buffer.available_samples >= 0


def check_refusal(name: str, args: tuple, error: Exception) -> None:
    """A refusal has a message; a refused argument is named in it."""
    message = str(error)
    assert message, f"{name}{args} raised {type(error).__name__} without a message"
    if isinstance(error, (TypeError, ValueError)) and not isinstance(error, StreamError):
        assert any(arg in message for arg in ARGUMENTS.get(name, ())), f"{name}{args}: {message}"


@settings(max_examples=150, deadline=None)
@given(st.lists(calls(), min_size=1, max_size=10))
def test_any_calls_work_or_are_refused_plainly_and_consume_nothing(qudi_home, calls):
    dummy = make_dummy()
    buffer = make_buffer(dummy, {"max_poll_rate": 200.0})
    buffer.module_state.activate()
    buffer.configure(CHANNELS, 0, 100_000, 100_000.0)  # samples arrive within the sequence
    ramp = RampTracker()
    try:
        for name, *args in calls:
            before = state(buffer)
            started = time.monotonic()
            try:
                call(buffer, ramp, name, *args)
            except StreamOverrunError as error:  # a loaded machine: the gap is counted
                ramp.next = error.resume_position
            except REFUSALS as error:
                check_refusal(name, tuple(args), error)
                assert state(buffer) == before, f"{name}{args}: {error}"  # changes nothing
            assert time.monotonic() - started < 5, f"{name}{args} took too long"
        # still usable: a plain read of the ramp works
        buffer.stop_stream()  # a tiny buffer at a high rate may have overflowed
        buffer.configure(CHANNELS, 0, 100_000, 100_000.0)
        buffer.start_stream()
        ramp.next = 0
        data = np.empty((10, len(buffer.active_channels)))
        buffer.read_data_into_buffer(data, 10, timeout=5)
        ramp.check(buffer, data)
    finally:
        try:
            buffer.stop_stream()
            buffer.module_state.deactivate()
        finally:
            dummy.module_state.deactivate()
    assert buffer.module_state() == "deactivated"
