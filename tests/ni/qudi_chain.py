"""The NI streamer on the fake card in a real in-process qudi: streamer -> two buffers -> two
time-series logics, with every sample accounted for; a raw streamer (int16 codes) whose
recording says how to scale them; and a streamer of clocked digital lines, declared digital
through the buffer to the logic, recorded and shown as 0 and 1 in step with the other channels.

Run by ``test_ni_in_qudi.py`` in a pytest process of its own: qudi is one application per
process, and the suite's other qudi tests start theirs from another config. The fixtures are
those of ``tests/qudi/conftest.py``, pointed at ``ni_test.cfg``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tests.qudi.conftest as qudi_fixtures

from qudi.util.instream.raw_scaling import read_volts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ramps import expected as ramps  # noqa: E402

# qudi's fixtures for this module, with qudi started from our config
qudi_fixtures.CONFIG = Path(__file__).resolve().with_name("ni_test.cfg")
qudi_home = qudi_fixtures.qudi_home
qudi = qudi_fixtures.qudi
module_manager = qudi_fixtures.module_manager
activate = qudi_fixtures.activate
fail_on_qudi_errors = qudi_fixtures.fail_on_qudi_errors

CHANNELS = ["PFI8", "PFI9", "ai0", "ai1"]
RATE = 1000.0


def expected(count: int) -> np.ndarray:
    """The fake card's ramps for the first ``count`` samples (see fake_daqmx)."""
    index = np.arange(1, count + 1, dtype=np.float64)
    return np.stack([(index + 8) * RATE, (index + 9) * RATE, index, index + 0.125], axis=1)


ONE_SECOND = 1000  # samples a recording of 1 s gets: edges 1..1000 at 1 kHz (the first dropped)


def record_one_second(fake, streamer, logic, qtbot, channel: str) -> str:
    """Record 1 s of the fake card's virtual time through ``logic``; wait until the file and
    the live trace of ``channel`` (the logic takes samples at its frame rate) hold every
    delivered sample; return the file's path."""
    logic.start_recording()
    for _ in range(10):
        fake.advance(0.1)
        qtbot.waitUntil(lambda: streamer.available_samples == 0, timeout=10_000)
    qtbot.waitUntil(lambda: logic.recording_info["samples"] >= ONE_SECOND, timeout=10_000)
    path = logic.stop_recording()
    qtbot.waitUntil(lambda: len(logic.trace_data[1][channel]) >= ONE_SECOND, timeout=10_000)
    return path


def test_every_sample_reaches_both_logics_through_the_buffers(
    fake, activate, module_manager, qtbot
):
    recording, live = activate("ni_logic1"), activate("ni_logic2")
    streamer = module_manager["ni_streamer"].instance
    for logic in (recording, live):
        logic.set_channel_settings(CHANNELS, [])
        logic.set_trace_settings(
            data_rate=RATE, oversampling_factor=1, trace_window_size=10.0, moving_average_width=1
        )
    assert streamer.sample_rate == RATE and streamer.active_channels == CHANNELS
    recording.start_recording()
    live.start_reading()
    assert streamer.module_state() == "locked"
    for _ in range(30):  # 3 s of virtual time, in steps the pump drains one by one
        fake.advance(0.1)
        qtbot.waitUntil(lambda: streamer.available_samples == 0, timeout=10_000)
    delivered = int(streamer.read_single_point()[0][2])  # ai0 of sample j is j + 1
    assert delivered >= 3000
    qtbot.waitUntil(lambda: recording.recording_info["samples"] == delivered, timeout=10_000)
    qtbot.waitUntil(lambda: len(live.trace_data[0]) == delivered, timeout=10_000)
    path = recording.stop_recording()
    recording.stop_reading()
    _, trace = live.trace_data
    live.stop_reading()
    assert streamer.module_state() == "idle"  # the last consumer stopped the card
    with h5py.File(path, "r") as file:
        data = file["data"][...]
        assert file.attrs["samples_lost"] == 0
        assert list(file.attrs["channel_names"]) == CHANNELS
        assert file.attrs["sample_rate"] == RATE
    np.testing.assert_array_equal(data, expected(delivered))  # none lost, none repeated
    live_data = np.stack([trace[ch] for ch in CHANNELS], axis=1)
    np.testing.assert_array_equal(live_data, expected(delivered))
    module_manager.deactivate_module("ni_streamer")  # deactivates the chain on it too


