"""NIXSeriesInStreamer on the fake card: tasks, clocks, reads, errors and cleanup.

The fake card's data are ramps (see ``fake_daqmx``): after the reference edge is dropped,
output sample ``j`` holds ``j + 1 + N/8`` V for ``aiN`` and ``(j + 1 + L) * rate`` c/s for
``PFIL``, so every check below proves order, alignment and completeness sample by sample.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fake_daqmx import AVAIL, OVERFLOW, TIMEOUT
from nidaqmx.constants import AcquisitionType, OverwriteMode, TerminalConfiguration
from nidaqmx.errors import DaqError, DaqReadError
from ramps import CHANNELS, assert_ramps, expected, read_all, started

from qudi.hardware.instream import ni_tasks
from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream.errors import StreamFaultError, StreamStoppedError, StreamTimeoutError


# ---------------------------------------------------------------------------- constraints
def test_constraints_come_from_the_card(make_streamer, card):
    card.ai_max_single_rate, card.ai_max_multi_rate = 1.25e6, 1e6
    streamer = make_streamer(max_channel_samples_buffer=4096)
    constraints = streamer.constraints
    assert constraints.channel_units == {"PFI8": "c/s", "PFI9": "c/s", "ai0": "V", "ai1": "V"}
    assert constraints.sample_rate.bounds == (card.ai_min_rate, 1.25e6)
    assert constraints.channel_buffer_size.bounds == (2, 4096)
    assert constraints.data_type is np.float64
    assert streamer.active_channels == CHANNELS  # all channels at activation


def test_counter_only_rate_limits_come_from_the_counter_timebase(make_streamer, card):
    streamer = make_streamer(analog_sources=[])
    assert streamer.constraints.sample_rate.bounds == (100e6 / 2**32, 10e6)


@pytest.mark.parametrize("simultaneous", [False, True])
def test_the_rate_limit_depends_on_how_many_analog_inputs_stream(make_streamer, card, simultaneous):
    card.simultaneous = simultaneous
    streamer = make_streamer()
    streamer.configure(["ai0"], StreamingMode.CONTINUOUS, 1000, 1.5e6)  # single channel: 2 MS/s
    if simultaneous:
        streamer.configure(["ai0", "ai1"], StreamingMode.CONTINUOUS, 1000, 1e6)
    else:
        with pytest.raises(ValueError, match="500000.0 Hz.*2 analog inputs"):
            streamer.configure(["ai0", "ai1"], StreamingMode.CONTINUOUS, 1000, 6e5)
        assert streamer.active_channels == ["ai0"]  # a refused change changes nothing


def test_unknown_channels_are_named_with_the_valid_ones(make_streamer):
    streamer = make_streamer()
    with pytest.raises(ValueError, match=r"unknown: \['ai5'\]") as raised:
        streamer.configure(["ai0", "ai5"], StreamingMode.CONTINUOUS, 1000, 1000.0)
    assert str(CHANNELS) in str(raised.value)


def test_too_few_counters_for_pfi_lines_and_their_clock(make_streamer, card):
    card.counters = 2
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 1000, 1000.0)  # ai clocks them
    with pytest.raises(ValueError, match="need 3 counters"):
        streamer.configure(["PFI8", "PFI9"], StreamingMode.CONTINUOUS, 1000, 1000.0)


# ------------------------------------------------------------------------------- tasks
def test_tasks_share_the_analog_clock_and_start_before_it(make_streamer, fake):
    streamer = make_streamer(
        analog_channel_settings={"ai1": {"range": [-1, 1], "terminal": "diff"}},
        adc_voltage_range=[-5, 5],
    )
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 5000, 1000.0)
    streamer.start_stream()
    ai, counters = fake.task("ai"), [t for t in fake.open_tasks() if t.kind == "ci"]
    assert [c["physical"] for c in ai.channels] == ["ai0", "ai1"]
    assert [c["range"] for c in ai.channels] == [(-5.0, 5.0), (-1.0, 1.0)]
    assert [c["terminal"] for c in ai.channels] == [
        TerminalConfiguration.DEFAULT.value,
        TerminalConfiguration.DIFF.value,
    ]
    assert ai.source == "" and ai.mode == AcquisitionType.CONTINUOUS.value
    assert [c.channels[0]["term"] for c in counters] == ["/Dev1/PFI8", "/Dev1/PFI9"]
    assert [c.channels[0]["physical"] for c in counters] == ["ctr0", "ctr1"]
    for task in [ai, *counters]:
        assert task.buffer_size == 5001  # the buffer asked for, plus the reference edge
        assert task.overwrite == OverwriteMode.DO_NOT_OVERWRITE_UNREAD_SAMPLES.value
    assert {c.source for c in counters} == {"/Dev1/ai/SampleClock"}
    assert {c.rate for c in counters} == {ai.rate}
    assert started(fake) == ["PFI8", "PFI9", "ai"]  # the clock starts last
    assert streamer.module_state() == "locked"


def test_counters_alone_are_clocked_by_a_spare_counter(make_streamer, fake):
    streamer = make_streamer(analog_sources=[])
    streamer.configure(["PFI9", "PFI8"], StreamingMode.CONTINUOUS, 5000, 1000.0)
    streamer.start_stream()
    clock = fake.task("co")
    assert clock.channels[0]["physical"] == "ctr3"
    counters = [t for t in fake.open_tasks() if t.kind == "ci"]
    assert {c.source for c in counters} == {"/Dev1/Ctr3InternalOutput"}
    assert started(fake)[-1] == "clock"
    fake.advance(0.5)
    assert_ramps(read_all(streamer), ["PFI9", "PFI8"], 1000.0, at_least=500)


def test_external_clock_clocks_every_task_at_its_configured_frequency(make_streamer, fake, card):
    card.external_clocks["PFI11"] = 20e3
    streamer = make_streamer(
        external_sample_clock_source="/Dev1/PFI11", external_sample_clock_frequency=20e3
    )
    assert streamer.sample_rate == 20e3
    with pytest.raises(ValueError, match="external sample clock runs at 20000.0 Hz"):
        streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 1000, 10e3)
    streamer.start_stream()
    ai = fake.task("ai")
    assert ai.source == "/Dev1/PFI11" and ai.rate == 20e3
    # the counters count on the analog task's clock, so they see exactly its edges
    assert {t.source for t in fake.open_tasks() if t.kind == "ci"} == {"/Dev1/ai/SampleClock"}
    assert started(fake)[-1] == "ai"
    fake.advance(0.01)
    data = read_all(streamer)
    assert len(data) > 150
    # the fake's analog ramp counts the external clock's edges since it began, before the
    # start; the counters count from the start: both step by one per sample, together
    step = np.arange(1, len(data) + 1)
    np.testing.assert_array_equal(data[:, 2], data[0, 2] - 1 + step)
    np.testing.assert_array_equal(data[:, 3], data[:, 2] + 0.125)
    np.testing.assert_array_equal(data[:, 0], (step + 8) * 20e3)
    np.testing.assert_array_equal(data[:, 1], (step + 9) * 20e3)


# ------------------------------------------------------------------------------- reads
def test_samples_are_aligned_complete_and_in_active_channel_order(make_streamer, fake):
    channels = ["ai1", "PFI9", "ai0", "PFI8"]
    streamer = make_streamer()
    streamer.configure(channels, StreamingMode.CONTINUOUS, 200_000, 10_000.0)
    streamer.start_stream()
    chunks = []
    for seconds in (0.0101, 1.0, 13.0, 0.37):  # 13 s: several driver reads; counters wrap
        fake.advance(seconds)
        chunks.append(read_all(streamer))
    data = np.concatenate(chunks)
    assert len(data) > 140_000  # past 92 682 samples the 32-bit photon count wraps around
    np.testing.assert_array_equal(data, expected(channels, 0, len(data), 10_000.0))


def test_the_alignment_check_catches_a_clock_started_first(make_streamer, fake, monkeypatch):
    """The fake is honest: starting the clock before the counters shows in the data."""

    def clock_first(tasks):
        for task in [tasks.clock_task, *(t for t in tasks._all if t is not tasks.clock_task)]:
            task.start()
        tasks.running = True

    monkeypatch.setattr(ni_tasks.Tasks, "start", clock_first)
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 5000, 1000.0)
    streamer.start_stream()
    fake.advance(0.1)
    data = read_all(streamer)
    assert not np.array_equal(data, expected(CHANNELS, 0, len(data), 1000.0))


def test_counts_per_second_use_the_rate_the_driver_set(make_streamer, fake):
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 10_000, 300e3)
    coerced = 100e6 / 333  # the card divides its 100 MHz timebase by an integer
    assert streamer.sample_rate == coerced != 300e3
    streamer.start_stream()
    fake.advance(0.001)
    data = read_all(streamer)
    np.testing.assert_array_equal(data, expected(CHANNELS, 0, len(data), coerced))


@pytest.mark.parametrize("rate", [1000.0, 10_000.0])
def test_a_counting_channel_is_a_rate_whatever_the_sample_rate(make_streamer, fake, rate):
    """The card's 100 kHz timebase, counted without wiring, reads 100 000 c/s at any rate."""
    streamer = make_streamer(digital_sources=["100kHzTimebase", "PFI8"], analog_sources=["ai0"])
    assert streamer.constraints.channel_units["100kHzTimebase"] == "c/s"
    streamer.configure(["100kHzTimebase", "ai0"], StreamingMode.CONTINUOUS, 10_000, rate)
    assert streamer.sample_rate == rate
    streamer.start_stream()
    fake.advance(0.5)
    data = read_all(streamer)
    assert len(data) >= rate / 2
    np.testing.assert_array_equal(data[:, 0], 100e3)
    np.testing.assert_array_equal(data[:, 1], np.arange(1, len(data) + 1))  # ai0's ramp


