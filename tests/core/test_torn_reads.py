"""A reader overtaken by the writer while it copies must never return torn data."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest

from qudi.util.instream import StreamOverrunError, StreamRing

SPAWN = multiprocessing.get_context("spawn")


def _overtake_during_copy(ring: StreamRing, samples_written_meanwhile: int):
    """Make the writer write ``samples_written_meanwhile`` samples in the middle of a copy."""
    original = ring.copy_out
    state = {"done": False}

    def copy_then_get_overtaken(position, count, out, timestamps_out):
        original(position, count, out, timestamps_out)
        if not state["done"]:
            state["done"] = True
            first = ring.write_index
            ring.write(np.arange(first, first + samples_written_meanwhile, dtype=float)[:, None])

    ring.copy_out = copy_then_get_overtaken


def test_overtaken_copy_raises_overrun_when_overwrite_is_not_allowed():
    with StreamRing(10, 1) as ring:
        reader = ring.reader("careful")
        ring.write(np.arange(8.0)[:, None])
        _overtake_during_copy(ring, 6)  # slots of samples 0..3 are overwritten during the copy
        with pytest.raises(StreamOverrunError) as info:
            reader.read_into(np.empty((8, 1)), timeout=0)
        assert info.value.lost == 4
        assert reader.position == 4
        out = np.empty((10, 1))
        assert reader.read_into(out, timeout=0) == 10
        np.testing.assert_array_equal(out[:, 0], np.arange(4, 14))


def test_overtaken_copy_is_discarded_and_read_again_when_overwrite_is_allowed():
    with StreamRing(10, 1) as ring:
        reader = ring.reader("relaxed", allow_overwrite=True)
        ring.write(np.arange(8.0)[:, None])
        _overtake_during_copy(ring, 6)
        out = np.empty((8, 1))
        assert reader.read_into(out, timeout=0) == 8
        np.testing.assert_array_equal(out[:, 0], np.arange(4, 12))
        assert reader.lost == 4


def _hammer(name: str, started, stop) -> None:
    """Writer process: write rows whose every value is the row's absolute index, flat out."""
    with StreamRing(32, 2048, shared=True, name=name) as ring:
        started.set()
        chunk = np.empty((8, 2048))
        while not stop.is_set():
            first = ring.write_index
            chunk[:] = np.arange(first, first + 8, dtype=float)[:, None]
            ring.write(chunk)
        ring.mark_stopped()
        stop.wait()


@pytest.mark.parametrize("allow_overwrite", [True, False])
def test_reader_racing_a_writer_in_another_process_never_sees_torn_samples(
    stream_name, allow_overwrite, spawn_process
):
    started, stop = SPAWN.Event(), SPAWN.Event()
    writer = spawn_process(_hammer, stream_name, started, stop)
    try:
        assert started.wait(30)
        ring = StreamRing.attach(stream_name)
        reader = ring.reader("racer", allow_overwrite=allow_overwrite)
        start = reader.position
        out = np.empty((16, 2048))
        reads, overruns, samples = 0, 0, 0
        last_index = -1.0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            first = reader.position
            try:
                count = reader.read_into(out, timeout=5)
            except StreamOverrunError as error:
                overruns += 1
                assert error.lost > 0 and reader.position == error.resume_position
                continue
            block = out[:count]
            # every row is internally consistent (not half old, half new) ...
            assert np.all(block == block[:, :1]), "torn sample returned"
            # ... rows are in order, and without overwrite they are exactly the ones asked for
            assert np.all(np.diff(block[:, 0]) > 0) and block[0, 0] > last_index
            if not allow_overwrite:
                np.testing.assert_array_equal(block[:, 0], np.arange(first, first + count))
            last_index = block[-1, 0]
            reads += 1
            samples += count
        assert reads > 100
        assert reader.lost > 0  # the race did happen: the writer overtook the reader
        assert samples + reader.lost == reader.position - start
        if not allow_overwrite:
            assert overruns > 0
        ring.close()
    finally:
        stop.set()
        writer.join(30)
    assert writer.exitcode == 0
