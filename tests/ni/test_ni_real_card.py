"""Where a real 63xx card differs from a naive fake, and the streamer's answer to each (issue 20).

Each test makes the fake card behave like the driver in one respect (``fake_daqmx``) and checks
that the streamer copes: no pin driven by the counter clock, an exact counter-clock rate,
terminal configurations the channel supports, aligned counters on an external clock, honest
rate limits, errors named for a scientist, and the driver's reservation rules.
"""

from __future__ import annotations

import nidaqmx
import numpy as np
import pytest
from nidaqmx.constants import TaskMode
from nidaqmx.errors import DaqWarning
from ramps import assert_ramps, read_all, started

from qudi.hardware.instream import ni_tasks
from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream.errors import StreamFaultError

COUNTERS_ONLY = {"digital_sources": ["PFI8", "PFI15"], "analog_sources": []}


# --------------------------------------------------------------------------- driven pins
def test_the_counter_clock_drives_no_pin(make_streamer, fake):
    """On 63xx ctr3's pulse train appears on PFI15 unless told otherwise: counting PFI15 next
    to it would fight over the pin (the fake refuses that route at the start)."""
    streamer = make_streamer(**COUNTERS_ONLY)
    streamer.start_stream()
    assert fake.task("co").channels[0]["physical"] == "ctr3"
    assert fake.driven_pins() == set()
    fake.advance(0.1)
    assert_ramps(read_all(streamer), ["PFI8", "PFI15"], 50.0, at_least=5)


def test_the_counter_clock_goes_where_the_config_says(make_streamer, fake):
    streamer = make_streamer(
        digital_sources=["PFI8"], analog_sources=[], clock_output_terminal="pfi14"
    )
    streamer.start_stream()
    assert fake.driven_pins() == {"PFI14"}
    streamer.stop_stream()
    assert fake.driven_pins() == set()
    streamer.configure(["PFI8"], StreamingMode.CONTINUOUS, 1000, 1000.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"digital_sources": ["PFI8", "PFI14"], "clock_output_terminal": "PFI14"},
            r"'digital_sources' is \['PFI8', 'PFI14'\]: PFI14 carries the counter clock",
        ),
        (
            {
                "clock_output_terminal": "PFI11",
                "external_sample_clock_source": "PFI11",
                "external_sample_clock_frequency": 1e3,
            },
            "'external_sample_clock_source' is 'PFI11': PFI11 carries the counter clock",
        ),
        ({"clock_output_terminal": "PFI99"}, r"'clock_output_terminal' is 'PFI99'.*'PFI0'"),
        ({"clock_output_terminal": 15}, r"'clock_output_terminal' is 15: use a PFI line"),
    ],
)
def test_a_source_on_the_clock_pin_is_refused(make_streamer, fake, options, message):
    streamer = make_streamer(activate=False, **{"analog_sources": [], **options})
    with pytest.raises(ValueError, match=message):
        streamer.on_activate()
    assert not fake.open_tasks()


# ------------------------------------------------------------------ counter-clock rate
def test_counts_per_second_of_counters_alone_are_exact(make_streamer, fake):
    """30 kHz is 100 MHz / 3333.3: the clock runs at 100 MHz / 3333, and the 20 MHz timebase
    must still read 20e6 c/s (the hardware test's check). The driver's co_pulse_freq may
    return the requested 30 kHz, so the rate has to come from the clock's own ticks."""
    streamer = make_streamer(digital_sources=["20MHzTimebase"], analog_sources=[])
    streamer.configure(["20MHzTimebase"], StreamingMode.CONTINUOUS, 100_000, 30e3)
    assert streamer.sample_rate == 100e6 / 3333
    streamer.start_stream()
    fake.advance(1.0)
    counts = read_all(streamer)[:, 0]
    assert len(counts) > 29_000
    assert abs(counts.mean() / 20e6 - 1) < 2e-5
    assert set(np.round(counts / streamer.sample_rate, 6)) == {666.0, 667.0}  # ticks of each period