def test_blocking_read_waits_for_its_samples_and_a_timeout_consumes_nothing(make_streamer, fake):
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 5000, 1000.0)
    streamer.start_stream()
    fake.advance(0.1)
    out = np.empty(4 * 300)
    with pytest.raises(StreamTimeoutError, match="nothing was consumed"):
        streamer.read_data_into_buffer(out, 300, timeout=0.05)
    fake.advance(0.2)
    streamer.read_data_into_buffer(out, 300, timeout=0.05)
    np.testing.assert_array_equal(out.reshape(-1, 4), expected(CHANNELS, 0, 300, 1000.0))


def test_stop_ends_a_blocking_read(make_streamer, fake):
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 5000, 1000.0)
    streamer.start_stream()
    outcome = []

    def read():
        try:
            streamer.read_data_into_buffer(np.empty(4 * 1000), 1000, timeout=30)
        except Exception as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, name="ni-test-reader")
    reader.start()
    streamer.stop_stream()
    reader.join(5)
    assert not reader.is_alive()
    assert isinstance(outcome[0], StreamStoppedError)


def test_read_single_point_is_the_newest_sample_read(make_streamer, fake):
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 5000, 1000.0)
    streamer.start_stream()
    assert np.isnan(streamer.read_single_point()[0]).all()
    fake.advance(0.05)
    data = read_all(streamer)
    point, stamp = streamer.read_single_point()
    np.testing.assert_array_equal(point, data[-1])
    assert stamp is None


