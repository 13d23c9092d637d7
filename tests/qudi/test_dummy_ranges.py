"""The dummy's values in every data type: nothing wraps or silently stops being exact (issue 21).

Each case failed before the fix: an int8 ramp read -113 after 400 samples, int8 counts wrapped
to a mean of -22, and float16 ramps stopped being exact after 2048 samples, all without notice.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream.simulated import ramp_limit


@pytest.fixture
def make_dummy(module_manager):
    """Add and activate a dummy with ``options`` (qudi-core cannot remove modules: each gets
    its own name); stopped and deactivated at the end."""
    made = []

    def make(**options):
        name = f"range_dummy_{len(module_manager.module_names)}"
        module_manager.add_module(
            name, "hardware", {"module.Class": "instream.dummy.InStreamDummy", "options": options}
        )
        made.append(name)
        module_manager.activate_module(name)
        return module_manager[name].instance

    yield make
    for name in made:
        if module_manager[name].instance is not None:
            module_manager[name].instance.stop_stream()
            module_manager.deactivate_module(name)


def ramp_dummy(make_dummy, data_type):
    return make_dummy(
        channel_names=["ramp"], channel_units=["samples"], channel_signals=["ramp"],
        data_type=data_type,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("data_type", "limit"),
    [("int8", 127), ("uint8", 255), ("int16", 32_767), ("float16", 2048)],
)
def test_a_ramp_stops_at_its_exact_range_instead_of_wrapping(make_dummy, data_type, limit):
    assert ramp_limit(data_type) == limit
    dummy = ramp_dummy(make_dummy, data_type)
    rate = 1e6
    dummy.configure(["ramp"], StreamingMode.CONTINUOUS, 100_000, rate)
    dummy.start_stream()
    time.sleep(2 * (limit + 1) / rate + 0.05)  # well past the limit, within the buffer
    data = np.empty(100_000, dummy.constraints.data_type)
    with pytest.raises(RuntimeError, match=f"the ramp reached {limit}, the largest index"):
        dummy.read_available_data_into_buffer(data)
    assert dummy.module_state() == "idle"
    assert dummy.read_available_data_into_buffer(data) == limit + 1  # all before the limit
    np.testing.assert_array_equal(data[: limit + 1], np.arange(limit + 1))
    assert dummy.read_available_data_into_buffer(data) == 0


def test_the_ramp_limits_of_the_other_types():
    assert ramp_limit("int32") == 2**31 - 1 and ramp_limit("uint32") == 2**32 - 1
    assert ramp_limit("uint16") == 65_535 and ramp_limit("float32") == 2**24
    assert ramp_limit("int64") == ramp_limit("uint64") == 2**63 - 1
    assert ramp_limit("float64") == 2**53
    for data_type in ("float16", "float32", "float64"):  # exact up to the limit, not after
        limit = ramp_limit(data_type)
        assert int(np.array(limit, data_type)) == limit
        assert int(np.array(limit + 1, data_type)) != limit + 1


def test_a_finite_run_longer_than_the_ramp_holds_is_refused(make_dummy):
    dummy = ramp_dummy(make_dummy, "int8")
    with pytest.raises(ValueError, match="int8 holds it exactly up to 127: use a wider data_type"):
        dummy.configure(["ramp"], StreamingMode.FINITE, 1000, 1000.0)
    assert dummy.streaming_mode == StreamingMode.CONTINUOUS  # a refusal changes nothing
    dummy.configure(["ramp"], StreamingMode.FINITE, 128, 10_000.0)
    dummy.start_stream()
    data = np.empty(128, np.int8)
    dummy.read_data_into_buffer(data, 128, timeout=5)
    np.testing.assert_array_equal(data, np.arange(128))


def test_counts_a_type_cannot_hold_are_refused_at_that_rate(make_dummy):
    dummy = make_dummy(
        channel_names=["APD", "ramp"], channel_units=["counts", "samples"],
        channel_signals=["counts", "ramp"], data_type="int8",
    )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"'APD' carries counts up to about 1261 counts per sample"
    ):
        dummy.configure(["APD", "ramp"], StreamingMode.CONTINUOUS, 1000, 50.0)
    with pytest.raises(ValueError, match=r"more than data_type int8 holds \(127\)"):
        dummy.start_stream()  # the settings in force since activation (50 S/s) do not fit
    assert dummy.module_state() == "idle"
    dummy.configure(["APD"], StreamingMode.CONTINUOUS, 10_000, 100_000.0)  # 0.5 per sample
    dummy.start_stream()
    data = np.empty(5000, np.int8)
    dummy.read_data_into_buffer(data, 5000, timeout=5)
    assert data.min() >= 0 and np.mean(data) == pytest.approx(0.5, rel=0.1)


def test_counts_per_second_in_an_integer_type_are_whole_and_unwrapped(make_dummy):
    dummy = make_dummy(
        channel_names=["APD"], channel_units=["Hz"], channel_signals=["counts"],
        data_type="uint16", seed=1,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"'APD' carries counts up to about .* Hz at 1000.0 Hz"):
        dummy.configure(["APD"], StreamingMode.CONTINUOUS, 1000, 1000.0)  # 1 photon = 1000 c/s
    dummy.configure(["APD"], StreamingMode.CONTINUOUS, 1000, 50.0)
    dummy.start_stream()
    data = np.empty(10, np.uint16)
    dummy.read_data_into_buffer(data, 10, timeout=5)
    assert np.mean(data) == pytest.approx(50e3, rel=0.05)
    np.testing.assert_array_equal(data % 50, 0)  # whole counts per period, times the rate


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ({"data_type": "int16"}, "'int16': the signals ['sine'] (values around -1 to 1) need"),
        ({"data_type": {"a": 1}}, "{'a': 1}: use a numpy number type"),
        ({"data_type": None}, "None: use a numpy number type"),
    ],
)
def test_a_data_type_that_cannot_hold_the_signals_fails_activation(
    module_manager, expected_qudi_errors, options, shown
):
    name = f"bad_range_dummy_{len(module_manager.module_names)}"
    config = {
        "channel_names": ["ramp", "sine"],
        "channel_units": ["samples", "V"],
        "channel_signals": ["ramp", "sine"],
        **options,
    }
    module_manager.add_module(
        name, "hardware", {"module.Class": "instream.dummy.InStreamDummy", "options": config}
    )
    with pytest.raises(RuntimeError, match="Failed to activate"):
        module_manager.activate_module(name)
    assert any(f"option 'data_type' is {shown}" in m for m in expected_qudi_errors())
