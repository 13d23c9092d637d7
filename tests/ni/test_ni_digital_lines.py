"""Clocked digital input lines on the NI streamer (option ``digital_lines``), on the fake card.

Line ``L`` of the fake reads bit ``L % 16`` of the sample clock edge number, so after the
reference edge is dropped output sample ``j`` holds bit ``L`` of ``j + 1`` (see ``ramps``):
any sample lost, repeated or shifted against the analog and counter ramps shows.
"""

from __future__ import annotations

import nidaqmx
import numpy as np
import pytest
from fake_daqmx import NOT_SUPPORTED_VALUE, OVERFLOW
from nidaqmx.constants import AcquisitionType, LineGrouping, OverwriteMode, TaskMode
from nidaqmx.errors import DaqError
from ramps import assert_ramps, read_all, started

from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream.errors import StreamFaultError

LINES = ["port0/line0", "port0/line1", "port0/line2", "port0/line3"]
ALL = ["PFI8", "PFI9", "ai0", "ai1", *LINES]


def _di(fake):
    return fake.task("di")


@pytest.mark.parametrize("as_bit", [True, False])
def test_lines_share_the_analog_clock_and_arrive_aligned_as_0_and_1(make_streamer, fake, as_bit):
    fake.card.line_value_as_bit = as_bit  # where the driver puts a line's bit must not matter
    streamer = make_streamer(digital_lines="Dev1/port0/line0:3")
    assert streamer.active_channels == ALL
    assert streamer.constraints.channel_units == {
        "PFI8": "c/s",
        "PFI9": "c/s",
        "ai0": "V",
        "ai1": "V",
        **{line: "" for line in LINES},
    }
    streamer.start_stream()
    di = _di(fake)
    assert [c["physical"] for c in di.channels] == LINES
    assert [c["name"] for c in di.channels] == LINES
    assert {c["grouping"] for c in di.channels} == {LineGrouping.CHAN_PER_LINE.value}
    assert di.source == "/Dev1/ai/SampleClock" and di.rate == fake.task("ai").rate
    assert di.overwrite == OverwriteMode.DO_NOT_OVERWRITE_UNREAD_SAMPLES.value
    assert started(fake)[-1] == "ai" and started(fake).index("di") < started(fake).index("ai")
    fake.advance(0.4)
    data = read_all(streamer)
    assert_ramps(data, ALL, 50.0, at_least=20)
    assert set(np.unique(data[:, 4:])) == {0.0, 1.0}


def test_lines_in_the_order_given_and_a_subset_of_them(make_streamer, fake):
    streamer = make_streamer(digital_lines=["port0/line7", "port0/line2:1"])
    lines = ["port0/line7", "port0/line2", "port0/line1"]
    assert streamer.active_channels[-3:] == lines
    channels = ["port0/line1", "ai1", "port0/line7"]
    streamer.configure(channels, StreamingMode.CONTINUOUS, 10_000, 1000.0)
    assert streamer.stream_extra == {"digital_channels": ["port0/line1", "port0/line7"]}
    streamer.start_stream()
    assert [c["physical"] for c in _di(fake).channels] == ["port0/line1", "port0/line7"]
    fake.advance(0.3)
    assert_ramps(read_all(streamer), channels, 1000.0, at_least=300)
    streamer.stop_stream()
    streamer.configure(["PFI8", "ai0"], StreamingMode.CONTINUOUS, 10_000, 1000.0)
    assert streamer.stream_extra == {}  # no line streams: none declared
    assert not [t for t in fake.open_tasks() if t.kind == "di"]


def test_lines_alone_are_clocked_by_a_spare_counter_driving_no_pin(make_streamer, fake):
    streamer = make_streamer(digital_sources=[], analog_sources=[], digital_lines="port0/line0:1")
    streamer.configure(LINES[:2], StreamingMode.CONTINUOUS, 5000, 2000.0)
    streamer.start_stream()
    assert fake.task("co").channels[0]["physical"] == "ctr3"
    assert _di(fake).source == "/Dev1/Ctr3InternalOutput"
    assert started(fake) == ["di", "clock"]
    assert fake.driven_pins() == set()
    fake.advance(0.5)
    assert_ramps(read_all(streamer), LINES[:2], 2000.0, at_least=1000)