def test_finite_acquisition_ends_by_itself(make_streamer, fake):
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.FINITE, 500, 1000.0)
    assert fake.task("ai").mode == AcquisitionType.FINITE.value
    assert fake.task("ai").samples == 501
    streamer.start_stream()
    fake.advance(2.0)  # far more than 500 periods: the card stops after 501 edges
    assert streamer.available_samples == 500
    out = np.empty((500, 4))
    streamer.read_data_into_buffer(out, 500)
    np.testing.assert_array_equal(out, expected(CHANNELS, 0, 500, 1000.0))
    assert streamer.module_state() == "idle" and streamer.available_samples == 0
    with pytest.raises(StreamStoppedError):
        streamer.read_data_into_buffer(out, 1)
    streamer.start_stream()  # a new run acquires afresh
    fake.advance(0.1)
    assert_ramps(read_all(streamer), CHANNELS, 1000.0, at_least=100)


def test_configure_while_streaming_is_refused(make_streamer):
    streamer = make_streamer()
    streamer.start_stream()
    with pytest.raises(RuntimeError, match="stop it first"):
        streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 1000, 1000.0)


# ------------------------------------------------------------------------------ errors
def test_overflow_stops_the_stream_and_never_returns_stale_data(make_streamer, fake):
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 1000, 1000.0)
    streamer.start_stream()
    fake.advance(1.5)  # 1500 samples due, the buffer holds 1001: the card stopped
    out = np.empty((1000, 4))
    with pytest.raises(StreamFaultError, match="overflowed") as raised:
        streamer.read_available_data_into_buffer(out)
    cause = raised.value.__cause__
    assert isinstance(cause, DaqReadError) and cause.error_code == OVERFLOW
    assert streamer.module_state() == "idle"
    assert not fake.open_tasks()  # every task stopped and closed
    assert streamer.read_available_data_into_buffer(out) == 0
    streamer.start_stream()  # starts afresh with new tasks
    fake.advance(0.2)
    assert_ramps(read_all(streamer), CHANNELS, 1000.0, at_least=200)


