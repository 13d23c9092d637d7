"""FilteredReader on real rings and hubs: reads of any size give the one-shot result, gaps
reset the filters (never filtered across), and a consumer without filters keeps its reader."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from qudi.util.instream import StreamHub, StreamInfo, StreamOverrunError, StreamRing
from qudi.util.instream.filter_spec import FilterSpecError
from qudi.util.instream.filtered_reader import FilteredReader, filtered
from tests.core.sources import HandFedSource

INFO = StreamInfo(channel_names=("a", "b"), channel_units=("V", "V"), sample_rate=1000.0)
SPEC = [{"iir": {"btype": "lowpass", "cutoff": 100.0, "order": 4}}, {"decimate": {"factor": 3}}]


def _ring(capacity=4096, timestamps=False):
    return StreamRing(capacity, (2,), np.float64, timestamps=timestamps, info=INFO)


def _want(x: np.ndarray) -> np.ndarray:
    sos = signal.iirfilter(4, 100.0, btype="lowpass", output="sos", fs=1000.0)
    return signal.decimate(signal.sosfilt(sos, x, axis=0), 3, zero_phase=False, axis=0)


@settings(max_examples=30, deadline=None)
@given(
    writes=st.lists(st.integers(1, 500), min_size=1, max_size=12),
    reads=st.lists(st.integers(0, 200), min_size=1, max_size=12),
    blocking=st.booleans(),
)
def test_reads_of_any_size_through_a_ring_equal_the_one_shot_filter(writes, reads, blocking):
    rng = np.random.default_rng(len(writes))
    x = rng.standard_normal((sum(writes), 2))
    with _ring(capacity=8192) as ring:
        reader = filtered(ring.reader("f"), SPEC)
        assert isinstance(reader, FilteredReader)
        got, written, k = [], 0, 0
        for w in writes:
            ring.write(x[written : written + w])
            written += w
            while True:
                n = min(reads[k % len(reads)], reader.available)
                k += 1
                out = np.empty((n, 2))
                if blocking:
                    reader.read_into(out, n, timeout=1.0)
                    got.append(out)
                else:
                    got.append(out[: reader.read_available_into(out)])
                if reader.available == 0 or n == 0:
                    break
        out = np.empty((reader.available, 2))
        got.append(out[: reader.read_available_into(out)])
        np.testing.assert_allclose(np.concatenate(got), _want(x), rtol=0, atol=1e-12)
        assert reader.format.sample_rate == 1000.0 / 3


def test_timestamps_follow_the_samples_a_decimation_keeps():
    with _ring(timestamps=True) as ring:
        reader = filtered(ring.reader("f"), [{"decimate": {"factor": 4}}])
        x = np.ones((1000, 2))
        ring.write(x, timestamps=np.arange(1000) / 1000.0)
        out, stamps = np.empty((7, 2)), np.empty(7)
        reader.read_into(out, 7, timestamps=stamps, timeout=1.0)
        reader.read_into(out, 7, timestamps=stamps, timeout=1.0)
        np.testing.assert_array_equal(stamps, np.arange(28, 56, 4) / 1000.0)


def test_a_consumer_without_filters_keeps_its_own_reader():
    with _ring() as ring:
        reader = ring.reader("plain")
        assert filtered(reader, None) is reader and filtered(reader, []) is reader


def test_a_bad_spec_is_refused_for_the_stream_it_would_filter():
    with _ring() as ring, pytest.raises(FilterSpecError, match=r"filters\[0\]\.channels"):
        filtered(ring.reader("f"), [{"channels": ["a", "nope"]}])


def test_an_overrun_not_allowed_is_raised_with_what_came_before_and_resets_the_filter():
    with _ring(capacity=1024) as ring:
        reader = filtered(ring.reader("f"), [{"iir": {"sos": [[1, 0, 0, 1, -0.5, 0]]}}])
        ring.write(np.ones((100, 2)))
        out = np.empty((50, 2))
        reader.read_into(out, 50, timeout=1.0)
        ring.write(np.ones((2000, 2)))  # overwrites the 50 unread and more
        with pytest.raises(StreamOverrunError) as info:
            reader.read_into(out, 10, timeout=1.0)
        assert info.value.delivered == 0 and reader.lost == info.value.lost > 0
        assert reader.resets == 1
        reader.read_into(out, 2, timeout=1.0)
        # the filter started again from zero: y0 = 1, y1 = 1 + 0.5
        np.testing.assert_array_equal(out[:2, 0], [1.0, 1.5])


def test_an_allowed_loss_is_counted_and_never_filtered_across():
    with _ring(capacity=1024) as ring:
        inner = ring.reader("f", allow_overwrite=True)
        reader = filtered(inner, [{"iir": {"sos": [[1, 0, 0, 1, -0.5, 0]]}}])
        ring.write(np.ones((10, 2)))
        out = np.empty((10, 2))
        reader.read_into(out, 10, timeout=1.0)
        ring.write(np.ones((3000, 2)))
        reader.read_into(out, 2, timeout=1.0)
        assert reader.lost == 3000 - 1024 + (1024 - ring.capacity) and reader.resets == 1
        np.testing.assert_array_equal(out[:2, 0], [1.0, 1.5])


def test_a_hub_reader_filtered_runs_from_a_zero_state_in_each_run():
    source = HandFedSource(channels=("a", "b"), sample_rate=1000.0)
    with StreamHub(source, name="filtered_hub", shared=False, max_poll_rate=200) as hub:
        reader = filtered(hub.open_reader("f"), [{"scale": {"gain": 2.0}}])
        reader.start()
        source.feed(100)
        out = np.empty((100, 2))
        reader.read_into(out, 100, timeout=5.0)
        np.testing.assert_array_equal(out[:, 0], 2.0 * np.arange(100))
        reader.stop()
        assert not reader.running
        reader.close()


def test_latest_filters_afresh_and_consumes_nothing():
    with _ring() as ring:
        spec = [{"scale": {"offset": 1.0}}, {"decimate": {"factor": 2}}]
        reader = filtered(ring.reader("f"), spec)
        ring.write(np.zeros((100, 2)))
        before = reader.available
        newest = reader.latest(5)
        assert newest.shape == (5, 2) and reader.available == before
        # all 100 samples written were filtered afresh: the one-shot result's last five
        want = signal.decimate(np.ones((100, 2)), 2, zero_phase=False, axis=0)[-5:]
        np.testing.assert_allclose(newest, want, rtol=0, atol=1e-12)
