"""Bad input to the stream core: every refusal names the problem and leaves things usable.

Cases already in test_ring.py, test_hub.py and test_recorder.py are not repeated here. Each
test checks the message (the argument, the bad value, what would be valid) and then that a
correct call on the same object still works. Cases marked xfail are known gaps, each with the
fix its reason proposes.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qudi.util.instream import (
    StreamError,
    StreamHub,
    StreamInfo,
    StreamNotFoundError,
    StreamRing,
    StreamStoppedError,
)
from qudi.util.instream.recorder import StreamRecorder

from .sources import HandFedSource

CHANNELS = 3


def ramp(first: int, count: int, channels: int = CHANNELS) -> np.ndarray:
    return np.repeat(np.arange(first, first + count, dtype=np.float64)[:, None], channels, 1)


def ring_with(count: int, *, timestamps: bool = False) -> StreamRing:
    """A private ring of 16 samples x 3 channels holding the ramp 0 .. count-1."""
    ring = StreamRing(16, CHANNELS, timestamps=timestamps)
    ring.write(ramp(0, count), np.arange(count, dtype=np.float64) if timestamps else None)
    return ring


def assert_still_reads(reader, first: int, count: int = 2) -> None:
    """The reader was not disturbed: its next read returns the ramp from ``first``."""
    out = np.empty((count, CHANNELS))
    assert reader.read_into(out, timeout=0) == count
    np.testing.assert_array_equal(out, ramp(first, count))


# --------------------------------------------------------------------------- StreamRing()
@pytest.mark.parametrize("capacity", ["8", 2.5, True, None, np.float64(8)])
def test_ring_capacity_of_the_wrong_type(capacity):
    message = f"capacity must be a positive number of samples, got {capacity!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        StreamRing(capacity, 2)
    with StreamRing(np.int64(8), 2) as ring:  # numpy integers are integers
        assert ring.capacity == 8


def test_ring_capacity_too_large_to_allocate():
    with pytest.raises((ValueError, MemoryError), match="capacity"):
        StreamRing(2**62, 2)


def test_ring_sample_shape_with_a_fraction_is_refused():
    with pytest.raises(ValueError, match=r"sample_shape must be a tuple of positive integers"):
        StreamRing(8, (2.5,))


@pytest.mark.parametrize("shape", ["ab", None, (-1,), (2, 0), ((2,),)])
def test_ring_sample_shape_that_is_no_shape(shape):
    with pytest.raises(ValueError, match=r"sample_shape must be a tuple of positive integers, got"):
        StreamRing(8, shape)


def test_ring_info_must_be_stream_info():
    with pytest.raises(TypeError, match="info must be a StreamInfo"):
        StreamRing(8, 2, info={"channel_names": ["a", "b"]})


@pytest.mark.parametrize("name", [5, "", "has space", "x" * 101, "../escape"])
def test_shared_ring_names_are_checked(name):
    with pytest.raises(ValueError, match=r"invalid stream name .*: use 1 to 100 letters, digits"):
        StreamRing(8, 2, shared=True, name=name)


def test_a_second_ring_of_the_same_name_is_refused_and_the_first_goes_on(stream_name):
    with StreamRing(8, CHANNELS, shared=True, name=stream_name) as first:
        reader = first.reader()
        with pytest.raises(StreamError, match=f"a stream named '{stream_name}' already exists"):
            StreamRing(8, CHANNELS, shared=True, name=stream_name)
        first.write(ramp(0, 2))
        assert_still_reads(reader, 0)


def test_attaching_to_a_stream_that_does_not_exist(stream_name):
    with pytest.raises(StreamNotFoundError, match=f"no stream named '{stream_name}'"):
        StreamRing.attach(stream_name)


# -------------------------------------------------------------- RingReader output buffers
DTYPES = [np.float64, np.float32, np.int16, np.int64, np.uint8, np.complex128, np.bool_]


@st.composite
def output_buffers(draw):
    """Arrays of any small shape and number dtype, C- or F-ordered or strided."""
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from(DTYPES))
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    if layout == "strided" and shape:
        return np.zeros((*shape[:-1], 2 * shape[-1]), dtype)[..., ::2]
    return np.zeros(shape, dtype, order="F" if layout == "F" else "C")


def expected_refusal(out: np.ndarray) -> tuple[type, str] | None:
    """What a read must raise for ``out`` (None: ``out`` is a valid buffer)."""
    if out.dtype != np.float64:
        return TypeError, f"out has dtype {out.dtype}, but the stream's samples are float64"
    if not out.flags.c_contiguous:
        return ValueError, "out must be C-contiguous"
    if out.ndim == 2 and out.shape[1] == CHANNELS:
        return None
    if out.ndim == 1 and out.size % CHANNELS == 0:
        return None
    return ValueError, re.escape(f"out has shape {out.shape}; it must be (samples, 3) or flat")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(out=output_buffers(), blocking=st.booleans())
def test_any_bad_output_buffer_is_refused_and_nothing_is_consumed(out, blocking):
    refusal = expected_refusal(out)
    with ring_with(4) as ring:
        reader = ring.reader(from_oldest=True)
        if refusal is None:  # a valid buffer (maybe of 0 samples): what is there and fits
            assert reader.read_available_into(out) == min(4, out.size // CHANNELS)
            return
        read = (
            (lambda: reader.read_into(out, timeout=0))
            if blocking
            else (lambda: reader.read_available_into(out))
        )
        error, message = refusal
        with pytest.raises(error, match=message):
            read()
        assert reader.available == 4 and reader.position == 0
        assert_still_reads(reader, 0)


@pytest.mark.parametrize(
    ("stamps", "error", "message"),
    [
        (np.empty(2, np.float32), TypeError, "timestamps has dtype float32, but timestamps are"),
        (np.empty((2, 1)), ValueError, "timestamps must be a writable, C-contiguous 1-D array"),
        (np.empty(4)[::2], ValueError, "timestamps must be a writable, C-contiguous 1-D array"),
        ([0.0, 0.0], TypeError, "timestamps must be a numpy array, got list"),
    ],
)
def test_bad_timestamp_buffers_are_refused(stamps, error, message):
    with ring_with(4, timestamps=True) as ring:
        reader = ring.reader(from_oldest=True)
        with pytest.raises(error, match=message):
            reader.read_into(np.empty((2, CHANNELS)), timestamps=stamps, timeout=0)
        with pytest.raises(error, match=message):
            reader.read_available_into(np.empty((2, CHANNELS)), timestamps=stamps)
        stamps_out = np.empty(2)
        assert reader.read_into(np.empty((2, CHANNELS)), timestamps=stamps_out, timeout=0) == 2
        np.testing.assert_array_equal(stamps_out, [0.0, 1.0])


def test_read_only_timestamp_buffer_is_refused():
    with ring_with(4, timestamps=True) as ring:
        stamps = np.empty(2)
        stamps.flags.writeable = False
        with pytest.raises(ValueError, match="timestamps must be a writable"):
            ring.reader(from_oldest=True).read_into(np.empty((2, 3)), timestamps=stamps)


# ---------------------------------------------------------------------- sample counts
@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (True, TypeError, "n must be an integer number of samples, got True"),
        ("2", TypeError, "n must be an integer number of samples, got '2'"),
        (2**70, ValueError, f"n={2**70} is more than the room in the output buffers \\(4\\)"),
        (-(2**70), ValueError, "n must not be negative"),
    ],
)
def test_bad_counts_for_read_into(n, error, message):
    with ring_with(4) as ring:
        reader = ring.reader(from_oldest=True)
        with pytest.raises(error, match=message):
            reader.read_into(np.empty((4, CHANNELS)), n, timeout=0)
        assert reader.read_into(np.empty((4, CHANNELS)), np.int64(2), timeout=0) == 2


@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (-1, ValueError, "n must not be negative, got -1"),
        (17, ValueError, r"n=17 is more than the ring's capacity \(16\)"),
        (1.5, TypeError, "n must be an integer number of samples, got 1.5"),
        (None, TypeError, "n must be an integer number of samples, got None"),
    ],
)
def test_bad_counts_for_latest(n, error, message):
    with ring_with(4) as ring:
        reader = ring.reader(from_oldest=True)
        with pytest.raises(error, match=message):
            reader.latest(n)
        np.testing.assert_array_equal(reader.latest(2), ramp(2, 2))
        assert reader.available == 4  # latest consumes nothing, refused or not


def test_latest_timestamps_of_a_stream_without_them():
    with ring_with(4) as ring:
        with pytest.raises(ValueError, match="this stream carries no timestamps"):
            ring.reader().latest(1, with_timestamps=True)


def test_timeout_of_the_wrong_type_is_named():
    with ring_with(4) as ring:
        with pytest.raises(TypeError, match="timeout must be a number of seconds"):
            ring.reader(from_oldest=True).read_into(np.empty((2, CHANNELS)), timeout="1")


# ------------------------------------------------------------------------- wrong state
def test_reads_of_a_closed_ring_say_so():
    ring = ring_with(4)
    reader = ring.reader(from_oldest=True)
    ring.close()
    for read in (
        lambda: reader.read_into(np.empty((2, CHANNELS)), timeout=0),
        lambda: reader.read_available_into(np.empty((2, CHANNELS))),
        lambda: reader.latest(1),
    ):
        with pytest.raises(StreamStoppedError, match="reader 'reader': the stream was closed"):
            read()
    with pytest.raises(StreamError, match=f"ring '{ring.name}' is closed"):
        ring.write(ramp(0, 1))
    assert reader.available == 0 and reader.fill == 0.0


def test_a_new_reader_on_a_closed_ring_is_refused():
    ring = ring_with(4)
    ring.close()
    with pytest.raises(StreamStoppedError, match="is closed"):
        ring.reader()


def test_reading_through_a_closed_reader_is_refused():
    with ring_with(4) as ring:
        reader = ring.reader(from_oldest=True)
        reader.close()
        with pytest.raises(StreamStoppedError, match="reader 'reader' is closed"):
            reader.read_available_into(np.empty((2, CHANNELS)))


def test_writer_calls_on_an_attached_ring_are_refused(stream_name):
    with StreamRing(8, CHANNELS, shared=True, name=stream_name) as ring:
        attached = StreamRing.attach(stream_name)
        try:
            with pytest.raises(StreamError, match="is attached read-only; only its creator"):
                attached.reserve(1)
            with pytest.raises(StreamError, match="attached read-only"):
                attached.mark_stopped()
            reader = attached.reader()
            ring.write(ramp(0, 2))
            assert_still_reads(reader, 0)
        finally:
            attached.close()


# ---------------------------------------------------------------------------- StreamHub
@pytest.fixture
def source():
    return HandFedSource()


@pytest.fixture
def hub(source):
    with StreamHub(source, name="test_bad_input_hub", shared=False, max_poll_rate=200.0) as hub:
        yield hub


def assert_hub_delivers(hub, source, name="check") -> None:
    """A new reader on the hub starts and gets the next samples fed to the source."""
    reader = hub.open_reader(name)
    reader.start()
    source.feed(5)
    out = np.empty((5, 2))
    reader.read_into(out, timeout=10)
    assert np.all(np.diff(out[:, 0]) == 1)
    reader.close()


@pytest.mark.parametrize("seconds", [0, -1, "1", float("nan"), None])
def test_hub_min_ring_seconds_is_checked(source, seconds):
    message = f"min_ring_seconds must be positive, got {seconds!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        StreamHub(source, name="bad", shared=False, min_ring_seconds=seconds)
    with StreamHub(source, name="good", shared=False, min_ring_seconds=2.0) as hub:
        assert hub.ring.capacity >= 2 * source.sample_rate


def test_hub_min_ring_seconds_must_be_finite(source):
    with pytest.raises(ValueError, match="min_ring_seconds must be positive"):
        StreamHub(source, name="bad", shared=False, min_ring_seconds=float("inf"))


_HUB_CONFIGURE_FIX = (
    "hub.py: StreamHub.configure converts with int()/float()/tuple() before any check, so "
    "the error names no argument (or a string is split into channels, or a negative size is "
    "taken as 'no change'); fix: check each argument first: active_channels a non-empty "
    "sequence of str (not a str), channel_buffer_size an int >= 1, sample_rate a finite "
    "number > 0, raising ValueError/TypeError(f'{key} must be ..., got {value!r}')"
)


@pytest.mark.parametrize(
    ("arguments", "key"),
    [
        ((["a", "b"], "CONTINUOUS", "many", 1000.0), "channel_buffer_size"),
        ((["a", "b"], "CONTINUOUS", -5, 1000.0), "channel_buffer_size"),
        ((["a", "b"], "CONTINUOUS", 1000, "fast"), "sample_rate"),
        ((["a", "b"], "CONTINUOUS", 1000, -5.0), "sample_rate"),
        (("ab", "CONTINUOUS", 1000, 1000.0), "active_channels"),
        ((None, "CONTINUOUS", 1000, 1000.0), "active_channels"),
    ],
)
def test_hub_configure_names_the_bad_argument(hub, source, arguments, key):
    with pytest.raises((TypeError, ValueError), match=key):
        hub.configure(*arguments)
    assert source.configures == 0
    assert_hub_delivers(hub, source)


def test_hub_stays_usable_after_a_buffer_size_it_cannot_hold(hub, source):
    with pytest.raises((ValueError, MemoryError), match="channel_buffer_size"):
        hub.configure(["a", "b"], "CONTINUOUS", 2**60, 1000.0)
    assert_hub_delivers(hub, source)


@pytest.mark.parametrize(("name", "allow_overwrite"), [("r", "no"), (5, False), ("", False)])
def test_hub_open_reader_checks_its_arguments(hub, source, name, allow_overwrite):
    with pytest.raises(TypeError):
        hub.open_reader(name, allow_overwrite=allow_overwrite)
    assert_hub_delivers(hub, source)


def test_hub_reader_reads_before_start_are_refused(hub, source):
    reader = hub.open_reader("idle")
    for read in (
        lambda: reader.read_available_into(np.empty((2, 2))),
        lambda: reader.latest(1),
    ):
        with pytest.raises(StreamStoppedError, match="reader 'idle' has not been started"):
            read()
    assert reader.available == 0
    reader.start()
    source.feed(3)
    out = np.empty((3, 2))
    reader.read_into(out, timeout=10)
    np.testing.assert_array_equal(out[:, 0], [0, 1, 2])


def test_a_closed_hub_reader_cannot_start_again(hub, source):
    reader = hub.open_reader("gone")
    reader.start()
    reader.close()
    with pytest.raises(StreamStoppedError, match="reader 'gone' is closed"):
        reader.start()
    assert not source.running


# ------------------------------------------------------------------------ StreamRecorder
@pytest.fixture
def reader():
    with StreamRing(4096, (2,), info=StreamInfo(("a", "b"), ("V", "V"), 1000.0)) as ring:
        yield ring.reader()


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        (5, TypeError, "path must be a file name \\(str or Path\\), got 5"),
        (None, TypeError, "path must be a file name"),
        ("", ValueError, "path must name a file, got an empty path"),
    ],
)
def test_recorder_paths_that_name_no_file(reader, tmp_path, path, error, message):
    with pytest.raises(error, match=message):
        StreamRecorder(reader, path)
    assert_records(reader, tmp_path / "good.h5")


def test_recorder_refuses_a_directory_as_its_file(reader, tmp_path):
    with pytest.raises(FileExistsError, match="already exists; a recording never overwrites"):
        StreamRecorder(reader, tmp_path)
    assert_records(reader, tmp_path / "good.h5")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"attributes": ["a", 1]}, TypeError, "attributes must be a mapping"),
        ({"attributes": {"": 1}}, TypeError, "attribute names must be non-empty strings"),
        ({"block_seconds": "1"}, ValueError, "block_seconds must be a positive number of sec"),
        ({"poll_interval": float("nan")}, ValueError, "poll_interval must be a positive"),
        ({"min_free_bytes": 1.5}, TypeError, "min_free_bytes must be an integer number"),
        ({"max_bytes": "1 GB"}, TypeError, "max_bytes must be an integer number of bytes"),
        ({"compression": "GZIP"}, ValueError, "compression must be one of"),
    ],
)
def test_recorder_options_not_covered_elsewhere(reader, tmp_path, options, error, message):
    with pytest.raises(error, match=message):
        StreamRecorder(reader, tmp_path / "bad.h5", **options)
    assert not (tmp_path / "bad.h5").exists()
    assert_records(reader, tmp_path / "good.h5")


def test_recorder_on_a_closed_stream_refuses_to_start(tmp_path):
    ring = StreamRing(64, (2,))
    recorder = StreamRecorder(ring.reader(), tmp_path / "late.h5")
    ring.close()
    with pytest.raises(StreamStoppedError, match="cannot record from reader 'reader': its stream"):
        recorder.start()
    assert not (tmp_path / "late.h5").exists()


def assert_records(reader, path) -> None:
    """A recorder on the same reader records what is written next."""
    ring = reader.ring
    with StreamRecorder(reader, path, poll_interval=0.01) as recorder:
        ring.write(np.ones((10, 2)))
    assert recorder.samples_written == 10