@pytest.mark.parametrize("logic_name", ["ni_raw_logic", "ni_raw_direct_logic"])
def test_a_raw_stream_is_recorded_as_codes_with_the_polynomials(
    logic_name, fake, card, activate, module_manager, qtbot
):
    amplitude = {2: 9.0, 3: 0.9}  # V, inside each input's range
    card.analog_signal = lambda edges, ai: amplitude[ai] * np.sin(edges / 20.0 + ai)
    logic = activate(logic_name)  # through a buffer's shared ring, or the logic's frames
    streamer = module_manager["ni_raw_streamer"].instance
    coefficients = streamer.scaling_coefficients
    assert list(coefficients) == ["ai2", "ai3"] and streamer.constraints.data_type is np.int16
    logic.set_channel_settings(["ai2", "ai3"], [])
    logic.set_trace_settings(
        data_rate=RATE, oversampling_factor=1, trace_window_size=10.0, moving_average_width=1
    )
    path = record_one_second(fake, streamer, logic, qtbot, "ai2")  # live: volts, scaled once
    delivered = ONE_SECOND
    _, trace = logic.trace_data
    logic.stop_reading()
    assert logic.channel_units == {"ai2": "V", "ai3": "V"}
    live = np.stack([trace[ch] for ch in ("ai2", "ai3")], axis=1)
    assert live.dtype == np.float64 and len(live) >= delivered
    with h5py.File(path, "r") as file:
        data = file["data"]
        assert data.dtype == np.int16 and file.attrs["samples_lost"] == 0
        np.testing.assert_array_equal(
            data.attrs["scaling_coefficients"], [coefficients["ai2"], coefficients["ai3"]]
        )
        assert "read_volts" in data.attrs["scaling_note"]
    volts = read_volts(path)
    edges = np.arange(1, len(volts) + 1)
    truth = np.stack([amplitude[ai] * np.sin(edges / 20.0 + ai) for ai in (2, 3)], axis=1)
    one_code = np.array([coefficients["ai2"][1], coefficients["ai3"][1]])
    assert np.all(np.abs(volts - truth) <= one_code)
    live_truth = np.stack(
        [amplitude[ai] * np.sin(np.arange(1, len(live) + 1) / 20.0 + ai) for ai in (2, 3)], axis=1
    )
    assert np.all(np.abs(live - live_truth) <= one_code)
    module_manager.deactivate_module("ni_raw_streamer")


def test_digital_lines_reach_a_buffer_and_a_logic_as_0_and_1(fake, activate, module_manager, qtbot):
    logic = activate("ni_lines_logic")
    buffer = module_manager["ni_lines_buffer"].instance
    streamer = module_manager["ni_lines_streamer"].instance
    lines = ["port0/line0", "port0/line1", "port0/line2"]
    channels = ["PFI10", "ai4", *lines]
    assert buffer.constraints.channel_units == {
        "PFI10": "c/s",
        "ai4": "V",
        **dict.fromkeys(lines, ""),
    }
    logic.set_channel_settings(channels, [])
    logic.set_trace_settings(
        data_rate=RATE, oversampling_factor=1, trace_window_size=10.0, moving_average_width=1
    )
    assert buffer.stream_extra["digital_channels"] == lines  # declared by the streamer, passed on
    assert logic.digital_channel_names == lines
    path = record_one_second(fake, streamer, logic, qtbot, "port0/line2")
    delivered = ONE_SECOND
    _, trace = logic.trace_data
    logic.stop_reading()
    live = np.stack([trace[ch] for ch in channels], axis=1)
    np.testing.assert_array_equal(live, ramps(channels, 0, len(live), RATE))
    with h5py.File(path, "r") as file:
        data = file["data"][...]
        assert file.attrs["samples_lost"] == 0
        assert list(file.attrs["channel_names"]) == channels
    assert len(data) >= delivered
    np.testing.assert_array_equal(data, ramps(channels, 0, len(data), RATE))
    assert set(np.unique(data[:, 2:])) == {0.0, 1.0}
    module_manager.deactivate_module("ni_lines_streamer")
