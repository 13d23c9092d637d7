"""What a buffer's filters make its consumer see and ask for (BufferFilters on a real ring)."""

from __future__ import annotations

import numpy as np
import pytest
from qudi.util.constraints import ScalarConstraint

from qudi.hardware.instream.buffer_filters import BufferFilters
from qudi.interface.instream_interface import DataInStreamConstraints
from qudi.util.instream import StreamInfo, StreamRing
from qudi.util.instream.filter_spec import FilterSpecError
from qudi.util.instream.filtered_reader import FilteredReader

INFO = StreamInfo(channel_names=("a", "b", "c"), channel_units=("V", "V", "Hz"), sample_rate=1e4)
STREAM = DataInStreamConstraints(
    channel_units={"a": "V", "b": "V", "c": "Hz"},
    sample_timing="CONSTANT",
    streaming_modes=["CONTINUOUS"],
    data_type=np.int16,
    channel_buffer_size=ScalarConstraint(default=1024, bounds=(128, 2**20), increment=1),
    sample_rate=ScalarConstraint(default=1e4, bounds=(10.0, 1e6), increment=1.0),
)


def test_a_chain_that_picks_and_decimates_is_what_the_consumer_sees_and_asks_in():
    spec = [
        {"channels": ["c", "a"]},
        {"scale": {"gain": 0.5, "unit": "mV"}},
        {"decimate": {"factor": 4}},
        {"cast": "float32"},
    ]
    filters = BufferFilters(spec)
    with StreamRing(4096, (3,), np.int16, info=INFO) as ring:
        reader = filters.wrap(ring.reader("r"))
        assert isinstance(reader, FilteredReader)
        assert filters.channels(ring) == ["c", "a"] and filters.rate(1e4) == 2500.0
        assert filters.read_format(ring) == (2, np.dtype(np.float32))
        seen = filters.constraints(STREAM)
        assert seen.channel_units == {"c": "mV", "a": "mV"} and seen.data_type is np.float32
        assert seen.sample_rate.bounds == (2.5, 2.5e5) and seen.sample_rate.default == 2500.0
        assert filters.stream_request(["c", "a"], 2500.0) == (["a", "b", "c"], 1e4)
        with pytest.raises(FilterSpecError, match=r"give the channels \['c', 'a'\]"):
            filters.stream_request(["a"], 2500.0)
        assert filters.wrap(reader).inner is reader.inner  # rebuilt on the same reader


def test_no_filters_leave_the_reader_and_the_constraints_as_they_are():
    filters = BufferFilters(None)
    with StreamRing(4096, (3,), np.int16, info=INFO) as ring:
        reader = ring.reader("r")
        assert filters.wrap(reader) is reader and filters.constraints(STREAM) is STREAM
        assert filters.stream_request(["b"], 10.0) == (["b"], 10.0)
        assert filters.read_format(ring) == (3, np.dtype(np.int16))


def test_a_bad_spec_is_refused_before_any_stream_is_looked_at():
    with pytest.raises(FilterSpecError, match=r"filters\[0\]\.decimate\.factor is 0"):
        BufferFilters([{"decimate": {"factor": 0}}])


def test_the_newest_filtered_sample_is_zeros_before_the_first():
    filters = BufferFilters([{"scale": {"gain": 2.0}}, {"channels": ["b"]}])
    with StreamRing(4096, (3,), np.int16, info=INFO) as ring:
        reader = filters.wrap(ring.reader("r"))
        point, stamp = filters.newest(reader)
        assert point.tolist() == [0.0] and stamp is None
        ring.write(np.array([[1, 2, 3], [4, 5, 6]], np.int16))
        point, _ = filters.newest(reader)
        assert point.tolist() == [10.0] and reader.available == 2  # nothing consumed
    assert BufferFilters(None).newest(reader) is None


def test_a_request_the_chain_does_not_fit_is_refused_before_the_stream_changes():
    filters = BufferFilters([{"notch": {"frequency": 50.0}}, {"decimate": {"factor": 2}}])
    with StreamRing(4096, (3,), np.float64, info=INFO) as ring:
        filters.wrap(ring.reader("r"))
        assert filters.stream_request(["a"], 1000.0) == (["a"], 2000.0)
        with pytest.raises(FilterSpecError, match=r"filters\[0\]\.notch\.frequency is 50\.0"):
            filters.stream_request(["a", "b"], 40.0)  # the stream at 80 S/s: Nyquist 40 Hz


EXTRA = {"digital_channels": ["b", "c"], "raw_scaling": {"unit": "V", "coefficients": {}}}


def test_a_filtered_view_keeps_the_digital_lines_it_passes_on_unchanged():
    with StreamRing(4096, (3,), np.int16, info=INFO) as ring:
        picked = BufferFilters([{"channels": ["c", "a"]}, {"cast": "float32"}])
        picked.wrap(ring.reader("p"))
        assert picked.extra(EXTRA) == {"digital_channels": ["c"]}  # the polynomial is not
        none_left = BufferFilters([{"channels": ["a"]}])
        none_left.wrap(ring.reader("n"))
        assert none_left.extra(EXTRA) == {}
        for changing in ({"scale": {"gain": 2.0}}, {"decimate": {"factor": 2}}):
            chain = BufferFilters([changing])
            chain.wrap(ring.reader(str(changing)))
            assert chain.extra(EXTRA) == {}  # a line is no longer 0/1 after these
    assert BufferFilters(None).extra(EXTRA) == EXTRA
