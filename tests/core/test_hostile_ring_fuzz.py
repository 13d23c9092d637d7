"""Fuzzing a live ring's header: control words, header prefix, metadata and fault text.

A writer in this process keeps a shared ring of a known ramp (sample ``i`` is ``[i, -i]``).
Each example plants random values in its header through a second, writable mapping of the
block (what any process of the user can do), and a reader in another process attaches and
reads it every way it can, so that a crash (a signal) or a hang shows as a dead or silent
child, not as a dead test run. Every outcome must be data or a
:class:`~qudi.util.instream.errors.StreamError`: never a raw exception, never a message
longer than the header could explain, and, while at most one index word is planted (the
others are the writer's), never a sample returned under an index it does not have: stale
slots are never read as new data. (Planted metadata may reinterpret the data and several
planted indices may agree with each other: nothing without a checksum can tell that from
the writer's own, so then only the first rules are checked.)
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import select
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qudi.util.instream import StreamInfo, StreamRing
from qudi.util.instream.shared_block import block_directory, block_name
from qudi.util.instream.stream_format import (
    CONTROL_OFFSET,
    FAULT_BYTES,
    FAULT_OFFSET,
    METADATA_OFFSET,
    Control,
    RingLayout,
)

pytestmark = [
    pytest.mark.skipif(block_directory() is None, reason="needs file-backed blocks"),
    pytest.mark.timeout(120),
]
CAPACITY, WRITTEN = 64, 100  # slots hold samples 36..99
REPLY_TIMEOUT_S = 15.0  # a probe waits 0.01 s at most, a half-done skip 1 s: more is a hang

PROBE = r"""
import json, sys, traceback
import numpy as np
from qudi.util.instream import StreamError, attach

def ramp_problem(rows, first):
    if len(rows) == 0:
        return None
    index = np.arange(first, first + len(rows), dtype=np.float64)
    if rows.shape[1:] != (2,) or rows.dtype != np.float64:
        return None  # a planted format: the data is reinterpreted, not checked
    if np.array_equal(rows[:, 0], index) and np.array_equal(rows[:, 1], -index):
        return None
    return f"rows {rows[:3, 0].tolist()}... returned as samples {first}.."

def probe(name, check_data):
    result = {"errors": {}, "raw": {}, "wrong": [], "longest": 0}
    def attempt(what, call):
        try:
            return call()
        except StreamError as exc:
            result["errors"][what] = type(exc).__name__
            result["longest"] = max(result["longest"], len(str(exc)))
        except Exception as exc:
            result["raw"][what] = "".join(traceback.format_exception_only(exc))[-500:]
        return None
    ring = attempt("attach", lambda: attach(name))
    if ring is None:
        return result
    try:
        for what in ("state", "fault_message", "run_epoch", "run_start_index", "indices"):
            value = attempt(what, lambda: getattr(ring, what))
            if what == "indices" and value is not None:
                value = attempt(what, value)
            if what == "fault_message" and value is not None:
                result["longest"] = max(result["longest"], len(value.encode()))
        reader = attempt("reader", lambda: ring.reader("fuzz", from_oldest=True))
        if reader is None:
            return result
        n = min(8, ring.capacity)
        newest = attempt("latest", lambda: reader.latest(n))
        write = attempt("write_index", lambda: ring.write_index)
        if check_data and newest is not None and write is not None:
            result["wrong"].append(ramp_problem(newest, write - len(newest)))
        out = np.empty((16, *ring.sample_shape), ring.dtype)
        first = reader.position
        got = attempt("read_available_into", lambda: reader.read_available_into(out))
        if check_data and got:
            result["wrong"].append(ramp_problem(out[:got], first))
        first = reader.position
        got = attempt("read_into", lambda: reader.read_into(out, 1, timeout=0.01))
        if check_data and got:
            result["wrong"].append(ramp_problem(out[:got], first))
        attempt("available", lambda: reader.available)
        reader.close()
    finally:
        ring.close()
    result["wrong"] = [w for w in result["wrong"] if w]
    return result

name = sys.argv[1]
print("ready", flush=True)
for line in sys.stdin:
    print(json.dumps(probe(name, line.strip() == "check")), flush=True)
"""


class Prober:
    """A reader process that attaches and reads the ring each time it is asked to."""

    def __init__(self, stream_name: str):
        self._name = stream_name
        self._child: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, "-c", PROBE, self._name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._reply(child) == "ready"
        return child

    def _reply(self, child: subprocess.Popen) -> str | None:
        ready, _, _ = select.select([child.stdout], [], [], REPLY_TIMEOUT_S)
        return child.stdout.readline().strip() if ready else None

    def probe(self, check_data: bool) -> dict:
        if self._child is None or self._child.poll() is not None:
            self._child = self._start()
        child = self._child
        child.stdin.write("check\n" if check_data else "look\n")
        child.stdin.flush()
        reply = self._reply(child)
        if reply:
            return json.loads(reply)
        self.close()  # the next probe starts a new reader
        verdict = "hung" if reply is None else f"died with exit code {child.returncode}"
        raise AssertionError(f"the reader process {verdict}")

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.kill()
            child.communicate()


class Header:
    """The live block's header through a second, writable mapping; restored after each plant."""

    def __init__(self, stream_name: str, header_bytes: int):
        path = os.path.join(block_directory(), block_name(stream_name))
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, header_bytes)
        finally:
            os.close(fd)
        self.image = bytes(self._map)
        self.size = header_bytes

    def word(self, word: Control) -> int:
        return struct.unpack_from("<Q", self.image, CONTROL_OFFSET + 8 * word)[0]

    def plant(self, offset: int, data: bytes) -> None:
        self._map[offset : offset + len(data)] = data[: self.size - offset]

    def restore(self) -> None:
        self._map[:] = self.image

    def close(self) -> None:
        self.restore()
        self._map.close()


