"""StreamHub: reference-counted start/stop, busy configure, faults, slow readers, stats."""

from __future__ import annotations

import enum
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from qudi.util.instream import (
    StreamBusyError,
    StreamError,
    StreamFaultError,
    StreamHub,
    StreamOverrunError,
    StreamRing,
    StreamStoppedError,
    StreamTimeoutError,
)
from qudi.util.instream.simulated import SimulatedSource

from .sources import HandFedSource


@pytest.fixture
def source():
    return HandFedSource()


@pytest.fixture
def hub(source):
    with StreamHub(source, name="test_hub", shared=False, max_poll_rate=200.0) as hub:
        yield hub


def read_ramp(reader, count, timeout=10.0):
    out = np.empty((count, 2))
    reader.read_into(out, timeout=timeout)
    return out[:, 0]


def test_source_starts_with_first_reader_and_stops_with_last(hub, source):
    first, second = hub.open_reader("first"), hub.open_reader("second")
    first.start()
    second.start()
    second.start()  # harmless on a running reader
    assert source.starts == 1 and source.running
    first.stop()
    assert source.running and second.running and not first.running
    second.stop()
    assert source.stops == 1 and not source.running
    assert not hub.running


def test_readers_get_only_data_from_after_their_start(hub, source):
    early = hub.open_reader("early")
    early.start()
    source.feed(100)
    np.testing.assert_array_equal(read_ramp(early, 100), np.arange(100))
    late = hub.open_reader("late")
    late.start()
    source.feed(50)
    np.testing.assert_array_equal(read_ramp(late, 50), np.arange(100, 150))
    np.testing.assert_array_equal(read_ramp(early, 50), np.arange(100, 150))


def test_every_reader_sees_every_sample_once(hub, source):
    hub.configure(["a", "b"], "CONTINUOUS", 20_000, 1000.0)  # room for slow CI machines
    readers = [hub.open_reader(f"reader {i}") for i in range(3)]
    for reader in readers:
        reader.start()
    results = {}

    def consume(reader):
        results[reader.name] = np.concatenate([read_ramp(reader, 500) for _ in range(20)])

    threads = [threading.Thread(target=consume, args=(r,)) for r in readers]
    for thread in threads:
        thread.start()
    for _ in range(100):
        source.feed(100)
        time.sleep(0.001)
    for thread in threads:
        thread.join(30)
    for reader in readers:
        np.testing.assert_array_equal(results[reader.name], np.arange(10_000))
        assert reader.lost == 0


def test_configure_with_the_same_settings_is_a_no_op_even_while_running(hub, source):
    reader = hub.open_reader("logic")
    hub.configure(["a", "b"], "CONTINUOUS", 1000, 1000.0)
    ring = hub.ring
    reader.start()
    hub.configure(["a", "b"], "CONTINUOUS", 1000, 1000.0)
    assert hub.ring is ring and source.configures == 0


def test_configure_accepts_the_rate_the_hardware_coerced(hub, source):
    hub.configure(["a", "b"], "CONTINUOUS", 1000, 1234.5678)
    assert source.sample_rate == 1234.6 and source.configures == 1
    hub.open_reader("logic").start()
    hub.configure(["a", "b"], "CONTINUOUS", 1000, 1234.5678)  # same request again: no change
    assert source.configures == 1