def test_two_streamers_of_the_same_name_in_one_process_both_stream(make_streamer, fake):
    """DAQmx refuses a second task of the same name (-200089): a notebook may hold two."""
    first = make_streamer(digital_sources=["PFI8"], analog_sources=[])
    second = make_streamer(digital_sources=["PFI9"], analog_sources=[])
    assert first.module_name == second.module_name == "ni"
    for streamer, line in ((first, "PFI8"), (second, "PFI9")):  # one card: one at a time
        streamer.start_stream()
        fake.advance(0.1)
        assert_ramps(read_all(streamer), [line], 50.0, at_least=5)
        streamer.stop_stream()


def test_a_driver_timeout_stops_the_stream(make_streamer, fake):
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 1000, 1000.0)
    streamer.start_stream()
    fake.advance(0.1)
    fake.fail_next_read("PFI9", TIMEOUT)
    with pytest.raises(StreamFaultError, match="timed out") as raised:
        streamer.read_available_data_into_buffer(np.empty((100, 4)))
    assert raised.value.__cause__.error_code == TIMEOUT
    assert streamer.module_state() == "idle" and not fake.open_tasks()


@pytest.mark.parametrize("resource", ["ai", "ctr1"])
def test_a_reserved_resource_fails_the_start_and_closes_every_task(make_streamer, fake, resource):
    streamer = make_streamer()
    fake.reserved.add(resource)
    with pytest.raises(RuntimeError, match="in use by another task or program") as raised:
        streamer.start_stream()
    assert raised.value.__cause__.error_code == -50103
    assert streamer.module_state() == "idle" and not fake.open_tasks()
    fake.reserved.clear()
    streamer.start_stream()
    fake.advance(0.05)
    assert_ramps(read_all(streamer), CHANNELS, 50.0, at_least=2)


@pytest.mark.parametrize(
    "call", ["create_ci_count_edges_chan", "cfg_samp_clk_timing", "task_control"]
)
def test_a_driver_error_while_building_tasks_closes_all_of_them(make_streamer, fake, call):
    streamer = make_streamer()
    method = getattr(fake.interpreter, call)
    working = method.side_effect
    method.side_effect = DaqError("Requested value is not a supported value.", -200077)
    with pytest.raises(ValueError, match="refused the settings.*-200077"):
        streamer.configure(["PFI8", "ai0"], StreamingMode.CONTINUOUS, 1000, 1000.0)
    assert not fake.open_tasks()
    method.side_effect = working
    streamer.start_stream()  # the settings in force before are built again
    assert streamer.active_channels == CHANNELS
    assert len(fake.open_tasks()) == 3