def test_lines_and_counters_alone_on_the_counter_clock(make_streamer, fake):
    streamer = make_streamer(analog_sources=[], digital_lines="port0/line0:3")
    channels = ["PFI9", "port0/line3", "PFI8", "port0/line0"]
    streamer.configure(channels, StreamingMode.CONTINUOUS, 5000, 1000.0)
    streamer.start_stream()
    sources = {t.source for t in fake.open_tasks() if t.kind in ("ci", "di")}
    assert sources == {"/Dev1/Ctr3InternalOutput"} and started(fake)[-1] == "clock"
    fake.advance(0.5)
    assert_ramps(read_all(streamer), channels, 1000.0, at_least=500)


@pytest.mark.parametrize("counters", [["PFI8", "PFI9"], []])
def test_on_an_external_clock_the_line_task_clocks_the_counters(
    make_streamer, fake, card, counters
):
    """Without analog inputs the digital task takes the external clock and is read: the
    counters latch on its edges (``di/SampleClock``), so all start on the same edge."""
    card.external_clocks["PFI11"] = 10e3
    streamer = make_streamer(
        digital_sources=counters,
        analog_sources=[],
        digital_lines="port0/line0:3",
        external_sample_clock_source="PFI11",
        external_sample_clock_frequency=10e3,
    )
    fake.advance(0.123)  # the external clock runs before the start
    streamer.start_stream()
    di = _di(fake)
    assert [c["physical"] for c in di.channels] == LINES and di.source == "/Dev1/PFI11"
    assert di.overwrite == OverwriteMode.DO_NOT_OVERWRITE_UNREAD_SAMPLES.value
    assert {t.source for t in fake.open_tasks() if t.kind == "ci"} <= {"/Dev1/di/SampleClock"}
    assert started(fake)[-1] == "di"  # the clocked counters first
    assert len([t for t in fake.open_tasks() if t.kind == "di"]) == 1  # reused, not a second
    fake.advance(0.05)
    data = read_all(streamer)
    assert len(data) >= 400
    step = np.arange(1, len(data) + 1)
    for column, name in enumerate(counters):  # counted from the start, one period each
        np.testing.assert_array_equal(data[:, column], (step + int(name[3:])) * 10e3)
    # the lines read the external clock's edges since it began (before the start)
    edge = round(0.123 * 10e3) + 1 + step
    for bit in range(len(LINES)):
        np.testing.assert_array_equal(data[:, len(counters) + bit], (edge >> bit) & 1)


def test_an_overflow_of_the_line_task_stops_the_stream(make_streamer, fake):
    streamer = make_streamer(digital_lines="port0/line0")
    streamer.start_stream()
    fake.advance(0.1)
    fake.fail_next_read("di", OVERFLOW)
    out = np.empty((streamer.available_samples, len(streamer.active_channels)))
    with pytest.raises(StreamFaultError, match="200279"):
        streamer.read_available_data_into_buffer(out)
    assert streamer.module_state() == "idle" and not fake.open_tasks()


