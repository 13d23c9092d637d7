"""Shared-memory rings: attach by name from this and other processes, bad blocks, no leaks."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from multiprocessing import shared_memory

import numpy as np
import pytest

from qudi.util.instream import (
    StreamError,
    StreamFaultError,
    StreamFormatError,
    StreamInfo,
    StreamNotFoundError,
    StreamRing,
    StreamStoppedError,
    attach,
    list_streams,
)
from qudi.util.instream.shared_block import block_name
from qudi.util.instream.stream_format import (
    CONTROL_OFFSET,
    HEADER_PREFIX,
    MAGIC,
    METADATA_OFFSET,
    VERSION,
    Control,
    RingLayout,
    RingState,
)

SPAWN = multiprocessing.get_context("spawn")


def test_metadata_lets_another_reader_attach_with_the_name_only(stream_name):
    info = StreamInfo(("APD", "analog 1"), ("Hz", "V"), 1000.0, "TIMESTAMP", {"card": "dummy"})
    with StreamRing(1000, 2, np.int32, timestamps=True, info=info, shared=True, name=stream_name):
        assert stream_name in list_streams()
        attached = attach(stream_name)
        assert attached.capacity == 1000
        assert attached.sample_shape == (2,)
        assert attached.dtype == np.int32
        assert attached.has_timestamps
        assert attached.info == info
        attached.close()
    assert stream_name not in list_streams()


def test_unknown_name_is_reported_with_the_streams_that_exist(stream_name):
    with StreamRing(8, 1, shared=True, name=stream_name):
        with pytest.raises(StreamNotFoundError, match=f"no stream named 'nope'.*{stream_name}"):
            attach("nope")


@pytest.mark.parametrize("name", ["", "../etc/passwd", "a b", "x" * 101, 42])
def test_invalid_names_are_refused(name):
    with pytest.raises(ValueError, match="invalid stream name"):
        StreamRing(8, 1, shared=True, name=name)


def test_a_second_writer_with_the_same_name_is_refused(stream_name):
    with StreamRing(8, 1, shared=True, name=stream_name):
        with pytest.raises(StreamError, match="already exists"):
            StreamRing(8, 1, shared=True, name=stream_name)


def _foreign_block(name: str, content: bytes, size: int = 4096) -> shared_memory.SharedMemory:
    block = shared_memory.SharedMemory(name=block_name(name), create=True, size=size)
    block.buf[: len(content)] = content
    return block


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda buf: buf.__setitem__(slice(0, 8), b"NOTARING"), "not a stream ring"),
        (lambda buf: buf.__setitem__(slice(8, 12), (99).to_bytes(4, "little")), "version 99"),
        (lambda buf: buf.__setitem__(slice(16, 20), (10**6).to_bytes(4, "little")), "corrupted"),
        (lambda buf: buf.__setitem__(slice(1152, 1160), b"{garbage"), "corrupted"),
    ],
)
def test_corrupted_headers_are_refused_clearly(stream_name, corrupt, message):
    with StreamRing(8, 1, shared=True, name=stream_name) as ring:
        image = bytes(ring._buf)
    block = _foreign_block(stream_name, image, len(image))
    try:
        corrupt(block.buf)
        with pytest.raises(StreamFormatError, match=message):
            attach(stream_name)
    finally:
        block.close()
        block.unlink()


def test_truncated_block_is_refused(stream_name):
    with StreamRing(1000, 4, shared=True, name=stream_name) as ring:
        header = bytes(ring._buf[:2048])
    block = _foreign_block(stream_name, header, 2048)
    try:
        with pytest.raises(StreamFormatError, match="needs .* bytes"):
            attach(stream_name)
    finally:
        block.close()
        block.unlink()


def _block_claiming_dtype(name: str, dtype_description) -> shared_memory.SharedMemory:
    """A running ring block of 16 float64 pairs, 2 of them written (bytes 0x41, which as
    pointers point nowhere), whose header says its dtype is ``dtype_description``."""
    layout = RingLayout.plan(16, (2,), np.dtype(np.float64), False, StreamInfo())
    metadata = json.loads(layout.metadata)
    metadata["dtype"] = dtype_description
    metadata = json.dumps(metadata).encode()
    header_bytes = layout.header_bytes + 1024  # room for the longest description here
    image = bytearray(b"A" * (layout.total_bytes + 4096))
    image[:header_bytes] = bytes(header_bytes)
    HEADER_PREFIX.pack_into(image, 0, MAGIC, VERSION, header_bytes, len(metadata))
    words = {Control.WRITE: 2, Control.CLAIM: 2, Control.STATE: RingState.RUNNING}
    for word, value in words.items():
        struct.pack_into("<Q", image, CONTROL_OFFSET + 8 * word, value)
    image[METADATA_OFFSET : METADATA_OFFSET + len(metadata)] = metadata
    return _foreign_block(name, bytes(image), len(image))


# Found by the hostile-input probes (HOSTILE_FINDINGS.md, D1): numpy built an object view over
# the mapping, and the first read dereferenced sample bytes as pointers (SIGSEGV: without the
# check, the first case below ends its subprocess with signal 11).
HARMFUL_DTYPES = {
    "object": ("|O", "holds Python objects"),
    "struct with an object field": ([["t", "<f8"], ["a", "|O"]], "holds Python objects"),
    "subarray of objects": ([["a", "|O", [2]]], "holds Python objects"),
    "zero bytes": ("|V0", "zero bytes"),
    "empty struct": ([], "zero bytes"),
}


@pytest.mark.parametrize("harmful", list(HARMFUL_DTYPES))
def test_a_header_claiming_a_harmful_dtype_is_refused_before_any_read(stream_name, harmful):
    """A reader in another process is the one that crashed: run the attach and a read there."""
    description, reason = HARMFUL_DTYPES[harmful]
    block = _block_claiming_dtype(stream_name, description)
    script = (
        "import sys\n"
        "from qudi.util.instream import attach, StreamFormatError\n"
        "try:\n"
        f"    attach({stream_name!r}).reader('victim').latest(2)\n"
        "except StreamFormatError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    finally:
        block.close()
        block.unlink()
    assert done.returncode == 3, f"exit {done.returncode}: {done.stdout}{done.stderr}"
    message = done.stdout
    assert f"'{stream_name}' has a corrupted header" in message
    assert reason in message and "use a fixed-size dtype of numbers or bytes" in message


def test_a_harmful_dtype_is_refused_in_this_process_too(stream_name):
    block = _block_claiming_dtype(stream_name, [["a", "|O"]])
    try:
        with pytest.raises(StreamFormatError, match=r"dtype \[\('a', 'O'\)\] holds Python"):
            attach(stream_name)
    finally:
        block.close()
        block.unlink()


def test_a_harmless_dtype_in_such_a_block_attaches(stream_name):
    """The crafted block itself is fine: only the dtype makes the difference above."""
    block = _block_claiming_dtype(stream_name, "<i8")
    try:
        ring = attach(stream_name)
        assert ring.dtype == np.int64 and ring.capacity == 16
        newest = ring.reader("fine").latest(2)
        np.testing.assert_array_equal(newest, np.full((2, 2), 0x41414141_41414141))
        ring.close()
    finally:
        block.close()
        block.unlink()


def test_attached_reader_is_told_about_a_fault_once_then_stopped(stream_name):
    with StreamRing(64, 1, shared=True, name=stream_name) as ring:
        attached = attach(stream_name)
        reader = attached.reader("jupyter")
        ring.write(np.ones((2, 1)))
        ring.mark_faulted(RuntimeError("ADC overflow"))
        with pytest.raises(StreamFaultError, match="ADC overflow"):
            reader.read_into(np.empty((4, 1)), timeout=1)
        with pytest.raises(StreamStoppedError, match="after a fault"):
            reader.read_into(np.empty((4, 1)), timeout=1)
        assert reader.read_into(np.empty((2, 1)), timeout=0) == 2
        attached.close()


def test_attached_blocking_read_wakes_on_data_and_on_close(stream_name):
    with StreamRing(64, 1, shared=True, name=stream_name) as ring:
        attached = attach(stream_name)
        reader = attached.reader()
        threading.Timer(0.05, ring.write, args=(np.full((4, 1), 7.0),)).start()
        out = np.empty((4, 1))
        assert reader.read_into(out, timeout=5) == 4
        assert np.all(out == 7)
        threading.Timer(0.05, ring.close).start()
        with pytest.raises(StreamStoppedError, match="closed"):
            reader.read_into(out, timeout=5)
        attached.close()


def test_closing_a_reader_cancels_its_blocking_read():
    with StreamRing(64, 1) as ring:
        reader = ring.reader("cancel me")
        threading.Timer(0.05, reader.close).start()
        started = time.monotonic()
        with pytest.raises(StreamStoppedError, match="closed"):
            reader.read_into(np.empty((4, 1)), timeout=30)
        assert time.monotonic() - started < 20


def _verify_ramp_in_child(name: str, total: int, chunk: int, progress, result) -> None:
    """Child process: attach by name, check every sample of a ramp, publish progress."""
    ring = StreamRing.attach(name)
    reader = ring.reader("child")
    progress.value = reader.position  # attached: the parent may start writing
    out = np.empty((chunk, 2))
    try:
        while reader.position < total:
            first = reader.position
            reader.read_into(out, timeout=30)
            if not (
                np.array_equal(out[:, 0], np.arange(first, first + chunk))
                and np.array_equal(out[:, 1], -out[:, 0])
            ):
                result.put(("mismatch", first))
                return
            progress.value = reader.position
        result.put(("ok", reader.position, reader.lost))
    except Exception as exc:  # report, do not hang the parent
        result.put(("error", repr(exc)))
    finally:
        ring.close()


def test_reader_in_a_child_process_sees_every_sample(stream_name, spawn_process):
    total, chunk = 400_000, 1000
    queue, progress = SPAWN.Queue(), SPAWN.Value("q", -1, lock=False)
    with StreamRing(20_000, 2, shared=True, name=stream_name) as ring:
        child = spawn_process(_verify_ramp_in_child, stream_name, total, chunk, progress, queue)
        deadline = time.monotonic() + 60
        while progress.value < 0 and time.monotonic() < deadline:  # wait until it has attached
            time.sleep(0.001)
        for first in range(0, total, chunk):
            # the ring never waits for readers; this test does, so that it can demand zero loss
            deadline = time.monotonic() + 60
            while first + chunk - ring.capacity > progress.value and time.monotonic() < deadline:
                time.sleep(0.0002)
            index = np.arange(first, first + chunk, dtype=np.float64)
            ring.write(np.column_stack([index, -index]))
        outcome = queue.get(timeout=60)
        child.join(timeout=30)
    assert outcome == ("ok", total, 0)
    assert child.exitcode == 0


def _attach_and_hang(name: str, ready) -> None:
    ring = StreamRing.attach(name)
    ring.reader().latest(1)
    ready.set()
    time.sleep(600)


def test_killed_reader_process_leaves_nothing_behind_and_disturbs_nobody(
    stream_name, spawn_process
):
    with StreamRing(1000, 1, shared=True, name=stream_name) as ring:
        local = ring.reader("survivor")
        ready = SPAWN.Event()
        child = spawn_process(_attach_and_hang, stream_name, ready)
        assert ready.wait(30)
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        assert child.exitcode == -signal.SIGKILL
        ring.write(np.arange(10.0)[:, None])
        out = np.empty((10, 1))
        assert local.read_into(out, timeout=1) == 10
        assert stream_name in list_streams()  # the dead reader did not take the block with it
    assert stream_name not in list_streams()


def test_block_of_a_killed_writer_process_is_removed(stream_name):
    # an independent process (not a multiprocessing child, which would share our resource
    # tracker): when it dies, its own resource tracker unlinks the blocks it created
    script = (
        "import sys, time\n"
        "from qudi.util.instream import StreamRing\n"
        f"ring = StreamRing(1000, 1, shared=True, name={stream_name!r})\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        assert stream_name in list_streams()
    finally:
        writer.kill()
        writer.wait(30)
        writer.stdout.close()
    deadline = time.monotonic() + 20
    while stream_name in list_streams() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stream_name not in list_streams()


def test_shared_block_is_readable_by_its_owner_only(stream_name):
    with StreamRing(8, 1, shared=True, name=stream_name):
        mode = os.stat(f"/dev/shm/{block_name(stream_name)}").st_mode & 0o777
    assert mode == 0o600
