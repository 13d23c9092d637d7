"""StreamRing and RingReader in one process: layout, wrap-around, policies, bad input."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from qudi.util.instream import (
    RingState,
    StreamError,
    StreamInfo,
    StreamOverrunError,
    StreamRing,
    StreamStoppedError,
    StreamTimeoutError,
)


def ramp(first: int, count: int, channels: int = 3) -> np.ndarray:
    """Samples whose every channel holds the sample's absolute index."""
    return np.repeat(np.arange(first, first + count, dtype=np.float64)[:, None], channels, axis=1)


@pytest.mark.parametrize("offset", range(0, 17))
@pytest.mark.parametrize("count", [1, 5, 16])
def test_read_across_the_wrap_at_every_offset(offset, count):
    capacity = 16
    with StreamRing(capacity, 3) as ring:
        reader = ring.reader()
        ring.write(ramp(0, offset))
        reader.read_into(np.empty((offset, 3)))
        ring.write(ramp(offset, count))
        out = np.empty((count, 3))
        assert reader.read_into(out, timeout=0) == count
        np.testing.assert_array_equal(out, ramp(offset, count))
        assert reader.position == offset + count
        assert reader.available == 0


@pytest.mark.parametrize("offset", range(0, 9))
def test_timestamps_stay_aligned_with_data_across_the_wrap(offset):
    with StreamRing(8, 2, timestamps=True) as ring:
        reader = ring.reader()
        for first in range(0, offset + 20, 5):
            ring.write(ramp(first, 5, 2), timestamps=np.arange(first, first + 5) * 0.5)
            data, stamps = np.empty((5, 2)), np.empty(5)
            reader.read_into(data, timestamps=stamps, timeout=0)
            np.testing.assert_array_equal(stamps, data[:, 0] * 0.5)


def test_flat_buffer_is_read_sample_major_interleaved():
    with StreamRing(10, 3) as ring:
        reader = ring.reader()
        ring.write(ramp(0, 4) + np.arange(3) / 10)
        flat = np.empty(12)
        assert reader.read_into(flat, timeout=0) == 4
        np.testing.assert_allclose(flat[:6], [0, 0.1, 0.2, 1, 1.1, 1.2])


def test_read_available_never_returns_more_than_fits():
    with StreamRing(100, 3) as ring:
        reader = ring.reader()
        ring.write(ramp(0, 50))
        out = np.empty((20, 3))
        assert reader.read_available_into(out) == 20
        assert reader.read_available_into(out) == 20
        assert reader.read_available_into(out) == 10
        np.testing.assert_array_equal(out[:10], ramp(40, 10))
        assert reader.read_available_into(out) == 0


def test_latest_returns_newest_samples_without_consuming():
    with StreamRing(10, 3) as ring:
        reader = ring.reader()
        ring.write(ramp(0, 25))
        np.testing.assert_array_equal(reader.latest(4), ramp(21, 4))
        assert len(reader.latest(10)) == 10
        assert reader.position == 0


def test_latest_with_fewer_samples_written_returns_what_exists():
    with StreamRing(10, 1, timestamps=True) as ring:
        ring.write(np.ones((3, 1)), timestamps=np.array([1.0, 2.0, 3.0]))
        data, stamps = ring.reader().latest(8, with_timestamps=True)
        assert data.shape == (3, 1)
        np.testing.assert_array_equal(stamps, [1, 2, 3])


def test_overrun_without_overwrite_raises_with_count_then_continues():
    with StreamRing(10, 3) as ring:
        reader = ring.reader("slow consumer")
        ring.write(ramp(0, 25))
        out = np.empty((5, 3))
        with pytest.raises(StreamOverrunError) as info:
            reader.read_into(out, timeout=0)
        assert info.value.lost == 15
        assert "slow consumer" in str(info.value) and "15 samples" in str(info.value)
        assert reader.lost == 15
        reader.read_into(out, timeout=0)
        np.testing.assert_array_equal(out, ramp(15, 5))


def test_overrun_with_overwrite_skips_to_oldest_and_counts():
    with StreamRing(10, 3) as ring:
        reader = ring.reader(allow_overwrite=True)
        ring.write(ramp(0, 25))
        out = np.empty((10, 3))
        assert reader.read_into(out, timeout=0) == 10
        np.testing.assert_array_equal(out, ramp(15, 10))
        assert reader.lost == 15
        assert reader.lost + 10 == ring.write_index


def test_timeout_consumes_nothing():
    with StreamRing(10, 3) as ring:
        reader = ring.reader()
        ring.write(ramp(0, 3))
        with pytest.raises(StreamTimeoutError, match="nothing was consumed"):
            reader.read_into(np.empty((5, 3)), timeout=0.05)
        assert reader.available == 3
        assert reader.read_into(np.empty((3, 3)), timeout=0) == 3


