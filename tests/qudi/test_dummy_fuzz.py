"""Hypothesis fuzz of the dummy streamer: any options, any calls, only clear refusals (issue 21).

Options: each is valid or hostile (None, bools, huge ints, NaN, inf, text, lists, dicts);
activation either works or raises a ``ValueError`` that names the option. Calls: random
sequences of every public method with valid and hostile arguments; each call works or raises a
``TypeError``/``ValueError``/``RuntimeError``/``TimeoutError`` with a message, and every sample
that is read continues the ramp of its run: a refused call consumes and changes nothing.

The dummy is built without the module manager (as qudi does: constructor, then ``on_activate``),
so each example costs milliseconds; ``max_examples`` keeps each test to a few seconds.
"""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fuzzing import ADDRESSES, HOSTILE, mostly, waits_briefly_if_valid

from qudi.hardware.instream.dummy import InStreamDummy
from qudi.util.instream.simulated import SIGNALS

NUMBER_TYPES = ["float64", "float32", "float16", "int8", "uint8", "int16", "int32", "uint64"]
REFUSALS = (TypeError, ValueError, RuntimeError, TimeoutError)  # TimeoutError: an OSError


@st.composite
def dummy_options(draw) -> dict:
    count = draw(st.integers(1, 4))
    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=count, max_size=count))
    valid = {
        "channel_names": names,
        "channel_units": draw(st.lists(st.sampled_from(["V", "Hz", "counts", "kc/s", ""]),
                                       min_size=count, max_size=count)),
        "channel_signals": draw(st.lists(st.sampled_from(SIGNALS), min_size=count,
                                         max_size=count)),
        "data_type": draw(st.sampled_from(NUMBER_TYPES)),
        "sample_timing": draw(st.sampled_from(["CONSTANT", "TIMESTAMP", "RANDOM", "timestamp"])),
        "seed": draw(st.one_of(st.none(), st.integers(0, 2**32))),
        "publish_address": draw(st.sampled_from(ADDRESSES)),
    }  # fmt: skip
    hostile = draw(st.sets(st.sampled_from(sorted(valid)), max_size=2))
    return {key: draw(HOSTILE) if key in hostile else value for key, value in valid.items()}


def make_dummy(options: dict) -> InStreamDummy:
    return InStreamDummy(qudi_main_weakref=None, name="fuzzed_dummy", config=options)


@settings(max_examples=120, deadline=None)
@given(dummy_options())
def test_any_options_activate_or_are_refused_naming_the_option(options):
    dummy = make_dummy(options)
    try:
        dummy.on_activate()
    except ValueError as error:
        assert any(f"option '{key}' is " in str(error) for key in options), str(error)
        return
    try:
        constraints = dummy.constraints
        assert list(constraints.channel_units) == options["channel_names"]
        assert dummy.active_channels == options["channel_names"]
        data = np.empty((4, len(options["channel_names"])), constraints.data_type)
        assert dummy.read_available_data_into_buffer(data, _stamps(dummy, 4)) == 0
    finally:
        dummy.on_deactivate()


def _stamps(dummy: InStreamDummy, count: int) -> np.ndarray | None:
    return np.empty(count) if dummy.constraints.sample_timing.name == "TIMESTAMP" else None


# ------------------------------------------------------------------------ public methods
CHANNELS = ["ramp", "sine", "counts", "noise"]


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
            draw(mostly(st.sampled_from([0, 1, "FINITE", "continuous", np.int8(0)]))),
            draw(mostly(st.integers(128, 2**20))),
            draw(mostly(st.one_of(st.sampled_from([1e3, 1e4, 1e5, 1e6]), st.floats(0.1, 1e6)))),
        )
    if name == "wait":
        return name, draw(st.floats(0, 0.01))
    if name == "read_available":
        return name, draw(st.integers(0, 600)), draw(st.sampled_from(["ok", "ok", "bad"]))
    if name == "read_into":
        size = draw(st.integers(0, 600))
        count = draw(mostly(st.integers(0, size)))
        return name, size, count, draw(mostly(st.floats(0, 0.02)).filter(waits_briefly_if_valid))
    if name == "read_data":  # a valid count would wait without a limit: only refusals
        return name, draw(st.one_of(st.none(), st.integers(max_value=-1), HOSTILE))
    return (name,)


class RampTracker:
    """Checks that every sample read continues the ramp of the current run."""

    def __init__(self):
        self.next = 0

    def check(self, dummy: InStreamDummy, rows: np.ndarray) -> None:
        if "ramp" in dummy.active_channels and len(rows):
            ramp = rows[:, dummy.active_channels.index("ramp")]
            np.testing.assert_array_equal(ramp, np.arange(self.next, self.next + len(rows)))
        self.next += len(rows)


def call(dummy: InStreamDummy, ramp: RampTracker, name: str, *args) -> None:
    channels = len(dummy.active_channels)
    if name == "configure":
        before = (dummy.active_channels, dummy.sample_rate, dummy.channel_buffer_size)
        try:
            dummy.configure(*args)
        except REFUSALS:
            after = (dummy.active_channels, dummy.sample_rate, dummy.channel_buffer_size)
            assert after == before  # a refused configure changes nothing
            raise
    elif name == "start_stream":
        was_streaming = dummy.module_state() == "locked"
        dummy.start_stream()
        if not was_streaming:
            ramp.next = 0
    elif name == "stop_stream":
        dummy.stop_stream()
    elif name == "wait":
        time.sleep(*args)
    elif name == "read_available":
        size, kind = args
        data = np.empty((size, channels) if kind == "ok" else (size, channels + 1))
        ramp.check(dummy, data[: dummy.read_available_data_into_buffer(data)])
    elif name == "read_into":
        size, count, timeout = args
        data = np.empty((size, channels))
        dummy.read_data_into_buffer(data, count, timeout=timeout)
        ramp.check(dummy, data[:count])
    elif name == "read_data":
        data, _ = dummy.read_data(*args)
        ramp.check(dummy, data)
    elif name == "read_single_point":
        sample, _ = dummy.read_single_point()
        assert sample.shape == (channels,)
    else:
        assert dummy.available_samples >= 0


@settings(max_examples=150, deadline=None)
@given(st.lists(calls(), min_size=1, max_size=10))
def test_any_calls_work_or_are_refused_plainly_and_consume_nothing(qudi_home, calls):
    dummy = make_dummy({"channel_names": CHANNELS, "channel_units": ["samples", "V", "c", "V"],
                        "channel_signals": CHANNELS, "seed": 1})  # fmt: skip
    dummy.module_state.activate()
    dummy.configure(CHANNELS, 0, 100_000, 100_000.0)  # samples arrive within the sequence
    ramp = RampTracker()
    try:
        for name, *args in calls:
            try:
                call(dummy, ramp, name, *args)
            except REFUSALS as error:
                assert str(error), f"{name}{args} raised {type(error).__name__} without a message"
                if dummy.module_state() != "locked":
                    continue
    finally:
        dummy.stop_stream()
        dummy.module_state.deactivate()
    assert dummy.module_state() == "deactivated"
