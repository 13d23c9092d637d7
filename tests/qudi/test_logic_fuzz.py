"""Hypothesis fuzz of TimeSeriesReaderLogic: any options, any calls, only clear refusals (issue 21).

Options: each is valid or hostile (None, bools, huge ints, NaN, inf, text, lists, dicts);
activation either works or raises a ``ValueError`` that names the option. Calls: random
sequences of ``set_trace_settings``, ``set_channel_settings``, ``start_reading``,
``stop_reading`` and ``save_trace_snapshot`` with valid and hostile values (NaN, inf, 1e300,
huge ints, negative numbers, wrong types, odd strings), with frames in between; each call
works or raises a ``TypeError``/``ValueError``/``RuntimeError`` naming what it refuses, and a
refused call leaves ``trace_settings``, ``channel_settings`` and the running state as they
were. At the end the logic still shows the dummy's ramp.

Logic, buffer and dummy are built without the module manager (constructor, connector,
activation), so each example costs milliseconds; ``max_examples`` keeps each test to a few
seconds.
"""

from __future__ import annotations

import itertools
import math
import os
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6 import QtCore
from tests.fuzzing import HOSTILE, mostly

from qudi.hardware.instream.buffer import DataInStreamBuffer
from qudi.hardware.instream.dummy import InStreamDummy
from qudi.logic.instream.time_series_reader_logic import TimeSeriesReaderLogic

NUMBERS = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e300, -1e300, 2**70, -(2**70), 2**63, -1, 0, 0.5, -0.0]
    + ["5", None, True, [1], np.float32(np.nan), np.int64(-3), 1e-300]
)
REFUSALS = (TypeError, ValueError, RuntimeError)  # StreamError is a RuntimeError
CHANNELS = ["ramp", "sine", "counts", "noise"]
SETTING_KEYS = ["oversampling_factor", "moving_average_width", "trace_window_size", "data_rate"]
_NAMES = itertools.count()  # a logic of its own per example: no status saved by another


class FuzzedLogic(TimeSeriesReaderLogic):
    """The logic with its data below a directory of the test's (no qudi main to ask)."""

    data_dir = ""

    @property
    def module_default_data_dir(self) -> str:
        return os.path.join(self.data_dir, self.module_name)


def make_stream() -> tuple[InStreamDummy, DataInStreamBuffer]:
    dummy = InStreamDummy(
        qudi_main_weakref=None,
        name="fuzzed_logic_dummy",
        config={"channel_names": CHANNELS, "channel_units": ["samples", "V", "counts", "V"],
                "channel_signals": CHANNELS, "seed": 1},
    )  # fmt: skip
    dummy.module_state.activate()
    buffer = DataInStreamBuffer(qudi_main_weakref=None, name="fuzzed_logic_buffer", config={})
    buffer._streamer.connect(dummy)
    buffer.module_state.activate()
    return dummy, buffer


def make_logic(buffer: DataInStreamBuffer, options: dict, home) -> FuzzedLogic:
    logic = FuzzedLogic(qudi_main_weakref=None, name=f"fuzzed_logic_{next(_NAMES)}", config=options)
    logic.data_dir = str(home / "fuzz_data")
    logic._streamer.connect(buffer)
    return logic


def close_stream(dummy: InStreamDummy, buffer: DataInStreamBuffer) -> None:
    try:
        buffer.module_state.deactivate()
    finally:
        dummy.module_state.deactivate()


@st.composite
def logic_options(draw) -> dict:
    valid = {
        "max_frame_rate": draw(st.one_of(st.sampled_from([20, 30.0, 200]), st.floats(0.01, 200))),
        "channel_buffer_size": draw(st.sampled_from([2**16, 2**20, 100_000])),
        "max_raw_data_bytes": draw(st.sampled_from([1, 400_000, 1024**3, 2**62])),
        "max_trace_bytes": draw(st.sampled_from([1024**3, 10**6, 2**40])),
        "calc_digital_freq": draw(st.booleans()),
        "start_reading_on_activation": False,  # it would start from Qt's event loop
        "count_units": draw(st.sampled_from([["counts"], [], ["counts", "cts", "c"]])),
    }
    hostile = draw(st.sets(st.sampled_from(sorted(valid)), max_size=2))
    options = {key: draw(HOSTILE) if key in hostile else value for key, value in valid.items()}
    if options["start_reading_on_activation"] is True:
        options["start_reading_on_activation"] = False
    absent = draw(st.sets(st.sampled_from(sorted(valid)), max_size=2))  # defaults for these
    return {key: value for key, value in options.items() if key not in absent}


@settings(max_examples=60, deadline=None)
@given(logic_options())
def test_any_options_activate_or_are_refused_naming_the_option(qapp, qudi_home, options):
    dummy, buffer = make_stream()
    try:
        logic = make_logic(buffer, options, qudi_home)
        logic._load_status_variables()
        try:
            logic.on_activate()
        except ValueError as error:
            assert any(f"option '{key}' is " in str(error) for key in options), str(error)
            return
        logic.on_deactivate()
        logic.module_state.activate()  # as qudi does: the options known good, in its state
        try:
            assert logic.module_state() == "idle"
            logic.start_reading()
            assert logic.module_state() == "locked"
            logic.stop_reading()
            assert logic.module_state() == "idle"
        finally:
            logic.module_state.deactivate()
    finally:
        close_stream(dummy, buffer)


# ------------------------------------------------------------------------ public methods
@st.composite
def valid_settings(draw) -> dict:
    return {
        "oversampling_factor": draw(st.integers(1, 8)),
        "moving_average_width": draw(st.sampled_from([1, 3, 5, 9])),
        "trace_window_size": draw(st.floats(0.05, 5)),
        "data_rate": draw(st.sampled_from([100.0, 1000.0, 5000.0, 20.0])),
    }


