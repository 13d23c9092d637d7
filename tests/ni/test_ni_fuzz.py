"""Hypothesis fuzz of the NI streamer on the fake card: any options, any calls (issue 21).

Options: each is valid or hostile; activation either works or raises a ``ValueError`` that
names the option, and leaves no task open. Calls: random sequences of every public method
with valid and hostile arguments, with time passing on the card in between; each call works
or raises a refusal with a message, and every sample read continues the fake card's ramps
(``fake_daqmx``): nothing refused is consumed, nothing is read twice or out of order.
"""

from __future__ import annotations

import contextlib
import warnings

import nidaqmx.errors
import nidaqmx.utils
import numpy as np
import pytest
from fake_daqmx import FakeDaqmx, SimulatedCard
from hypothesis import given, settings
from hypothesis import strategies as st
from ramps import line_states
from tests.fuzzing import HOSTILE, mostly, waits_briefly_if_valid

from qudi.hardware.instream.ni_daq import NIXSeriesInStreamer
from qudi.util.instream.errors import StreamError

REFUSALS = (TypeError, ValueError, RuntimeError, TimeoutError, StreamError)
CHANNELS = ["PFI8", "PFI9", "ai0", "ai1", "port0/line0", "port0/line1"]


_FAKES: list[FakeDaqmx] = []  # building one (an autospec of the interpreter) takes 0.3 s


@contextlib.contextmanager
def fake_card():
    """A fresh fake card behind nidaqmx's seam; no task may be left open or unclosed.

    One fake interpreter serves every example, reset to a new card and a new clock."""
    if not _FAKES:
        _FAKES.append(FakeDaqmx(SimulatedCard()))
    fake = _FAKES[0]
    fake.card, fake.now = SimulatedCard(), 0.0
    fake.tasks.clear()
    fake.starts.clear()
    fake.interpreter.reset_mock()  # forget the calls; the card's behaviour stays
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", nidaqmx.errors.DaqResourceWarning)
        patch.setattr(nidaqmx.utils, "_select_interpreter", fake.select_interpreter)
        yield fake
    assert not fake.open_tasks(), [t.name for t in fake.open_tasks()]
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


@st.composite
def ni_options(draw) -> dict:
    analog = draw(st.lists(st.sampled_from(["ai0", "AI1", "Dev1/ai2", "ai40"]), max_size=3))
    digital = draw(st.lists(st.sampled_from(["PFI8", "pfi9", "/Dev1/PFI10", "PFI99"]), max_size=3))
    clock = draw(st.sampled_from([None, None, "PFI11", "PFI8"]))
    options = {
        "device_name": draw(st.sampled_from(["Dev1", "/Dev1/", "Dev2", ""])),
        "digital_sources": digital,
        "analog_sources": analog,
        "external_sample_clock_source": clock,
        "external_sample_clock_frequency": draw(
            st.sampled_from([None, 20e3, 1e3]) if clock is None else st.sampled_from([20e3, 0])
        ),
        "adc_voltage_range": draw(st.sampled_from([[-10, 10], [-1, 1], [-20, 20], [1, -1]])),
        "analog_channel_settings": draw(
            st.sampled_from(
                [
                    {},
                    {"ai0": {"range": [-2, 2], "terminal": "DIFF"}},
                    {"ai7": {}},
                    {"ai2": {"terminal": "PSEUDO_DIFF"}},  # a 63xx has no PSEUDO_DIFF
                ]
            )
        ),
        "max_channel_samples_buffer": draw(st.sampled_from([2**25, 4096, 1, 2**40])),
        "read_write_timeout": draw(st.sampled_from([10, 0.5, 0, -1])),
        "publish_address": draw(st.sampled_from(["tcp://127.0.0.1:*", "tcp://127.0.0.1:70000"])),
        "clock_output_terminal": draw(st.sampled_from([None, None, "PFI14", "pfi8", "PFI99"])),
        "raw_analog": draw(st.sampled_from([False, False, True])),
        "digital_lines": draw(
            st.sampled_from(
                [[], [], "port0/line0:1", ["Dev1/port0/line3"], "port1/line0", "port0/line40"]
            )
        ),
    }
    hostile = draw(st.sets(st.sampled_from(sorted(options)), max_size=2))
    return {key: draw(HOSTILE) if key in hostile else value for key, value in options.items()}


@settings(max_examples=100, deadline=None)
@given(ni_options())
def test_any_options_activate_or_are_refused_naming_the_option(options):
    with fake_card() as fake:
        card_clock = options["external_sample_clock_source"]
        if isinstance(card_clock, str):
            fake.card.external_clocks[card_clock.rsplit("/", 1)[-1].upper()] = 20e3
        streamer = NIXSeriesInStreamer(qudi_main_weakref=None, name="ni", config=options)
        try:
            streamer.on_activate()
        except ValueError as error:
            message = str(error)
            assert any(f"option '{key}" in message for key in options) or (
                "refused the settings" in message
            ), message
            return
        try:
            channels = streamer.active_channels
            assert channels == list(streamer.constraints.channel_units)
            dtype = streamer.constraints.data_type  # int16 with raw_analog
            assert (
                streamer.read_available_data_into_buffer(np.empty((4, len(channels)), dtype)) == 0
            )
            assert (dtype is np.int16) == (options["raw_analog"] is True)
            assert bool(streamer.scaling_coefficients) == (options["raw_analog"] is True)
            lines = [c for c in channels if c.startswith("port0/")]
            assert streamer.stream_extra.get("digital_channels", []) == lines
            assert all(streamer.constraints.channel_units[c] == "" for c in lines)
        finally:
            streamer.on_deactivate()


