"""Pre-filters a source declares: applied by the hub's pump once, in the ring's own slots, so
every consumer reads the filtered samples; a bad spec reaches every reader as the stream's fault."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import signal

from qudi.util.instream import StreamFaultError, StreamHub
from qudi.util.instream.filter_spec import FilterSpecError
from qudi.util.instream.prefilter import check_pre_filters, source_format
from tests.core.sources import HandFedSource


class PreFilteredSource(HandFedSource):
    """A hand-fed ramp source that declares pre-filters, as a streamer would."""

    def __init__(self, pre_filters, **kwargs):
        super().__init__(**kwargs)
        self.pre_filters = pre_filters


def _read(reader, n):
    out = np.empty((n, 2))
    reader.read_into(out, timeout=10.0)
    return out


def test_pre_filters_reach_every_consumer_and_equal_the_one_shot_filter():
    spec = [{"scale": {"gain": [2.0, -1.0], "offset": 0.5}}, {"notch": {"frequency": 50.0}}]
    source = PreFilteredSource(spec, sample_rate=1000.0)
    with StreamHub(source, name="prefiltered", shared=False, max_poll_rate=200) as hub:
        a, b = hub.open_reader("a"), hub.open_reader("b")
        a.start()
        b.start()
        for _ in range(5):  # several polls: the notch's state carries from one to the next
            source.feed(700)
            got_a = _read(a, 700)
            got_b = _read(b, 700)
            np.testing.assert_array_equal(got_a, got_b)  # one copy of the filtered stream
        ramp = np.repeat(np.arange(3500, dtype=np.float64)[:, None], 2, axis=1)
        scaled = ramp * [2.0, -1.0] + 0.5
        bq, aq = signal.iirnotch(50.0, 30.0, fs=1000.0)
        want = signal.sosfilt(signal.tf2sos(bq, aq), scaled, axis=0)
        newest = hub.ring.reader("late", from_oldest=True).latest(700)
        np.testing.assert_allclose(newest, want[-700:], rtol=0, atol=1e-9)
        np.testing.assert_allclose(got_a, want[-700:], rtol=0, atol=1e-9)
        a.close()
        b.close()


def test_each_run_starts_the_pre_filters_afresh():
    source = PreFilteredSource([{"iir": {"sos": [[1, 0, 0, 1, -0.5, 0]]}}], sample_rate=1000.0)
    with StreamHub(source, name="prefilter_runs", shared=False, max_poll_rate=200) as hub:
        reader = hub.open_reader("r")
        for _ in range(2):
            reader.start()
            source.feed(300)
            got = _read(reader, 300)
            reader.stop()
        ramp = np.arange(300, 600, dtype=np.float64)  # the source's second run goes on counting
        want = signal.lfilter([1.0], [1.0, -0.5], ramp)
        np.testing.assert_allclose(got[:, 0], want, rtol=0, atol=1e-9)
        reader.close()


def test_a_bad_pre_filter_reaches_every_reader_as_the_stream_fault():
    source = PreFilteredSource([{"decimate": {"factor": 2}}], sample_rate=1000.0)
    with StreamHub(source, name="bad_prefilter", shared=False, max_poll_rate=200) as hub:
        reader = hub.open_reader("r")
        reader.start()
        source.feed(100)
        with pytest.raises(StreamFaultError, match=r"pre_filters\[0\]\.decimate"):
            _read(reader, 100)
        deadline = time.monotonic() + 10.0  # the pump stops the source right after it says so
        while source.running and time.monotonic() < deadline:
            time.sleep(0.001)
        assert not source.running
        reader.close()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ([{"channels": ["a"]}], r"pre_filters\[0\]\.channels is 'channels': a pre-filter keeps"),
        ([{"scale": {"gain": 2.0, "unit": "mV"}}], r"pre_filters\[0\]\.scale\.unit"),
        ([{"notch": {"frequency": 800.0}}], r"pre_filters\[0\]\.notch\.frequency .* Nyquist"),
    ],
)
def test_pre_filter_specs_are_refused_naming_the_key(spec, match):
    fmt = source_format(HandFedSource(sample_rate=1000.0))
    with pytest.raises(FilterSpecError, match=match):
        check_pre_filters(spec, fmt)


def test_pre_filters_need_a_float_stream():
    source = HandFedSource(sample_rate=1000.0)
    source.constraints = type(source.constraints)(source.constraints.channel_units, np.int32)
    with pytest.raises(FilterSpecError, match="float type, this one is int32"):
        check_pre_filters([{"scale": {"gain": 2}}], source_format(source))
