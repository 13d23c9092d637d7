"""Filter chains and digital lines in a real qudi: the buffer's docstring example with its
``filters`` option, loaded as qudi loads a config, filters what its consumer reads exactly as
scipy filters the whole signal; a bad spec stops activation naming the key; the dummy's
``digital`` channels and ``pre_filters`` reach every buffer."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from ruamel.yaml import YAML
from scipy import signal
from tests.qudi.added_modules import add_modules

import qudi.hardware.instream.buffer as buffer_module
from qudi.interface.instream_interface import StreamingMode

DUMMY = """\
    kinds_dummy:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['ramp', 'ttl', 'sine']
            channel_units: ['samples', '', 'V']
            channel_signals: ['ramp', 'digital', 'sine']
            digital_edge_rate: 500.0
            seed: 3
"""


def _example_buffer_options() -> dict:
    """The options of the first buffer in DataInStreamBuffer's docstring example."""
    example = re.search(r"::\n\n((?:    .*\n|\n)+)", buffer_module.__doc__).group(1)
    entries = YAML(typ="safe").load(example)
    (entry,) = [e for e in entries.values() if "filters" in (e.get("options") or {})]
    options = dict(entry["options"])
    options.pop("publish_address", None)  # this test shares nothing with other hosts
    return options


def _buffer_yaml(name: str, streamer: str, options: dict) -> str:
    entry = {
        name: {
            "module.Class": "instream.buffer.DataInStreamBuffer",
            "options": options,
            "connect": {"streamer": streamer},
        }
    }
    return "".join(f"    {line}\n" for line in yaml_dump_text(entry).splitlines())


def yaml_dump_text(data) -> str:
    stream = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.dump(data, stream)
    return stream.getvalue()


@pytest.fixture
def kinds_modules(qudi, tmp_path, module_manager):
    options = _example_buffer_options()
    text = (
        DUMMY
        + _buffer_yaml("filtered_buffer", "kinds_dummy", options)
        + _buffer_yaml("plain_kinds_buffer", "kinds_dummy", {})
    )
    names = add_modules(qudi, tmp_path, text)
    yield names, options["filters"]
    for name in reversed(names):
        module_manager.deactivate_module(name)


def _reference(spec, x: np.ndarray, rate: float) -> np.ndarray:
    """The docstring's chain applied to the whole signal at once, stage by stage, by scipy."""
    for stage in spec:
        ((kind, params),) = stage.items()
        if kind == "iir":
            sos = signal.iirfilter(
                params.get("order", 4),
                params["cutoff"],
                btype=params["btype"],
                ftype=params.get("design", "butter"),
                output="sos",
                fs=rate,
            )
            x = signal.sosfilt(sos, x, axis=0)
        elif kind == "decimate":
            x = signal.decimate(x, params["factor"], zero_phase=False, axis=0)
            rate /= params["factor"]
        else:
            raise AssertionError(
                f"the docstring example has a stage this test does not know: {kind}"
            )
    return x


def test_the_docstring_filters_give_the_one_shot_result_in_a_real_qudi(kinds_modules, activate):
    _, spec = kinds_modules
    filtered, plain = activate("filtered_buffer"), activate("plain_kinds_buffer")
    factor = int(np.prod([s["decimate"]["factor"] for s in spec if "decimate" in s]))
    filtered.configure(["ramp", "ttl", "sine"], StreamingMode.CONTINUOUS, 1 << 16, 1000.0)
    assert filtered.sample_rate == 1000.0 and plain.sample_rate == 1000.0 * factor
    assert filtered.constraints.data_type == np.float64
    filtered.start_stream()
    out = np.empty((400, 3))
    filtered.read_data_into_buffer(out, 400, timeout=10.0)
    filtered.stop_stream()
    ramp = np.arange(400 * factor, dtype=np.float64)[:, None]
    want = _reference(spec, ramp, 1000.0 * factor)
    np.testing.assert_allclose(out[:, :1], want, rtol=1e-12, atol=1e-9)
    assert filtered.lost_samples == 0