# ------------------------------------------------------------------------ public methods
@st.composite
def calls(draw) -> tuple:
    name = draw(
        st.sampled_from(
            ["configure", "start_stream", "stop_stream", "advance", "read_available"]
            + ["read_into", "read_data", "read_single_point", "available_samples"]
        )
    )
    if name == "configure":
        return (
            name,
            draw(mostly(st.lists(st.sampled_from(CHANNELS), min_size=1, unique=True))),
            draw(mostly(st.sampled_from([0, 1, "FINITE", "continuous"]))),
            draw(mostly(st.integers(2, 5000))),
            draw(mostly(st.sampled_from([1000.0, 10_000.0, 100e3, 1e6, 0.01, 3e6]))),
        )
    if name == "advance":
        return name, draw(st.floats(0, 0.5))
    if name == "read_available":
        return name, draw(st.integers(0, 2000)), draw(st.sampled_from(["ok", "ok", "bad"]))
    if name == "read_into":
        size = draw(st.integers(0, 2000))
        count = draw(mostly(st.integers(0, size)))
        return name, size, count, draw(mostly(st.floats(0, 0.01)).filter(waits_briefly_if_valid))
    if name == "read_data":  # a valid count would wait for the card's clock: only refusals
        return name, draw(st.one_of(st.none(), st.integers(max_value=-1), HOSTILE))
    return (name,)


class RampTracker:
    """Checks that every sample read continues the fake card's ramps of the current run."""

    def __init__(self):
        self.next = 0

    def check(self, streamer: NIXSeriesInStreamer, rows: np.ndarray) -> None:
        channels = streamer.active_channels
        index = np.arange(self.next, self.next + len(rows), dtype=np.float64) + 1
        rate = streamer.sample_rate
        for column, channel in enumerate(channels):
            if channel.startswith("port"):
                np.testing.assert_array_equal(rows[:, column], line_states(channel, index))
                continue
            line = {"PFI8": 8, "PFI9": 9, "ai0": 0.0, "ai1": 0.125}[channel]
            scale = rate if channel.startswith("PFI") else 1.0
            np.testing.assert_array_equal(rows[:, column], (index + line) * scale)
        self.next += len(rows)


def call(streamer, fake, ramp: RampTracker, name: str, *args) -> None:
    channels = len(streamer.active_channels)
    if name == "configure":
        before = (streamer.active_channels, streamer.sample_rate, streamer.channel_buffer_size)
        try:
            streamer.configure(*args)
        except REFUSALS:
            after = (streamer.active_channels, streamer.sample_rate, streamer.channel_buffer_size)
            assert after == before  # a refused configure changes nothing
            raise
        ramp.next = 0
    elif name == "start_stream":
        was_streaming = streamer.module_state() == "locked"
        streamer.start_stream()
        if not was_streaming:
            ramp.next = 0
    elif name == "stop_stream":
        streamer.stop_stream()
    elif name == "advance":
        fake.advance(*args)
    elif name == "read_available":
        size, kind = args
        data = np.empty((size, channels) if kind == "ok" else (size, channels + 1))
        ramp.check(streamer, data[: streamer.read_available_data_into_buffer(data)])
    elif name == "read_into":
        size, count, timeout = args
        data = np.empty((size, channels))
        streamer.read_data_into_buffer(data, count, timeout=timeout)
        ramp.check(streamer, data[:count])
    elif name == "read_data":
        data, _ = streamer.read_data(*args)
        ramp.check(streamer, data)
    elif name == "read_single_point":
        sample, stamp = streamer.read_single_point()
        assert sample.shape == (channels,) and stamp is None
    else:
        assert streamer.available_samples >= 0


@settings(max_examples=100, deadline=None)
@given(st.lists(calls(), min_size=1, max_size=10))
def test_any_calls_work_or_are_refused_plainly_and_consume_nothing(calls):
    with fake_card() as fake:
        streamer = NIXSeriesInStreamer(
            qudi_main_weakref=None,
            name="ni",
            config={
                "digital_sources": ["PFI8", "PFI9"],
                "analog_sources": ["ai0", "ai1"],
                "digital_lines": "port0/line0:1",
            },
        )
        streamer.module_state.activate()
        assert streamer.module_state() == "idle"
        ramp = RampTracker()
        try:
            for name, *args in calls:
                try:
                    call(streamer, fake, ramp, name, *args)
                except REFUSALS as error:
                    assert str(error), f"{name}{args}: {type(error).__name__} without a message"
        finally:
            streamer.stop_stream()
            streamer.module_state.deactivate()
