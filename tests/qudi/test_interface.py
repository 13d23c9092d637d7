"""The interface: qudi-iqo-modules' dialect (foreign enum members, names and ints), the shared
configure checks, and the contract alone (stream sharing is a mixin, no transport is imported)."""

from __future__ import annotations

import enum
import math
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from qudi.util.constraints import ScalarConstraint

from qudi.hardware.instream.dummy import InStreamDummy
from qudi.hardware.instream.ni_daq import NIXSeriesInStreamer
from qudi.hardware.instream.stream_sharing import SharedStreamer
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    SampleTiming,
    StreamingMode,
    StreamRequest,
    check_stream_request,
)


class ForeignSampleTiming(enum.Enum):
    """Stands for qudi-iqo-modules' own plain Enum of the same name and values."""

    INVALID = -1
    CONSTANT = 0
    TIMESTAMP = 1
    RANDOM = 2


ForeignSampleTiming.__name__ = "SampleTiming"


class Unrelated(enum.Enum):
    TIMESTAMP = 1


def test_members_equal_same_named_members_of_the_other_package_both_ways():
    assert SampleTiming.TIMESTAMP == ForeignSampleTiming.TIMESTAMP
    assert ForeignSampleTiming.TIMESTAMP == SampleTiming.TIMESTAMP  # their == reflects to ours
    assert SampleTiming.TIMESTAMP != ForeignSampleTiming.CONSTANT
    assert SampleTiming.TIMESTAMP != Unrelated.TIMESTAMP
    assert SampleTiming.TIMESTAMP != 1  # like a plain Enum member, not an int
    assert hash(SampleTiming.TIMESTAMP) == hash(ForeignSampleTiming.TIMESTAMP)
    assert ForeignSampleTiming.TIMESTAMP in {SampleTiming.TIMESTAMP}


@pytest.mark.parametrize(
    "given", [ForeignSampleTiming.RANDOM, "RANDOM", "random", 2, np.int64(2), SampleTiming.RANDOM]
)
def test_anything_naming_a_member_becomes_ours(given):
    assert SampleTiming.coerce(given) is SampleTiming.RANDOM


@pytest.mark.parametrize("given", ["SOMETIMES", 7, True, None, Unrelated.TIMESTAMP, 1.0])
def test_anything_else_is_refused_with_the_valid_names(given):
    with pytest.raises(ValueError, match="must be one of CONSTANT, TIMESTAMP, RANDOM"):
        SampleTiming.coerce(given)


def test_constraints_normalise_and_check_their_arguments():
    constraints = DataInStreamConstraints(
        channel_units={"APD": "c/s", "AI0": "V"},
        sample_timing=ForeignSampleTiming.TIMESTAMP,
        streaming_modes=[0, "FINITE"],
        data_type="float32",
        channel_buffer_size=ScalarConstraint(default=1024, bounds=(128, 2**20)),
    )
    assert constraints.sample_timing is SampleTiming.TIMESTAMP
    assert constraints.streaming_modes == [StreamingMode.CONTINUOUS, StreamingMode.FINITE]
    assert constraints.data_type is np.float32
    assert list(constraints.channel_units) == ["APD", "AI0"]
    with pytest.raises(ValueError, match="sample_rate constraints are required"):
        DataInStreamConstraints({"a": "V"}, "CONSTANT", [0], float, constraints.channel_buffer_size)
    with pytest.raises(TypeError, match="ScalarConstraint"):
        DataInStreamConstraints({"a": "V"}, "RANDOM", [0], float, 1024)


# ------------------------------------------------------------- dtypes kept whole (issue 15)
BUFFER = ScalarConstraint(default=1024, bounds=(1, 2**20), increment=1, enforce_int=True)
EVENTS = np.dtype([("time", "<f8"), ("channel", "<u4"), ("value", "<f4")])
MARKERS = np.dtype([("time", "<f8"), ("text", "S256")])


