"""Control words planted in a live ring's shared memory (issue 21, D10): never a raw error,
never stale slots returned as new data, never a hang.

Any process of the writer's user can rewrite a ring's header. These tests do what such a
process would: they map the live block a second time, writable, and plant a value in one
control word (state, write index, claim index, fault length, run start) while a writer and an
attached reader use the ring. Each refusal must be a
:class:`~qudi.util.instream.errors.StreamFormatError` that names the stream, the word and the
value; it must consume nothing (once the word is put back, the reader reads on from where it
was); and a writer's own legitimate moves (``skip_to`` jumps) must never be mistaken for one.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from qudi.util.instream import (
    StreamFaultError,
    StreamFormatError,
    StreamHub,
    StreamRing,
    attach,
)
from qudi.util.instream.shared_block import block_directory, block_name
from qudi.util.instream.stream_format import CONTROL_OFFSET, FAULT_BYTES, Control, RingState

from .sources import HandFedSource

pytestmark = pytest.mark.skipif(block_directory() is None, reason="needs file-backed blocks")


class PlantedWords:
    """A second, writable mapping of a live block: reads and writes its control words."""

    def __init__(self, stream_name: str):
        path = os.path.join(block_directory(), block_name(stream_name))
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, 0)
        finally:
            os.close(fd)

    def __getitem__(self, word: Control) -> int:
        return struct.unpack_from("<Q", self._map, CONTROL_OFFSET + 8 * word)[0]

    def __setitem__(self, word: Control, value: int) -> None:
        struct.pack_into("<Q", self._map, CONTROL_OFFSET + 8 * word, value)

    def close(self) -> None:
        self._map.close()


@contextlib.contextmanager
def live_ring(stream_name: str, capacity: int = 64, written: int = 10) -> Iterator[tuple]:
    """A shared ring of a ramp (``written`` samples), an attached view, its reader positioned
    at the write index, and a second mapping of the block to plant words in."""
    with StreamRing(capacity, 1, shared=True, name=stream_name) as ring:
        ring.write(np.arange(float(written))[:, None])
        attached = attach(stream_name)
        words = PlantedWords(stream_name)
        try:
            yield ring, attached, attached.reader("victim"), words
        finally:
            words.close()
            attached.close()


def reads(reader):
    """Every way a reader reads (each must refuse, each must consume nothing)."""
    return {
        "read_into": lambda: reader.read_into(np.empty((1, 1)), timeout=0.2),
        "read_available_into": lambda: reader.read_available_into(np.empty((4, 1))),
        "latest": lambda: reader.latest(4),
        "available": lambda: reader.available,
    }


def assert_reads_on_after_repair(ring, reader, position):
    """The refused reads consumed nothing: the reader goes on at its position."""
    assert reader.position == position
    ring.write(np.arange(float(position), position + 3.0)[:, None])
    out = np.empty((3, 1))
    assert reader.read_into(out, timeout=5) == 3
    np.testing.assert_array_equal(out[:, 0], np.arange(position, position + 3.0))


# ------------------------------------------------------------------------ the state word
def test_a_state_word_that_is_no_ring_state_is_named_not_a_raw_value_error(stream_name):
    with live_ring(stream_name) as (ring, attached, reader, words):
        words[Control.STATE] = 7
        message = rf"stream '{stream_name}': its state word holds 7, not a ring state \(0 STOPPED"
        for what, call in {
            "state": lambda: attached.state,
            "running": lambda: reader.running,
            "read_into": lambda: reader.read_into(np.empty((1, 1)), timeout=0.2),
            "read_available_into": lambda: reader.read_available_into(np.empty((1, 1))),
        }.items():
            with pytest.raises(StreamFormatError, match=message):
                call()
            assert reader.position == 10, what
        words[Control.STATE] = RingState.RUNNING
        assert_reads_on_after_repair(ring, reader, 10)


# ------------------------------------------------------------------------- the indices
def test_a_write_index_that_goes_back_behind_a_reader_is_refused_not_negative(stream_name):
    """Found as "(-500 available)" in a timeout's message."""
    with live_ring(stream_name, capacity=2048, written=1000) as (ring, attached, reader, words):
        words[Control.WRITE] = 500
        for what, call in reads(reader).items():
            with pytest.raises(
                StreamFormatError,
                match=rf"'{stream_name}': its write index went back from 1000 "
                "to 500",
            ):
                call()
            assert reader.position == 1000, what
        words[Control.WRITE] = 1000
        assert_reads_on_after_repair(ring, reader, 1000)


@pytest.mark.parametrize("write", [15, 2**64 - 1])
def test_a_write_index_ahead_of_the_claim_index_never_returns_stale_slots(stream_name, write):
    """Found: slots 10..14 were never written, and 5 zeros came back as new samples."""
    with live_ring(stream_name) as (ring, attached, reader, words):
        words[Control.WRITE] = write
        for what, call in reads(reader).items():
            with pytest.raises(
                StreamFormatError, match=rf"its write index {write} is ahead of its claim index 10"
            ):
                call()
            assert reader.position == 10, what
        words[Control.WRITE] = 10
        assert_reads_on_after_repair(ring, reader, 10)


