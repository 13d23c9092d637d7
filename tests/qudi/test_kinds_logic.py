"""Digital lines and event streams in a real qudi's TimeSeriesReaderLogic: a dummy's 'digital'
channels are declared by its stream and kept 0/1 (never averaged, never c/s); an event stream
(the event dummy through a buffer) shows one rate trace per event channel and its recording
keeps every raw record."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from tests.qudi.added_modules import add_modules

from qudi.util.instream.events import EVENT_DTYPE, PoissonEvents, bin_rates

DIGITAL_HW = """\
    lanes_dummy:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['APD', 'sine', 'ttl 1', 'ttl 2']
            channel_units: ['counts', 'V', '', '']
            channel_signals: ['counts', 'sine', 'digital', 'digital']
            digital_edge_rate: 20.0
            seed: 3
    kinds_buffer:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        connect:
            streamer: 'lanes_dummy'
    kinds_markers:
        module.Class: 'instream.markers.MarkerStream'
    events_dummy:
        module.Class: 'instream.event_dummy.InStreamEventDummy'
        options:
            event_channels: ['APD 1', 'APD 2', 'APD 3']
            event_rates: [2.0e4, 1.0e4, 5.0e3]
            seed: 5
    events_buffer:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        connect:
            streamer: 'events_dummy'
"""
LOGICS = """\
    kinds_logic:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'kinds_buffer'
            markers: 'kinds_markers'
    events_logic:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'events_buffer'
    events_logic_direct:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'events_dummy'
"""


@pytest.fixture
def kinds(qudi, tmp_path, module_manager):
    names = add_modules(qudi, tmp_path, DIGITAL_HW, LOGICS)
    yield names
    for name in reversed(names):
        module_manager.deactivate_module(name)


def test_digital_lines_are_declared_kept_0_1_and_never_averaged(kinds, activate, qtbot):
    logic = activate("kinds_logic")
    assert logic.digital_channel_names == ["ttl 1", "ttl 2"]
    assert logic.event_channel_names is None
    logic.set_channel_settings(["APD", "sine", "ttl 1", "ttl 2"], ["APD", "sine", "ttl 1"])
    assert logic.averaged_channel_names == ["APD", "sine"]  # a line is never averaged
    logic.set_trace_settings(
        data_rate=200.0, oversampling_factor=5, trace_window_size=2.0, moving_average_width=5
    )
    assert logic.channel_units == {"APD": "c/s", "sine": "V", "ttl 1": "", "ttl 2": ""}
    logic.start_reading()
    qtbot.waitUntil(lambda: logic._builder.count > 150, timeout=10_000)
    logic.stop_reading()
    x, y = logic.trace_data
    for line in ("ttl 1", "ttl 2"):
        values = set(np.unique(y[line]).tolist())
        assert values <= {0.0, 1.0} and len(values) == 2, (line, values)  # edges at 20/s
    assert y["APD"].mean() > 1000  # counts per sample shown as counts per second
    _, averaged = logic.averaged_trace_data
    assert sorted(averaged) == ["APD", "sine"]
    logic.set_channel_settings(["APD", "ttl 2"], ["APD"])
    assert logic.digital_channel_names == ["ttl 2"]


@pytest.mark.parametrize("name", ["events_logic", "events_logic_direct"])
def test_an_event_stream_shows_a_rate_per_event_channel_and_records_every_event(
    kinds, activate, qtbot, name
):
    """Through a buffer (the recorder reads the shared ring) and on the event dummy itself
    (the logic's frames feed the recording)."""
    logic = activate(name)
    events_dummy = activate("events_dummy")
    assert logic.event_channel_names == ["APD 1", "APD 2", "APD 3"]
    assert logic.trace_channel_names == ["APD 1", "APD 2", "APD 3"]
    assert logic.channel_units == dict.fromkeys(["APD 1", "APD 2", "APD 3"], "c/s")
    rate = events_dummy.sample_rate
    logic.set_trace_settings(
        data_rate=100.0, oversampling_factor=2, trace_window_size=1.0, moving_average_width=3
    )
    assert events_dummy.sample_rate == rate  # the bins are the trace's: events keep their rate
    assert logic.trace_settings["data_rate"] == 100.0
    with pytest.raises(ValueError, match="outside the bin rates 0.001 to 1000000.0 Hz"):
        logic.set_trace_settings(data_rate=2e6)  # refused, nothing changes
    assert logic.trace_settings["data_rate"] == 100.0 and events_dummy.sample_rate == rate
    frames = []
    logic.sigDataChanged.connect(lambda *frame: frames.append(frame))
    logic.start_recording()
    qtbot.waitUntil(lambda: logic._builder.count > 120, timeout=10_000)
    path = logic.stop_recording()
    logic.stop_reading()
    snapshot = logic.save_trace_snapshot("rates", save_figure=False)  # the rates, in c/s
    with open(snapshot) as file:
        header = file.read(4000)
    assert "APD 1" in header and "c/s" in header
    x, y = logic.trace_data
    assert sorted(y) == ["APD 1", "APD 2", "APD 3"] and len(x) == 100
    np.testing.assert_allclose(np.diff(x), 0.01, rtol=1e-9)  # points of 2 bins of 5 ms
    # the rates are the events' own: rebinned from the reference events at the same points
    reference = PoissonEvents([2.0e4, 1.0e4, 5.0e3], seed=5).between(0, 4000)
    expected = bin_rates(reference, 3, x[0], 0.01, len(x))
    for index, channel in enumerate(["APD 1", "APD 2", "APD 3"]):
        np.testing.assert_allclose(y[channel], expected[:, index], rtol=1e-9)
    assert y["APD 1"].mean() == pytest.approx(2.0e4, rel=0.1)
    assert frames and sorted(frames[-1][1]) == ["APD 1", "APD 2", "APD 3"]
    with h5py.File(path, "r") as file:  # the recording holds the raw records, every one
        dataset = next(
            file[name]
            for name in file
            if isinstance(file[name], h5py.Dataset) and file[name].dtype.names
        )
        records = dataset[...].reshape(-1)
    assert records.dtype.names == EVENT_DTYPE.names and len(records) > 1000
    first = int(np.searchsorted(reference["time"], records["time"][0]))
    np.testing.assert_array_equal(
        records.astype(EVENT_DTYPE), reference[first : first + len(records)]
    )