@pytest.mark.parametrize("given", [EVENTS, MARKERS, EVENTS.descr, "S256", ">f8", "V16"])
def test_a_dtype_its_scalar_type_cannot_rebuild_stays_whole(given):
    """A struct's scalar type is np.void (no fields), text's np.bytes_ (no size), and a
    big-endian float's np.float64 (native order): constraints keep the dtype instead."""
    constraints = DataInStreamConstraints({"events": ""}, "RANDOM", [0], given, BUFFER)
    assert constraints.dtype == np.dtype(given) == constraints.data_type
    assert isinstance(constraints.data_type, np.dtype)
    records = np.empty(3, constraints.data_type)  # what a consumer allocates for a read
    assert records.dtype == np.dtype(given) and records.dtype.names == np.dtype(given).names


@pytest.mark.parametrize("given", [float, np.float64, "float32", np.dtype("<i2"), "uint8"])
def test_a_number_dtype_is_still_its_scalar_type_for_qudi_iqo_modules(given):
    """Their logic calls issubclass(data_type, np.integer) and np.finfo(data_type)."""
    constraints = DataInStreamConstraints({"a": "V"}, "RANDOM", [0], given, BUFFER)
    assert constraints.data_type is np.dtype(given).type
    assert issubclass(constraints.data_type, np.number)
    assert constraints.dtype == np.dtype(given)


def test_constraints_with_a_struct_survive_pickling_as_qudi_remote_sends_them():
    constraints = DataInStreamConstraints({"events": ""}, "RANDOM", [0], EVENTS, BUFFER)
    copy = pickle.loads(pickle.dumps(constraints))
    assert copy.data_type == EVENTS and copy.dtype.names == ("time", "channel", "value")
    assert copy.sample_timing is SampleTiming.RANDOM


@pytest.mark.parametrize(
    ("given", "why"),
    [
        (object, "holds Python objects"),
        ([("time", "<f8"), ("note", "O")], "holds Python objects"),
        ("S", "zero bytes per sample"),
        (("<f8", (3,)), "is a subarray"),
        ("float65", "is no numpy dtype"),
        (None, "is no numpy dtype"),
    ],
)
def test_a_dtype_no_ring_can_hold_is_refused_naming_data_type(given, why):
    with pytest.raises(ValueError, match=rf"^data_type {re.escape(repr(given))}.*{why}"):
        DataInStreamConstraints({"a": ""}, "RANDOM", [0], given, BUFFER)


# ------------------------------------------------------------------- construction (issue 12)
@pytest.mark.parametrize("enum", [StreamingMode, SampleTiming])
def test_our_enums_construct_from_a_foreign_member_a_name_and_an_int(enum):
    foreign = enum_like(enum)
    for member in enum:
        assert enum(foreign[member.name]) is member
        assert enum(member.name.lower()) is member
        assert enum(f" {enum.__name__}.{member.name} ") is member  # as str(member) prints it
        assert enum(member.value) is member
        assert enum(np.int16(member.value)) is member
    with pytest.raises(ValueError, match="is not a valid"):
        enum("SOMETIMES")


def test_a_foreign_member_must_match_by_name_and_value():
    class Shifted(enum.Enum):  # same class name, CONSTANT at another value
        CONSTANT = 5

    Shifted.__name__ = "SampleTiming"
    with pytest.raises(ValueError):
        SampleTiming(Shifted.CONSTANT)
    with pytest.raises(ValueError):
        SampleTiming(Unrelated.TIMESTAMP)  # another class's name
    with pytest.raises(ValueError):
        SampleTiming(StreamingMode.FINITE)  # our other enum


def test_qudi_iqo_modules_enums_are_taken_and_take_our_values():
    """With their real package: ours take their members; theirs take our members' values (a
    plain Enum finds members by hashing, and ours hash by name, like their members)."""
    theirs = pytest.importorskip("qudi.interface.data_instream_interface")
    for ours_enum in (StreamingMode, SampleTiming):
        their_enum = getattr(theirs, ours_enum.__name__)
        for member in their_enum:
            ours = ours_enum(member)
            assert ours.name == member.name and ours == member and member == ours
            assert their_enum(ours.value) is member