@st.composite
def setting_changes(draw) -> dict:
    keys = draw(st.sets(st.sampled_from([*SETTING_KEYS, "bogus", ""]), max_size=4))
    valid = draw(valid_settings())
    changes = {}
    for key in keys:
        if key in valid and draw(st.booleans()):
            changes[key] = valid[key]
        else:
            changes[key] = draw(st.one_of(NUMBERS, HOSTILE))
    return changes


NAME_TAGS = st.one_of(
    st.sampled_from(["", "first try", "a/b", "../up", "nul\0here", "x" * 400, "ü ß 🙂", "CON"]),
    st.sampled_from([5, None, 1.5, ["a"], b"bytes", True]),
    st.text(max_size=20),
)


@st.composite
def calls(draw) -> tuple:
    name = draw(
        st.sampled_from(
            ["set_trace_settings", "set_trace_settings", "set_trace_kwargs", "set_channel_settings"]
            + ["start_reading", "stop_reading", "frames", "save_trace_snapshot"]
        )
    )
    if name == "set_trace_settings":
        return name, draw(st.one_of(setting_changes(), setting_changes(), HOSTILE))
    if name == "set_trace_kwargs":
        return name, draw(setting_changes().filter(lambda c: all(k.isidentifier() for k in c)))
    if name == "set_channel_settings":
        selection = st.lists(st.sampled_from([*CHANNELS, "bogus"]), max_size=5)
        return (
            name,
            draw(mostly(st.lists(st.sampled_from(CHANNELS), min_size=1, unique=True))),
            draw(mostly(selection)),
        )
    if name == "frames":
        return name, draw(st.floats(0, 0.03))
    if name == "save_trace_snapshot":
        return name, draw(NAME_TAGS)
    return (name,)


def state(logic: TimeSeriesReaderLogic) -> tuple:
    return logic.trace_settings, logic.channel_settings, logic.module_state()


def process_events(qapp, seconds: float) -> None:
    end = time.monotonic() + seconds
    while True:
        qapp.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 5)
        if time.monotonic() >= end:
            return
        time.sleep(0.002)


def call(qapp, logic: TimeSeriesReaderLogic, name: str, *args) -> None:
    if name == "set_trace_settings":
        logic.set_trace_settings(*args)
    elif name == "set_trace_kwargs":
        logic.set_trace_settings(**args[0])
    elif name == "set_channel_settings":
        logic.set_channel_settings(*args)
    elif name == "start_reading":
        logic.start_reading()
        assert logic.module_state() == "locked"
    elif name == "stop_reading":
        logic.stop_reading()
        assert logic.module_state() == "idle"
    elif name == "frames":
        process_events(qapp, *args)
    else:
        path = logic.save_trace_snapshot(name_tag=args[0], save_figure=False)
        assert os.path.isfile(path)
        assert os.path.dirname(path).startswith(logic.data_dir), path  # nowhere else


ARGUMENTS = {
    "set_trace_settings": (*SETTING_KEYS, "settings_dict", "trace setting", "recording"),
    "set_channel_settings": ("enabled", "averaged", "recording"),
    "save_trace_snapshot": ("name_tag",),
}
ARGUMENTS["set_trace_kwargs"] = ARGUMENTS["set_trace_settings"]


def check_refusal(name: str, args: tuple, error: Exception) -> None:
    message = str(error)
    assert message, f"{name}{args} raised {type(error).__name__} without a message"
    assert any(arg in message for arg in ARGUMENTS.get(name, ())), f"{name}{args}: {message}"


@settings(max_examples=40, deadline=None)
@given(st.lists(calls(), min_size=1, max_size=8))
def test_any_calls_work_or_are_refused_plainly_and_change_nothing(qapp, qudi_home, calls):
    dummy, buffer = make_stream()
    logic = make_logic(buffer, {"max_frame_rate": 100}, qudi_home)
    logic.module_state.activate()
    assert logic.module_state() == "idle"
    try:
        logic.set_channel_settings(CHANNELS, ["ramp"])
        logic.set_trace_settings(
            data_rate=1000.0, oversampling_factor=2, trace_window_size=1.0, moving_average_width=3
        )
        for name, *args in calls:
            before = state(logic)
            started = time.monotonic()
            try:
                call(qapp, logic, name, *args)
            except REFUSALS as error:
                check_refusal(name, tuple(args), error)
                assert state(logic) == before, f"{name}{args}: {error}"
            assert time.monotonic() - started < 5, f"{name}{args} took too long"
            settings_now = logic.trace_settings
            assert all(math.isfinite(settings_now[key]) for key in SETTING_KEYS), settings_now
        # still usable: the trace shows the ramp, oversampled
        logic.stop_reading()
        logic.set_channel_settings(["ramp"], [])
        logic.set_trace_settings(
            data_rate=1000.0, oversampling_factor=2, trace_window_size=1.0, moving_average_width=1
        )
        logic.start_reading()
        end = time.monotonic() + 10
        while len(logic.trace_data[0]) < 20 and time.monotonic() < end:
            process_events(qapp, 0.01)
        ramp = logic.trace_data[1]["ramp"]
        assert len(ramp) >= 20
        np.testing.assert_array_equal(np.diff(ramp), 2)  # the mean of 2 samples, every 2
        logic.stop_reading()
    finally:
        try:
            logic.module_state.deactivate()
        finally:
            close_stream(dummy, buffer)
    assert logic.module_state() == "deactivated"