def test_buffer_size_is_satisfied_by_a_big_enough_ring(hub, source):
    hub.configure(["a", "b"], "CONTINUOUS", hub.ring.capacity // 2, 1000.0)
    assert source.configures == 0
    hub.configure(["a", "b"], "CONTINUOUS", hub.ring.capacity * 2, 1000.0)
    assert hub.ring.capacity >= 2 * 1024 and source.configures == 1


def test_configure_while_readers_run_names_them(hub, source):
    for name in ("logic 1", "logic 2", "idle"):
        hub.open_reader(name)
    hub.readers[0].start()
    hub.readers[1].start()
    with pytest.raises(StreamBusyError) as info:
        hub.configure(["a"], "CONTINUOUS", 1000, 500.0)
    message = str(info.value)
    assert "'logic 1', 'logic 2'" in message and "idle" not in message
    assert "sample_rate from 1000.0 to 500.0" in message
    assert source.configures == 0 and source.active_channels == ["a", "b"]


def test_configure_rebuilds_the_ring_for_stopped_readers(hub, source):
    reader = hub.open_reader("logic")
    hub.configure(["b"], "CONTINUOUS", 1000, 1000.0)
    assert hub.ring.sample_shape == (1,)
    assert hub.ring.info.channel_names == ("b",)
    reader.start()
    source.feed(10)
    out = np.empty((10, 1))
    assert reader.read_into(out, timeout=10) == 10


def test_source_fault_reaches_every_reader_once_chained_then_restart_clears_it(hub, source):
    readers = [hub.open_reader(name) for name in ("waiting", "polling", "late")]
    for reader in readers:
        reader.start()
    errors = {}

    def wait_for_data():
        try:
            read_ramp(readers[0], 10, timeout=30)
        except StreamError as error:
            errors["waiting"] = error

    blocked = threading.Thread(target=wait_for_data)
    blocked.start()
    cause = OSError("DAQ card reported error -200279")
    source.fail_next_read(cause)
    blocked.join(30)
    assert isinstance(errors["waiting"], StreamFaultError)
    assert errors["waiting"].__cause__ is cause
    assert not source.running and source.stops == 1
    assert hub.error is cause and hub.stats().fault.startswith("OSError")
    with pytest.raises(StreamFaultError, match="-200279") as info:
        readers[1].read_available_into(np.empty((5, 2)))
    assert info.value.__cause__ is cause
    with pytest.raises(StreamStoppedError, match="after a fault"):
        read_ramp(readers[1], 5, timeout=30)

    readers[1].start()  # a restart clears the fault for new reads
    assert source.running and source.starts == 2 and hub.error is None
    with pytest.raises(StreamFaultError):  # ... but a reader that has not heard yet still hears
        readers[2].read_available_into(np.empty((5, 2)))
    source.feed(5)
    assert len(read_ramp(readers[1], 5)) == 5


def test_a_long_lived_hub_keeps_only_recent_faults(hub, source):
    reader = hub.open_reader("logic")
    for run in range(80):
        reader.start()
        cause = OSError(f"fault {run}")
        source.fail_next_read(cause)
        with pytest.raises(StreamFaultError) as info:
            read_ramp(reader, 10, timeout=30)
        assert info.value.__cause__ is cause  # each fault is still reported, once
    assert hub.error is cause
    assert len(hub._faults) <= 64  # not one exception (and its traceback) per fault ever


def test_configure_is_allowed_after_a_fault_stopped_everyone(hub, source):
    hub.open_reader("logic").start()
    source.fail_next_read(RuntimeError("boom"))
    deadline = time.monotonic() + 10
    while hub.error is None and time.monotonic() < deadline:
        time.sleep(0.005)
    hub.configure(["a"], "CONTINUOUS", 1000, 1000.0)
    assert source.configures == 1


def test_slow_reader_loses_data_alone_and_holds_nobody_back(hub, source):
    slow, fast = hub.open_reader("slow"), hub.open_reader("fast")
    slow.start()
    fast.start()
    capacity = hub.ring.capacity
    for first in range(0, 3 * capacity, 256):
        source.feed(256)
        np.testing.assert_array_equal(read_ramp(fast, 256), np.arange(first, first + 256))
    with pytest.raises(StreamOverrunError) as info:
        read_ramp(slow, 10)
    assert info.value.lost == slow.lost > 0
    assert fast.lost == 0


def test_stop_ends_a_blocking_read_of_that_reader(hub, source):
    reader = hub.open_reader("stopper")
    reader.start()
    threading.Timer(0.05, reader.stop).start()
    with pytest.raises(StreamStoppedError, match="'stopper' is stopped"):
        read_ramp(reader, 10, timeout=30)


def test_reading_a_reader_that_was_never_started(hub):
    reader = hub.open_reader("never")
    hub.open_reader("other").start()
    hub.source.feed(10)
    assert reader.available == 0
    with pytest.raises(StreamStoppedError, match="'never' has not been started"):
        read_ramp(reader, 1, timeout=5)
    with pytest.raises(StreamStoppedError, match="'never' has not been started"):
        reader.read_available_into(np.empty((1, 2)))


def test_timeout_when_the_source_produces_nothing(hub):
    reader = hub.open_reader("patient")
    reader.start()
    with pytest.raises(StreamTimeoutError, match="within 0.1 s"):
        read_ramp(reader, 10, timeout=0.1)


def test_pump_polls_at_most_max_poll_rate(source):
    with StreamHub(source, name="test_poll", shared=False, max_poll_rate=20.0) as hub:
        hub.open_reader("r").start()
        started = time.monotonic()
        time.sleep(0.5)
        polls, elapsed = source.polls, time.monotonic() - started
    assert 1 <= polls <= 20 * elapsed + 3


def test_pump_polls_faster_when_the_source_buffer_would_fill():
    source = HandFedSource(sample_rate=1000.0, buffer_size=100)  # 0.1 s of device buffer
    with StreamHub(source, name="test_fast_poll", shared=False, max_poll_rate=1.0) as hub:
        hub.open_reader("r").start()
        started = time.monotonic()
        while source.polls < 10:  # every 25 ms: 0.25 s; once a second would take 9 s
            assert time.monotonic() - started < 6.0, f"{source.polls} polls in 6 s"
            time.sleep(0.005)


def test_duplicate_reader_names_are_refused(hub):
    hub.open_reader("logic")
    with pytest.raises(ValueError, match="already has a reader named 'logic'"):
        hub.open_reader("logic")


@pytest.mark.parametrize("rate", [0, -1, float("nan"), "fast", 1e-9, 1e-4, 0.5, 1001, 1e9])
def test_bad_poll_rate_is_refused_with_the_valid_range(source, rate):
    """Found: 1e-9 gave a StreamCapacityError about a 2.9 TiB ring, naming no option, and
    1e-4 silently made a 2 M-sample ring."""
    message = f"max_poll_rate must be a number of Hz from 1 to 1000, got {rate!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        StreamHub(source, name="test_bad_rate", shared=False, max_poll_rate=rate)


def test_a_poll_rate_raised_later_is_checked_too(hub):
    hub.max_poll_rate = 500.0
    assert hub.max_poll_rate == 500.0
    for rate in (1e-9, "fast", 5000):
        with pytest.raises(ValueError, match="max_poll_rate must be a number of Hz from 1"):
            hub.max_poll_rate = rate
        assert hub.max_poll_rate == 500.0  # a refused change changes nothing


@pytest.mark.parametrize("rate", [1.0, 30.0, 1000.0])
def test_the_ring_holds_a_few_polls_at_any_valid_poll_rate(rate):
    source = HandFedSource(sample_rate=100_000.0, buffer_size=2**20)
    with StreamHub(source, name="test_rate_ring", shared=False, max_poll_rate=rate) as hub:
        assert hub.ring.capacity >= 4 * 100_000 / rate  # at least 4 polls
        assert hub.ring.capacity <= 2 * max(4 * 100_000 / rate, 100_000) + 50_000


def test_closed_hub_refuses_use_and_ends_readers(source):
    hub = StreamHub(source, name="test_closed", shared=False)
    reader = hub.open_reader("r")
    reader.start()
    hub.close()
    assert not source.running
    with pytest.raises(StreamError, match="closed"):
        hub.open_reader("other")
    with pytest.raises(StreamStoppedError):
        read_ramp(reader, 1, timeout=5)


def test_shared_hub_is_readable_from_attach_and_releases_everything(stream_name):
    source = SimulatedSource(["x", "y"], ["ramp", "sine"], sample_rate=20_000, timestamps=True)
    with StreamHub(source, name=stream_name) as hub:
        hub.open_reader("local").start()
        attached = StreamRing.attach(stream_name)
        assert attached.info.channel_names == ("x", "y")
        assert attached.info.sample_timing == "TIMESTAMP"
        remote = attached.reader("remote")
        data, stamps = np.empty((2000, 2)), np.empty(2000)
        remote.read_into(data, timeout=10, timestamps=stamps)
        # timestamps belong to their samples: jittered by at most 0.2 periods, increasing
        assert np.all(np.abs(stamps - data[:, 0] / 20_000) <= 0.2 / 20_000)
        assert np.all(np.diff(stamps) > 0)
        attached.close()


def test_stats_report_rate_fill_and_loss(stream_name):
    source = SimulatedSource(["x"], sample_rate=50_000)
    # a ring of 10 s: the watcher, which never reads, is not overwritten even when a loaded
    # machine stretches the 0.6 s below
    with StreamHub(source, name=stream_name, max_poll_rate=50.0, min_ring_seconds=10) as hub:
        reader = hub.open_reader("watcher", allow_overwrite=True)
        reader.start()
        time.sleep(0.6)
        stats = hub.stats()
    assert stats.running and stats.nominal_rate == 50_000
    assert 0.75 * 50_000 < stats.measured_rate < 1.25 * 50_000
    (reader_stats,) = stats.readers
    assert reader_stats.name == "watcher" and reader_stats.available > 0
    assert 0 < reader_stats.fill <= 1 and reader_stats.lost == 0


def test_finite_run_delivers_its_samples_then_ends_reads_and_can_restart(hub, source):
    hub.configure(["a", "b"], "FINITE", 100, 1000.0)
    reader = hub.open_reader("finite")
    reader.start()
    source.feed(150)  # the acquisition delivers exactly channel_buffer_size samples
    np.testing.assert_array_equal(read_ramp(reader, 100), np.arange(100))
    with pytest.raises(StreamStoppedError, match="0 of 1 requested"):
        read_ramp(reader, 1, timeout=30)
    assert not reader.running and hub.running_readers == []
    reader.start()  # a new acquisition
    assert source.starts == 2 and reader.running
    source.feed(100)
    assert len(read_ramp(reader, 100)) == 100


def test_a_fault_before_a_reconfiguration_does_not_haunt_the_next_runs(hub, source):
    reader = hub.open_reader("logic")
    reader.start()
    source.fail_next_read(RuntimeError("old trouble"))
    with pytest.raises(StreamFaultError):
        read_ramp(reader, 1, timeout=30)
    hub.configure(["a", "b"], "CONTINUOUS", 5000, 1000.0)  # a new ring, run epochs anew
    reader.start()
    source.feed(10)
    assert reader.running and hub.error is None
    assert len(read_ramp(reader, 10)) == 10


# ------------------------------------------------------- how the pump reads its source
class GreedySource(HandFedSource):
    """A source with the flaw of qudi-iqo-modules 1.0.0's InStreamDummy: its non-blocking read
    writes everything it holds, even into a smaller buffer (numpy then refuses: "could not
    broadcast"); its blocking read of an exact count is correct."""

    def read_available_data_into_buffer(self, data_buffer, timestamp_buffer=None) -> int:
        channels = len(self.active_channels)
        with self._lock:
            count = self._produced - self._read
            index = np.arange(self._read, self._read + count, dtype=np.float64)
            data_buffer[: count * channels] = np.repeat(index, channels)  # may not fit
            self._read += count
        return count

    def read_data_into_buffer(self, data_buffer, samples_per_channel, timestamp_buffer=None):
        channels = len(self.active_channels)
        with self._lock:
            if self._produced - self._read < samples_per_channel:
                raise RuntimeError("the test asked for more than it fed")
            index = np.arange(self._read, self._read + samples_per_channel, dtype=np.float64)
            data_buffer[: samples_per_channel * channels] = np.repeat(index, channels)
            self._read += samples_per_channel


def test_a_source_that_overfills_small_buffers_is_read_with_exact_counts():
    source = GreedySource(buffer_size=100)
    source.feed(0)
    with StreamHub(source, name="test_greedy", shared=False, max_poll_rate=200.0) as hub:
        reader = hub.open_reader("logic")
        reader.start()
        capacity = hub.ring.capacity
        total = 0
        for chunk in (capacity - 66, 68, 68, capacity // 2 + 3, 700):  # free regions of any size
            source.feed(chunk)
            for part in (chunk // 2, chunk - chunk // 2):  # a blocking read waits for <= 15/16
                np.testing.assert_array_equal(
                    read_ramp(reader, part), np.arange(total, total + part)
                )
                total += part
        assert hub.error is None and reader.running
        assert hub.ring.write_index == total > capacity  # the ring wrapped, more than once


class MinimalSource(HandFedSource):
    """A source with only the non-blocking read (the README's minimal source)."""

    reported = None

    def read_available_data_into_buffer(self, data_buffer, timestamp_buffer=None) -> int:
        got = super().read_available_data_into_buffer(data_buffer, timestamp_buffer)
        return got if self.reported is None else self.reported


def test_a_minimal_source_is_read_with_what_it_has():
    source = MinimalSource()
    assert not hasattr(source, "read_data_into_buffer")
    with StreamHub(source, name="test_minimal", shared=False, max_poll_rate=200.0) as hub:
        reader = hub.open_reader("logic")
        reader.start()
        for first in range(0, 2100, 700):  # across the wrap
            source.feed(700)
            np.testing.assert_array_equal(read_ramp(reader, 700), np.arange(first, first + 700))


@pytest.mark.parametrize("reported", [10**6, -1, 2.5])
def test_a_minimal_source_that_reports_more_than_fits_faults_the_stream_clearly(reported):
    source = MinimalSource()
    source.reported = reported
    with StreamHub(source, name="test_liar", shared=False, max_poll_rate=200.0) as hub:
        reader = hub.open_reader("logic")
        reader.start()
        source.feed(10)
        with pytest.raises(StreamFaultError, match=f"returned {reported!r} for a buffer of"):
            read_ramp(reader, 10)
        assert not source.running and hub.ring.write_index == 0  # nothing bogus published


# ------------------------------------------------------------------ joining and names
def test_join_if_running_joins_a_run_but_never_starts_the_source(hub, source):
    follower = hub.open_reader("publisher")
    assert not hub.join_if_running(follower)
    assert source.starts == 0 and not follower.running
    leader = hub.open_reader("logic")
    leader.start()
    assert hub.join_if_running(follower) and follower.running
    assert hub.join_if_running(follower) and source.starts == 1  # harmless when joined
    source.feed(5)
    np.testing.assert_array_equal(read_ramp(follower, 5), np.arange(5))
    follower.stop()
    leader.stop()
    assert not hub.join_if_running(follower) and not source.running


class OtherPackagesMode(enum.Enum):
    """Another package's namesake enum (qudi-iqo-modules has one): alike only by name."""

    CONTINUOUS = 0
    FINITE = 1


def test_a_streaming_mode_from_another_package_is_known_by_its_name(hub, source):
    reader = hub.open_reader("logic")
    reader.start()
    hub.configure(["a", "b"], OtherPackagesMode.CONTINUOUS, 100, 1000.0)  # what runs: no-op
    assert source.configures == 0
    with pytest.raises(StreamBusyError, match="streaming_mode from 'CONTINUOUS' to 'FINITE'"):
        hub.configure(["a", "b"], OtherPackagesMode.FINITE, 100, 1000.0)
    reader.stop()
    hub.configure(["a", "b"], OtherPackagesMode.FINITE, 100, 1000.0)
    assert source.streaming_mode is OtherPackagesMode.FINITE  # the source gets what was given


def test_a_closed_reader_frees_its_name_but_not_a_newer_readers(hub):
    old = hub.open_reader("logic")
    old.close()
    new = hub.open_reader("logic")
    old.close()  # again: must not drop the new reader of the same name
    assert hub.readers == (new,)


# ------------------------------------------------------- issue 12: headroom for blocking reads
NOTEBOOK = """
import sys
import numpy as np
from qudi.util.instream import attach
ring = attach(sys.argv[1])
reader = ring.reader("my notebook")
print("attached", flush=True)
out = np.empty((100_000, 2))
for _ in range(5):
    first = reader.position
    reader.read_into(out, timeout=10)
    assert np.array_equal(out[:, 0], np.arange(first, first + 100_000)), "not a ramp"
print("read", reader.lost, flush=True)
ring.close()
"""


def test_a_blocking_read_of_the_docs_size_succeeds_at_100_khz(stream_name):
    """docs/jupyter.md's settings (buffer 2**16 at 100 kHz) made a ring of exactly 100 000
    samples, and a blocking read of 100 000 overran every time (7 of 7 runs lost 13-47
    samples). The ring now has headroom for reads of what it was asked to hold: here a hub
    reader and a reader attached from another process (the notebook) each read 100 000
    samples 5 times and lose none."""
    source = SimulatedSource(["APD", "analog 1"], sample_rate=1000.0)
    with StreamHub(source, name=stream_name) as hub:
        hub.configure(["APD", "analog 1"], "CONTINUOUS", 2**16, 100_000.0)
        assert hub.ring.capacity >= 100_000  # what the docs promise: at least one second
        reader = hub.open_reader("logic")
        reader.start()
        notebook = subprocess.Popen(
            [sys.executable, "-c", NOTEBOOK, stream_name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert notebook.stdout.readline().strip() == "attached", notebook.stderr.read()
            out = np.empty((100_000, 2))
            for _ in range(5):
                first = reader.position
                reader.read_into(out, timeout=10)
                np.testing.assert_array_equal(out[:, 0], np.arange(first, first + 100_000))
            assert reader.lost == 0
            said, complaint = notebook.communicate(timeout=60)
        finally:
            if notebook.poll() is None:
                notebook.kill()
                notebook.communicate()
    assert notebook.returncode == 0, complaint
    assert said.strip() == "read 0"


class RegionRecordingSource(HandFedSource):
    """Records the size of every free region the pump hands it (what the pump claimed)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.regions: list[int] = []

    def read_available_data_into_buffer(self, data_buffer, timestamp_buffer=None) -> int:
        self.regions.append(data_buffer.size // len(self.active_channels))
        return super().read_available_data_into_buffer(data_buffer, timestamp_buffer)


def test_a_poll_rate_lowered_after_the_ring_was_made_keeps_within_its_headroom():
    """The ring's headroom holds two pump chunks of the poll rate it was made for; a pump
    started after the rate was lowered (so that each poll brings more) claims no more at
    once, or a blocking read of the buffer size could be overrun by the claim."""
    source = RegionRecordingSource(sample_rate=100_000.0, buffer_size=2**20)
    with StreamHub(source, name="test_lowered", shared=False, max_poll_rate=30.0) as hub:
        hub.configure(["a", "b"], "CONTINUOUS", 2**17, 100_000.0)
        headroom = hub.ring.capacity - 2**17
        hub.max_poll_rate = 1.0
        reader = hub.open_reader("logic")
        reader.start()
        source.feed(100_000)  # a second's worth at once, as one poll at 1 Hz would bring
        np.testing.assert_array_equal(read_ramp(reader, 100_000), np.arange(100_000))
    assert max(source.regions) <= headroom // 2


def test_a_source_whose_units_are_not_text_still_makes_a_readable_stream(stream_name):
    """A unit of None (not text) made a header that every attaching reader refused; the
    checked writer would refuse it outright. The hub writes units as text."""
    source = HandFedSource()
    source.constraints.channel_units.update({"a": None, "b": 5})
    with StreamHub(source, name=stream_name) as hub:
        attached = StreamRing.attach(stream_name)
        assert attached.info.channel_units == ("None", "5") == hub.ring.info.channel_units
        attached.close()
