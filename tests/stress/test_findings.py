"""What the soak found in the stream core, each as a small reproducer.

A reproducer is marked ``xfail(strict=True)`` while its bug stands and stays as a regression
test once fixed.
"""

from __future__ import annotations

import numpy as np
import pytest

from qudi.util.instream import StreamFaultError, StreamHub, StreamStoppedError
from qudi.util.instream.simulated import SimulatedSource


def test_a_reader_stopped_by_a_fault_does_not_read_into_the_next_run(stream_name):
    """Found by the soak (fixed in 50d307a): the samples left after a fault, then a stop; never
    the next acquisition's samples glued on without an error."""
    source = SimulatedSource(("ramp",), sample_rate=100_000.0)
    with StreamHub(source, name=stream_name, max_poll_rate=200.0) as hub:
        stale, restarter = hub.open_reader("stale"), hub.open_reader("restarter")
        stale.start()
        restarter.start()
        stale.read_into(np.empty((1000, 1)), timeout=5)
        source.simulate_fault(OSError("card unplugged"))
        for reader in (stale, restarter):
            with pytest.raises(StreamFaultError):
                reader.read_into(np.empty((50_000, 1)), timeout=5)
        restarter.start()  # a new acquisition: the ramp starts again at 0
        restarter.read_into(np.empty((20_000, 1)), timeout=5)
        # ``stale`` was never restarted: the samples left from its run, then a stop
        left = np.empty((100_000, 1))
        try:
            count = stale.read_available_into(left)
        except StreamStoppedError:
            count = 0
        ramp = left[:count, 0]
        breaks = np.flatnonzero(np.diff(ramp) != 1)
        assert not len(breaks), (
            f"read {count} samples with lost == {stale.lost}; the ramp jumps from "
            f"{ramp[breaks[0]]:.0f} to {ramp[breaks[0] + 1]:.0f}: two acquisitions glued together"
        )
