"""The interface speaks qudi-iqo-modules' dialect: foreign enum members, names and ints."""

from __future__ import annotations

import enum

import numpy as np
import pytest
from qudi.util.constraints import ScalarConstraint

from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    SampleTiming,
    StreamingMode,
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
