"""Time over ZeroMQ: the declared sample clock travels with the description, and a
subscriber writes its own time-table rows as samples arrive (on its host's clock)."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_a_subscriber_knows_when_its_samples_were_taken(stream_name):
    source = SimulatedSource(["ramp"], sample_rate=2000.0, clock=SimulatedClock())
    with StreamHub(source, name=stream_name, shared=False, max_poll_rate=100.0) as hub:
        here = hub.open_reader("here")
        here.start()
        with StreamPublisher(hub) as publisher, StreamSubscriber(publisher.endpoint) as sub:
            out = np.empty((2000, 1))
            for _ in range(2):  # a second of samples: rows from both sides
                sub.read_into(out, timeout=10.0)
            ramp = out[-1, 0]  # the ramp is the publisher's index of each sample
            local = sub.position - 1
            assert sub.clock.refresh() is not None and len(sub.clock.rows) >= 5
            theirs = float(here.clock.time_of(ramp))
            mine = float(sub.clock.time_of(local))
            # one host, one monotonic clock: the subscriber's rows are late by the transfer
            # too, so its fit may be later; both within their uncertainties and a few ms
            slack = float(here.clock.uncertainty_of(ramp) + sub.clock.uncertainty_of(local))
            assert abs(mine - theirs) <= slack + 5e-3
            assert float(source.clock.true_time(ramp)) == pytest.approx(theirs, abs=2e-3)
        here.close()
