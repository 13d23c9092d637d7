"""A plain pylsl outlet -> our LslInStreamer -> buffers -> logic; gaps, overflows, restarts."""

from __future__ import annotations

import os

import numpy as np
import pytest

from qudi.util.instream.lsl_timing import CAUSE_OVERFLOW, CAUSE_SILENCE
from tests.lsl.conftest import TAG, pylsl, wait_until

IN_MODULES = (
    "lsl_logic",
    "lsl_in_buffer1",
    "lsl_in_buffer2",
    "lsl_in",
    "lsl_restart_buffer",
    "lsl_restart_in",
)


@pytest.fixture
def stop_modules(module_manager):
    yield
    for name in IN_MODULES:
        module_manager.deactivate_module(name)


def read_ramp(buffer, count: int, timeout: float = 15.0):
    """Read ``count`` samples from a qudi buffer, blocking, with their timestamps."""
    data = np.empty((count, len(buffer.active_channels)), buffer.constraints.data_type)
    stamps = np.empty(count)
    buffer.read_data_into_buffer(data, count, stamps, timeout=timeout)
    return data, stamps


def test_constraints_come_from_the_stream_metadata(plain_outlet, activate, stop_modules):
    plain_outlet(f"plain-{TAG}", channels=3, rate=500.0)
    streamer = activate("lsl_in")
    constraints = streamer.constraints
    assert constraints.channel_units == {"ramp": "samples", "c1": "uV", "c2": "uV"}
    assert constraints.sample_timing.name == "TIMESTAMP"
    assert constraints.data_type is np.float32
    assert constraints.sample_rate.bounds == (500.0, 500.0)
    assert streamer.stream_info["source_id"] == f"plain-{TAG}-src"
    with pytest.raises(ValueError, match="sample_rate"):
        streamer.configure(["ramp"], "CONTINUOUS", 5000, 1000.0)
    assert streamer.active_channels == ["ramp", "c1", "c2"]  # a refused call changes nothing


def test_every_sample_reaches_two_buffers_and_a_logic_once(
    plain_outlet, activate, stop_modules, qtbot
):
    source = plain_outlet(f"plain-{TAG}", channels=3, rate=1000.0)
    buffer1 = activate("lsl_in_buffer1")
    logic = activate("lsl_logic")
    logic.set_trace_settings(data_rate=1000.0, oversampling_factor=1, trace_window_size=2.0)
    buffer1.start_stream()
    logic.start_reading()
    streamer = activate("lsl_in")
    assert source.wait_for_consumers(10.0)
    origin = streamer.start_time
    sent = [source.push(100) for _ in range(20)]  # 2000 samples, 20 chunks
    data, stamps = read_ramp(buffer1, 2000)
    np.testing.assert_array_equal(data[:, 0], np.arange(2000))  # every sample, once, in order
    np.testing.assert_array_equal(data[:, 1], (np.arange(2000) % 7) * 1)
    # timestamps: the outlet's own LSL times, corrected, as seconds since start_time
    offset, uncertainty = streamer.clock_offset
    np.testing.assert_allclose(stamps + origin, np.concatenate(sent) + offset, atol=1e-9)
    assert abs(offset) <= uncertainty  # one host, one clock
    qtbot.waitUntil(lambda: len(logic.trace_data[0]) >= 1900, timeout=10_000)
    x, raw = logic.trace_data
    ramp = raw["ramp"]
    assert np.all(np.diff(ramp) == 1) and ramp[-1] == 1999
    assert streamer.lost_samples == 0 and streamer.gaps == []
    logic.stop_reading()
    buffer1.stop_stream()