def test_stopped_stream_ends_a_blocking_read_and_leaves_data_readable():
    with StreamRing(10, 3) as ring:
        reader = ring.reader()
        ring.write(ramp(0, 2))
        ring.mark_stopped()
        with pytest.raises(StreamStoppedError, match="2 of 5 requested samples are left"):
            reader.read_into(np.empty((5, 3)), timeout=10)
        assert reader.read_into(np.empty((2, 3)), timeout=0) == 2


def test_a_plain_reader_runs_while_its_writer_runs_and_it_is_open():
    with StreamRing(10, 3) as ring:
        reader, other = ring.reader("a"), ring.reader("b")
        assert reader.running and other.running
        ring.mark_stopped()
        assert not reader.running
        ring.mark_running()
        assert reader.running
        ring.mark_faulted(RuntimeError("card unplugged"))
        assert not reader.running
        ring.mark_running()
        reader.close()
        assert not reader.running and other.running
    assert not other.running  # the ring is closed


def test_read_of_closed_ring_raises_stopped():
    ring = StreamRing(10, 3)
    reader = ring.reader()
    ring.close()
    with pytest.raises(StreamStoppedError, match="closed"):
        reader.read_into(np.empty((1, 3)), timeout=1)
    with pytest.raises(StreamStoppedError, match="closed"):
        reader.read_available_into(np.empty((1, 3)))


def test_video_frames_round_trip():
    frames = np.random.default_rng(1).integers(0, 4096, (7, 4, 5), dtype=np.uint16)
    with StreamRing(5, (4, 5), np.uint16) as ring:
        reader = ring.reader()
        ring.write(frames[:4])
        out = np.empty((4, 4, 5), np.uint16)
        reader.read_into(out, timeout=0)
        ring.write(frames[4:])
        reader.read_into(out[:3], timeout=0)
        np.testing.assert_array_equal(out[:3], frames[4:])


def test_structured_event_records_round_trip(stream_name):
    event = np.dtype([("time", "<f8"), ("value", "<i4")])
    records = np.array([(0.5, 1), (0.75, -3), (1.25, 7)], dtype=event)
    with StreamRing(4, (), event, shared=True, name=stream_name) as ring:
        ring.write(records)
        attached = StreamRing.attach(stream_name)
        assert attached.dtype == event
        out = np.empty(3, event)
        attached.reader(from_oldest=True).read_into(out, timeout=0)
        np.testing.assert_array_equal(out, records)
        attached.close()


@pytest.mark.parametrize(
    ("out", "error", "message"),
    [
        (np.empty((4, 3), np.float32), TypeError, "dtype float32"),
        (np.empty((3, 4))[:, :3], ValueError, "C-contiguous"),
        (np.empty((4, 2)), ValueError, "shape"),
        (np.empty(10), ValueError, "multiple of 3"),
        ([0.0] * 12, TypeError, "numpy array"),
    ],
)
def test_bad_output_buffers_are_refused_before_anything_is_consumed(out, error, message):
    with StreamRing(10, 3) as ring:
        reader = ring.reader()
        ring.write(ramp(0, 4))
        with pytest.raises(error, match=message):
            reader.read_into(out, timeout=0)
        assert reader.available == 4


def test_read_only_output_buffer_is_refused():
    with StreamRing(10, 3) as ring:
        out = np.empty((2, 3))
        out.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            ring.reader().read_available_into(out)


@pytest.mark.parametrize(("n", "message"), [(-1, "negative"), (5, "room"), (2.5, "integer")])
def test_bad_sample_counts_are_refused(n, message):
    with StreamRing(10, 3) as ring:
        with pytest.raises((ValueError, TypeError), match=message):
            ring.reader().read_into(np.empty((4, 3)), n, timeout=0)


def test_more_than_the_ring_holds_is_refused():
    with StreamRing(4, 1) as ring:
        with pytest.raises(ValueError, match="more than the ring holds"):
            ring.reader().read_into(np.empty((8, 1)), timeout=0)


def test_timestamps_requested_from_a_stream_without_them():
    with StreamRing(4, 1) as ring:
        with pytest.raises(ValueError, match="no timestamps"):
            ring.reader().read_into(np.empty((1, 1)), timestamps=np.empty(1), timeout=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"capacity": 0}, ValueError, "capacity"),
        ({"capacity": -5}, ValueError, "capacity"),
        ({"sample_shape": (3, 0)}, ValueError, "sample_shape"),
        ({"dtype": object}, TypeError, "shared memory"),
        ({"dtype": "not-a-dtype"}, TypeError, "not a numpy dtype"),
        ({"info": StreamInfo(channel_names=("a", "b"))}, ValueError, "2 channel names for 3"),
        ({"info": StreamInfo(("a", "b", "c"), ("V",))}, ValueError, "1 channel units"),
        ({"info": StreamInfo(extra={"x": object()})}, TypeError, "JSON"),
    ],
)
def test_bad_ring_formats_are_refused(kwargs, error, message, stream_name):
    arguments = {"capacity": 8, "sample_shape": (3,), **kwargs}
    with pytest.raises(error, match=message):
        StreamRing(**arguments, shared=True, name=stream_name)