def test_a_claim_index_far_ahead_of_the_write_index_is_refused(stream_name):
    """Found: ``latest()`` raised numpy's "Maximum allowed dimension exceeded"."""
    with live_ring(stream_name) as (ring, attached, reader, words):
        words[Control.CLAIM] = 2**64 - 1
        for what, call in reads(reader).items():
            with pytest.raises(
                StreamFormatError,
                match=r"its claim index 18446744073709551615 is more than its capacity \(64\) "
                "ahead of its write index 10",
            ):
                call()
            assert reader.position == 10 and reader.lost == 0, what
        words[Control.CLAIM] = 10
        assert_reads_on_after_repair(ring, reader, 10)


def test_readers_in_the_writers_process_are_protected_too(stream_name):
    with live_ring(stream_name) as (ring, attached, reader, words):
        own = ring.reader("own", from_oldest=True)
        words[Control.WRITE] = 40
        with pytest.raises(StreamFormatError, match="write index 40 is ahead of its claim index"):
            own.read_into(np.empty((40, 1)), timeout=0)
        words[Control.WRITE] = 10
        out = np.empty((10, 1))
        assert own.read_into(out, timeout=0) == 10
        np.testing.assert_array_equal(out[:, 0], np.arange(10.0))


def test_a_run_start_beyond_the_write_index_is_refused(stream_name):
    """A hub's reader ends its run there: beyond the write index it would read stale slots."""
    with live_ring(stream_name) as (ring, attached, reader, words):
        words[Control.RUN_START] = 50
        with pytest.raises(StreamFormatError, match="its run start index 50 is beyond its write"):
            _ = attached.run_start_index


def test_a_hub_reader_never_reads_past_the_write_index_into_a_planted_next_run(stream_name):
    source = HandFedSource()
    with StreamHub(source, name=stream_name, max_poll_rate=200.0) as hub:
        reader = hub.open_reader("logic")
        reader.start()
        source.feed(10)
        out = np.empty((10, 2))
        assert reader.read_into(out, timeout=10) == 10
        words = PlantedWords(stream_name)
        try:  # "a next run began at 40": the reader's run would then end at 40
            words[Control.RUN_START] = 40
            words[Control.EPOCH] = words[Control.EPOCH] + 1
            with pytest.raises(StreamFormatError, match="run start index 40 is beyond"):
                reader.read_available_into(np.empty((40, 2)))
            assert reader.position == 10
        finally:
            words.close()


# -------------------------------------------------------------------------- the fault text
def test_the_fault_text_is_read_no_longer_than_its_field(stream_name):
    """Found: a fault length of 2**24 gave a message of the whole block."""
    with live_ring(stream_name, capacity=2**16) as (ring, attached, reader, words):
        words[Control.FAULT_LENGTH] = 2**24
        words[Control.STATE] = RingState.FAULTED
        words[Control.EPOCH] = words[Control.EPOCH] + 1
        assert len(attached.fault_message.encode()) <= FAULT_BYTES
        with pytest.raises(StreamFaultError) as info:
            reader.read_into(np.empty((1, 1)), timeout=0.2)
        assert len(str(info.value)) < FAULT_BYTES + 200


# ------------------------------------------------ the writer's own moves are never refused
LOOKER = """
import sys, time
from qudi.util.instream import attach
ring = attach(sys.argv[1])
looks, deadline = 0, time.monotonic() + float(sys.argv[2])
print("attached", flush=True)
while time.monotonic() < deadline:
    for _ in range(1000):
        oldest, write = ring.indices()
        assert oldest <= write <= ring.write_index and ring.oldest_index <= ring.write_index
    looks += 1000
print("looked", looks, flush=True)
"""


def test_skip_to_jumps_are_never_mistaken_for_planted_indices(stream_name):
    """``skip_to`` moves two words, and a reader in another process that looks in between
    sees a claim index more than a capacity ahead (about 1 look in 200 here without the skip
    counter): it must wait for the move, never refuse a half-done one."""
    with StreamRing(16, 1, shared=True, name=stream_name) as ring:
        looker = subprocess.Popen(
            [sys.executable, "-c", LOOKER, stream_name, "2.0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert looker.stdout.readline().strip() == "attached"
            jumps = 0
            while looker.poll() is None:
                ring.skip_to(ring.write_index + 1 + jumps % 40)  # gaps shorter and longer
                ring.write(np.zeros((1 + jumps % 3, 1)))
                jumps += 1
            out, err = looker.communicate(timeout=30)
        finally:
            if looker.poll() is None:
                looker.kill()
                looker.communicate()
    assert looker.returncode == 0, err
    assert out.startswith("looked") and jumps > 1000
