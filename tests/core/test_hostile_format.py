"""Hostile stream descriptions (issue 21, D10): in a ring's shared-memory header and on the wire.

Both go through the one codec of :mod:`qudi.util.instream.stream_format`
(:func:`decode_description`, then :func:`parse_description`), so each case is tried both ways:
as the raw bytes a publisher could send, and as the metadata of a block planted under a
stream's name that a reader attaches. Every refusal is a :class:`StreamFormatError` that names
the field, the value and what would be valid; nothing is coerced ("4096" is no capacity, 2.9 no
dimension, "no" not false). A writer is refused the same things before it takes any memory.
"""

from __future__ import annotations

import json
import math
import re
from multiprocessing import shared_memory

import numpy as np
import pytest

from qudi.util.instream import StreamFormatError, StreamInfo, StreamRing, attach
from qudi.util.instream.shared_block import block_name
from qudi.util.instream.stream_format import (
    CONTROL_OFFSET,
    HEADER_PREFIX,
    MAGIC,
    METADATA_OFFSET,
    VERSION,
    Control,
    RingLayout,
    RingState,
    decode_description,
    describe,
    encode_description,
    parse_description,
)

GOOD = json.loads(encode_description(describe(16, (2,), np.dtype("<f8"), False, StreamInfo())))


def nested(depth: int, leaf: object = 0) -> object:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def struct_nested(depth: int) -> list:
    value: list = [["leaf", "<f8"]]
    for _ in range(depth):
        value = [["x", value]]
    return value


# (change to a good description, what the message must say: field, value, what is valid)
BAD = {
    "V0 dtype": ({"dtype": "|V0"}, ["dtype", "zero bytes per sample", "fixed-size dtype"]),
    "V0 struct field": (
        {"dtype": [["t", "<f8"], ["pad", "|V0"]]},
        ["dtype", "zero bytes per sample in field 'pad'", "every field at least one byte"],
    ),
    "nested V0 field": (
        {"dtype": [["t", "<f8"], ["inner", [["a", "<i4"], ["b", "|V0"]]]]},
        ["zero bytes per sample in field 'inner.b'"],
    ),
    "empty subarray field": (
        {"dtype": [["t", "<f8"], ["none", "<f8", [0]]]},
        ["zero bytes per sample in field 'none'"],
    ),
    "subarray of V0": ({"dtype": [["t", "<f8"], ["s", "|V0", [3]]]}, ["dtype", "'|V0'", "'<f8'"]),
    "object in a nested struct": (
        {"dtype": [["inner", [["a", "<i4"], ["b", "|O", [2]]]]]},
        ["dtype", "holds Python objects", "fixed-size dtype"],
    ),
    "subarray dtype": ({"dtype": "(2,3)<f8"}, ["dtype", "is a subarray", "sample shape"]),
    "dict dtype": (
        {"dtype": {"names": ["a"], "formats": ["<f8"]}},
        ["dtype", "'names'", "a str or a list of fields"],
    ),
    "dtype nested too deep": (struct_nested(40), ["dtype", "nests structs more than 16"]),
    "3 names for 2 channels": (
        {"channel_names": ["a", "b", "c"]},
        ["channel_names", "3 channel names for 2 channels", "one name per channel"],
    ),
    "units for no names": (
        {"channel_units": ["V"]},
        ["channel_units", "1 channel units for 0 channel names", "one unit per name"],
    ),
    "dict channel names": ({"channel_names": {"a": 1}}, ["channel_names", "{'a': 1}", "list"]),
    "numbers as names": ({"channel_names": [1, 2]}, ["channel_names", "(1, 2)", "list of str"]),
    "rate fast": ({"sample_rate": "fast"}, ["sample_rate", "'fast'", "finite number >= 0"]),
    "rate negative": ({"sample_rate": -5.0}, ["sample_rate", "-5.0", "finite number >= 0"]),
    "rate true": ({"sample_rate": True}, ["sample_rate", "True", "finite number >= 0"]),
    "shape 2.9": ({"sample_shape": [2.9]}, ["sample_shape", "2.9", "whole numbers >= 1"]),
    "shape 70 dims": ({"sample_shape": [1] * 70}, ["sample_shape", "70 dimensions", "at most 32"]),
    "capacity 4096 as text": ({"capacity": "4096"}, ["capacity", "'4096'", "whole numbers >= 1"]),
    "timestamps no": ({"timestamps": "no"}, ["timestamps", "'no'", "true or false"]),
    "extra 5": ({"extra": 5}, ["extra", "int", "5", "JSON object"]),
    "extra nested too deep": ({"extra": nested(40)}, ["extra nests", "at most 32"]),
    "timing 5": ({"sample_timing": 5}, ["sample_timing", "5", "a name"]),
}


def description_with(change) -> dict:
    if isinstance(change, list):  # a dtype
        return {**GOOD, "dtype": change}
    return {**GOOD, **change}


def assert_names(message: str, parts: list[str]) -> None:
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


