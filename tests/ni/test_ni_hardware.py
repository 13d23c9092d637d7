"""On a lab PC with an NI X-series card: count the card's own 100 kHz timebase.

Skips itself without the NI-DAQmx driver or without a device. No wiring needed: a counter counts
the internal ``/<dev>/100kHzTimebase`` on a clock made by another counter, and the stream must
show about 100 000 counts/s in every sample. Choose the card with ``NI_TEST_DEVICE=Dev2``
(default: the first device found).
"""

from __future__ import annotations

import os

import nidaqmx.errors
import nidaqmx.system
import numpy as np
import pytest

from qudi.interface.instream_interface import StreamingMode


def _device() -> str | None:
    try:
        names = list(nidaqmx.system.System.local().devices.device_names)
    except nidaqmx.errors.Error:  # no driver (DaqNotFoundError) or a broken installation
        return None
    wanted = os.environ.get("NI_TEST_DEVICE")
    if wanted:
        return wanted if wanted in names else None
    return names[0] if names else None


DEVICE = _device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason="no NI-DAQmx driver or no NI device here")


@pytest.fixture
def make_streamer():
    from qudi.hardware.instream.ni_daq import NIXSeriesInStreamer

    made = []

    def make(**options):
        module = NIXSeriesInStreamer(qudi_main_weakref=None, name="ni_hw", config=options)
        made.append(module)
        module.module_state.activate()
        assert module.module_state() == "idle", "activation failed (see the log)"
        return module

    yield make
    for module in made:
        module.module_state.deactivate()


@pytest.mark.parametrize("analog_sources", [[], ["ai0"]], ids=["counter clock", "analog clock"])
def test_counting_the_internal_100khz_timebase(make_streamer, analog_sources):
    streamer = make_streamer(
        device_name=DEVICE, digital_sources=["100kHzTimebase"], analog_sources=analog_sources
    )
    channels = ["100kHzTimebase", *analog_sources]
    streamer.configure(channels, StreamingMode.CONTINUOUS, 100_000, 1000.0)
    streamer.start_stream()
    data = np.empty((2000, len(channels)))
    streamer.read_data_into_buffer(data, 2000, timeout=10)
    streamer.stop_stream()
    counts = data[:, 0]
    # 100 timebase ticks per 1 ms period, give or take the one a period boundary may catch
    assert np.all(np.abs(counts - 100_000) <= streamer.sample_rate + 1), (
        counts.min(),
        counts.max(),
    )
    assert abs(counts.mean() - 100_000) < 100
