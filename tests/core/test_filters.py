"""Filter chains: chunked filtering equals one-shot scipy.signal on the whole signal, and a bad
spec is refused naming the key, the value and what would be valid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from qudi.util.instream.filter_spec import FilterSpecError, parse_chain
from qudi.util.instream.filters import ChunkFormat, build_chain

RATE = 1000.0
FMT = ChunkFormat(("a", "b", "c"), ("V", "V", "Hz"), np.dtype(np.float64), RATE)


def _signal(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    base = np.sin(2 * np.pi * 50 * t)[:, None] + rng.standard_normal((n, 3))
    return np.ascontiguousarray(base)


def _chunked(chain, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Feed ``x`` through ``chain`` in chunks of ``sizes`` (cycled; zero-size chunks too)."""
    out, i, k = [], 0, 0
    while i < len(x):
        size = sizes[k % len(sizes)]
        k += 1
        out.append(chain.process(x[i : i + size]))
        i += size
    return np.concatenate(out) if out else np.empty((0, chain.output.channels))


chunk_sizes = st.lists(st.integers(0, 700), min_size=1, max_size=20).filter(lambda s: any(s))


@settings(max_examples=40, deadline=None)
@given(
    sizes=chunk_sizes,
    seed=st.integers(0, 2**16),
    q=st.integers(2, 13),
    ftype=st.sampled_from(["iir", "fir"]),
)
def test_chunked_decimation_equals_scipy_decimate_on_the_whole_signal(sizes, seed, q, ftype):
    x = _signal(seed, 3000)
    chain = build_chain([{"decimate": {"factor": q, "ftype": ftype}}], FMT)
    got = _chunked(chain, x, sizes)
    want = signal.decimate(x, q, ftype=ftype, zero_phase=False, axis=0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert chain.output.sample_rate == RATE / q


@settings(max_examples=40, deadline=None)
@given(
    sizes=chunk_sizes,
    seed=st.integers(0, 2**16),
    order=st.integers(1, 8),
    btype=st.sampled_from(["lowpass", "highpass", "bandpass", "bandstop"]),
    design=st.sampled_from(["butter", "cheby1", "cheby2", "ellip", "bessel"]),
)
def test_chunked_iir_equals_one_shot_sosfilt(sizes, seed, order, btype, design):
    x = _signal(seed, 2500)
    cutoff = [20.0, 150.0] if btype in ("bandpass", "bandstop") else 80.0
    spec = [{"iir": {"btype": btype, "cutoff": cutoff, "order": order, "design": design}}]
    chain = build_chain(spec, FMT)
    sos = signal.iirfilter(
        order, cutoff, rp=1.0, rs=40.0, btype=btype, ftype=design, output="sos", fs=RATE
    )
    want = signal.sosfilt(sos, x, axis=0)
    np.testing.assert_allclose(_chunked(chain, x, sizes), want, rtol=0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(sizes=chunk_sizes, seed=st.integers(0, 2**16))
def test_a_whole_chain_chunked_equals_its_stages_applied_to_the_whole_signal(sizes, seed):
    x = _signal(seed, 3000)
    spec = [
        {"channels": ["c", "a"]},
        {"scale": {"gain": [2.0, -0.5], "offset": {"a": 1.0}, "unit": "mV"}},
        {"notch": {"frequency": 50.0, "quality": 20}},
        {"iir": {"sos": [[0.2, 0.4, 0.2, 1.0, -0.3, 0.1]]}},
        {"decimate": {"factor": 4}},
        {"cast": "float32"},
    ]
    chain = build_chain(spec, FMT)
    assert chain.output.channel_names == ("c", "a")
    assert chain.output.channel_units == ("mV", "mV")
    assert chain.output.dtype == np.float32 and chain.output.sample_rate == RATE / 4
    y = x[:, [2, 0]] * [2.0, -0.5] + [0.0, 1.0]
    b, a = signal.iirnotch(50.0, 20, fs=RATE)
    y = signal.sosfilt(signal.tf2sos(b, a), y, axis=0)
    y = signal.sosfilt([[0.2, 0.4, 0.2, 1.0, -0.3, 0.1]], y, axis=0)
    want = signal.decimate(y, 4, zero_phase=False, axis=0).astype(np.float32)
    got = _chunked(chain, x, sizes)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)  # float32 of equal float64s: equal bits


def test_counts_of_a_decimating_chain_predict_what_process_gives():
    chain = build_chain([{"decimate": {"factor": 5}}, {"decimate": {"factor": 3}}], FMT)
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = int(rng.integers(0, 40))
        predicted = chain.outputs_for(m)
        need = chain.inputs_for(predicted)
        assert need <= m and (predicted == 0 or chain.outputs_for(need) == predicted)
        assert len(chain.process(np.zeros((m, 3)))) == predicted


def test_cast_to_integers_rounds_and_clips():
    fmt = ChunkFormat(("a",), ("V",), np.dtype(np.float64), RATE)
    chain = build_chain([{"cast": "int8"}], fmt)
    got = chain.process(np.array([[1.6], [-2.5], [300.0], [-1e9]]))
    assert got.dtype == np.int8 and got[:, 0].tolist() == [2, -2, 127, -128]


def test_scale_of_integers_gives_float64_and_keeps_values_exact():
    fmt = ChunkFormat(("a", "b"), ("", ""), np.dtype(np.int32), RATE)
    chain = build_chain([{"scale": {"gain": {"b": 0.5}}}], fmt)
    got = chain.process(np.array([[3, 3], [2**31 - 1, 1]], np.int32))
    assert got.dtype == np.float64 and got.tolist() == [[3.0, 1.5], [2**31 - 1, 0.5]]


def test_no_stage_means_an_empty_chain():
    assert len(build_chain(None, FMT)) == 0 and len(build_chain([], FMT)) == 0
    assert parse_chain(None) == ()


@pytest.mark.parametrize(
    ("spec", "key", "valid"),
    [
        ({"scale": {}}, "filters", "list of filter stages"),
        (["scale"], "filters[0]", "one key"),
        ([{"smooth": 3}], "filters[0]", "one of ['scale'"),
        ([{"scale": {"gain": "x"}}], "filters[0].scale.gain", "a number"),
        ([{"scale": {"gain": [1, 2]}}], "filters[0].scale.gain", "give 3 values"),
        ([{"scale": {"gain": {"z": 2}}}], "filters[0].scale.gain.z", "channels are ['a'"),
        ([{"scale": {"gian": 2}}], "filters[0].scale.gian", "scale takes only"),
        ([{"cast": "object"}], "filters[0].cast", "numpy number type"),
        ([{"cast": "complex128"}], "filters[0].cast", "numpy number type"),
        ([{"channels": []}], "filters[0].channels", "non-empty list"),
        ([{"channels": ["a", "a"]}], "filters[0].channels", "repeated: ['a']"),
        ([{"channels": ["a", "x"]}], "filters[0].channels", "['x'] not in this stream"),
        ([{"iir": {"cutoff": 10}}], "filters[0].iir", "give btype"),
        ([{"iir": {"btype": "low", "cutoff": 10}}], "filters[0].iir.btype", "'lowpass'"),
        ([{"iir": {"btype": "lowpass", "cutoff": 500}}], "filters[0].iir.cutoff", "Nyquist"),
        ([{"iir": {"btype": "lowpass", "cutoff": -1}}], "filters[0].iir.cutoff", "above 0"),
        ([{"iir": {"btype": "bandpass", "cutoff": 10}}], "filters[0].iir.cutoff", "[low, high]"),
        (
            [{"iir": {"btype": "bandpass", "cutoff": [90, 10]}}],
            "filters[0].iir.cutoff",
            "low < high",
        ),
        ([{"iir": {"btype": "lowpass", "cutoff": 9, "order": 40}}], "filters[0].iir.order", "16"),
        (
            [{"iir": {"btype": "lowpass", "cutoff": 9, "design": "x"}}],
            "filters[0].iir.design",
            "butter",
        ),
        ([{"iir": {"sos": [[1, 2, 3]]}}], "filters[0].iir.sos", "second-order sections"),
        ([{"iir": {"sos": [[1, 0, 0, 2, 0, 0]]}}], "filters[0].iir.sos", "a0 = 1"),
        ([{"iir": {"sos": [[1, 0, 0, 1, 0, 0]], "order": 2}}], "filters[0].iir.order", "not both"),
        ([{"notch": {"frequency": 500.0}}], "filters[0].notch.frequency", "Nyquist"),
        ([{"notch": {"frequency": 50, "quality": 0}}], "filters[0].notch.quality", "above 0"),
        ([{"notch": {}}], "filters[0].notch", "give the frequency"),
        ([{"decimate": {"factor": 1}}], "filters[0].decimate.factor", "from 2 to"),
        ([{"decimate": {"factor": 2.0}}], "filters[0].decimate.factor", "whole number"),
        ([{"decimate": {"factor": True}}], "filters[0].decimate.factor", "whole number"),
        ([{"decimate": {"factor": 4, "ftype": "x"}}], "filters[0].decimate.ftype", "'iir'"),
        ([{"decimate": {"factor": 4, "order": 0}}], "filters[0].decimate.order", "from 1 to"),
        ([{"scale": {"gain": float("nan")}}], "filters[0].scale.gain", "a number"),
    ],
)
def test_a_bad_spec_is_refused_naming_key_value_and_what_is_valid(spec, key, valid):
    with pytest.raises(FilterSpecError) as info:
        build_chain(spec, FMT)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key} is ")
    assert valid in str(info.value)


def test_filters_after_a_decimation_check_against_the_new_nyquist():
    spec = [{"decimate": {"factor": 10}}, {"notch": {"frequency": 60.0}}]
    with pytest.raises(FilterSpecError, match="Nyquist frequency 50 Hz"):
        build_chain(spec, FMT)