def test_a_subset_of_channels_streams_in_the_asked_order(plain_outlet, activate, stop_modules):
    source = plain_outlet(f"plain-{TAG}", channels=3, rate=1000.0)
    streamer = activate("lsl_in")
    buffer1 = activate("lsl_in_buffer1")
    buffer1.configure(["c2", "ramp"], "CONTINUOUS", 5000, 1000.0)
    buffer1.start_stream()
    assert source.wait_for_consumers(10.0)
    source.push(300)
    data, _ = read_ramp(buffer1, 300)
    np.testing.assert_array_equal(data[:, 1], np.arange(300))
    np.testing.assert_array_equal(data[:, 0], (np.arange(300) % 7) * 2)
    buffer1.stop_stream()
    assert streamer.active_channels == ["c2", "ramp"]


def test_an_outlet_restart_is_a_gap_with_its_count_and_the_stream_resumes(
    plain_outlet, activate, stop_modules, caplog
):
    source = plain_outlet(f"restart-{TAG}", channels=2, rate=1000.0)
    streamer = activate("lsl_restart_in")
    buffer = activate("lsl_restart_buffer")
    buffer.start_stream()
    assert source.wait_for_consumers(10.0)
    source.push(500)
    before, _ = read_ramp(buffer, 500)
    source.close()  # the device's software goes away ...
    source.open()  # ... and comes back: same source_id, a new outlet
    assert source.wait_for_consumers(20.0), "the inlet did not reconnect to the new outlet"
    source.push(500, skip=1234)  # it missed 1234 sample times meanwhile
    after, stamps = read_ramp(buffer, 500)
    np.testing.assert_array_equal(before[:, 0], np.arange(500))
    np.testing.assert_array_equal(after[:, 0], np.arange(1734, 2234))  # resumed
    # the old outlet stamped only sample 0 of its chunk (the inlet deduced the times of 1..499):
    # a loss in its own queue could hide there, so the gap says it may lie from sample 1 on
    gaps = [(g.index, g.lost, g.cause, g.earliest) for g in streamer.gaps]
    assert gaps == [(500, 1234, CAUSE_SILENCE, 1)]
    assert streamer.lost_samples == 1234
    assert "1234 samples missing before one of samples 1..500" in caplog.text
    buffer.stop_stream()


def read_until(streamer, last_value: int, timeout: float = 10.0):
    """Read a streamer directly until the sample ``last_value`` came; ramps read and the index
    of each read's first sample."""
    data = np.empty((5000, 3), np.float32)
    stamps = np.empty(5000)
    ramps = []

    def more():
        got = streamer.read_available_data_into_buffer(data, stamps)
        if got:
            ramps.append(data[:got, 0].astype(np.int64))
        return ramps and ramps[-1][-1] == last_value

    wait_until(more, timeout, f"sample {last_value}")
    return np.concatenate(ramps)


def check_every_missing_sample_is_a_counted_gap(streamer, ramp, first_expected):
    """``ramp`` (read in order) lacks samples only where gaps say, and by as many.

    A gap's samples are missing before one sample in ``earliest .. index``: exactly before
    ``index`` when LSL dropped them in our inlet, up to a chunk earlier when the outlet's own
    queue for the inlet dropped them (then the inlet times the rest of that chunk from the
    sample before, and the loss shows at the next chunk's stamped first sample). So for every
    sample ``x``: the samples missing before it are at least those of the gaps shown at or
    before it, and at most those of the gaps that may lie at or before it.
    """
    steps = np.diff(ramp)
    assert np.all(steps >= 1)  # nothing read twice, nothing out of order
    gaps = [g for g in streamer.gaps if g.index > 0]
    assert all(g.cause == CAUSE_OVERFLOW for g in streamer.gaps)
    assert all(g.earliest <= g.index for g in gaps)
    missing = np.concatenate(([0], np.cumsum(steps - 1)))  # samples missing before each one
    shown = np.zeros(len(ramp), np.int64)
    possible = np.zeros(len(ramp), np.int64)
    for g in gaps:
        shown[g.index :] += g.lost
        possible[g.earliest :] += g.lost
    assert np.all(shown <= missing), "a gap was reported before its samples went missing"
    assert np.all(missing <= possible), "samples went missing where no gap may lie"
    assert missing[-1] == shown[-1]  # in all, every missing sample is counted once
    exact = [g for g in gaps if g.earliest == g.index]
    breaks = set((np.flatnonzero(steps > 1) + 1).tolist())
    assert all(g.index in breaks and steps[g.index - 1] - 1 >= g.lost for g in exact)
    assert ramp[0] >= first_expected


