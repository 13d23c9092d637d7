"""A reader that may lose samples is never kept retrying by a writer faster than its copy.

``read_available_into`` on a full ring copies from the oldest sample, which the writer
overwrites next: if the writer writes while every copy runs, every attempt is overtaken. An
overwriting reader then starts nearer the newest sample each time (the skipped samples counted
as lost); a strict one raises ``StreamOverrunError`` at once.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from qudi.util.instream import StreamRing
from qudi.util.instream.errors import StreamOverrunError

CAPACITY = 4096
CHANNELS = 2


class RingWrittenDuringEveryCopy(StreamRing):
    """A ring whose writer writes a chunk while each copy out of it runs (a writer faster
    than any copy), deterministically."""

    def copy_out(self, start, count, samples, stamps=None):
        super().copy_out(start, count, samples, stamps)
        self.write(np.full((16, CHANNELS), -1.0))


@pytest.mark.parametrize("allow_overwrite", [True, False])
def test_a_full_ring_under_a_faster_writer_is_read_or_refused_not_retried_for_ever(
    allow_overwrite,
):
    ring = RingWrittenDuringEveryCopy(CAPACITY, (CHANNELS,), np.float64)
    ring.mark_running()
    reader = ring.reader("behind", allow_overwrite=allow_overwrite)
    ring.write(np.zeros((CAPACITY + 1, CHANNELS)))  # full, and the reader one sample behind
    out = np.empty((CAPACITY, CHANNELS))
    result: list = []

    def read() -> None:
        try:
            result.append(reader.read_available_into(out))
        except StreamOverrunError as error:
            result.append(error)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout=20)
    alive = thread.is_alive()
    ring.close()  # ends a reader still retrying (the copy then raises)
    assert not alive, "read_available_into kept retrying against the writer"
    if allow_overwrite:
        got = result[0]
        assert isinstance(got, int) and 0 < got <= CAPACITY
        assert reader.lost >= 1  # every skipped sample is counted
        assert reader.position == reader.lost + got
    else:
        assert isinstance(result[0], StreamOverrunError)


def test_latest_of_a_whole_ring_under_a_faster_writer_returns_fewer_intact_samples():
    ring = RingWrittenDuringEveryCopy(CAPACITY, (CHANNELS,), np.float64)
    ring.mark_running()
    reader = ring.reader("look", allow_overwrite=True)
    ring.write(np.arange(2 * CAPACITY * CHANNELS, dtype=float).reshape(-1, CHANNELS))
    result: list = []
    thread = threading.Thread(target=lambda: result.append(reader.latest(CAPACITY)), daemon=True)
    thread.start()
    thread.join(timeout=20)
    alive = thread.is_alive()
    ring.close()
    assert not alive, "latest kept retrying against the writer"
    newest = result[0]
    assert 0 < len(newest) < CAPACITY
    assert reader.position == 0  # nothing consumed