def test_finite_acquisition_with_lines_ends_by_itself(make_streamer, fake):
    streamer = make_streamer(digital_lines="port0/line0:3")
    streamer.configure(ALL, StreamingMode.FINITE, 300, 1000.0)
    streamer.start_stream()
    assert _di(fake).mode == AcquisitionType.FINITE.value and _di(fake).samples == 301
    fake.advance(1.0)
    data = np.empty((300, len(ALL)))
    streamer.read_data_into_buffer(data, 300, timeout=1.0)
    assert_ramps(data, ALL, 1000.0, at_least=300)
    assert streamer.module_state() == "idle"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("port1/line0", r"\['port1/line0'\] cannot be sample-clocked.*port0/line0:31"),
        (["port0/line30:33"], r"Dev1 has no \['port0/line32', 'port0/line33'\]"),
        ("Dev2/port0/line0", r"'Dev2/port0/line0' names no lines of Dev1.*port0/line0:31"),
        ("PFI3", "'PFI3' names no lines of Dev1"),
        ("port0/line1, port0/line0:2", r"\['port0/line1'\] named twice"),
        (5, "use a string such as 'port0/line0:3'"),
    ],
)
def test_bad_lines_fail_activation_naming_key_value_and_valid_lines(
    make_streamer, fake, value, message
):
    streamer = make_streamer(activate=False, digital_lines=value)
    with pytest.raises(ValueError, match=message) as raised:
        streamer.on_activate()
    assert f"'digital_lines' is {value!r}" in str(raised.value)
    assert not fake.open_tasks()


def test_a_card_with_another_clocked_port_takes_its_lines(make_streamer, fake, card):
    card.clocked_ports = (0, 1)  # the driver says so per line: the module asks it
    streamer = make_streamer(digital_lines="port1/line6:7")
    streamer.start_stream()
    fake.advance(0.2)
    assert_ramps(read_all(streamer), [*ALL[:4], "port1/line6", "port1/line7"], 50.0, 10)


def test_raw_analog_with_lines_is_refused_naming_both(make_streamer, fake):
    streamer = make_streamer(
        activate=False, digital_sources=[], digital_lines="port0/line0", raw_analog=True
    )
    with pytest.raises(ValueError, match="'raw_analog' is True.*digital_lines"):
        streamer.on_activate()
    assert not fake.open_tasks()


def test_the_fake_refuses_to_clock_a_line_off_port0_as_the_driver_does(fake):
    with nidaqmx.Task("probe") as task:
        task.di_channels.add_di_chan("Dev1/port2/line0")
        task.timing.cfg_samp_clk_timing(1000.0, source="/Dev1/ai/SampleClock")
        with pytest.raises(DaqError) as raised:
            task.control(TaskMode.TASK_VERIFY)
    assert raised.value.error_code == NOT_SUPPORTED_VALUE
    device = nidaqmx.system.Device("Dev1")
    lines = device.di_lines.channel_names
    assert len(lines) == 48 and lines[0] == "Dev1/port0/line0" and lines[-1] == "Dev1/port2/line7"
    clocked = [nidaqmx.system.PhysicalChannel(n).di_samp_clk_supported for n in lines]
    assert clocked == [True] * 32 + [False] * 16


def test_a_second_streamer_of_lines_finds_the_digital_inputs_in_use(make_streamer, fake):
    """A card has one timing engine for clocked digital input: the second start is refused
    (-50103), the first streams on."""
    first = make_streamer(digital_sources=[], analog_sources=["ai0"], digital_lines="port0/line0")
    second = make_streamer(digital_sources=[], analog_sources=[], digital_lines="port0/line1")
    first.start_stream()
    with pytest.raises(RuntimeError, match="clocked digital inputs are reserved") as raised:
        second.start_stream()
    assert raised.value.__cause__.error_code == -50103
    assert second.module_state() == "idle" and first.module_state() == "locked"
    fake.advance(0.2)
    assert_ramps(read_all(first), ["ai0", "port0/line0"], 50.0, at_least=10)


def test_a_card_without_digital_inputs_streams_the_rest_and_refuses_lines(make_streamer, card):
    card.di_ports = ()
    assert make_streamer().active_channels == ALL[:4]
    streamer = make_streamer(activate=False, digital_lines="port0/line0")
    with pytest.raises(ValueError, match=r"Dev1 has no \['port0/line0'\].*clocked: none"):
        streamer.on_activate()


def test_an_inactive_streamer_declares_nothing(make_streamer):
    assert make_streamer(activate=False, digital_lines="port0/line0").stream_extra == {}