def test_an_overflow_before_the_first_read_is_estimated_from_the_time_since_opening(
    plain_outlet, activate, stop_modules
):
    source = plain_outlet(f"plain-{TAG}", channels=3, rate=1000.0)
    streamer = activate("lsl_in")
    streamer.configure(["ramp", "c1", "c2"], "CONTINUOUS", 1000, 1000.0)  # LSL buffer: 1 s
    streamer.start_stream()  # read directly, by nobody in time
    assert source.wait_for_consumers(10.0)
    source.t0 = streamer.start_time  # the device's first sample: when the inlet opened
    for _ in range(30):
        source.push(100)  # 3000 samples into a buffer of 1000: LSL drops the oldest
    wait_until(lambda: streamer.available_samples >= 1000, 10, "the inlet to fill")
    ramp = read_until(streamer, 2999)
    check_every_missing_sample_is_a_counted_gap(streamer, ramp, 0)
    if ramp[0] > 0:  # dropped before the first read: estimated from the time since opening
        [first_gap, *_] = streamer.gaps
        assert first_gap.index == 0
        assert ramp[0] <= first_gap.lost <= ramp[0] + 50
    assert streamer.lost_samples >= 3000 - len(ramp)
    streamer.stop_stream()


def test_an_overflow_between_reads_is_counted(plain_outlet, activate, stop_modules):
    source = plain_outlet(f"plain-{TAG}", channels=3, rate=1000.0)
    streamer = activate("lsl_in")
    streamer.configure(["ramp", "c1", "c2"], "CONTINUOUS", 1000, 1000.0)
    streamer.start_stream()
    assert source.wait_for_consumers(10.0)
    source.push(100)
    first = read_until(streamer, 99)
    for _ in range(100):
        source.push(100)  # 10 000 more, at once, into a buffer of 1000
    wait_until(lambda: streamer.available_samples >= 1000, 10, "the inlet to fill")
    ramp = np.concatenate([first, read_until(streamer, 10_099)])
    np.testing.assert_array_equal(ramp[:100], np.arange(100))
    check_every_missing_sample_is_a_counted_gap(streamer, ramp, 0)
    assert streamer.lost_samples == 10_100 - len(ramp) > 0  # every missing sample counted
    streamer.stop_stream()


def test_a_stream_that_is_not_there_fails_activation_listing_what_was_found(
    plain_outlet, module_manager, expected_qudi_errors
):
    plain_outlet(f"plain-{TAG}", channels=3, rate=500.0)
    with pytest.raises(RuntimeError):
        module_manager.activate_module("lsl_missing_in")
    message = " ".join(expected_qudi_errors())
    assert f"no LSL stream matches name='nobody-{TAG}', type='EEG'" in message
    assert f"name='plain-{TAG}' type='Test' source_id='plain-{TAG}-src'" in message


def os_threads() -> int:
    """Threads of this process, liblsl's own (native) threads among them."""
    return len(os.listdir("/proc/self/task"))


def test_stopping_and_deactivating_release_the_inlet_and_its_threads(
    plain_outlet, activate, module_manager
):
    source = plain_outlet(f"plain-{TAG}", channels=3, rate=1000.0)
    threads = os_threads()
    streamer = activate("lsl_in")  # its short-lived inlet (for the metadata) is gone again
    wait_until(lambda: not source.outlet.have_consumers(), 10, "the metadata inlet to go")
    streamer.start_stream()
    assert source.wait_for_consumers(10.0)
    assert os_threads() > threads  # liblsl's threads of the inlet
    streamer.stop_stream()
    wait_until(lambda: not source.outlet.have_consumers(), 10, "the inlet to disconnect")
    streamer.start_stream()
    assert source.wait_for_consumers(10.0)
    module_manager.deactivate_module("lsl_in")  # while streaming
    wait_until(lambda: not source.outlet.have_consumers(), 10, "the inlet to disconnect")
    wait_until(lambda: os_threads() <= threads, 10, "liblsl's inlet threads to end")