# ------------------------------------------------------------------------------ the wire
@pytest.mark.parametrize("case", list(BAD))
def test_a_received_description_is_refused_naming_field_value_and_what_is_valid(case):
    change, parts = BAD[case]
    raw = json.dumps(description_with(change)).encode()
    with pytest.raises(StreamFormatError) as info:
        parse_description(decode_description(raw))
    assert_names(str(info.value), parts)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000, "nests deeper than it can be read"),
        (b'{"a": ' * 100_000, "nests deeper than it can be read"),
        (b"null", "is None, not an object of fields"),
        (b"[]", "is [], not an object of fields"),
        (b"3", "is 3, not an object of fields"),
        (b"\xff\xfe garbage", "is not JSON"),
        (b"{garbage", "is not JSON"),
    ],
)
def test_received_bytes_that_are_no_description_are_refused_not_raised_past(raw, message):
    """Found: deeply nested JSON raised RecursionError past the subscriber's reject path."""
    with pytest.raises(StreamFormatError, match=re.escape(message)):
        decode_description(raw)


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
def test_json_constants_that_are_no_json_numbers_are_refused(constant):
    """Found: a sample_rate of Infinity was taken (Python's json reads it by default)."""
    raw = json.dumps(GOOD).replace('"sample_rate": null', f'"sample_rate": {constant}')
    assert constant in raw
    with pytest.raises(StreamFormatError, match=f"{constant} is no JSON number"):
        decode_description(raw.encode())
    with pytest.raises(StreamFormatError, match="sample_rate is .*: use a finite number >= 0"):
        parse_description(
            {**GOOD, "sample_rate": float(constant.lower().replace("infinity", "inf"))}
        )


def test_a_good_description_still_round_trips():
    info = StreamInfo(("a", "b"), ("V", "A"), 0.0, "RANDOM", {"nested": nested(31)})
    raw = encode_description(
        describe(16, (2,), np.dtype([("t", "<f8"), ("v", "<i2", (3,))]), True, info)
    )
    fmt, parsed, capacity = parse_description(decode_description(raw))
    assert parsed == info and capacity == 16 and fmt[1:] == ((2,), True)


# --------------------------------------------------------------- the shared-memory header
def planted_block(stream_name: str, metadata: bytes) -> shared_memory.SharedMemory:
    """A running ring block (16 float64 pairs, 2 written) whose header holds ``metadata``."""
    layout = RingLayout.plan(16, (2,), np.dtype(np.float64), False, StreamInfo())
    header_bytes = -(-(METADATA_OFFSET + len(metadata)) // 64) * 64
    image = bytearray(header_bytes + layout.total_bytes)
    HEADER_PREFIX.pack_into(image, 0, MAGIC, VERSION, header_bytes, len(metadata))
    for word, value in {
        Control.WRITE: 2,
        Control.CLAIM: 2,
        Control.STATE: RingState.RUNNING,
    }.items():
        image[CONTROL_OFFSET + 8 * word : CONTROL_OFFSET + 8 * word + 8] = value.to_bytes(
            8, "little"
        )
    image[METADATA_OFFSET : METADATA_OFFSET + len(metadata)] = metadata
    block = shared_memory.SharedMemory(name=block_name(stream_name), create=True, size=len(image))
    block.buf[: len(image)] = image
    return block


@pytest.mark.parametrize("case", list(BAD))
def test_a_planted_header_is_refused_naming_stream_field_value_and_what_is_valid(stream_name, case):
    change, parts = BAD[case]
    block = planted_block(stream_name, json.dumps(description_with(change)).encode())
    try:
        with pytest.raises(StreamFormatError) as info:
            attach(stream_name)
    finally:
        block.close()
        block.unlink()
    assert_names(str(info.value), [f"'{stream_name}' has a corrupted header", *parts])


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (b"[" * 50_000, "nests deeper than it can be read"),
        (b"null", "is None, not an object"),
        (json.dumps({**GOOD, "sample_rate": math.inf}).encode(), "Infinity is no JSON number"),
    ],
)
def test_planted_metadata_that_is_no_description_is_refused(stream_name, metadata, message):
    block = planted_block(stream_name, metadata)
    try:
        with pytest.raises(
            StreamFormatError, match=f"'{stream_name}' has a corrupted header.*{message}"
        ):
            attach(stream_name)
    finally:
        block.close()
        block.unlink()


def test_the_planted_block_is_fine_with_a_good_description(stream_name):
    """The planted block itself attaches: only the description makes the difference above."""
    block = planted_block(stream_name, json.dumps(GOOD).encode())
    try:
        ring = attach(stream_name)
        assert ring.capacity == 16 and ring.reader().latest(2).shape == (2, 2)
        ring.close()
    finally:
        block.close()
        block.unlink()


# ------------------------------------------------------------ a writer is refused the same
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"info": StreamInfo(("a", "b", "c"))}, ValueError, "3 channel names for 2 channels"),
        ({"info": StreamInfo(sample_rate=-1.0)}, ValueError, "sample_rate is -1.0"),
        ({"info": StreamInfo(sample_rate=math.inf)}, ValueError, "sample_rate is inf"),
        ({"info": StreamInfo(sample_rate=math.nan)}, ValueError, "sample_rate is nan"),
        ({"info": StreamInfo(sample_rate="fast")}, TypeError, "sample_rate is 'fast'"),
        ({"info": StreamInfo(("a", 2))}, TypeError, "channel_names holds something other"),
        ({"info": StreamInfo(extra={"x": math.nan})}, TypeError, "strict JSON"),
        ({"info": StreamInfo(extra=nested(40))}, TypeError, "extra nests"),
        ({"dtype": [("t", "<f8"), ("pad", "V0")]}, TypeError, "in field 'pad'"),
        ({"dtype": "(2,3)f8"}, TypeError, "is a subarray"),
        ({"sample_shape": (1,) * 33}, ValueError, "at most 32"),
    ],
)
def test_a_writer_is_refused_what_a_reader_would_refuse(kwargs, error, message):
    options = {"capacity": 8, "sample_shape": (2,), **kwargs}
    with pytest.raises(error, match=message):
        StreamRing(**options)


def test_a_writers_names_given_as_lists_come_back_as_tuples(stream_name):
    info = StreamInfo(["a", "b"], ["V", "A"], 10.0)
    with StreamRing(8, 2, info=info, shared=True, name=stream_name) as ring:
        attached = attach(stream_name)
        assert ring.info == attached.info == StreamInfo(("a", "b"), ("V", "A"), 10.0)
        attached.close()
