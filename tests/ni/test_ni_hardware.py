"""On a lab PC with an NI X-series card: the checks to run the first time on a real card.

Skips itself without the NI-DAQmx driver or without a device. No wiring needed (leave PFI15
unconnected): counters count the card's own timebases, so every expected number is known.

- the counter clock of counters alone drives no pin (the driver's ``co_pulse_term`` reads
  empty, and PFI15, ctr3's default output on 63xx, can be counted next to it);
- the internal 100 kHz timebase reads 100 000 c/s on the counter clock and on the analog clock;
- the 20 MHz timebase counted at 30 kHz (100 MHz / 3333.3: the clock runs at 100 MHz / 3333)
  reads 20e6 c/s on average within 2e-5, which proves the counter clock's rate is exact;
- the terminal configuration in force: DEFAULT is DIFF on ai0 of every X-series card and RSE on
  ai8 of a multiplexed one, which also refuses DIFF on ai8;
- ``raw_analog``: the driver reports a 4-term polynomial per input whose gain fits its range
  (about 1/65536 of the span per code, ten times finer on +-1 V than on +-10 V), and int16 codes
  of ai0 and ai1 (unwired: whatever they float at) scale to volts inside their ranges;
- digital lines: the driver says port0's lines, and only those, can be sample-clocked (the
  X-series rule the module's messages state); ``port0/line0:3`` streams 0 and 1 only (unwired:
  the lines' pull-downs hold them low) on the analog clock and on the counter clock, with the
  100 kHz timebase counted beside them at 100 000 c/s; a line of port1 is refused.

Choose the card with ``NI_TEST_DEVICE=Dev2`` (default: the first device found).
``test_ni_hardware_on_fake.py`` runs this file against the fake card.
"""

from __future__ import annotations

import logging
import os

import nidaqmx.errors
import nidaqmx.system
import numpy as np
import pytest

from qudi.hardware.instream import ni_tasks
from qudi.interface.instream_interface import StreamingMode, StreamRequest
from qudi.util.instream.raw_scaling import scale_block


def _device() -> str | None:
    try:
        names = list(nidaqmx.system.System.local().devices.device_names)
    except nidaqmx.errors.Error:  # no driver (DaqNotFoundError) or a broken installation
        return None
    wanted = os.environ.get("NI_TEST_DEVICE")
    if wanted:
        return wanted if wanted in names else None
    return names[0] if names else None


DEVICE = _device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason="no NI-DAQmx driver or no NI device here")


@pytest.fixture
def make_streamer():
    from qudi.hardware.instream.ni_daq import NIXSeriesInStreamer

    made = []

    def make(**options):
        module = NIXSeriesInStreamer(
            qudi_main_weakref=None, name="ni_hw", config={"device_name": DEVICE, **options}
        )
        made.append(module)
        module.module_state.activate()
        assert module.module_state() == "idle", "activation failed (see the log)"
        return module

    yield make
    for module in made:
        module.module_state.deactivate()


def _stream(streamer, channels, rate, samples):
    streamer.configure(channels, StreamingMode.CONTINUOUS, max(100_000, 2 * samples), rate)
    streamer.start_stream()
    try:
        data = np.empty((samples, len(channels)))
        streamer.read_data_into_buffer(data, samples, timeout=10 + samples / rate)
    finally:
        streamer.stop_stream()
    return data


def test_the_counter_clock_drives_no_pin(make_streamer):
    device = ni_tasks.read_device(DEVICE)
    request = StreamRequest(("PFI8",), StreamingMode.CONTINUOUS, 1000, 1000.0)
    tasks = ni_tasks.Tasks("ni_hw_pin_check", device, request, ("PFI8",), {}, None, 10.0)
    try:
        print(f"counter clock on {tasks.clock_counter}, co_pulse_term={tasks.clock_output!r}")
        assert tasks.clock_output == ""
    finally:
        tasks.close()
    # PFI15 is ctr3's default output on 63xx: counting it next to the clock must work
    streamer = make_streamer(digital_sources=["PFI8", "PFI15"])
    data = _stream(streamer, ["PFI8", "PFI15"], 1000.0, 500)
    assert np.all(np.isfinite(data))


@pytest.mark.parametrize("analog_sources", [[], ["ai0"]], ids=["counter clock", "analog clock"])
def test_counting_the_internal_100khz_timebase(make_streamer, analog_sources):
    streamer = make_streamer(digital_sources=["100kHzTimebase"], analog_sources=analog_sources)
    data = _stream(streamer, ["100kHzTimebase", *analog_sources], 1000.0, 1000)
    counts = data[:, 0]
    # 100 timebase ticks per 1 ms period, give or take the one a period boundary may catch
    assert np.all(np.abs(counts - 100_000) <= streamer.sample_rate + 1), (
        counts.min(),
        counts.max(),
    )
    assert abs(counts.mean() - 100_000) < 100