def test_a_bad_filter_spec_stops_activation_naming_the_key(
    qudi, tmp_path, module_manager, expected_qudi_errors
):
    text = DUMMY.replace("kinds_dummy", "kinds_dummy_2") + _buffer_yaml(
        "bad_filter_buffer", "kinds_dummy_2", {"filters": [{"notch": {"frequency": 1.0e6}}]}
    )
    names = add_modules(qudi, tmp_path, text)
    try:
        with pytest.raises(RuntimeError):
            module_manager.activate_module("bad_filter_buffer")
        errors = " ".join(expected_qudi_errors())
        assert "filters[0].notch.frequency is 1000000.0" in errors and "Nyquist" in errors
    finally:
        for name in reversed(names):
            module_manager.deactivate_module(name)


def test_digital_channels_of_the_dummy_reach_a_buffer_as_0_and_1(kinds_modules, activate):
    plain = activate("plain_kinds_buffer")
    plain.configure(["ramp", "ttl"], StreamingMode.CONTINUOUS, 1 << 16, 10_000.0)
    plain.start_stream()
    out = np.empty((5000, 2))
    plain.read_data_into_buffer(out, 5000, timeout=10.0)
    plain.stop_stream()
    np.testing.assert_array_equal(out[:, 0], np.arange(5000))
    assert set(np.unique(out[:, 1])) == {0.0, 1.0}
    edges = int(np.count_nonzero(np.diff(out[:, 1])))
    assert abs(edges - 250) < 5 * np.sqrt(250)  # 500 edges/s for half a second


def test_the_dummys_pre_filters_reach_every_buffer(qudi, tmp_path, module_manager, activate):
    text = (
        DUMMY.replace("kinds_dummy", "kinds_dummy_3")
        + "            pre_filters: [{scale: {gain: 2.0, offset: 1.0}}]\n"
        + _buffer_yaml("pre_a", "kinds_dummy_3", {})
        + _buffer_yaml("pre_b", "kinds_dummy_3", {})
    )
    names = add_modules(qudi, tmp_path, text)
    try:
        a, b = activate("pre_a"), activate("pre_b")
        a.configure(["ramp"], StreamingMode.CONTINUOUS, 1 << 16, 1000.0)
        a.start_stream()
        b.start_stream()
        out_a, out_b = np.empty((200, 1)), np.empty((200, 1))
        a.read_data_into_buffer(out_a, 200, timeout=10.0)
        b.read_data_into_buffer(out_b, 200, timeout=10.0)
        a.stop_stream()
        b.stop_stream()
        np.testing.assert_array_equal(out_a[:, 0], 2.0 * np.arange(200) + 1.0)
        first = (out_b[0, 0] - 1.0) / 2.0  # b joined a moment later
        np.testing.assert_array_equal(out_b[:, 0], 2.0 * np.arange(first, first + 200) + 1.0)
    finally:
        for name in reversed(names):
            module_manager.deactivate_module(name)


def test_a_time_series_logic_reads_a_filtered_buffer(
    qudi, tmp_path, module_manager, activate, qtbot
):
    spec = [
        {"channels": ["ramp"]},
        {"scale": {"gain": 2.0, "unit": "half samples"}},
        {"decimate": {"factor": 2, "ftype": "fir", "order": 2}},
    ]
    logic_yaml = (
        "    filtered_trace_logic:\n"
        "        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'\n"
        "        connect:\n"
        "            streamer: 'logic_filtered_buffer'\n"
    )
    text = DUMMY.replace("kinds_dummy", "kinds_dummy_4") + _buffer_yaml(
        "logic_filtered_buffer", "kinds_dummy_4", {"filters": spec}
    )
    names = add_modules(qudi, tmp_path, text, logic_yaml)
    try:
        logic = activate("filtered_trace_logic")
        buffer = module_manager["logic_filtered_buffer"].instance
        assert buffer.constraints.channel_units == {"ramp": "half samples"}
        logic.set_trace_settings(data_rate=500.0, oversampling_factor=1, trace_window_size=2.0)
        logic.start_reading()
        qtbot.waitUntil(lambda: len(logic.trace_data[0]) >= 200, timeout=10_000)
        logic.stop_reading()
        x, traces = logic.trace_data
        assert list(traces) == ["ramp"] and buffer.sample_rate == 500.0
        ramp = traces["ramp"]
        # a 3-tap FIR of a ramp is the ramp delayed by one sample: 2 * (2 k - 1) from k = 1 on
        steady = ramp[ramp > 10]
        np.testing.assert_allclose(np.diff(steady), 4.0, rtol=0, atol=1e-9)
    finally:
        for name in reversed(names):
            module_manager.deactivate_module(name)