def enum_like(ours: type[enum.Enum]) -> type[enum.Enum]:
    """A plain Enum with our enum's name and members, as qudi-iqo-modules defines it."""
    foreign = enum.Enum(ours.__name__, {m.name: m.value for m in ours})
    assert foreign is not ours and foreign.__name__ == ours.__name__
    return foreign


# ------------------------------------------------------------------ shared configure checks
CONSTRAINTS = DataInStreamConstraints(
    channel_units={"APD": "c/s", "AI0": "V"},
    sample_timing="CONSTANT",
    streaming_modes=["CONTINUOUS"],
    data_type=np.float64,
    channel_buffer_size=ScalarConstraint(default=1024, bounds=(128, 2**20), enforce_int=True),
    sample_rate=ScalarConstraint(default=50.0, bounds=(0.1, 1e6)),
)


def test_a_valid_request_comes_back_checked():
    request = check_stream_request(CONSTRAINTS, ["AI0", "APD"], 0, np.int32(4096), 1000)
    assert request == StreamRequest(("AI0", "APD"), StreamingMode.CONTINUOUS, 4096, 1000.0)
    assert type(request.buffer_size) is int and type(request.rate) is float


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (("APD", 0, 1024, 50.0), TypeError, "active_channels must be a list of channel names"),
        ((["APD", "X"], 0, 1024, 50.0), ValueError, "unknown: ['X']"),
        ((["APD", "APD"], 0, 1024, 50.0), ValueError, "repeated: ['APD']"),
        ((["APD"], "FINITE", 1024, 50.0), ValueError, "FINITE is not supported; supported: "),
        ((["APD"], 7, 1024, 50.0), ValueError, "streaming_mode must be one of CONTINUOUS, FINITE"),
        ((["APD"], 0, 1024.0, 50.0), TypeError, "channel_buffer_size must be an integer"),
        ((["APD"], 0, 10, 50.0), ValueError, "channel_buffer_size=10 is outside the allowed"),
        ((["APD"], 0, 1024, "fast"), TypeError, "sample_rate must be a number, got 'fast'"),
        ((["APD"], 0, 1024, math.inf), ValueError, "sample_rate=inf is outside the allowed"),
    ],
)
def test_each_bad_configure_argument_is_named(arguments, error, message):
    with pytest.raises(error, match=re.escape(message)):
        check_stream_request(CONSTRAINTS, *arguments)


def test_a_device_may_check_the_rate_by_its_own_rules_and_name_its_buffer_limit():
    seen = []

    def per_channel_rate(rate, channels):
        seen.append((rate, channels))
        return 20e3  # say, an external clock

    request = check_stream_request(
        CONSTRAINTS, ["APD"], 0, 1024, 19_999.9, rate_check=per_channel_rate
    )
    assert request.rate == 20e3 and seen == [(19_999.9, ("APD",))]
    with pytest.raises(ValueError, match=r"128 to 1048576 samples per channel \(option m\)"):
        check_stream_request(CONSTRAINTS, ["APD"], 0, 2**21, 50.0, buffer_note="(option m)")


# ------------------------------------------------------------------ the contract, no transport
def test_importing_the_interface_loads_no_transport():
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, qudi.interface.instream_interface; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'zmq' "
            "or m in ('qudi.util.instream.network', 'qudi.util.instream.sharing') "
            "or m.startswith('qudi.util.instream.transport')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


def test_stream_sharing_is_a_mixin_whose_option_qudi_gathers():
    assert "share_stream" not in dir(DataInStreamInterface)
    for streamer in (InStreamDummy, NIXSeriesInStreamer):
        assert issubclass(streamer, SharedStreamer)
        assert streamer.share_stream is SharedStreamer.share_stream
        option = streamer._meta["config_options"]["_publish_address"]
        assert option is SharedStreamer._publish_address  # the mixin's, gathered by qudi
        assert option.name == "publish_address" and option.default == "tcp://127.0.0.1:*"