def test_counters_alone_are_limited_to_a_clock_the_card_can_make(make_streamer, fake):
    """A pulse needs 2 timebase ticks high and 2 low: 25 MHz from 100 MHz at most, and the
    streamer caps counters at COUNTER_RATE_LIMIT for the bus."""
    streamer = make_streamer(**COUNTERS_ONLY)
    low, high = streamer.constraints.sample_rate.bounds
    assert (low, high) == (100e6 / 2**32, min(25e6, ni_tasks.COUNTER_RATE_LIMIT))
    with pytest.raises(ValueError, match="sample_rate=50000000.0 Hz is outside"):
        streamer.configure(["PFI8"], StreamingMode.CONTINUOUS, 1000, 50e6)
    streamer.configure(["PFI8"], StreamingMode.CONTINUOUS, 1000, high)
    assert streamer.sample_rate == high


# ------------------------------------------------------------------ terminal configurations
@pytest.mark.parametrize(
    ("simultaneous", "name", "terminal", "valid"),
    [
        (False, "ai8", "DIFF", "['RSE', 'NRSE']"),  # ai8-15 are the negative inputs of ai0-7
        (True, "ai1", "RSE", "['DIFF']"),  # 6366/6368: differential only
    ],
)
def test_a_terminal_configuration_the_channel_lacks_is_refused_by_name(
    make_streamer, fake, card, simultaneous, name, terminal, valid
):
    card.simultaneous = simultaneous
    streamer = make_streamer(
        activate=False,
        analog_sources=["ai0", name],
        analog_channel_settings={name: {"terminal": terminal}},
    )
    with pytest.raises(ValueError, match="supports") as raised:
        streamer.on_activate()
    assert str(raised.value) == (
        f"option 'analog_channel_settings.{name}.terminal' is '{terminal}': {name} of Dev1 "
        f"(PCIe-6363) supports {valid}, or DEFAULT (what the card chooses)"
    )
    assert not fake.open_tasks()


def test_the_terminal_configuration_in_force_is_logged(make_streamer, fake, caplog):
    """DEFAULT is DIFF on ai0-7 of a 63xx, RSE on ai8-15: the log says which one is in force."""
    with caplog.at_level("INFO"):
        make_streamer(
            analog_sources=["ai0", "ai8", "ai1"],
            analog_channel_settings={"ai1": {"terminal": "NRSE"}},
        )
    (line,) = [r.getMessage() for r in caplog.records if "terminal configuration" in r.getMessage()]
    assert line.endswith(
        "terminal configuration in force: ai0 DIFF (DEFAULT), ai8 RSE (DEFAULT), ai1 NRSE"
    )


# --------------------------------------------------------------------------- rate limits
def test_an_analog_rate_over_the_limit_is_refused_by_the_module_not_the_driver(make_streamer, fake):
    """The driver only warns (200011) and acquires with too little settling time."""
    streamer = make_streamer()
    with pytest.raises(ValueError, match=r"outside .* 500000.0 Hz.*2 analog inputs"):
        streamer.configure(["ai0", "ai1"], StreamingMode.CONTINUOUS, 1000, 6e5)
    with pytest.warns(DaqWarning, match="200011"):  # the premise: the fake only warns
        with nidaqmx.Task("over_the_limit") as task:
            task.ai_channels.add_ai_voltage_chan("Dev1/ai0")
            task.ai_channels.add_ai_voltage_chan("Dev1/ai1")
            task.timing.cfg_samp_clk_timing(6e5)
            task.control(TaskMode.TASK_VERIFY)


