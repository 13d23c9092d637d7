"""Raw mode of the NI streamer on the fake card: int16 codes, each input's polynomial, volts.

The fake card reports a calibration polynomial per input and range (``ai_dev_scaling_coeff``)
and gives each input the int16 code whose polynomial value is nearest its voltage; here the
inputs carry sines within their ranges (``card.analog_signal``), so codes and volts can be
compared over the whole range.
"""

from __future__ import annotations

import threading
import time

import h5py
import numpy as np
import pytest

from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream.hub import StreamHub
from qudi.util.instream.raw_scaling import read_volts, scale_block, scaling_of
from qudi.util.instream.recorder import StreamRecorder

RAW = {
    "digital_sources": [],
    "analog_sources": ["ai0", "ai1", "ai5"],
    "analog_channel_settings": {"ai1": {"range": [-1, 1]}},
    "raw_analog": True,
}
AMPLITUDE = {0: 9.5, 1: 0.95, 5: 9.0}  # V, inside each input's range


def sines(edges, ai):
    return AMPLITUDE[ai] * np.sin(2 * np.pi * edges / 97.0 + ai)


@pytest.fixture
def sine_card(card):
    card.analog_signal = sines
    return card


def read_samples(streamer, fake, count, dtype):
    streamer.configure(streamer.active_channels, StreamingMode.CONTINUOUS, 4 * count, 1000.0)
    streamer.start_stream()
    fake.advance((count + 1) / 1000.0)
    out = np.empty((count, len(streamer.active_channels)), dtype)
    streamer.read_data_into_buffer(out, count, timeout=0)
    streamer.stop_stream()
    return out


def test_raw_streams_int16_codes_with_the_polynomial_of_each_input(make_streamer, fake, sine_card):
    streamer = make_streamer(**RAW)
    constraints = streamer.constraints
    assert constraints.data_type is np.int16
    assert constraints.channel_units == {"ai0": "code", "ai1": "code", "ai5": "code"}
    coefficients = streamer.scaling_coefficients
    assert list(coefficients) == ["ai0", "ai1", "ai5"]
    for name, terms in coefficients.items():  # what the driver reports, for the range in force
        low, high = (-1, 1) if name == "ai1" else (-10, 10)
        assert terms == list(sine_card.scaling(int(name[2:]), low, high))
        assert len(terms) == 4
    assert len({tuple(t) for t in coefficients.values()}) == 3  # each input its own
    assert coefficients["ai1"][1] < coefficients["ai0"][1] / 5  # a smaller range: finer codes
    assert streamer.stream_extra == {"raw_scaling": {"unit": "V", "coefficients": coefficients}}

    raw = read_samples(streamer, fake, 2000, np.int16)
    assert raw.dtype == np.int16 and raw.min() < -25_000 and raw.max() > 25_000  # full range
    np.testing.assert_array_equal(streamer.read_single_point()[0], raw[-1])
    volts = scale_block(raw, list(coefficients.values()))
    # the same card, scaled by the driver: the scaled codes agree to within a code
    scaled = make_streamer(**{**RAW, "raw_analog": False})
    streamer.module_state.deactivate()
    assert scaled.constraints.data_type is np.float64 and scaled.scaling_coefficients == {}
    assert scaled.stream_extra == {}
    reference = read_samples(scaled, fake, 2000, np.float64)
    one_code = np.array([terms[1] for terms in coefficients.values()])
    assert np.all(np.abs(volts - reference) <= one_code)
    assert np.abs(volts - reference).max() > 0  # quantised: not the same numbers by chance


def test_a_wrong_buffer_dtype_is_refused_naming_the_stream_dtype(make_streamer, fake, sine_card):
    streamer = make_streamer(**RAW)
    streamer.start_stream()
    fake.advance(1.5)  # 75 samples at the default 50 Hz
    with pytest.raises(TypeError, match="int16"):
        streamer.read_available_data_into_buffer(np.empty((10, 3)))
    assert streamer.available_samples >= 50  # nothing consumed
    streamer.stop_stream()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({**RAW, "raw_analog": "yes"}, "option 'raw_analog' is 'yes'.*true or false"),
        ({**RAW, "digital_sources": ["PFI8"]}, "raw_analog.*digital_sources \\['PFI8'\\]"),
        ({**RAW, "raw_analog": 1}, "option 'raw_analog' is 1.*true or false"),
    ],
)
def test_bad_raw_options_are_refused_by_name(make_streamer, fake, options, message):
    streamer = make_streamer(activate=False, **options)
    with pytest.raises(ValueError, match=message):
        streamer.on_activate()
    assert not fake.open_tasks()  # a refused activation leaves nothing behind


def test_a_raw_recording_keeps_codes_and_says_how_to_scale_them(
    make_streamer, fake, sine_card, tmp_path
):
    streamer = make_streamer(**RAW)
    streamer.configure(streamer.active_channels, StreamingMode.CONTINUOUS, 20_000, 10_000.0)
    stop = threading.Event()

    def run_the_card():  # the fake card's clock, in real time
        last = time.monotonic()
        while not stop.wait(0.002):
            now = time.monotonic()
            fake.advance(now - last)
            last = now

    clock = threading.Thread(target=run_the_card, daemon=True)
    clock.start()
    path = tmp_path / "raw.h5"
    try:
        with StreamHub(streamer, name="ni_raw_hub", shared=False) as hub:
            assert scaling_of(hub.ring.info.extra, streamer.active_channels) == [
                tuple(t) for t in streamer.scaling_coefficients.values()
            ]
            reader = hub.open_reader("recorder")
            reader.start()
            with StreamRecorder(reader, path) as recorder:
                deadline = time.monotonic() + 20
                while recorder.samples_written < 5000 and time.monotonic() < deadline:
                    time.sleep(0.01)
            reader.stop()
    finally:
        stop.set()
        clock.join(5)
    assert recorder.summary().samples >= 5000
    with h5py.File(path, "r") as file:
        data = file["data"]
        assert data.dtype == np.int16  # a quarter of float64's bytes
        raw = data[: file.attrs["samples_recorded"]]
        attrs = dict(data.attrs)
    expected = np.array(list(streamer.scaling_coefficients.values()))
    np.testing.assert_array_equal(attrs["scaling_coefficients"], expected)
    assert attrs["scaling_unit"] == "V"
    assert "raw ADC codes" in attrs["scaling_note"] and "read_volts" in attrs["scaling_note"]
    volts = read_volts(path)
    np.testing.assert_array_equal(volts, scale_block(raw, [tuple(t) for t in expected]))
    # the recording starts at the stream's first sample: edge 1 (the reference edge dropped)
    edges = np.arange(1, len(volts) + 1)
    truth = np.stack([sines(edges, ai) for ai in (0, 1, 5)], axis=1)
    assert np.all(np.abs(volts - truth) <= expected[:, 1])
