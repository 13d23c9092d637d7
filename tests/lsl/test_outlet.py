"""A qudi stream -> our LslOutlet -> a plain pylsl inlet: values, labels, units, rate, times."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from qudi.util.instream import attach
from qudi.util.instream.lsl_support import time_correction
from qudi.util.instream.stream_clock import StreamClock
from tests.lsl.conftest import TAG, pylsl, wait_until


def resolve(name: str, timeout: float = 5.0):
    found = pylsl.resolve_byprop("name", name, 1, timeout)
    assert len(found) == 1, f"LSL stream {name!r} not found (or several): {found}"
    return found[0]


def pull_until(inlet, count: int, channels: int, dtype, timeout: float = 15.0):
    """Pull from a plain inlet until ``count`` samples came."""
    chunks, stamps = [], []
    got = 0

    def more():
        nonlocal got
        data, times = inlet.pull_chunk(timeout=0.05, max_samples=4096, as_numpy=True)
        if len(times):
            chunks.append(np.array(data, dtype=dtype).reshape(-1, channels))
            stamps.append(np.asarray(times))
            got += len(times)
        return got >= count

    wait_until(more, timeout, f"{count} samples from the outlet")
    return np.concatenate(chunks), np.concatenate(stamps)


def check_against_time_base(buffer, outlet, ramp, times, correction, jitter):
    """LSL times of the samples whose ramp values are ``ramp`` are the stream's own time base
    (its ring's time table, fitted, read here independently), shifted by LSL's clock
    ``correction``, within the uncertainty the time base gave when each was pushed and the
    one it gives now (it refits as rows come in), and the samples' ``jitter`` (s)."""
    ring = attach(buffer.stream_name)
    try:
        clock = StreamClock(ring)
        clock.refresh()
        indices = clock.run.first_index + ramp.astype(np.int64)  # the ramp counts samples
        expected = clock.time_of(indices)
        now = clock.uncertainty_of(indices)
    finally:
        ring.close()
    pushed = np.array([outlet.time_uncertainty(int(i)) for i in indices])
    known = np.isfinite(pushed)  # the first pushes: too few table rows for an uncertainty
    assert known[len(known) // 2 :].all()
    tolerance = abs(correction) + pushed + now + jitter + 1e-6
    assert np.all(np.abs(times - expected)[known] <= tolerance[known])


@pytest.fixture
def stop_modules(module_manager):
    yield
    for name in ("lsl_out", "lsl_ts_out", "lsl_out_buffer", "lsl_other_buffer", "lsl_ts_buffer"):
        module_manager.deactivate_module(name)


def test_a_constant_stream_reaches_a_plain_inlet_with_its_metadata_and_times(
    activate, stop_modules
):
    other = activate("lsl_other_buffer")  # another consumer of the same dummy
    buffer = activate("lsl_out_buffer")
    buffer.configure(["ramp", "sine"], "CONTINUOUS", 2**16, 2000.0)
    outlet = activate("lsl_out")  # publishes at activation
    assert outlet.publishing
    info = resolve(f"qudi-out-{TAG}")
    inlet = pylsl.StreamInlet(info, processing_flags=pylsl.proc_clocksync)
    full = inlet.info(5.0)
    assert (full.type(), full.channel_count(), full.nominal_srate()) == ("qudi", 2, 2000.0)
    assert full.channel_format() == pylsl.cf_float32
    assert full.source_id() == outlet.source_id
    channel = full.desc().child("channels").child("channel")
    labels_units = []
    while not channel.empty():
        labels_units.append((channel.child_value("label"), channel.child_value("unit")))
        channel = channel.next_sibling("channel")
    assert labels_units == [("ramp", "samples"), ("sine", "V")]

    data, times = pull_until(inlet, 4000, 2, np.float32)
    ramp = data[:, 0]
    np.testing.assert_array_equal(np.diff(ramp), 1)  # every sample once, in order
    assert outlet.uses_stream_time_base
    correction, uncertainty = time_correction(inlet, pylsl, 5.0)
    check_against_time_base(buffer, outlet, ramp, times, correction, jitter=0.0)
    assert abs(correction) <= uncertainty  # same host: one clock, to LSL's own measure
    origin, origin_uncertainty = outlet.time_origin
    assert not np.isnan(origin_uncertainty)  # inf: the time base had too few rows yet
    # and those times are host monotonic times of when the samples were taken, to a latency
    assert 0 <= pylsl.local_clock() - times[-1] < 1.0
    assert other.module_state() == "idle"  # the outlet is one consumer, the other unaffected
    del inlet


def test_a_timestamp_stream_keeps_each_sample_time(activate, stop_modules):
    buffer = activate("lsl_ts_buffer")
    buffer.configure(["ramp", "noise"], "CONTINUOUS", 2**16, 1000.0)
    outlet = activate("lsl_ts_out")
    assert not outlet.publishing  # start_on_activation: False
    outlet.start_publishing()
    info = resolve(f"qudi-ts-{TAG}")
    assert info.channel_format() == pylsl.cf_double64
    inlet = pylsl.StreamInlet(info)
    data, times = pull_until(inlet, 1500, 2, np.float64)
    ramp = data[:, 0]
    np.testing.assert_array_equal(np.diff(ramp), 1)
    assert outlet.uses_stream_time_base
    # the dummy stamps sample k at (k + jitter) / rate, jitter within +-0.2 periods
    check_against_time_base(buffer, outlet, ramp, times, 0.0, jitter=0.2e-3)
    stream_times = times - outlet.time_origin[0]
    assert not np.allclose(np.diff(stream_times), 1e-3)  # its own jittered stamps, not a grid
    del inlet


def test_stopping_destroys_the_outlet_and_its_threads(activate, module_manager, stop_modules):
    threads = len(os.listdir("/proc/self/task"))  # liblsl's native threads too
    activate("lsl_out_buffer")
    outlet = activate("lsl_out")
    name = f"qudi-out-{TAG}"
    resolve(name)
    outlet.stop_publishing()
    assert not outlet.publishing
    assert not [t for t in threading.enumerate() if t.name.startswith("instream-lsl-outlet")]
    wait_until(lambda: not pylsl.resolve_byprop("name", name, 1, 0.3), 10, "the outlet to go")
    outlet.start_publishing()  # and it comes back
    resolve(name)
    module_manager.deactivate_module("lsl_out")
    module_manager.deactivate_module("lsl_out_buffer")
    wait_until(lambda: not pylsl.resolve_byprop("name", name, 1, 0.3), 10, "the outlet to go")
    wait_until(
        lambda: len(os.listdir("/proc/self/task")) <= threads, 10, "liblsl's outlet threads to end"
    )


def test_without_a_shared_ring_the_times_are_estimated_from_the_first_read(
    activate, module_manager
):
    dummy = activate("lsl_direct_dummy")
    dummy.configure(["ramp"], "CONTINUOUS", 2**16, 1000.0)
    before = pylsl.local_clock()
    outlet = activate("lsl_direct_out")  # reads the dummy itself: no ring, no time table
    try:
        inlet = pylsl.StreamInlet(resolve(f"qudi-direct-{TAG}"))
        assert inlet.info(5.0).channel_format() == pylsl.cf_int32
        data, times = pull_until(inlet, 500, 1, np.int32)
        assert not outlet.uses_stream_time_base
        origin, latency = outlet.time_origin
        ramp = data[:, 0].astype(np.float64)
        np.testing.assert_allclose(times, origin + ramp / 1000.0, atol=1e-6)  # the rate's grid
        # the dummy's sample 0 was taken after `before`; the estimate is late by a latency
        assert before - 0.01 <= origin <= pylsl.local_clock()
        assert 0 <= latency < 1.0
        del inlet
    finally:
        module_manager.deactivate_module("lsl_direct_out")
        module_manager.deactivate_module("lsl_direct_dummy")
