"""A MarkerStream -> DataInStreamBuffer -> our LslOutlet -> a plain pylsl inlet: an LSL marker
stream (one cf_string channel, irregular rate), one sample per marker, text and time kept."""

from __future__ import annotations

import pytest

from tests.lsl.conftest import TAG, pylsl, wait_until
from tests.qudi.added_modules import add_modules

NAME = f"qudi-markers-{TAG}"
HARDWARE = f"""\
    lsl_marker_stream:
        module.Class: 'instream.markers.MarkerStream'
    lsl_marker_buffer:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        connect:
            streamer: 'lsl_marker_stream'
    lsl_marker_out:
        module.Class: 'instream.lsl_outlet.LslOutlet'
        options:
            stream_name: '{NAME}'
            stream_type: 'Markers'
            push_rate: 100.0
        connect:
            streamer: 'lsl_marker_buffer'
"""


@pytest.fixture
def marker_outlet(qudi, tmp_path, module_manager):
    names = add_modules(qudi, tmp_path, HARDWARE)
    module_manager.activate_module("lsl_marker_out")
    yield module_manager["lsl_marker_out"].instance, module_manager["lsl_marker_stream"].instance
    for name in reversed(names):
        module_manager.deactivate_module(name)


def test_markers_become_an_lsl_marker_stream_with_their_times(marker_outlet):
    outlet, stream = marker_outlet
    assert outlet.publishing and outlet.publishes_markers
    found = pylsl.resolve_byprop("name", NAME, 1, 5.0)
    assert len(found) == 1, f"no LSL stream {NAME!r}"
    info = found[0]
    assert info.type() == "Markers" and info.channel_count() == 1
    assert info.channel_format() == pylsl.cf_string
    assert info.nominal_srate() == pylsl.IRREGULAR_RATE
    inlet = pylsl.StreamInlet(info)
    try:
        inlet.open_stream(timeout=5.0)
        channel = inlet.info().desc().child("channels").child("channel")
        assert channel.child_value("label") == "marker"
        texts = ["pump on", "ümlaut µs", "x" * 256, "laser off"]
        noted = [stream.add_marker(text) for text in texts]
        got = []

        def pulled():
            sample, stamp = inlet.pull_sample(timeout=0.05)
            if sample is not None:
                got.append((sample[0], stamp))
            return len(got) >= len(texts)

        wait_until(pulled, 10.0, "the markers through LSL")
        correction = inlet.time_correction(timeout=5.0)  # 0 on this host, up to its error
        assert [text for text, _ in got] == texts  # one sample per marker, in order
        for (_, stamp), marker in zip(got, noted, strict=True):
            # the marker's own time (host monotonic: LSL's local clock), as pushed
            assert abs(stamp + correction - marker["time"]) < 1e-6 + abs(correction)
        assert outlet.samples_pushed == len(texts) and outlet.lost_samples == 0
    finally:
        inlet.close_stream()