def test_writer_api_checks_its_arguments():
    with StreamRing(8, 2) as ring:
        with pytest.raises(ValueError, match="between 1 and the capacity"):
            ring.reserve(9)
        ring.reserve(3)
        with pytest.raises(ValueError, match="only 3 samples were reserved"):
            ring.publish(4)
        with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
            ring.write(np.zeros((2, 3)))


def test_reserve_exposes_the_free_region_in_place_and_stops_at_the_wrap():
    with StreamRing(8, 2) as ring:
        reader = ring.reader()
        ring.write(ramp(0, 6, 2))
        reader.read_into(np.empty((6, 2)), timeout=0)
        region, _ = ring.reserve(5)
        assert region.shape == (2, 2)  # only two slots before the wrap
        region[:] = ramp(6, 2, 2)
        ring.publish(2)
        out = np.empty((2, 2))
        reader.read_into(out, timeout=0)
        np.testing.assert_array_equal(out, ramp(6, 2, 2))


def test_reserved_slots_count_as_overwritten_for_readers():
    with StreamRing(8, 1) as ring:
        reader = ring.reader(from_oldest=True)
        ring.write(np.arange(8.0)[:, None])
        ring.reserve(3)  # the producer may now be writing into slots 0..2
        assert ring.oldest_index == 3
        with pytest.raises(StreamOverrunError) as info:
            reader.read_into(np.empty((1, 1)), timeout=0)
        assert info.value.lost == 3


def test_skip_to_places_an_empty_ring_at_a_receivers_first_index():
    with StreamRing(8, 1) as ring:
        ring.skip_to(1000, first=True)
        assert (ring.write_index, ring.oldest_index) == (1000, 1000)
        reader = ring.reader(from_oldest=True)
        assert reader.position == 1000 and reader.available == 0  # nothing kept is older
        ring.write(np.arange(3.0)[:, None])
        out = np.empty((3, 1))
        assert reader.read_into(out, timeout=0) == 3 and reader.position == 1003
        ring.write(np.arange(3.0, 11.0)[:, None])  # the ring wraps: claims follow the writes
        assert (ring.write_index, ring.oldest_index) == (1011, 1003)
        assert reader.read_into(np.empty((8, 1)), timeout=0) == 8


def test_skip_to_jumps_over_indices_that_never_come_and_wakes_a_waiting_read():
    with StreamRing(8, 1) as ring:
        reader = ring.reader()
        ring.write(np.zeros((2, 1)))
        threading.Timer(0.05, ring.skip_to, args=(5,)).start()
        out = np.empty((5, 1))
        started = time.monotonic()
        assert reader.read_into(out, timeout=5) == 5  # woken by the skip, not by a timeout
        assert time.monotonic() - started < 4
        assert ring.write_index == 5


@pytest.mark.parametrize(
    ("index", "first", "message"),
    [
        (3, False, "from the write index 4"),
        (2**64 - 8, False, "up to 18446744073709551607"),
        (5.0, False, "a whole number"),
        (True, False, "a whole number"),
        (10, True, "was written already"),
    ],
)
def test_a_refused_skip_to_changes_nothing(index, first, message):
    with StreamRing(8, 1) as ring:
        ring.write(np.zeros((4, 1)))
        with pytest.raises(ValueError, match=message):
            ring.skip_to(index, first=first)
        assert (ring.write_index, ring.oldest_index) == (4, 0)


def test_skip_to_waits_for_reserved_samples_to_be_published():
    with StreamRing(8, 1) as ring:
        ring.reserve(2)
        with pytest.raises(ValueError, match="2 reserved samples are not published"):
            ring.skip_to(5)
        ring.publish(2)
        ring.skip_to(5)
        assert ring.write_index == 5


def test_only_the_creator_may_skip(stream_name):
    with StreamRing(8, 1, shared=True, name=stream_name):
        attached = StreamRing.attach(stream_name)
        with pytest.raises(StreamError, match="read-only"):
            attached.skip_to(5)
        attached.close()


def test_attached_ring_is_read_only(stream_name):
    with StreamRing(8, 1, shared=True, name=stream_name) as ring:
        attached = StreamRing.attach(stream_name)
        with pytest.raises(StreamError, match="read-only"):
            attached.write(np.zeros((1, 1)))
        assert attached.state is RingState.RUNNING
        attached.close()
        ring.mark_stopped()


def test_state_and_fault_message_are_visible_to_attached_readers(stream_name):
    with StreamRing(8, 1, shared=True, name=stream_name) as ring:
        attached = StreamRing.attach(stream_name)
        ring.mark_faulted(OSError("card unplugged"))
        assert attached.state is RingState.FAULTED
        assert attached.fault_message == "OSError: card unplugged"
        ring.mark_running()
        assert attached.state is RingState.RUNNING and attached.fault_message == ""
        ring.close()
        assert attached.state is RingState.CLOSED
        attached.close()
