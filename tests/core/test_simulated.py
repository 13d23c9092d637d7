"""The simulated source's rules that the dummy streamer documents: which units are rates."""

from __future__ import annotations

import pytest

from qudi.util.instream.simulated import rate_unit_scale


@pytest.mark.parametrize(
    ("unit", "scale"),
    [
        ("Hz", 1.0),
        ("hz", 1.0),
        ("c/s", 1.0),
        ("cps", 1.0),
        ("counts/s", 1.0),
        ("cts/s", 1.0),
        ("1/s", 1.0),
        ("/s", 1.0),
        (" Hz ", 1.0),
        ("kHz", 1e3),
        ("KHz", 1e3),
        ("kc/s", 1e3),
        ("Mcps", 1e6),
        ("MHz", 1e6),
        ("GHz", 1e9),
    ],
)
def test_rate_units_and_their_prefixes(unit, scale):
    assert rate_unit_scale(unit) == scale


@pytest.mark.parametrize("unit", ["counts", "", "V", "samples", "mHz", "k/s", "s", "Hz/V"])
def test_other_units_are_no_rate(unit):
    assert rate_unit_scale(unit) is None
