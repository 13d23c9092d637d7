"""Fixtures for the NI streamer: the fake card behind nidaqmx's interpreter seam.

Every test that uses ``fake`` ends with every task it made closed and no
``DaqResourceWarning`` (nidaqmx warns when a Task is collected without being closed).
"""

from __future__ import annotations

import gc
import sys
import warnings
from pathlib import Path

import nidaqmx.errors
import nidaqmx.utils
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_daqmx import FakeDaqmx, SimulatedCard  # noqa: E402

BASE_CONFIG = {
    "device_name": "Dev1",
    "digital_sources": ["PFI8", "PFI9"],
    "analog_sources": ["ai0", "ai1"],
}


@pytest.fixture
def card() -> SimulatedCard:
    """The simulated card; a test may change it before using ``fake``."""
    return SimulatedCard()


@pytest.fixture
def fake(card, monkeypatch):
    """The fake interpreter, in place of the driver for everything nidaqmx does."""
    fake = FakeDaqmx(card)
    monkeypatch.setattr(nidaqmx.utils, "_select_interpreter", fake.select_interpreter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", nidaqmx.errors.DaqResourceWarning)
        yield fake
        gc.collect()  # a Task collected without close() warns now
    leaked = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaked, [str(w.message) for w in leaked]
    assert not fake.open_tasks(), f"tasks left open: {[t.name for t in fake.open_tasks()]}"


@pytest.fixture
def make_streamer(fake):
    """Build and activate an NIXSeriesInStreamer (no module manager needed); deactivated at the
    end. ``make_streamer(activate=False, **options)`` returns it unactivated."""
    from qudi.hardware.instream.ni_daq import NIXSeriesInStreamer

    made = []

    def make(activate: bool = True, **options):
        config = {**BASE_CONFIG, **options}
        streamer = NIXSeriesInStreamer(qudi_main_weakref=None, name="ni", config=config)
        made.append(streamer)
        if activate:
            streamer.module_state.activate()
            assert streamer.module_state() == "idle", "activation failed (see the log)"
        return streamer

    yield make
    for streamer in made:
        if streamer.module_state() != "deactivated":
            streamer.module_state.deactivate()
