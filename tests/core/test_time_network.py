"""A stream's declared sample clock reaches a ZeroMQ subscriber with its description (the
time table's rows do not cross yet: see docs/time.md)."""

from __future__ import annotations

import numpy as np

from qudi.util.instream.hub import StreamHub
from qudi.util.instream.network import StreamPublisher, StreamSubscriber
from qudi.util.instream.simulated import SimulatedSource
from qudi.util.instream.simulated_clock import SimulatedClock, shared_clock
from qudi.util.instream.timebase import SampleClock


def test_the_sample_clock_crosses_zeromq(stream_name):
    lab = shared_clock(f"{stream_name}-net", tick_rate=1000.0)
    source = SimulatedSource(["ramp"], sample_rate=1000.0, clock=SimulatedClock(shared=lab))
    with StreamHub(source, name=stream_name, shared=False) as hub:
        assert hub.ring.info.sample_clock == SampleClock("shared", lab.name, 1000.0)
        with StreamPublisher(hub) as publisher, StreamSubscriber(publisher.endpoint) as sub:
            sub.read_into(np.empty((100, 1)), timeout=10.0)
            assert sub.ring.info.sample_clock == hub.ring.info.sample_clock
