"""The stream format's one codec: the ring header and the wire say the same, and check alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qudi.util.instream import StreamFormatError, StreamInfo, StreamRing, attach
from qudi.util.instream.network import describe_ring
from qudi.util.instream.network import parse_description as network_parse_description
from qudi.util.instream.ring import RingState as RingStateFromRing
from qudi.util.instream.ring import StreamInfo as StreamInfoFromRing
from qudi.util.instream.stream_format import (
    RingLayout,
    RingState,
    describe,
    dtype_description,
    dtype_from_description,
    parse_description,
)

INFO = StreamInfo(("APD", "analog 1"), ("Hz", "V"), 1000.0, "TIMESTAMP", {"card": "dummy"})
DTYPES = [
    np.dtype(np.float64),
    np.dtype(">i2"),
    np.dtype("S5"),
    np.dtype([("t", "<f8"), ("v", "<i4", (2, 3))]),
    np.dtype([(("a title", "x"), "<f4"), ("nested", [("a", "u1"), ("b", "<f8", (2,))])]),
]


def test_the_old_import_paths_name_the_same_classes():
    assert RingStateFromRing is RingState and StreamInfoFromRing is StreamInfo
    assert network_parse_description is parse_description


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_fixed_size_dtype_survives_json(dtype):
    assert dtype_from_description(json.loads(json.dumps(dtype_description(dtype)))) == dtype


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_description_round_trips(dtype):
    description = json.loads(json.dumps(describe(64, (2,), dtype, True, INFO)))
    assert parse_description(description) == ((dtype, (2,), True), INFO, 64)


def test_the_header_and_the_wire_carry_one_description(stream_name):
    with StreamRing(64, 2, np.int32, timestamps=True, info=INFO, shared=True, name=stream_name):
        attached = attach(stream_name)
        try:
            told = attached.description()
            header = json.loads(RingLayout.plan(64, (2,), np.dtype(np.int32), True, INFO).metadata)
            assert told == {**header, "name": stream_name}
            assert describe_ring(attached) == told
            assert parse_description(told) == ((np.dtype(np.int32), (2,), True), INFO, 64)
        finally:
            attached.close()


def test_the_meaning_defaults_to_unknown():
    fmt, info, capacity = parse_description(
        {"dtype": "<f8", "sample_shape": [], "timestamps": False, "capacity": 8}
    )
    assert fmt == (np.dtype("<f8"), (), False) and capacity == 8 and info == StreamInfo()


GOOD = {"dtype": "<f8", "sample_shape": [2], "timestamps": False, "capacity": 8}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dtype": None}, "dtype"),
        ({"dtype": "|O"}, r"dtype object holds Python objects.*fixed-size"),
        ({"dtype": [["a", "<f8"], ["b", "|O", [2]]]}, "holds Python objects"),
        ({"dtype": "|V0"}, "zero bytes per sample"),
        ({"dtype": [["a"]]}, r"\[name, dtype\]"),
        ({"sample_shape": 2}, "sample_shape is 2, not a list"),
        ({"sample_shape": ["2"]}, "not a whole number"),
        ({"sample_shape": [0]}, "impossible format"),
        ({"capacity": 0}, "impossible format"),
        ({"capacity": 8.5}, "capacity holds 8.5"),
        ({"timestamps": "yes"}, "not true or false"),
        ({"channel_names": "ab"}, "channel_names is 'ab', not a list"),
        ({"channel_units": [1, 2]}, "channel_units holds something other than names"),
        ({"sample_rate": "fast"}, "sample_rate is 'fast', not a number"),
        ({"sample_timing": 3}, "sample_timing is 3"),
        ({"extra": [1]}, "extra is list, not an object"),
    ],
)
def test_a_bad_description_is_refused_naming_the_field(change, message):
    with pytest.raises(StreamFormatError, match=message):
        parse_description({**GOOD, **change})


@pytest.mark.parametrize("key", ["dtype", "sample_shape", "timestamps", "capacity"])
def test_a_description_without_a_required_field_names_it(key):
    description = {k: v for k, v in GOOD.items() if k != key}
    with pytest.raises(StreamFormatError, match=f"'{key}' is missing"):
        parse_description(description)


@pytest.mark.parametrize("description", [[], "text", 3, None])
def test_a_description_that_is_no_object_is_refused(description):
    with pytest.raises(StreamFormatError, match="bad field"):
        parse_description(description)


def test_a_deeply_nested_dtype_is_refused_not_a_crash():
    nested: list = ["leaf", "<f8"]
    for _ in range(10_000):
        nested = [["x", [nested]]]
    with pytest.raises(StreamFormatError):
        parse_description({**GOOD, "dtype": nested})
