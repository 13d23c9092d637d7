"""The logic's settings and options: checked before anything changes, errors that name them."""

from __future__ import annotations

import pytest

from qudi.logic.instream.settings import (
    PointLimit,
    TraceSettings,
    check_options,
    checked_channels,
    checked_trace_settings,
    in_force,
    merged_trace_settings,
)
from qudi.logic.instream.trace import trace_bytes_per_point

BOUNDS = (0.1, 1e6)
GiB = 1024**3
LIMIT = PointLimit(GiB, channels=4, averaged=2, timestamps=False)
GOOD = {
    "oversampling_factor": 2,
    "moving_average_width": 5,
    "trace_window_size": 2.0,
    "data_rate": 100.0,
}
OPTIONS = {
    "max_frame_rate": 20,
    "channel_buffer_size": 1024,
    "max_raw_data_bytes": 10**6,
    "max_trace_bytes": GiB,
    "calc_digital_freq": True,
    "start_reading_on_activation": False,
    "count_units": ["counts"],
}


def test_good_settings_come_back_with_the_window_in_whole_points():
    checked = checked_trace_settings({**GOOD, "trace_window_size": 2.004}, BOUNDS, LIMIT)
    assert checked == TraceSettings(2, 5, 2.0, 100.0) and checked.sample_rate == 200.0
    assert list(checked.as_dict()) == [
        "oversampling_factor",
        "moving_average_width",
        "trace_window_size",
        "data_rate",
    ]


def test_the_point_limit_follows_the_memory_a_trace_takes():
    assert LIMIT.points == GiB // trace_bytes_per_point(4, 2, False)
    timestamps = PointLimit(GiB, channels=4, averaged=2, timestamps=True)
    assert timestamps.points == LIMIT.points // 2  # a TIMESTAMP window holds twice the points


def test_a_window_that_cannot_be_allocated_is_refused_naming_key_value_and_limit():
    # hostile finding D5: 1e12 s at 50 Hz passed the checks, then raised MemoryError
    with pytest.raises(ValueError) as refused:
        checked_trace_settings(
            {**GOOD, "trace_window_size": 1e12, "data_rate": 50.0}, BOUNDS, LIMIT
        )
    message = str(refused.value)
    assert "trace_window_size 1000000000000.0 s holds 50000000000000 points" in message
    assert f"at most {LIMIT.points} points (option max_trace_bytes: {GiB})" in message
    assert f"use trace_window_size <= {LIMIT.points / 50.0:.6g} s" in message
    # the largest window that fits is accepted
    largest = LIMIT.points / 50.0
    accepted = checked_trace_settings(
        {**GOOD, "trace_window_size": largest, "data_rate": 50.0}, BOUNDS, LIMIT
    )
    assert round(accepted.trace_window_size * 50.0) == LIMIT.points


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"oversampling_factor": 10**20}, "is outside the streamer's 0.1 to 1000000.0 Hz"),
        ({"moving_average_width": 10**20 + 1}, "it needs at least 100000000000000000001"),
        ({"trace_window_size": 10**400}, "trace_window_size must be a finite number, got 1000"),
        ({"data_rate": 10**400}, "data_rate must be a finite number"),
        ({"oversampling_factor": 2.0}, None),
    ],
)
def test_huge_or_whole_float_numbers_give_value_errors_not_numpy_ones(change, message):
    # hostile finding D10: oversampling_factor 10**20 gave a numpy isfinite TypeError
    if message is None:
        assert checked_trace_settings({**GOOD, **change}, BOUNDS, LIMIT).oversampling_factor == 2
        return
    with pytest.raises(ValueError, match=message):
        checked_trace_settings({**GOOD, **change}, BOUNDS, LIMIT)


def test_in_force_follows_a_rate_another_consumer_set():
    adopted = TraceSettings(1, 5, 6.0, 50.0)
    assert in_force(adopted, 50.0, LIMIT) == adopted
    followed = in_force(adopted, 1000.0, LIMIT)
    assert followed == TraceSettings(1, 5, 6.0, 1000.0)
    oversampled = in_force(TraceSettings(4, 5, 6.0, 50.0), 1000.0, LIMIT)
    assert oversampled.data_rate == 250.0 and oversampled.trace_window_size == 6.0


def test_in_force_keeps_the_window_within_its_limits():
    small = PointLimit(trace_bytes_per_point(4, 2, False) * 1000, 4, 2, False)
    assert in_force(TraceSettings(1, 9, 6.0, 50.0), 1e5, small).trace_window_size == 1000 / 1e5
    assert in_force(TraceSettings(1, 9, 0.2, 50.0), 10.0, LIMIT).trace_window_size == 0.9


def test_merged_settings_name_unknown_keys_and_refuse_lists():
    current = {
        "oversampling_factor": 1,
        "moving_average_width": 1,
        "trace_window_size": 1.0,
        "data_rate": 10.0,
    }
    merged = merged_trace_settings(current, {"data_rate": 20.0}, {"data_rate": 30.0})
    assert merged == {**current, "data_rate": 30.0}
    with pytest.raises(ValueError, match=r"unknown trace settings \['rate'\]; valid are"):
        merged_trace_settings(current, {"rate": 1}, {})
    with pytest.raises(TypeError, match="settings_dict must be a dict of trace settings"):
        merged_trace_settings(current, [("data_rate", 1)], {})


def test_channel_selection_is_checked():
    assert checked_channels(["a", "b"], ["b", "z"], ["a", "b", "c"]) == (["a", "b"], ["b"])
    with pytest.raises(TypeError, match="enabled must be a list of channel names, got 'a'"):
        checked_channels("a", [], ["a"])
    with pytest.raises(ValueError, match="each at most once"):
        checked_channels(["a", "a"], [], ["a"])


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("max_frame_rate", 1e-9, "option 'max_frame_rate' is 1e-09: use at least 0.01 Hz"),
        ("max_frame_rate", 0, "option 'max_frame_rate' is 0: use 0 < Hz <= 200"),
        ("max_trace_bytes", 0, "option 'max_trace_bytes' is 0: use a positive integer"),
        ("max_trace_bytes", 1.5, "option 'max_trace_bytes' is 1.5: use a positive integer"),
    ],
)
def test_options_are_named_with_their_values(option, value, message):
    # hostile finding D10: max_frame_rate 1e-9 gave a bare OverflowError from QTimer
    check_options(OPTIONS)
    with pytest.raises(ValueError, match=message):
        check_options({**OPTIONS, option: value})