def test_an_irregular_stream_is_read_without_gap_detection(plain_outlet, activate, module_manager):
    source = plain_outlet(f"irregular-{TAG}", channels=2, rate=0.0)
    streamer = activate("lsl_irregular_in")
    try:
        assert streamer.constraints.sample_rate.default == 50.0  # the hint
        streamer.start_stream()
        assert source.wait_for_consumers(10.0)
        source.t0 = pylsl.local_clock()
        for k in range(5):  # irregular: samples at any time, far apart
            source.outlet.push_sample([k, 0.0], source.t0 + 3.0 * k)
        wait_until(lambda: streamer.available_samples >= 5, 10, "5 samples")
        data = np.empty((5, 2), np.float32)
        stamps = np.empty(5)
        streamer.read_data_into_buffer(data, 5, stamps, timeout=5.0)
        np.testing.assert_array_equal(data[:, 0], np.arange(5))
        assert np.allclose(np.diff(stamps), 3.0, atol=1e-3)
        assert streamer.gaps == []  # no nominal rate: no step means samples are missing
    finally:
        module_manager.deactivate_module("lsl_irregular_in")


def test_dejitter_smooths_the_times_and_a_gap_still_counts(plain_outlet, activate, module_manager):
    source = plain_outlet(f"jittery-{TAG}", channels=2, rate=1000.0)
    streamer = activate("lsl_dejitter_in")
    try:
        streamer.start_stream()
        assert source.wait_for_consumers(10.0)
        rng = np.random.default_rng(5)
        t0 = pylsl.local_clock()
        truth, raw = [], []
        for chunk in range(40):
            skip = 300 if chunk == 30 else 0  # 300 samples never sent, before chunk 30
            source.next += skip
            k, data = source.chunk(50)
            exact = t0 + k / 1000.0
            jittered = exact + rng.uniform(-1e-3, 1e-3, len(k))  # 1 ms jitter: 1 period
            source.outlet.push_chunk(data, list(jittered))
            source.next += len(k)
            truth.append(exact)
            raw.append(jittered)
        truth, raw = np.concatenate(truth), np.concatenate(raw)
        wait_until(lambda: streamer.available_samples >= len(truth), 10, "every sample")
        data = np.empty((len(truth), 2), np.float32)
        stamps = np.empty(len(truth))
        streamer.read_data_into_buffer(data, len(truth), stamps, timeout=5.0)
        offset, _ = streamer.clock_offset
        smoothed = stamps + streamer.start_time - offset
        settled = slice(500, None)
        assert (
            np.std(smoothed[settled] - truth[settled]) < np.std(raw[settled] - truth[settled]) / 3
        )
        [gap] = streamer.gaps
        assert gap.index == 1500 and abs(gap.lost - 300) <= 2  # from jittered raw times
    finally:
        module_manager.deactivate_module("lsl_dejitter_in")


def test_two_streams_that_match_fail_activation_listing_both(
    plain_outlet, module_manager, expected_qudi_errors
):
    plain_outlet(f"plain-{TAG}", channels=3, rate=500.0, source_id=f"first-{TAG}")
    plain_outlet(f"plain-{TAG}", channels=3, rate=500.0, source_id=f"second-{TAG}")
    with pytest.raises(RuntimeError):
        module_manager.activate_module("lsl_in")
    message = " ".join(expected_qudi_errors())
    assert f"2 LSL streams match name='plain-{TAG}'" in message
    assert f"source_id='first-{TAG}'" in message and f"source_id='second-{TAG}'" in message
