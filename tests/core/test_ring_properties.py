"""Ring invariants for any interleaving of writes and reads (property-based, hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qudi.util.instream import StreamOverrunError, StreamRing

CAPACITY = 13  # small and odd, so wraps fall at every offset

operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 2 * CAPACITY)),
        st.tuples(st.just("reserve"), st.integers(1, CAPACITY), st.integers(0, CAPACITY)),
        st.tuples(st.just("read"), st.integers(0, CAPACITY)),
        st.tuples(st.just("read_available"), st.integers(0, 2 * CAPACITY)),
        st.tuples(st.just("latest"), st.integers(0, CAPACITY)),
    ),
    max_size=60,
)


def _ramp(first: int, count: int) -> np.ndarray:
    return np.repeat(np.arange(first, first + count, dtype=np.float64)[:, None], 2, axis=1)


def _write(ring: StreamRing, count: int, room: int | None) -> None:
    """Write a ramp; with ``room`` given, only as much as the careful reader has room for."""
    if room is not None:
        count = min(count, room)
    if count:
        ring.write(_ramp(ring.write_index, count))


def _reserve_and_publish_part(ring: StreamRing, wanted: int, published: int, room: int | None):
    """Reserve slots in place, fill some, publish those (a hardware read that came up short)."""
    if room is not None:
        wanted = min(wanted, room)
    if wanted == 0:
        return
    region, _ = ring.reserve(wanted)
    count = min(published, len(region))
    region[:count] = _ramp(ring.write_index, count)
    ring.publish(count)


def _read(reader, op, seen: list) -> None:
    kind, size = op[0], op[1]
    out = np.empty((size, 2))
    if kind == "read":
        count = reader.read_into(out, min(size, reader.available), timeout=0)
    elif kind == "read_available":
        count = reader.read_available_into(out)
    else:
        newest = reader.latest(size)
        assert np.all(newest[:, 0] == newest[:, 1])
        assert np.all(np.diff(newest[:, 0]) == 1)
        return
    block = out[:count]
    assert np.all(block[:, 0] == block[:, 1]), "torn sample"
    seen.extend(block[:, 0].astype(int).tolist())


@settings(max_examples=300, deadline=None)
@given(operations)
def test_reader_with_room_sees_every_sample_exactly_once_in_order(ops):
    with StreamRing(CAPACITY, 2) as ring:
        reader = ring.reader("careful")
        seen: list[int] = []
        for op in ops:
            # the writer keeps reserved slots clear of unread samples: room = free slots
            room = CAPACITY - (ring.write_index - reader.position)
            if op[0] == "write":
                _write(ring, op[1], room)
            elif op[0] == "reserve":
                _reserve_and_publish_part(ring, op[1], op[2], room)
            else:
                _read(reader, op, seen)
        _read(reader, ("read_available", CAPACITY), seen)
        assert reader.lost == 0
        assert seen == list(range(ring.write_index))


@settings(max_examples=300, deadline=None)
@given(operations, st.booleans())
def test_lost_plus_read_equals_written(ops, allow_overwrite):
    with StreamRing(CAPACITY, 2) as ring:
        reader = ring.reader("relaxed", allow_overwrite=allow_overwrite)
        seen: list[int] = []
        overruns = 0
        for op in ops:
            if op[0] == "write":
                _write(ring, op[1], None)
            elif op[0] == "reserve":
                _reserve_and_publish_part(ring, op[1], op[2], None)
            else:
                try:
                    _read(reader, op, seen)
                except StreamOverrunError as error:
                    overruns += 1
                    assert error.lost > 0 and not allow_overwrite
        try:
            _read(reader, ("read_available", CAPACITY), seen)
        except StreamOverrunError:
            overruns += 1
        _read(reader, ("read_available", CAPACITY), seen)
        assert reader.available == 0
        assert reader.lost + len(seen) == ring.write_index
        assert seen == sorted(set(seen)), "a sample was repeated or reordered"
        assert (overruns > 0) == (reader.lost > 0 and not allow_overwrite)
