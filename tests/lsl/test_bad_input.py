"""Bad options and calls of the LSL modules: refused with the key, the value and what is valid;
a refused call changes nothing."""

from __future__ import annotations

import pytest

from tests.lsl.conftest import TAG, pylsl, wait_until


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("lsl_bad_out", "option 'push_rate' is 0.0: use a number of Hz from 1 to 1000"),
        ("lsl_bad_in", "option 'stream_name' is \"it's\": use a non-empty string without '"),
        ("lsl_unnamed_in", "give at least one of stream_name, stream_type, source_id"),
    ],
)
def test_bad_options_fail_activation_naming_them(
    module, message, module_manager, expected_qudi_errors
):
    with pytest.raises(RuntimeError):
        module_manager.activate_module(module)
    assert message in " ".join(expected_qudi_errors())
    module_manager.deactivate_module("lsl_u64_buffer")


def test_a_dtype_lsl_cannot_carry_is_refused_and_nothing_starts(activate, module_manager):
    outlet = activate("lsl_u64_out")
    buffer = module_manager["lsl_u64_buffer"].instance
    with pytest.raises(ValueError, match="LSL cannot carry samples of dtype uint64 exactly"):
        outlet.start_publishing()
    assert not outlet.publishing
    assert buffer.module_state() == "idle"  # the buffer it would have read was not started
    assert not pylsl.resolve_byprop("source_id", outlet.source_id, 1, 0.5)
    module_manager.deactivate_module("lsl_u64_out")
    module_manager.deactivate_module("lsl_u64_buffer")


def test_configure_while_streaming_is_refused(plain_outlet, activate, module_manager):
    source = plain_outlet(f"plain-{TAG}", channels=3, rate=500.0)
    streamer = activate("lsl_in")
    streamer.start_stream()
    wait_until(source.outlet.have_consumers, 10, "the inlet")
    with pytest.raises(RuntimeError, match="while it streams"):
        streamer.configure(["ramp"], "CONTINUOUS", 500, 500.0)
    assert streamer.active_channels == ["ramp", "c1", "c2"]
    module_manager.deactivate_module("lsl_in")