def test_the_20mhz_timebase_at_30khz_reads_20e6_counts_per_second(make_streamer):
    streamer = make_streamer(digital_sources=["20MHzTimebase"])
    data = _stream(streamer, ["20MHzTimebase"], 30e3, 30_000)  # 1 s
    print(f"rate {streamer.sample_rate!r} Hz, mean {data[:, 0].mean()!r} c/s")
    assert streamer.sample_rate == 100e6 / 3333
    assert abs(data[:, 0].mean() / 20e6 - 1) < 2e-5


def test_the_terminal_configuration_in_force(make_streamer, caplog):
    device = ni_tasks.read_device(DEVICE)
    multiplexed = not device.ai_simultaneous
    inputs = ["ai0", "ai8"] if multiplexed and "ai8" in device.analog_inputs else ["ai0"]
    with caplog.at_level(logging.INFO):
        make_streamer(analog_sources=inputs)
    (line,) = [r.getMessage() for r in caplog.records if "configuration in force" in r.getMessage()]
    print(line)
    expected = "ai0 DIFF (DEFAULT)" + (", ai8 RSE (DEFAULT)" if len(inputs) == 2 else "")
    assert line.endswith(expected)
    if len(inputs) == 2:  # ai8 is ai0's negative input: it cannot be DIFF
        assert "DIFF" not in ni_tasks.supported_terminals(DEVICE, "ai8")
        from qudi.hardware.instream.ni_daq import NIXSeriesInStreamer

        refused = NIXSeriesInStreamer(
            qudi_main_weakref=None,
            name="ni_hw_refused",
            config={
                "device_name": DEVICE,
                "analog_sources": ["ai8"],
                "analog_channel_settings": {"ai8": {"terminal": "DIFF"}},
            },
        )
        with pytest.raises(ValueError, match="'analog_channel_settings.ai8.terminal' is 'DIFF'"):
            refused.on_activate()


def test_raw_codes_and_the_polynomials_the_driver_reports(make_streamer):
    streamer = make_streamer(
        analog_sources=["ai0", "ai1"],
        analog_channel_settings={"ai1": {"range": [-1, 1]}},
        raw_analog=True,
    )
    coefficients = streamer.scaling_coefficients
    print(f"scaling coefficients: {coefficients}")
    spans = {"ai0": 20.0, "ai1": 2.0}
    for name, terms in coefficients.items():
        assert len(terms) == 4 and all(np.isfinite(terms))
        per_code = spans[name] / 65536  # the range over 16 bits; cards add a few % overrange
        assert 0.9 * per_code < terms[1] < 1.25 * per_code, (name, terms)
    streamer.configure(["ai0", "ai1"], StreamingMode.CONTINUOUS, 100_000, 1000.0)
    streamer.start_stream()
    try:
        codes = np.empty((500, 2), np.int16)
        streamer.read_data_into_buffer(codes, 500, timeout=10.5)
    finally:
        streamer.stop_stream()
    volts = scale_block(codes, [coefficients["ai0"], coefficients["ai1"]])
    print(f"ai0 {volts[:, 0].min():.4f}..{volts[:, 0].max():.4f} V, ai1 {volts[:, 1].mean():.4f} V")
    assert np.all(np.abs(volts[:, 0]) <= 11.0) and np.all(np.abs(volts[:, 1]) <= 1.1)


def test_port0_and_only_port0_can_be_sample_clocked():
    device = ni_tasks.read_device(DEVICE)
    ports = sorted({line.split("/")[0] for line in device.di_lines})
    print(f"digital input ports {ports}, clocked lines {device.di_clocked}")
    assert device.di_clocked, "no digital line can be sample-clocked on this card"
    port0 = [line for line in device.di_lines if line.startswith("port0/")]
    assert list(device.di_clocked) == port0


@pytest.mark.parametrize("analog_sources", [[], ["ai0"]], ids=["counter clock", "analog clock"])
def test_digital_lines_stream_0_and_1_beside_a_counter(make_streamer, analog_sources):
    lines = ["port0/line0", "port0/line1", "port0/line2", "port0/line3"]
    streamer = make_streamer(
        digital_sources=["100kHzTimebase"],
        analog_sources=analog_sources,
        digital_lines="port0/line0:3",
    )
    channels = ["100kHzTimebase", *analog_sources, *lines]
    assert streamer.stream_extra["digital_channels"] == lines
    data = _stream(streamer, channels, 1000.0, 1000)
    states = data[:, -len(lines) :]
    print(f"lines high in {np.count_nonzero(states, axis=0)} of {len(states)} samples")
    assert set(np.unique(states)) <= {0.0, 1.0}
    assert abs(data[:, 0].mean() - 100_000) < 100


def test_a_line_that_cannot_be_clocked_is_refused():
    device = ni_tasks.read_device(DEVICE)
    unclocked = [line for line in device.di_lines if line not in device.di_clocked]
    if not unclocked:
        pytest.skip(f"every digital line of {DEVICE} can be clocked")
    from qudi.hardware.instream.ni_daq import NIXSeriesInStreamer

    refused = NIXSeriesInStreamer(
        qudi_main_weakref=None,
        name="ni_hw_refused_line",
        config={"device_name": DEVICE, "digital_lines": unclocked[0]},
    )
    with pytest.raises(ValueError, match="'digital_lines'.*cannot be sample-clocked"):
        refused.on_activate()
