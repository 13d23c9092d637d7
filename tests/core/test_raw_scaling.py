"""raw_scaling: code-to-volt polynomials, their checks, and a recording of raw codes read back."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from qudi.util.instream.raw_scaling import (
    RAW_SCALING_KEY,
    read_volts,
    scale_block,
    scale_raw,
    scaling_extra,
    scaling_of,
    write_scaling_attributes,
)

TERMS = (-2.4e-3, 3.17e-4, -1.2e-13, 2.5e-18)  # like an NI 63xx input on +-10 V


def test_scale_raw_evaluates_the_polynomial_lowest_power_first():
    codes = np.array([-32768, -1, 0, 1, 12345, 32767], np.int16)
    x = codes.astype(np.float64)
    expected = TERMS[0] + TERMS[1] * x + TERMS[2] * x**2 + TERMS[3] * x**3
    np.testing.assert_allclose(scale_raw(codes, TERMS), expected, rtol=1e-15, atol=1e-18)
    assert scale_raw(codes, TERMS).dtype == np.float64
    assert scale_raw(np.int16(0), [1.5]) == 1.5  # a constant: one term
    out = np.empty(6)
    assert scale_raw(codes, TERMS, out=out) is out


def test_int16_codes_do_not_overflow_while_scaling():
    # code**3 overflows int16 many times over: the powers must be taken in float64
    assert scale_raw(np.array([32767], np.int16), [0, 0, 0, 1.0])[0] == 32767.0**3


@pytest.mark.parametrize(
    ("coefficients", "error", "message"),
    [
        ([], ValueError, "1 to 16 terms"),
        ([0.0] * 17, ValueError, "1 to 16 terms"),
        ([0.0, float("nan")], ValueError, "finite"),
        ([0.0, "3e-4"], TypeError, "numbers only"),
        ([0.0, True], TypeError, "numbers only"),
        ("0.1", TypeError, "sequence of numbers"),
        (None, TypeError, "sequence of numbers"),
    ],
)
def test_bad_coefficients_are_refused_naming_them(coefficients, error, message):
    with pytest.raises(error, match=message):
        scale_raw(np.zeros(3, np.int16), coefficients)


def test_bad_raw_and_out_are_refused():
    with pytest.raises(TypeError, match="integer or float codes"):
        scale_raw(np.array(["a"]), TERMS)
    with pytest.raises(ValueError, match="float64 of shape"):
        scale_raw(np.zeros(3, np.int16), TERMS, out=np.empty(3, np.float32))


def test_scale_block_scales_each_column_by_its_own_polynomial():
    raw = np.array([[0, 10], [100, -100]], np.int16)
    volts = scale_block(raw, [(1.0, 2.0), (0.0, 0.5, 0.01)])
    np.testing.assert_array_equal(volts, [[1.0, 5.0 + 1.0], [201.0, -50.0 + 100.0]])
    with pytest.raises(ValueError, match=r"\[samples, 3\]"):
        scale_block(raw, [TERMS] * 3)


def test_the_description_entry_names_each_channel_and_is_checked():
    extra = scaling_extra({"ai0": TERMS, "ai1": [0.0, 1e-5]})
    assert extra == {
        RAW_SCALING_KEY: {"unit": "V", "coefficients": {"ai0": list(TERMS), "ai1": [0.0, 1e-5]}}
    }
    assert scaling_of(extra, ["ai1", "ai0"]) == [(0.0, 1e-5), TERMS]
    assert scaling_of({"stream_id": "x"}, ["ai0"]) is None  # not raw
    with pytest.raises(ValueError, match=r"no polynomial for \['ai7'\]"):
        scaling_of(extra, ["ai0", "ai7"])
    with pytest.raises(ValueError, match="coefficients of ai0"):
        scaling_extra({"ai0": [float("inf")]})
    with pytest.raises(ValueError, match="no 'coefficients' mapping"):
        scaling_of({RAW_SCALING_KEY: {"unit": "V"}}, ["ai0"])


def test_a_file_of_raw_codes_says_how_to_scale_them_and_reads_back_in_volts(tmp_path):
    path = tmp_path / "raw.h5"
    raw = np.array([[0, -32768], [32767, 5]], np.int16)
    extra = scaling_extra({"a": TERMS, "b": (0.01, 1e-3)})
    with h5py.File(path, "x") as file:
        data = file.create_dataset("data", data=raw)
        assert write_scaling_attributes(data, extra, ["a", "b"])
        file.attrs["samples_recorded"] = 2
        other = file.create_dataset("volts", data=np.zeros(2))
        assert not write_scaling_attributes(other, {"stream_id": "x"}, ["a"])  # not raw
        assert dict(other.attrs) == {}
    with h5py.File(path, "r") as file:
        attrs = file["data"].attrs
        # the shorter polynomial is padded with zero terms: one [channels, terms] table
        np.testing.assert_array_equal(attrs["scaling_coefficients"], [TERMS, (0.01, 1e-3, 0, 0)])
        assert attrs["scaling_unit"] == "V"
        assert "c0 + c1*x" in attrs["scaling_note"]
    expected = np.stack([scale_raw(raw[:, 0], TERMS), scale_raw(raw[:, 1], (0.01, 1e-3))], 1)
    np.testing.assert_array_equal(read_volts(path), expected)
    np.testing.assert_array_equal(read_volts(path, 1), expected[1:])


def test_read_volts_reads_only_completed_rows_and_plain_files_as_stored(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "x") as file:
        file.create_dataset("data", data=np.arange(6.0).reshape(3, 2))
        file.attrs["samples_recorded"] = 2  # a third row the recording never completed
    np.testing.assert_array_equal(read_volts(path), [[0.0, 1.0], [2.0, 3.0]])


def test_scaled_units_are_the_polynomials_unit_for_the_channels_that_have_one():
    from qudi.util.instream.raw_scaling import scaled_units, scaling_extra

    extra = scaling_extra({"ai0": [0.0, 3e-4]})
    units = {"ai0": "code", "PFI8": "c/s"}
    assert scaled_units(extra, units) == {"ai0": "V", "PFI8": "c/s"}
    assert scaled_units({}, units) == units
    assert scaled_units({"raw_scaling": "nonsense"}, units) == units
