"""The seam the fake plugs into still exists and still looks the same; the real package without
the NI driver gives a clear activation error."""

from __future__ import annotations

import contextlib
import inspect
import logging

import nidaqmx
import nidaqmx._base_interpreter
import nidaqmx.errors
import nidaqmx.system
import nidaqmx.utils
import pytest
from fake_daqmx import FakeDaqmx

from qudi.hardware.instream.ni_daq import NIXSeriesInStreamer


def test_the_seam_exists_with_the_signature_the_fake_replaces():
    select = nidaqmx.utils._select_interpreter
    assert list(inspect.signature(select).parameters) == ["grpc_options", "interpreter"]
    assert list(inspect.signature(FakeDaqmx.select_interpreter).parameters)[1:] == [
        "grpc_options",
        "interpreter",
    ]
    # Task, Device and System pick their interpreter through it
    for module in ("nidaqmx.task._task", "nidaqmx.system.device", "nidaqmx.system.system"):
        source = inspect.getsource(__import__(module, fromlist=["_"]))
        assert "utils._select_interpreter(" in source, module


@pytest.mark.parametrize("name", FakeDaqmx.IMPLEMENTED)
def test_every_call_the_fake_implements_matches_the_interpreter(name):
    real = inspect.signature(getattr(nidaqmx._base_interpreter.BaseInterpreter, name))
    ours = inspect.signature(getattr(FakeDaqmx, name))
    assert list(ours.parameters) == list(real.parameters)


def test_the_fake_is_strict(fake):
    with pytest.raises(AssertionError, match="unexpected DAQmx call: read_analog_scalar_f64"):
        fake.interpreter.read_analog_scalar_f64(1, 10.0)
    with pytest.raises(TypeError):  # autospec: a call with the wrong signature fails too
        fake.interpreter.start_task(1, 2)
    with pytest.raises(AssertionError):  # an attribute the fake does not know
        fake.interpreter.get_device_attribute_bool("Dev1", 0x1234)


def _driver_present() -> bool:
    try:
        nidaqmx.system.System.local().driver_version  # noqa: B018 - loads the driver
    except nidaqmx.errors.DaqNotFoundError:
        return False
    return True


@pytest.mark.skipif(_driver_present(), reason="the NI-DAQmx driver is installed here")
def test_without_the_driver_activation_says_to_install_it(caplog):
    """The real nidaqmx package, no fake: what a user without the driver sees."""
    with pytest.raises(nidaqmx.errors.DaqNotFoundError):
        nidaqmx.Task()  # the premise: this machine has no driver
    streamer = NIXSeriesInStreamer(
        qudi_main_weakref=None, name="ni", config={"digital_sources": ["PFI8"]}
    )
    with pytest.raises(RuntimeError, match="NI-DAQmx driver is not installed") as raised:
        streamer.on_activate()
    assert "python -m nidaqmx installdriver" in str(raised.value)
    assert isinstance(raised.value.__cause__, nidaqmx.errors.DaqNotFoundError)
    # through qudi's state machine the activation is refused and the reason logged
    with caplog.at_level(logging.ERROR):
        with contextlib.suppress(Exception):  # qudi logs the error, then cancels
            streamer.module_state.activate()
    assert streamer.module_state() == "deactivated"
    assert any(
        "NI-DAQmx driver is not installed" in str(r.exc_info[1] if r.exc_info else r.message)
        for r in caplog.records
    )