def test_an_external_clock_faster_than_the_inputs_allow_is_refused(make_streamer, fake, card):
    """The frequency is DAQmx's "maximum expected rate": a multiplexed card's convert clock is
    derived from it, so it must be within the card's limit for every input streamed."""
    card.external_clocks["PFI11"] = 8e5
    streamer = make_streamer(
        activate=False,
        external_sample_clock_source="PFI11",
        external_sample_clock_frequency=8e5,
    )
    with pytest.raises(ValueError) as raised:
        streamer.on_activate()
    assert str(raised.value) == (
        "option 'external_sample_clock_frequency' is 800000.0: Dev1 samples 2 analog inputs "
        "at up to 500000.0 Hz; give the clock's highest frequency, within that"
    )
    assert not fake.open_tasks()
    streamer = make_streamer(
        analog_sources=["ai0"],
        external_sample_clock_source="PFI11",
        external_sample_clock_frequency=8e5,
    )
    assert streamer.sample_rate == 8e5


# ---------------------------------------------------------------------- reserved counters
@pytest.mark.parametrize(
    ("options", "reserved", "expected"),
    [
        ({}, {"ctr0"}, {"PFI8": "ctr1", "PFI9": "ctr2"}),
        (COUNTERS_ONLY, {"ctr4", "ctr1"}, {"PFI8": "ctr0", "PFI15": "ctr2", "clock": "ctr3"}),
    ],
    ids=["analog clock", "counter clock"],
)
def test_counters_another_program_holds_are_passed_over(
    make_streamer, fake, card, options, reserved, expected
):
    """TASK_VERIFY reserves nothing (-50103 comes at the start): the streamer reserves each
    counter while building and takes the next free one."""
    card.counters = 5
    fake.reserved |= reserved
    streamer = make_streamer(**options)
    streamer.start_stream()
    got = {t.name.rsplit("_", 1)[1]: t.channels[0]["physical"] for t in fake.open_tasks()}
    assert {k: v for k, v in got.items() if k != "ai"} == expected
    fake.advance(0.1)
    assert_ramps(read_all(streamer), streamer.active_channels, 50.0, at_least=5)


def test_a_counter_taken_after_configure_is_passed_over_at_the_next_start(make_streamer, fake):
    streamer = make_streamer()
    fake.reserved.add("ctr1")
    with pytest.raises(RuntimeError, match="in use by another task or program"):
        streamer.start_stream()
    streamer.start_stream()  # built afresh: PFI9 moves to ctr2
    assert sorted(t.channels[0]["physical"] for t in fake.open_tasks() if t.kind == "ci") == [
        "ctr0",
        "ctr2",
    ]


# ------------------------------------------------------------------------ errors by name
@pytest.mark.parametrize(
    ("code", "says"),
    [
        (-200361, "the card's memory overflowed.*a larger buffer does not help"),
        (-200010, "the card's memory overflowed.*a larger buffer does not help"),
        (-200141, "a counter's samples were overwritten.*a larger buffer does not help"),
        (-200019, "faster than external_sample_clock_frequency says"),
        (-50405, "NI card Dev1 is gone.*reconnect it"),
    ],
)
def test_card_failures_are_named_for_a_scientist(make_streamer, fake, code, says):
    streamer = make_streamer()
    streamer.start_stream()
    fake.advance(0.1)
    fake.fail_next_read("PFI9", code)
    with pytest.raises(StreamFaultError, match=says) as raised:
        read_all(streamer)
    assert str(raised.value).endswith(f"(DAQmx error {code})")
    assert raised.value.__cause__.error_code == code
    assert streamer.module_state() == "idle" and not fake.open_tasks()


def test_after_an_unplug_the_stream_stops_and_the_next_start_says_the_card_is_gone(
    make_streamer, fake
):
    """Reads fail with -50405; stopping and clearing the tasks fail too (-201003)."""
    streamer = make_streamer()
    streamer.start_stream()
    fake.advance(0.1)
    fake.unplug()
    with pytest.raises(StreamFaultError, match="NI card Dev1 is gone"):
        read_all(streamer)
    assert streamer.module_state() == "idle" and not fake.open_tasks()
    with pytest.raises(RuntimeError) as raised:
        streamer.start_stream()
    assert str(raised.value) == (
        "NI card Dev1 is gone (unplugged, switched off or reset): reconnect it, then start the "
        "stream again (DAQmx error -201003)"
    )
    assert streamer.module_state() == "idle" and not fake.open_tasks()
    fake.plug_in()
    streamer.start_stream()
    fake.advance(0.1)
    assert_ramps(read_all(streamer), streamer.active_channels, 50.0, at_least=5)