def test_activation_failure_leaves_no_task_open(make_streamer, fake):
    fake.interpreter.start_task.side_effect = AssertionError("never started at activation")
    fake.interpreter.task_control.side_effect = DaqError("Simulated.", -200077)
    streamer = make_streamer(activate=False)
    with pytest.raises(ValueError, match="refused"):
        streamer.on_activate()
    assert not fake.open_tasks()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device_name": "Dev7"}, r"'device_name' is 'Dev7'.*present: \['Dev1'\]"),
        ({"digital_sources": ["PFI8", "PFI99"]}, r"'digital_sources'.*unknown: \['PFI99'\]"),
        ({"digital_sources": "PFI8"}, "'digital_sources' is 'PFI8': use a list"),
        ({"analog_sources": ["ai0", "ai40"]}, r"unknown: \['ai40'\].*'ai31'"),
        ({"analog_sources": [], "digital_sources": []}, "at least one analog or digital"),
        ({"adc_voltage_range": [-20, 20]}, r"'adc_voltage_range' is \[-20, 20\].*-10.0 to 10.0"),
        (
            {"analog_channel_settings": {"ai0": {"terminal": "SE"}}},
            r"'analog_channel_settings.ai0.terminal' is 'SE'.*'RSE'",
        ),
        ({"analog_channel_settings": {"ai7": {}}}, r"\['ai7'\] are not in analog_sources"),
        ({"external_sample_clock_source": "PFI11"}, "'external_sample_clock_frequency' is None"),
        ({"external_sample_clock_source": "PFI8"}, "also one of the digital_sources"),
        ({"external_sample_clock_frequency": 1e3}, "only meaningful with"),
        ({"read_write_timeout": 0}, "'read_write_timeout' is 0"),
        ({"max_channel_samples_buffer": 1.5}, "'max_channel_samples_buffer' is 1.5"),
        ({"read_write_timeout": float("inf")}, "'read_write_timeout' is inf: use a number"),
        (
            {"external_sample_clock_source": "PFI11", "external_sample_clock_frequency": 1e400},
            "'external_sample_clock_frequency' is inf: give the external clock's frequency",
        ),
        (
            {"publish_address": "tcp://127.0.0.1:99999"},
            "'publish_address' is 'tcp://127.0.0.1:99999': port 99999 does not exist",
        ),
        ({"publish_address": "tcp://192.0.2.1:*"}, "'192.0.2.1' is not an address of this host"),
    ],
)
def test_bad_options_fail_activation_naming_key_value_and_what_is_valid(
    make_streamer, fake, options, message
):
    streamer = make_streamer(activate=False, **options)
    with pytest.raises(ValueError, match=message):
        streamer.on_activate()
    assert not fake.open_tasks()


def test_too_many_pfi_lines_for_the_counters_fail_activation(make_streamer, card):
    card.counters = 2
    streamer = make_streamer(activate=False, analog_sources=[])
    with pytest.raises(ValueError, match="has 2 counters"):
        streamer.on_activate()


def test_an_error_on_asking_for_available_samples_stops_the_stream(make_streamer, fake):
    """A card may report the overflow when asked how many samples it holds."""
    streamer = make_streamer()
    streamer.start_stream()
    working = fake.interpreter.get_read_attribute_uint32.side_effect

    def overflowed(task, attribute):
        if attribute == AVAIL:
            raise DaqError("The application is not able to keep up.", OVERFLOW)
        return working(task, attribute)

    fake.interpreter.get_read_attribute_uint32.side_effect = overflowed
    with pytest.raises(StreamFaultError, match="overflowed"):
        streamer.available_samples  # noqa: B018 - the property asks the card
    assert streamer.module_state() == "idle" and not fake.open_tasks()