@contextlib.contextmanager
def live_ring(stream_name: str) -> Iterator[tuple[StreamRing, Header]]:
    info = StreamInfo(("x", "-x"), ("V", "V"), 1000.0, extra={"room": "." * 1500})
    with StreamRing(CAPACITY, 2, info=info, shared=True, name=stream_name) as ring:
        index = np.arange(float(WRITTEN))
        ring.write(np.column_stack([index, -index]))
        layout = RingLayout.plan(CAPACITY, (2,), np.dtype(np.float64), False, ring.info)
        header = Header(stream_name, layout.header_bytes)
        try:
            yield ring, header
        finally:
            header.close()


# --------------------------------------------------------------------------- the plants
U64 = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 1, 2**63, 2**64 - 1]),
    st.integers(0, 3 * CAPACITY + WRITTEN),  # near the genuine indices
)
WORDS = st.dictionaries(st.sampled_from(list(Control)), U64, min_size=1, max_size=3).map(
    lambda words: (
        [(CONTROL_OFFSET + 8 * w, struct.pack("<Q", v)) for w, v in words.items()]
        + [("words", sorted(int(w) for w in words))]
    )
)
PREFIX = st.tuples(st.sampled_from([0, 8, 12, 16]), st.binary(min_size=1, max_size=8)).map(
    lambda plant: [plant, ("format", None)]
)
FAULT = st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=FAULT_BYTES)).map(
    lambda plant: [
        (CONTROL_OFFSET + 8 * Control.FAULT_LENGTH, struct.pack("<Q", plant[0])),
        (FAULT_OFFSET, plant[1]),
        ("words", [int(Control.FAULT_LENGTH)]),
    ]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = ["dtype", "sample_shape", "capacity", "timestamps", "channel_names", "channel_units"]
KEYS += ["sample_rate", "sample_timing", "extra"]


@st.composite
def metadata(draw, original: dict) -> list:
    """A description with fields replaced, dropped or made garbage, in place of the real one."""
    description = dict(original)
    for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True)):
        action = draw(st.sampled_from(["replace", "drop", "nudge"]))
        if action == "drop":
            description.pop(key, None)
        elif action == "nudge" and key in ("capacity", "sample_shape"):
            description[key] = draw(st.sampled_from([1, 2, 32, 63, 65, 2**40, [1], [3], [2, 2]]))
        else:
            description[key] = draw(JSON)
    raw = json.dumps(description).encode()
    if draw(st.booleans()):  # or bytes that are not quite that
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=8)) + raw[cut:]
    length = struct.pack("<I", min(len(raw), 2**32 - 1))
    return [(16, length), (METADATA_OFFSET, raw), ("format", None)]


# ---------------------------------------------------------------------------------- test
FUZZ = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_a_planted_header_is_data_or_a_stream_error_never_a_crash_hang_or_stale_data(
    stream_name,
):
    prober = Prober(stream_name)
    outcomes: Counter[str] = Counter()
    with live_ring(stream_name) as (ring, header):
        original = json.loads(header.image[METADATA_OFFSET:].split(b"\0", 1)[0])
        genuine = prober.probe(check_data=True)
        assert genuine == {"errors": {}, "raw": {}, "wrong": [], "longest": 0}, genuine

        @FUZZ
        @given(plants=st.one_of(WORDS, PREFIX, FAULT, metadata(original)))
        def example(plants: list) -> None:
            marks = dict(plant for plant in plants if isinstance(plant[0], str))
            header.restore()
            for offset, data in plants:
                if not isinstance(offset, str):
                    header.plant(offset, data)
            index_words = {int(Control.WRITE), int(Control.CLAIM)} & set(marks.get("words", []))
            check_data = "format" not in marks and len(index_words) <= 1
            try:
                result = prober.probe(check_data)
            finally:
                header.restore()
            outcomes["refused" if result["errors"] else "read"] += 1
            outcomes["checked" if check_data else "unchecked"] += 1
            assert not result["raw"], result["raw"]
            assert not result["wrong"], result["wrong"]
            assert result["longest"] <= FAULT_BYTES + 600, "a message longer than its header"

        try:
            example()
        finally:
            prober.close()
        print(dict(outcomes))
        assert min(outcomes[kind] for kind in ("refused", "read", "checked", "unchecked")) > 0
        # the writer and its block are unharmed: it writes on and a new reader reads
        ring.write(np.array([[100.0, -100.0]]))
        assert prober.probe(check_data=True)["wrong"] == []
        prober.close()
