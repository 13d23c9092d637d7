"""The shared argument checks of ``arrays``: each refusal names the argument, value and remedy."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qudi.util.instream.arrays import (
    ArgumentTypeError,
    as_channel_names,
    check_in_range,
    check_timeout,
    option_error,
)

KNOWN = ["APD", "AI0", "AI1"]


# ---------------------------------------------------------------------- channel selection
@pytest.mark.parametrize("given", [["AI1", "APD"], ("APD",), np.array(["AI0", "AI1"])])
def test_a_selection_of_known_channels_keeps_its_order(given):
    assert as_channel_names(given, known=KNOWN) == tuple(str(ch) for ch in given)


def test_unknown_and_repeated_channels_are_each_named_with_the_valid_ones():
    with pytest.raises(ValueError) as raised:
        as_channel_names(["APD", "X", "APD", "Y"], known=KNOWN)
    message = str(raised.value)
    assert message.startswith(
        "active_channels ['APD', 'X', 'APD', 'Y'] must be a non-empty selection of "
        "['APD', 'AI0', 'AI1'], each at most once"
    )
    assert "unknown: ['X', 'Y']" in message and "repeated: ['APD']" in message


def test_the_argument_name_is_the_callers():
    with pytest.raises(ValueError, match=r"^enabled \['Z'\] must be a non-empty selection"):
        as_channel_names(["Z"], "enabled", known=KNOWN)
    with pytest.raises(TypeError, match="^enabled must be a list of channel names, got 'APD'"):
        as_channel_names("APD", "enabled", known=KNOWN)
    with pytest.raises(ValueError, match="^enabled must name at least one channel"):
        as_channel_names([], "enabled", known=KNOWN)


def test_without_known_channels_any_names_pass():
    assert as_channel_names(["X", "X"]) == ("X", "X")


# ------------------------------------------------------------------------------ ranges
@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("fast", TypeError, "rate must be a number, got 'fast'"),
        (True, TypeError, "rate must be a number, got True"),
        (None, TypeError, "rate must be a number, got None"),
        (math.nan, ValueError, "rate=nan is outside the allowed range 1 to 10 Hz (option x)"),
        (11, ValueError, "rate=11 is outside the allowed range 1 to 10 Hz (option x)"),
        (10**400, ValueError, "is outside the allowed range 1 to 10 Hz"),
    ],
)
def test_a_number_out_of_range_is_refused_naming_the_range(value, error, message):
    with pytest.raises(error, match=re.escape(message)):
        check_in_range(value, (1, 10), "rate", unit=" Hz", note="(option x)")


def test_integers_only_where_asked():
    assert check_in_range(np.int64(5), (1, 10), "size", integer=True) == 5
    assert type(check_in_range(5, (1, 10), "rate")) is float
    with pytest.raises(TypeError, match="size must be an integer, got 5.0"):
        check_in_range(5.0, (1, 10), "size", integer=True)


# ---------------------------------------------------------------------------- timeouts
@pytest.mark.parametrize("timeout", [None, 0, 0.5, np.float32(2.0), 10**6])
def test_a_timeout_is_seconds_or_none(timeout):
    assert check_timeout(timeout) == (None if timeout is None else float(timeout))


@pytest.mark.parametrize("timeout", ["1", True, [1.0]])
def test_a_timeout_of_the_wrong_type_is_both_a_type_and_a_value_error(timeout):
    with pytest.raises(ArgumentTypeError) as raised:
        check_timeout(timeout)
    assert isinstance(raised.value, TypeError) and isinstance(raised.value, ValueError)
    assert str(raised.value) == f"timeout must be a number of seconds >= 0 or None, got {timeout!r}"


def test_an_infinite_timeout_is_refused_with_the_way_to_wait_forever():
    with pytest.raises(ValueError, match="got inf: pass None to wait without a limit"):
        check_timeout(math.inf)


@pytest.mark.parametrize("timeout", [-1.0, math.nan, -math.inf, 10**400])
def test_negative_nan_and_unrepresentable_timeouts_are_refused(timeout):
    with pytest.raises(ValueError, match="timeout must be a number of seconds >= 0 or None"):
        check_timeout(timeout)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=3),
    )
)
def test_check_timeout_returns_a_usable_timeout_or_refuses_plainly(timeout):
    try:
        checked = check_timeout(timeout)
    except ValueError as error:  # ArgumentTypeError is one too
        assert str(error).startswith("timeout must be a number of seconds >= 0 or None")
    else:
        assert checked is None or (math.isfinite(checked) and checked >= 0)


# ----------------------------------------------------------------------------- options
def test_an_option_error_names_key_value_and_remedy():
    error = option_error("seed", "lucky", "use an integer")
    assert isinstance(error, ValueError)
    assert str(error) == "option 'seed' is 'lucky': use an integer"
