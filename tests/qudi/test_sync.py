"""DataInStreamSync in a real qudi: dummies with simulated clocks (a 1 kHz counter, a 10 Hz
'wavemeter' that starts late and drifts, two dummies on one shared clock) merged into one
stream, read by the sync itself and by the unchanged TimeSeriesReaderLogic."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import tests.qudi.conftest as qudi_fixtures

SYNC_CONFIG = """
global:
    startup_modules: []
hardware:
    sync_counter:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['ramp', 'APD']
            channel_units: ['samples', 'c/s']
            channel_signals: ['ramp', 'counts']
            sample_rate: 1000.0
            clock_jitter: 0.0005
    sync_wavemeter:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['ramp']
            channel_units: ['samples']
            channel_signals: ['ramp']
            sample_rate: 10.0
            start_offset: 0.05
            clock_drift_ppm: 100.0
            clock_jitter: 0.001
    sync_lab_fast:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['ramp']
            channel_units: ['samples']
            channel_signals: ['ramp']
            sample_rate: 1000.0
            shared_clock: 'test_sync_lab'
            clock_drift_ppm: 100.0
            clock_tick_rate: 1000.0
    sync_lab_slow:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['ramp']
            channel_units: ['samples']
            channel_signals: ['ramp']
            sample_rate: 10.0
            start_offset: 0.05
            shared_clock: 'test_sync_lab'
            clock_drift_ppm: 100.0
            clock_tick_rate: 1000.0
    sync_fitted:
        module.Class: 'instream.sync.DataInStreamSync'
        options:
            missing: 'wait'
        connect:
            primary_streamer: 'sync_counter'
            secondary_streamer: 'sync_wavemeter'
    sync_shared:
        module.Class: 'instream.sync.DataInStreamSync'
        connect:
            primary_streamer: 'sync_lab_fast'
            secondary_streamer: 'sync_lab_slow'
    sync_buffer:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        connect:
            streamer: 'sync_shared'
    sync_bad:
        module.Class: 'instream.sync.DataInStreamSync'
        options:
            missing: 'hold'
        connect:
            primary_streamer: 'sync_lab_fast'
            secondary_streamer: 'sync_lab_slow'
    sync_bad_jitter:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['ramp']
            channel_units: ['samples']
            channel_signals: ['ramp']
            clock_jitter: -0.001
    sync_bad_drift:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['ramp']
            channel_units: ['samples']
            channel_signals: ['ramp']
            shared_clock: 'test_sync_lab'
            clock_drift_ppm: 5.0
            clock_tick_rate: 1000.0
logic:
    sync_logic:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'sync_fitted'
