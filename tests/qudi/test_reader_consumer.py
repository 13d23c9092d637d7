"""ReaderConsumer, the reader lifecycle the buffers and the ROI streamer share, on a real hub
of a simulated source: start/stop lock and unlock the module and start/stop the source with
the last consumer, a failed open leaves nothing joined, and an inactive module says so."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from qudi.hardware.instream.reader_consumer import ReaderConsumer
from qudi.util.instream import sharing
from qudi.util.instream.errors import StreamStoppedError
from qudi.util.instream.simulated import SimulatedSource


class _Streamer:
    """What a hub needs of a qudi streamer module: a uuid, a name, a source's shape."""

    def __init__(self, name: str):
        self.module_uuid = object()
        self.module_name = name
        self.source = SimulatedSource(("ramp",), sample_rate=10_000.0)

    def __getattr__(self, name):
        return getattr(self.source, name)


class _Consumer(ReaderConsumer):
    """Stands in for the qudi module the mixin is part of (its name, state and deactivation)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.locked = False
        self.deactivations = 0

    @property
    def module_name(self) -> str:
        return self.name

    def _show_streaming(self, streaming: bool) -> None:
        self.locked = streaming

    def on_deactivate(self) -> None:
        self.deactivations += 1
        self._close_consumer()


@pytest.fixture
def streamer():
    return _Streamer(f"test_reader_consumer_{os.getpid()}_{threading.get_ident()}")


def test_two_consumers_start_and_stop_the_source_and_the_last_to_leave_closes_the_hub(streamer):
    first, second = _Consumer("buffer 1"), _Consumer("buffer 2")
    for consumer in (first, second):
        consumer._open_consumer(sharing.join_module_hub(streamer, consumer.name, 30.0), False)
    ring = first._active_hub().ring
    assert second._active_hub().ring is ring and not first._active_reader().running

    first.start_stream()
    first.start_stream()  # harmless while running
    assert first.locked and streamer.source.is_running and not second.locked
    second.start_stream()
    data = np.empty((100, 1))
    first._active_reader().read_into(data, timeout=10)
    np.testing.assert_array_equal(np.diff(data[:, 0]), 1)  # the ramp: every sample, in order
    first.stop_stream()
    assert not first.locked and streamer.source.is_running  # the second still streams
    second.stop_stream()
    assert not second.locked and not streamer.source.is_running

    first.on_deactivate()
    assert not ring.closed  # the second is still there
    with pytest.raises(StreamStoppedError, match="buffer 'buffer 1' is not active"):
        first.start_stream()
    second.on_deactivate()
    assert ring.closed
    second._close_consumer()  # again: nothing left to close


def test_a_reader_that_cannot_be_opened_leaves_the_hub_and_raises(streamer):
    consumer = _Consumer("filtered buffer")
    hub = sharing.join_module_hub(streamer, consumer.name, 30.0)

    def refuse(reader):
        raise ValueError("this filter chain does not fit the stream")

    with pytest.raises(ValueError, match="does not fit"):
        consumer._open_consumer(hub, False, refuse)
    assert consumer.deactivations == 1 and hub.ring.closed  # its only consumer left
    with pytest.raises(StreamStoppedError, match="not active"):
        consumer._active_hub()


def test_the_wrapped_reader_is_the_one_the_module_reads(streamer):
    consumer = _Consumer("buffer")
    wrapped = []
    consumer._open_consumer(
        sharing.join_module_hub(streamer, "buffer", 30.0), True, lambda r: wrapped.append(r) or r
    )
    try:
        assert wrapped == [consumer._active_reader()] and wrapped[0].allow_overwrite
    finally:
        consumer.on_deactivate()


def test_a_module_names_itself_in_the_inactive_error():
    class _Roi(_Consumer):
        _inactive_message = "ROI streamer '{name}' is not active"

    with pytest.raises(StreamStoppedError, match=r"^ROI streamer 'spots' is not active$"):
        _Roi("spots").stop_stream()
