"""Hostile filter specs and trigger arguments: refused with a FilterSpecError (a ValueError)
naming the key, or built into a chain that filters; never another exception, never a crash."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qudi.util.instream.filter_spec import FilterSpecError
from qudi.util.instream.filters import ChunkFormat, build_chain
from tests.fuzzing import HOSTILE, mostly

FMT = ChunkFormat(("a", "b"), ("V", "V"), np.dtype(np.float64), 1000.0)


def _stage(kind: str, **params: st.SearchStrategy) -> st.SearchStrategy:
    """A stage whose every value is valid four times in five, else hostile."""
    return st.fixed_dictionaries({k: mostly(v) for k, v in params.items()}).map(
        lambda values: {kind: values}
    )


VALID = st.one_of(
    st.fixed_dictionaries({"gain": st.floats(-10, 10)}).map(lambda v: {"scale": v}),
    st.fixed_dictionaries({"btype": st.just("lowpass"), "cutoff": st.floats(1.0, 40.0)}).map(
        lambda v: {"iir": v}
    ),
    st.fixed_dictionaries({"factor": st.integers(2, 4)}).map(lambda v: {"decimate": v}),
    st.sampled_from([{"cast": "float32"}, {"channels": ["b"]}, {"notch": {"frequency": 10.0}}]),
)
STAGE = st.one_of(
    VALID,
    _stage("scale", gain=st.floats(-10, 10), offset=st.floats(-10, 10)),
    st.builds(lambda t: {"cast": t}, mostly(st.sampled_from(["float32", "float64", "int16"]))),
    st.builds(lambda c: {"channels": c}, mostly(st.permutations(["a", "b"]).map(list))),
    _stage(
        "iir",
        btype=st.sampled_from(["lowpass", "highpass"]),
        cutoff=st.floats(1.0, 400.0),
        order=st.integers(1, 8),
        design=st.sampled_from(["butter", "cheby1", "cheby2", "ellip", "bessel"]),
    ),
    _stage("notch", frequency=st.floats(1.0, 400.0), quality=st.floats(0.5, 100.0)),
    _stage("decimate", factor=st.integers(2, 6), ftype=st.sampled_from(["iir", "fir"])),
    HOSTILE,
)


@settings(max_examples=300, deadline=None)
@given(
    spec=st.one_of(st.lists(VALID, min_size=1, max_size=4), st.lists(STAGE, max_size=4), HOSTILE)
)
def test_a_hostile_spec_is_refused_naming_its_key_or_filters(spec):
    try:
        chain = build_chain(spec, FMT)
    except FilterSpecError as error:
        assert str(error).startswith(f"{error.key} is ") and error.key.startswith("filters")
        return
    predicted = chain.outputs_for(64)
    out = chain.process(np.random.default_rng(0).standard_normal((64, 2)))
    assert out.shape == (predicted, chain.output.channels) and out.dtype == chain.output.dtype
