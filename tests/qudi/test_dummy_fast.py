"""InStreamDummy at the card's limits: int16 samples at up to 10 MS/s per channel, cheaply."""

from __future__ import annotations

import time

import numpy as np
import pytest

from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream.simulated import SimulatedSource, sawtooth_period, table_length


@pytest.fixture
def fast_dummy(activate, module_manager):
    """An int16 dummy with a sawtooth and a counting channel (registered here)."""
    if "fast_dummy" not in module_manager.module_names:
        module_manager.add_module(
            name="fast_dummy",
            base="hardware",
            configuration={
                "module.Class": "instream.dummy.InStreamDummy",
                "options": {
                    "channel_names": ["saw", "apd"],
                    "channel_units": ["", "counts"],
                    "channel_signals": ["sawtooth", "counts"],
                    "data_type": "int16",
                    "seed": 7,
                },
                "allow_remote": False,
            },
        )
    streamer = activate("fast_dummy")
    yield streamer
    streamer.stop_stream()
    module_manager.deactivate_module("fast_dummy")


def test_ten_megasamples_per_second_in_int16_arrive_whole(fast_dummy):
    assert fast_dummy.constraints.sample_rate.bounds[1] == 1e7
    fast_dummy.configure(["saw", "apd"], StreamingMode.CONTINUOUS, 2**23, 1e7)
    buffer = np.empty((2**21, 2), np.int16)
    chunks = []
    fast_dummy.start_stream()
    end = time.monotonic() + 0.4
    while time.monotonic() < end or not chunks:
        count = fast_dummy.read_available_data_into_buffer(buffer)
        chunks.append(buffer[:count].copy())
    fast_dummy.stop_stream()
    data = np.concatenate(chunks)
    assert len(data) > 1_000_000  # 0.4 s at 10 MS/s, read by a loaded machine too
    # the sawtooth counts samples modulo 32 768: not one lost, repeated or out of order
    saw = data[:, 0].astype(np.int64)
    assert saw[0] == 0 and saw.max() == sawtooth_period(np.int16) - 1 == 32_767
    assert np.all(np.diff(saw) % 32_768 == 1)
    # photon counts of a 50 kHz flux: 0.005 per sample on average
    assert data[:, 1].mean() == pytest.approx(50e3 / 1e7, rel=0.2)


def test_a_rate_above_ten_megahertz_is_refused(fast_dummy):
    with pytest.raises(ValueError, match="sample_rate"):
        fast_dummy.configure(["saw"], StreamingMode.CONTINUOUS, 2**20, 1.1e7)
    assert fast_dummy.sample_rate != 1.1e7


def test_noise_and_counts_repeat_a_seeded_table_and_computed_columns_do_not():
    source = SimulatedSource(
        ["noise", "counts", "sine", "ramp"],
        ["noise", "counts", "sine", "ramp"],
        sample_rate=2e6,
        seed=3,
    )
    length = table_length(2e6, 4, 8)
    assert length == 2**20  # half a second at 2 MS/s, rounded up to a power of two
    out = np.empty((length + 1000, 4))
    source.start_stream()
    source._generate(out, 0)
    np.testing.assert_array_equal(out[length:, :2], out[:1000, :2])  # repeated
    assert np.all(out[length:, 3] == np.arange(length, length + 1000))  # ramp: computed
    assert not np.array_equal(out[length:, 2], out[:1000, 2])  # 0.5 Hz sine: computed
    assert abs(out[:, 0].mean()) < 0.01 and out[:, 0].std() == pytest.approx(1, rel=0.01)
    again = SimulatedSource(["noise"], ["noise"], sample_rate=2e6, seed=3)
    again.start_stream()
    first = np.empty((100, 1))
    again._generate(first, 0)
    np.testing.assert_array_equal(first[:, 0], out[:100, 0])  # the seed decides


@pytest.mark.parametrize(
    ("data_type", "period"),
    [("int8", 128), ("uint8", 256), ("float16", 2048), ("int16", 32_768), ("float64", 32_768)],
)
def test_the_sawtooth_period_fits_the_type(data_type, period):
    assert sawtooth_period(data_type) == period
    source = SimulatedSource(["saw"], ["sawtooth"], sample_rate=1e6, data_type=data_type)
    source.start_stream()
    out = np.empty((3 * period, 1), data_type)
    source._generate(out, 5)
    expected = (np.arange(5, 5 + 3 * period) % period).astype(data_type)
    np.testing.assert_array_equal(out[:, 0], expected)


def test_tables_stay_small():
    assert table_length(50.0, 4, 8) == 2**15
    assert table_length(1e7, 8, 2) == 2**20
    assert table_length(1e7, 64, 8) == 2**17  # 64 MiB at most
    assert table_length(1e7, 10_000, 8) == 2**15  # never shorter