def test_stop_stream_survives_a_card_that_cannot_stop(make_streamer, fake, caplog):
    streamer = make_streamer()
    streamer.start_stream()
    fake.unplug()
    with caplog.at_level("WARNING"):
        streamer.stop_stream()  # stop and clear raise -201003: the stream is stopped anyway
    assert streamer.module_state() == "idle" and not fake.open_tasks()
    assert any("NI card Dev1 is gone" in r.getMessage() for r in caplog.records)
    assert streamer.read_available_data_into_buffer(np.empty((10, 4))) == 0
    fake.plug_in()
    streamer.start_stream()
    assert streamer.module_state() == "locked"


def test_a_card_unplugged_while_idle_says_so_at_the_start(make_streamer, fake):
    streamer = make_streamer()  # its tasks are built: closing them fails too
    fake.unplug()
    with pytest.raises(RuntimeError, match=r"^NI card Dev1 is gone .*\(DAQmx error -201003\)$"):
        streamer.start_stream()
    with pytest.raises(RuntimeError, match="NI card Dev1 is gone"):
        streamer.configure(["ai0"], StreamingMode.CONTINUOUS, 100, 100.0)
    assert streamer.module_state() == "idle" and not fake.open_tasks()
    fake.plug_in()
    streamer.configure(["ai0"], StreamingMode.CONTINUOUS, 100, 100.0)
    assert streamer.active_channels == ["ai0"]


# ------------------------------------------------------------ counters on an external clock
def test_counters_alone_on_an_external_clock_count_the_same_periods(make_streamer, fake, card):
    """Started one after the other, each counter would take the external clock's next edge as
    its first: at 500 kHz the 10 µs between starts are 5 periods. A digital-input task on
    that clock, started last, makes the edges the counters latch on."""
    card.external_clocks["PFI11"] = 5e5
    streamer = make_streamer(
        **COUNTERS_ONLY, external_sample_clock_source="PFI11", external_sample_clock_frequency=5e5
    )
    streamer.configure(["PFI8", "PFI15"], StreamingMode.CONTINUOUS, 10_000, 5e5)
    streamer.start_stream()
    fake.advance(0.01)
    assert_ramps(read_all(streamer), ["PFI8", "PFI15"], 5e5, at_least=4000)
    assert started(fake)[-1] == "di"
    assert fake.task("di").channels[0]["physical"] == "port0/line0"
    streamer.stop_stream()
    streamer.configure(["PFI8"], StreamingMode.FINITE, 100, 5e5)
    streamer.start_stream()
    fake.advance(0.01)
    assert_ramps(read_all(streamer), ["PFI8"], 5e5, at_least=100)
    assert streamer.module_state() == "idle"  # the FINITE run ended after its 100 samples


def test_a_finite_run_stopped_early_warns_in_the_driver_and_stops(make_streamer, fake):
    """DAQmx warns (200010) when a FINITE task stops before its last sample; that is the
    user's stop, not a failure: the module stops and starts again as usual."""
    streamer = make_streamer()
    streamer.configure(["PFI8", "ai0"], StreamingMode.FINITE, 1000, 1000.0)
    streamer.start_stream()
    fake.advance(0.1)
    with pytest.warns(DaqWarning, match="200010"):
        streamer.stop_stream()
    assert streamer.module_state() == "idle" and len(fake.open_tasks()) == 2
    streamer.start_stream()
    fake.advance(0.2)
    assert_ramps(read_all(streamer), ["PFI8", "ai0"], 1000.0, at_least=200)


def test_activation_of_an_unplugged_card_says_it_is_gone(make_streamer, fake):
    fake.unplug()
    streamer = make_streamer(activate=False)
    with pytest.raises(RuntimeError, match=r"^NI card Dev1 is gone .*\(DAQmx error -201003\)$"):
        streamer.on_activate()
    assert not fake.open_tasks()