"""
MODULES = [
    "sync_buffer",
    "sync_logic",
    "sync_fitted",
    "sync_shared",
    "sync_bad",
    "sync_from_docstring",
    "sync_lab_fast",
]


def docstring_example() -> str:
    """The sync's docstring example, its names changed to this config's dummies."""
    import qudi.hardware.instream.sync as sync_module

    example = re.search(r"::\n\n((?:    .*\n|\n)+)", sync_module.__doc__).group(1)
    example = example.replace("instream_sync:", "sync_from_docstring:")
    example = example.replace("'instream_dummy'", "'sync_counter'")
    return example.replace("'wavemeter_dummy'", "'sync_wavemeter'")


@pytest.fixture(scope="module")
def sync_qudi(qudi, qapp, qudi_home, tmp_path_factory):
    config = Path(tmp_path_factory.mktemp("sync")) / "sync_test.cfg"
    config.write_text(SYNC_CONFIG.replace("hardware:\n", "hardware:\n" + docstring_example(), 1))
    with qudi_fixtures.qudi_with_modules(qapp, qudi_home, config.resolve()) as app:
        yield app


@pytest.fixture
def sync_activate(sync_qudi):
    manager = sync_qudi.module_manager

    def activate(name):
        manager.activate_module(name)
        return manager[name].instance

    activate.instance = lambda name: manager[name].instance

    yield activate
    for name in MODULES:
        manager.deactivate_module(name)


def read(sync, count, timeout=10.0):
    data = np.empty((count, len(sync.active_channels)))
    sync.read_data_into_buffer(data, count, timeout=timeout)
    return data


def test_a_shared_clock_merges_exactly(sync_activate):
    sync = sync_activate("sync_shared")
    assert sync.active_channels == ["ramp", "sync_lab_slow.ramp"]  # prefixed: a clash
    assert sync.constraints.channel_units == {"ramp": "samples", "sync_lab_slow.ramp": "samples"}
    sync.start_stream()
    try:
        read(sync, 100)  # the secondary's first sample comes 50 ms after the primary's
        data = read(sync, 400)
    finally:
        sync.stop_stream()
    fast, slow = sync_activate.instance("sync_lab_fast"), sync_activate.instance("sync_lab_slow")
    ticks = slow.sample_clock.start_tick - fast.sample_clock.start_tick
    assert ticks >= 50  # a start offset of 50 ms on a 1 kHz clock (and later start calls)
    truth = (data[:, 0] - ticks) / 100.0  # the slow ramp at each fast sample's instant
    assert np.isfinite(data).all()
    assert np.abs(data[:, 1] - truth).max() < 1e-9
    assert sync.alignment_uncertainty == {"sync_lab_slow": 0.0}


def test_the_logic_shows_a_drifting_late_wavemeter_on_the_counter_axis(sync_activate, qtbot):
    sync = sync_activate("sync_fitted")
    assert sync.active_channels == ["ramp", "APD", "sync_wavemeter.ramp"]
    logic = sync_activate("sync_logic")
    logic.set_trace_settings(data_rate=200.0, oversampling_factor=1, trace_window_size=2.0)
    logic.start_reading()
    try:
        qtbot.waitUntil(
            lambda: np.isfinite(logic.trace_data[1]["sync_wavemeter.ramp"]).sum() > 300,
            timeout=20_000,
        )
        x, raw = logic.trace_data
    finally:
        logic.stop_reading()
    qtbot.waitUntil(lambda: sync.module_state() == "idle", timeout=10_000)
    wavemeter, counter = raw["sync_wavemeter.ramp"], raw["ramp"]
    shown = np.isfinite(wavemeter) & (counter > 0)
    # the wavemeter's ramp is its sample index: where the sync put each counter sample's
    # instant on the wavemeter's clock; the dummies know when each sample was really taken
    instants = sync_activate.instance("sync_counter").true_sample_times(counter[shown])
    t0, t1 = sync_activate.instance("sync_wavemeter").true_sample_times([0, 1])
    expected = (instants - t0) / (t1 - t0)
    uncertainty = sync.alignment_uncertainty["sync_wavemeter"]
    assert 0 < uncertainty < 0.1 and math.isfinite(uncertainty)
    # the last frame's rows against the uncertainty of the last read (about 95 % honest:
    # the bound is doubled for the frames' earlier reads, whose fits had fewer rows)
    assert np.abs(wavemeter[shown] - expected).max() / 10.0 < 2 * uncertainty


def test_a_buffer_shares_the_merged_stream_as_any_streamer(sync_activate):
    buffer = sync_activate("sync_buffer")
    assert buffer.active_channels == ["ramp", "sync_lab_slow.ramp"]
    buffer.start_stream()
    try:
        data = np.empty((600, 2))
        buffer.read_data_into_buffer(data, 600, timeout=10.0)
    finally:
        buffer.stop_stream()
    fast, slow = sync_activate.instance("sync_lab_fast"), sync_activate.instance("sync_lab_slow")
    ticks = slow.sample_clock.start_tick - fast.sample_clock.start_tick
    known = np.isfinite(data[:, 1])
    assert known[-100:].all() and np.all(np.diff(data[:, 0]) == 1)
    assert np.abs(data[known, 1] - (data[known, 0] - ticks) / 100.0).max() < 1e-9


def test_the_docstring_example_loads_and_streams(sync_activate):
    sync = sync_activate("sync_from_docstring")
    assert sync.active_channels == ["ramp", "APD", "sync_wavemeter.ramp"]
    sync.start_stream()
    try:
        data = read(sync, 200)
    finally:
        sync.stop_stream()
    assert data.shape == (200, 3) and np.all(np.diff(data[:, 0]) == 1)


def test_a_bad_option_fails_activation_naming_it(sync_qudi, expected_qudi_errors):
    with pytest.raises(RuntimeError):
        sync_qudi.module_manager.activate_module("sync_bad")
    assert any("'missing'" in e and "'hold'" in e for e in expected_qudi_errors())


@pytest.mark.parametrize(
    ("module", "words"),
    [
        ("sync_bad_jitter", ["'clock_jitter'", "-0.001", ">= 0"]),
        ("sync_bad_drift", ["'clock_drift_ppm'", "test_sync_lab", "100.0 ppm"]),
    ],
)
def test_bad_clock_options_of_the_dummy_fail_activation_naming_them(
    sync_activate, sync_qudi, expected_qudi_errors, module, words
):
    sync_activate("sync_lab_fast")  # the shared clock exists, at 100 ppm
    with pytest.raises(RuntimeError):
        sync_qudi.module_manager.activate_module(module)
    assert any(all(w in e for w in words) for e in expected_qudi_errors())
