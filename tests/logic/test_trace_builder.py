"""TraceBuilder: oversampling, x values, window, moving average and count scaling, without qudi."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qudi.logic.instream.trace import TraceBuilder, TraceWindow, trace_bytes_per_point


def ramp(first: int, count: int, channels: int = 2) -> np.ndarray:
    """Samples whose channel c holds (index, -index, index, ...)."""
    index = np.arange(first, first + count, dtype=float)
    return np.stack([index * (-1) ** c for c in range(channels)], axis=1)


def test_trace_window_is_the_cores_own():
    from qudi.util.instream.trace import TraceWindow as core_window

    assert TraceWindow is core_window


def test_points_are_means_of_oversampled_runs_and_x_is_point_time():
    builder = TraceBuilder(["a", "b"], data_rate=250.0, window_seconds=1.0, oversampling=4)
    assert builder.add(ramp(0, 10)) == 2  # 2 samples carried to the next block
    assert builder.add(ramp(10, 6)) == 2
    x, raw, x_avg, averaged = builder.views()
    np.testing.assert_array_equal(raw["a"], [1.5, 5.5, 9.5, 13.5])
    np.testing.assert_array_equal(raw["b"], [-1.5, -5.5, -9.5, -13.5])
    np.testing.assert_array_equal(x, np.arange(4) / 250.0)
    assert x_avg is None and averaged is None and builder.count == 4


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 7), st.sampled_from([1, 3, 5]), st.lists(st.integers(0, 40), max_size=20))
def test_any_split_into_blocks_shows_the_newest_points_and_their_exact_averages(
    oversampling, width, blocks
):
    builder = TraceBuilder(
        ["a", "b"],
        10.0,
        5.0,
        oversampling=oversampling,
        moving_average_width=width,
        averaged=["b"],
        count_scale={"a": 2.0},
    )
    first = 0
    for count in blocks:
        builder.add(ramp(first, count))
        first += count
    # every point from the whole history at once, the slow obvious way
    points = first // oversampling
    samples = ramp(0, points * oversampling)
    means = samples.reshape(points, oversampling, 2).mean(axis=1)
    x, raw, x_avg, averaged = builder.views()
    shown = min(points, 50)
    np.testing.assert_array_equal(raw["a"], 2.0 * means[points - shown :, 0])
    np.testing.assert_array_equal(raw["b"], means[points - shown :, 1])
    np.testing.assert_allclose(x, np.arange(points - shown, points) / 10.0)
    if width == 1:
        assert x_avg is None and averaged is None
        return
    if points < width:
        assert len(averaged["b"]) == 0
        return
    expected = np.array([means[i : i + width, 1].mean() for i in range(points - width + 1)])
    half = width // 2
    assert len(averaged["b"]) >= min(len(expected), 50 - width + 1)  # all the window allows
    np.testing.assert_allclose(averaged["b"], expected[len(expected) - len(averaged["b"]) :])
    if len(x_avg):
        assert x_avg[-1] == pytest.approx((points - 1 - half) / 10.0)


def test_the_window_keeps_the_newest_points():
    builder = TraceBuilder(["a"], data_rate=10.0, window_seconds=2.0)
    assert builder.points == 20
    for first in range(0, 95, 5):
        builder.add(ramp(first, 5, channels=1))
    x, raw, _, _ = builder.views()
    np.testing.assert_array_equal(raw["a"], np.arange(75, 95))
    np.testing.assert_allclose(x, np.arange(75, 95) / 10.0)


def test_random_timing_has_the_point_index_as_x():
    builder = TraceBuilder(["a"], data_rate=1000.0, window_seconds=1.0, timing="RANDOM")
    builder.add(ramp(0, 30, channels=1))
    np.testing.assert_array_equal(builder.views().x, np.arange(30))


def test_timestamp_x_is_the_mean_stamp_and_the_window_is_a_time_span():
    builder = TraceBuilder(
        ["a"], data_rate=10.0, window_seconds=1.0, oversampling=2, timing="TIMESTAMP"
    )
    stamps = np.cumsum(np.full(200, 0.05))  # 20 samples/s: 10 points/s, as announced
    stamps[100:] += 3.0  # a pause of 3 s, then on
    builder.add(ramp(0, 200, channels=1), stamps)
    x, raw, _, _ = builder.views()
    np.testing.assert_allclose(x, (stamps[0::2] + stamps[1::2])[-len(x) :] / 2)
    assert x[-1] - x[0] <= 1.0 < x[-1] - x[0] + 0.1 + 1e-9  # the newest second of time
    with pytest.raises(ValueError, match="TIMESTAMP trace needs one timestamp per sample"):
        builder.add(ramp(0, 4, channels=1))


def test_centred_moving_average_ends_width_half_before_the_newest_raw_point():
    rng = np.random.default_rng(3)
    builder = TraceBuilder(
        ["a", "b"], data_rate=100.0, window_seconds=2.0, moving_average_width=5, averaged=["b"]
    )
    data = rng.normal(size=(150, 2))
    for block in np.array_split(data, 7):
        builder.add(block)
    x, raw, x_avg, averaged = builder.views()
    assert set(averaged) == {"b"}
    assert x_avg[-1] == x[-3]  # width // 2 = 2 points earlier
    expected = np.convolve(raw["b"], np.ones(5) / 5, mode="valid")
    np.testing.assert_allclose(averaged["b"], expected[-len(x_avg) :])
    np.testing.assert_allclose(x_avg, x[2:-2][-len(x_avg) :])


def test_count_scale_multiplies_only_the_named_channels():
    builder = TraceBuilder(
        ["counts", "volts"], data_rate=50.0, window_seconds=1.0, count_scale={"counts": 50.0}
    )
    builder.add(np.array([[2.0, 2.0], [4.0, 4.0]]))
    raw = builder.views().raw
    np.testing.assert_array_equal(raw["counts"], [100.0, 200.0])
    np.testing.assert_array_equal(raw["volts"], [2.0, 4.0])


def test_integer_samples_become_float_points():
    builder = TraceBuilder(["a"], data_rate=10.0, window_seconds=1.0, oversampling=2)
    builder.add(np.array([[1], [2], [3], [4]], dtype=np.int16))
    np.testing.assert_array_equal(builder.views().raw["a"], [1.5, 3.5])


def test_int16_samples_without_oversampling_scale_in_float_and_stay_untouched():
    builder = TraceBuilder(
        ["counts", "volts"], data_rate=10.0, window_seconds=1.0, count_scale={"counts": 50.0}
    )
    data = np.array([[30_000, 7], [-2, 32_767]], dtype=np.int16)
    builder.add(data)
    raw = builder.views().raw
    np.testing.assert_array_equal(raw["counts"], [1_500_000.0, -100.0])  # no int16 overflow
    np.testing.assert_array_equal(raw["volts"], [7.0, 32_767.0])
    np.testing.assert_array_equal(data, [[30_000, 7], [-2, 32_767]])  # the caller's block


@pytest.mark.parametrize(
    ("timing", "first", "last"),
    [("CONSTANT", 0.0, 0.38), ("TIMESTAMP", -0.4, -0.02), ("RANDOM", 0.0, 19.0)],
)
def test_placeholder_before_the_first_point_is_what_qudi_iqo_modules_shows(timing, first, last):
    builder = TraceBuilder(
        ["a", "b"],
        data_rate=50.0,
        window_seconds=0.4,
        moving_average_width=5,
        averaged=["b"],
        timing=timing,
        placeholder=True,
    )
    x, raw, x_avg, averaged = builder.views()
    assert len(x) == 20 and x[0] == pytest.approx(first) and x[-1] == pytest.approx(last)
    assert all(np.array_equal(y, np.zeros(20)) for y in raw.values())
    assert len(x_avg) == 18 and x_avg[-1] == x[-1]  # their average: the last n - w//2 times
    np.testing.assert_array_equal(averaged["b"], np.zeros(18))
    builder.add(ramp(0, 3), np.arange(3) / 50.0)  # stamps count only for TIMESTAMP
    assert len(builder.views().x) == 3  # real points only from the first one on


def test_without_placeholder_an_empty_trace_has_no_points():
    builder = TraceBuilder(["a"], data_rate=50.0, window_seconds=1.0)
    x, raw, _, _ = builder.views()
    assert len(x) == 0 and len(raw["a"]) == 0


def test_views_are_read_only():
    builder = TraceBuilder(["a"], data_rate=50.0, window_seconds=1.0, placeholder=True)
    with pytest.raises(ValueError):
        builder.views().x[0] = 1.0
    builder.add(ramp(0, 5, channels=1))
    with pytest.raises(ValueError):
        builder.views().raw["a"][0] = 1.0


@pytest.mark.parametrize("timing", ["CONSTANT", "TIMESTAMP"])
def test_nbytes_is_what_the_windows_take(timing):
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        builder = TraceBuilder(
            ["a", "b", "c"],
            data_rate=1e5,
            window_seconds=2.0,
            averaged=["a"],
            moving_average_width=3,
            timing=timing,
        )
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert builder.nbytes == trace_bytes_per_point(3, 1, timing == "TIMESTAMP") * 200_000
    assert builder.nbytes <= taken < 1.01 * builder.nbytes + 100_000


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"channels": "ab"}, TypeError, "channels must be a list of channel names"),
        ({"channels": []}, ValueError, "channels must name at least one channel"),
        ({"channels": ["a", "a"]}, ValueError, "each channel at most once"),
        ({"averaged": ["z"]}, ValueError, r"averaged channels \['z'\] are not among"),
        ({"data_rate": 0}, ValueError, "data_rate must be a finite number > 0, got 0"),
        ({"window_seconds": float("nan")}, ValueError, "window_seconds must be a finite"),
        ({"oversampling": 0}, ValueError, "oversampling must be at least 1, got 0"),
        ({"oversampling": 1.5}, TypeError, "oversampling must be an integer, got 1.5"),
        ({"moving_average_width": 4}, ValueError, "moving_average_width must be odd, got 4"),
        ({"timing": "SOMETIMES"}, ValueError, "timing must be one of"),
        ({"count_scale": {"z": 2.0}}, ValueError, "count_scale names 'z'"),
        ({"count_scale": {"a": -1.0}}, ValueError, r"count_scale\['a'\] must be a finite"),
    ],
)
def test_bad_parameters_are_named(arguments, error, message):
    given = {"channels": ["a", "b"], "data_rate": 10.0, "window_seconds": 1.0, **arguments}
    with pytest.raises(error, match=message):
        TraceBuilder(
            given.pop("channels"), given.pop("data_rate"), given.pop("window_seconds"), **given
        )


def test_a_block_of_the_wrong_shape_adds_nothing():
    builder = TraceBuilder(["a", "b"], data_rate=10.0, window_seconds=1.0, oversampling=2)
    builder.add(ramp(0, 3))
    with pytest.raises(ValueError, match=r"data must be \[samples, 2\].*got shape \(4, 3\)"):
        builder.add(ramp(0, 4, channels=3))
    builder.add(ramp(3, 1))
    np.testing.assert_array_equal(builder.views().raw["a"], [0.5, 2.5])


def test_raw_codes_are_scaled_once_into_the_trace_and_averaged_in_volts():
    from qudi.util.instream.raw_scaling import scale_block

    polynomials = [(0.01, 3e-4, 1e-9, 0.0), (-0.02, 3e-5, 0.0, 1e-14)]
    codes = np.array([[0, 100], [1000, -2000], [-32768, 32767], [5, 7]], dtype=np.int16)
    builder = TraceBuilder(["ai0", "ai1"], 50.0, 1.0, oversampling=2, raw_scaling=polynomials)
    assert builder.add(codes) == 2
    volts = scale_block(codes, polynomials)
    expected = volts.reshape(2, 2, 2).mean(axis=1)  # the mean of volts, not of codes
    raw = builder.views().raw
    np.testing.assert_allclose(np.stack([raw["ai0"], raw["ai1"]], axis=1), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="one polynomial per channel"):
        TraceBuilder(["ai0", "ai1"], 50.0, 1.0, raw_scaling=polynomials[:1])
