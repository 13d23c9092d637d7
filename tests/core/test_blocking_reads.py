"""Blocking reads that could only ever overrun are refused before they wait (issue 12).

While a blocking read waits, the writer goes on and claims the slots of its next samples before
it fills them, so a read that waits for (nearly) the whole ring finds its oldest samples
overwritten when the last arrive, every time. Such a read is refused at once, with what would
work; a read the ring already holds is served, whatever its size.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from qudi.util.instream import StreamHub, StreamRing
from qudi.util.instream.errors import format_count
from qudi.util.instream.reader import blocking_read_limit
from qudi.util.instream.simulated import SimulatedSource


def test_a_blocking_read_of_the_whole_ring_is_refused_up_front_with_what_would_work():
    with StreamRing(1000, 2) as ring:
        reader = ring.reader("my analysis")
        ring.write(np.zeros((10, 2)))
        started = time.monotonic()
        with pytest.raises(ValueError, match="read at most 938 samples per call") as caught:
            reader.read_into(np.empty((1000, 2)), timeout=5)
        assert time.monotonic() - started < 1  # at once, not after the timeout
        assert "reader 'my analysis'" in str(caught.value)
        assert "a ring of at least 1 067 samples (channel_buffer_size)" in str(caught.value)
        assert reader.available == 10  # a refused read consumes nothing
        ring.write(np.ones((990, 2)))
        assert reader.read_into(np.empty((1000, 2)), timeout=0) == 1000  # all there: served


def test_the_limit_leaves_the_writer_a_sixteenth_of_the_ring():
    assert blocking_read_limit(100_000) == 93_750
    assert blocking_read_limit(1024) == 960
    assert blocking_read_limit(1) == 1
    with StreamRing(1024, 1) as ring:
        reader = ring.reader()
        ring.write(np.zeros((10, 1)))
        with pytest.raises(ValueError, match="at most 960"):
            reader.read_into(np.empty((961, 1)), timeout=0)
        with pytest.raises(TimeoutError):  # within the limit: it waits, as always
            reader.read_into(np.empty((960, 1)), timeout=0.01)


def test_a_read_of_a_whole_hub_ring_is_refused_with_the_size_that_works():
    """docs/jupyter.md once read 100 000 samples from a hub ring of exactly 100 000 (2**16 at
    100 kHz): it overran 7 times in 7. (The hub now leaves headroom; the whole ring still
    cannot be waited for.)"""
    source = SimulatedSource(("APD", "analog 1"), sample_rate=100_000.0)
    with StreamHub(source, name="test_doc_read", shared=False, max_poll_rate=30.0) as hub:
        hub.configure(["APD", "analog 1"], "CONTINUOUS", 2**16, 100_000.0)
        capacity = hub.ring.capacity
        limit = format_count(blocking_read_limit(capacity))
        reader = hub.open_reader("my notebook")
        reader.start()
        try:
            with pytest.raises(ValueError, match=f"read at most {limit} samples per call"):
                reader.read_into(np.empty((capacity, 2)), timeout=10)
            assert reader.lost == 0
        finally:
            reader.close()