def test_a_stopped_stream_starts_again_from_a_fresh_reference(make_streamer, fake):
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 5000, 1000.0)
    streamer.start_stream()
    fake.advance(0.3)
    assert_ramps(read_all(streamer), CHANNELS, 1000.0, at_least=300)
    fake.advance(0.1)  # these samples are discarded by the stop
    streamer.stop_stream()
    assert streamer.module_state() == "idle" and streamer.available_samples == 0
    streamer.start_stream()  # the counters restart at 0 and the first edge is a reference
    fake.advance(0.2)
    assert_ramps(read_all(streamer), CHANNELS, 1000.0, at_least=200)


def test_a_read_of_no_samples_returns_at_once_streaming_or_not(make_streamer, fake):
    """Found by the fuzz (test_ni_fuzz.py): it raised IndexError while streaming."""
    streamer = make_streamer()
    out = np.empty((10, 4))
    streamer.read_data_into_buffer(out, 0)  # not streaming: nothing to wait for
    streamer.start_stream()
    fake.advance(0.1)
    streamer.read_data_into_buffer(out, 0, timeout=0)
    assert_ramps(read_all(streamer), CHANNELS, 50.0, at_least=5)  # nothing was consumed


def test_a_read_timeout_is_checked_like_everywhere_else(make_streamer, fake):
    streamer = make_streamer()
    streamer.start_stream()
    for timeout, error in ((float("inf"), ValueError), ("1", TypeError), (-1, ValueError)):
        with pytest.raises(error, match="timeout must be a number of seconds >= 0 or None"):
            streamer.read_data_into_buffer(np.empty((10, 4)), 1, timeout=timeout)


def test_bad_read_buffers_are_refused_before_anything_is_read(make_streamer, fake):
    streamer = make_streamer()
    streamer.configure(CHANNELS, StreamingMode.CONTINUOUS, 5000, 1000.0)
    streamer.start_stream()
    fake.advance(0.1)
    with pytest.raises(TypeError, match="data_buffer has dtype float32"):
        streamer.read_available_data_into_buffer(np.empty((10, 4), np.float32))
    with pytest.raises(ValueError, match="data_buffer must be C-contiguous"):
        streamer.read_available_data_into_buffer(np.empty((10, 8))[:, ::2])
    with pytest.raises(ValueError, match="no timestamps"):
        streamer.read_available_data_into_buffer(np.empty((10, 4)), np.empty(10))
    with pytest.raises(ValueError, match="more than the buffer size"):
        streamer.read_data_into_buffer(np.empty((6000, 4)), 5001)
    assert_ramps(read_all(streamer), CHANNELS, 1000.0, at_least=100)  # nothing was consumed
    streamer.stop_stream()
    with pytest.raises(TypeError, match="active_channels must be a list"):
        streamer.configure("ai0", StreamingMode.CONTINUOUS, 10, 1.0)


def test_the_stream_declares_the_clock_that_ticks_its_samples(make_streamer, fake, card):
    """An external clock is the stream's declared sample clock (docs/time.md), so streams on
    the same clock are aligned without fitting a drift; without one the card's own ticks."""
    from qudi.util.instream.hub import StreamHub
    from qudi.util.instream.timebase import SampleClock

    card.external_clocks["PFI11"] = 20e3
    clocked = make_streamer(
        external_sample_clock_source="PFI11", external_sample_clock_frequency=20e3
    )
    assert clocked.sample_clock == {
        "kind": "external",
        "source": "/Dev1/PFI11",
        "tick_rate": 20e3,
    }
    with StreamHub(clocked, name="ni_clocked") as hub:
        declared = hub.ring.info.sample_clock
    assert declared.kind == "external" and declared.source == "/Dev1/PFI11"
    assert declared.shares_clock_with(SampleClock.from_description(clocked.sample_clock))
    assert make_streamer().sample_clock == {"kind": "internal"}
