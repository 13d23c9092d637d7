"""DataInStreamBuffer in a real qudi: several consumers of one dummy, each with its own cursor."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream import (
    StreamBusyError,
    StreamFaultError,
    StreamOverrunError,
    StreamStoppedError,
    StreamTimeoutError,
    list_streams,
)
from qudi.util.instream.sharing import RemoteHub

CHANNELS = ["ramp", "sine", "counts", "noise"]
RATE = 200_000.0


@pytest.fixture
def buffers(activate, module_manager):
    """The three buffers on ramp_dummy, configured for 4 ch x 200 kS/s, not yet streaming."""
    found = [activate(name) for name in ("buffer_a", "buffer_b", "buffer_c")]
    found[0].configure(CHANNELS, StreamingMode.CONTINUOUS, 2**17, RATE)
    yield found
    for name in ("buffer_a", "buffer_b", "buffer_c", "timestamp_buffer"):
        module_manager.deactivate_module(name)


def dummy(module_manager, name="ramp_dummy"):
    return module_manager[name].instance


def consume(buffer, seconds: float, chunk: int, pause: float, report: dict) -> None:
    """Read for ``seconds`` in chunks, checking the ramp has no gap and no repeat."""
    flat = np.empty(chunk * len(CHANNELS))
    expected, gaps, samples = None, 0, 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            buffer.read_data_into_buffer(flat, chunk, timeout=10)
            ramp = flat.reshape(chunk, len(CHANNELS))[:, 0]
            if expected is not None and ramp[0] != expected:
                gaps += 1
            gaps += int(np.count_nonzero(np.diff(ramp) != 1))
            expected, samples = ramp[-1] + 1, samples + chunk
            time.sleep(pause)
    except Exception as error:  # reported to the test thread
        report["error"] = error
    report.update(samples=samples, gaps=gaps, lost=buffer.lost_samples)


def test_three_buffers_read_one_stream_at_their_own_pace_without_loss(buffers):
    reports = [{}, {}, {}]
    paces = [(1000, 0.0), (20_000, 0.02), (50_000, 0.1)]  # chunk, pause between reads
    for buffer in buffers:
        buffer.start_stream()
    threads = [
        threading.Thread(target=consume, args=(buffer, 2.0, chunk, pause, report))
        for buffer, (chunk, pause), report in zip(buffers, paces, reports, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for report in reports:
        assert "error" not in report, report
        assert report["samples"] >= 100_000
        assert report["gaps"] == 0 and report["lost"] == 0


def test_a_slow_buffer_gets_its_overrun_while_the_others_lose_nothing(buffers):
    slow, fast, _ = buffers
    slow.start_stream()
    fast.start_stream()
    report = {}
    reader = threading.Thread(target=consume, args=(fast, 2.0, 5000, 0.0, report))
    reader.start()
    time.sleep(1.6)  # the ring holds 1 s of data: the slow buffer falls behind
    with pytest.raises(StreamOverrunError) as info:
        slow.read_data_into_buffer(np.empty(4 * 10), 10, timeout=5)
    # the slow consumer goes on right after the gap
    flat = np.empty(4 * 10)
    slow.read_data_into_buffer(flat, 10, timeout=5)
    assert flat[0] == info.value.resume_position
    reader.join(60)
    assert "'buffer_a' fell behind" in str(info.value)
    assert info.value.lost == slow.lost_samples > 0
    assert report["gaps"] == 0 and report["lost"] == 0 and "error" not in report


def test_streamer_runs_while_any_buffer_streams(buffers, module_manager):
    a, b, _ = buffers
    streamer = dummy(module_manager)
    a.start_stream()
    b.start_stream()
    a.start_stream()  # harmless while running
    assert (a.module_state(), b.module_state(), streamer.module_state()) == (
        "locked",
        "locked",
        "locked",
    )
    a.stop_stream()
    assert a.module_state() == "idle" and streamer.module_state() == "locked"
    b.stop_stream()
    assert streamer.module_state() == "idle"


def test_configure_is_a_no_op_when_unchanged_and_refused_while_others_stream(buffers):
    a, b, c = buffers
    b.start_stream()
    a.configure(CHANNELS, StreamingMode.CONTINUOUS, 2**17, RATE)  # same settings: accepted
    with pytest.raises(StreamBusyError, match="'buffer_b'") as info:
        c.configure(CHANNELS[:2], StreamingMode.CONTINUOUS, 2**17, RATE)
    assert "active_channels" in str(info.value)
    b.stop_stream()
    c.configure(CHANNELS[:2], StreamingMode.CONTINUOUS, 2**17, RATE)
    assert a.active_channels == CHANNELS[:2]


def test_streamer_fault_reaches_every_buffer_then_a_restart_works(
    buffers, module_manager, expected_qudi_errors
):
    streamer = dummy(module_manager)
    for buffer in buffers:
        buffer.start_stream()
    buffers[0].read_data_into_buffer(np.empty(4 * 100), 100, timeout=5)
    streamer.simulate_fault("ADC lost its clock")
    for buffer in buffers:
        with pytest.raises(StreamFaultError, match="ADC lost its clock"):
            buffer.read_data_into_buffer(np.empty(4 * 100_000), 100_000, timeout=10)
    assert streamer.module_state() == "idle"
    buffers[1].start_stream()  # as qudi's logic does after an error: a fresh start
    flat = np.empty(4 * 1000)
    buffers[1].read_data_into_buffer(flat, 1000, timeout=5)
    assert flat.reshape(-1, 4)[0, 0] == 0  # a new acquisition from sample 0
    assert not expected_qudi_errors()  # the buffers' reads raised it; nobody else logs errors


def test_blocking_reads_time_out_and_end_on_stop(buffers):
    a, b, _ = buffers
    a.configure(CHANNELS, StreamingMode.CONTINUOUS, 2**17, 100.0)
    a.start_stream()
    with pytest.raises(StreamTimeoutError, match="nothing was consumed"):
        a.read_data_into_buffer(np.empty(4 * 1000), 1000, timeout=0.2)
    threading.Timer(0.1, a.stop_stream).start()
    with pytest.raises(StreamStoppedError):
        a.read_data_into_buffer(np.empty(4 * 1000), 1000, timeout=30)
    with pytest.raises(StreamStoppedError, match="'buffer_b' has not been started"):
        b.read_data_into_buffer(np.empty(4), 1, timeout=30)


def test_deactivation_releases_threads_and_shared_memory(activate, module_manager):
    a, b = activate("buffer_a"), activate("buffer_b")
    name = a.stream_name
    a.start_stream()
    b.start_stream()
    assert name in list_streams()
    module_manager.deactivate_module("buffer_a")  # while streaming: stops cleanly
    assert dummy(module_manager).module_state() == "locked"
    b.read_data_into_buffer(np.empty(4 * 10), 10, timeout=5)
    module_manager.deactivate_module("buffer_b")
    assert dummy(module_manager).module_state() == "idle"
    assert name not in list_streams()
    assert not [t for t in threading.enumerate() if t.name.startswith("instream-")]
    for call in (  # a deactivated buffer says so (it raised AttributeError on None)
        lambda: a.read_data_into_buffer(np.empty(4 * 10), 10, timeout=1),
        lambda: a.available_samples,
        lambda: a.channel_buffer_size,
        a.start_stream,
    ):
        with pytest.raises(StreamStoppedError, match="buffer 'buffer_a' is not active"):
            call()


def test_timestamps_stay_aligned_with_data_through_the_buffer(activate, module_manager):
    buffer = activate("timestamp_buffer")
    try:
        buffer.configure(["ramp", "sine"], StreamingMode.CONTINUOUS, 2**16, 10_000.0)
        buffer.start_stream()
        data = np.empty(2 * 5000, np.float32)
        stamps = np.empty(5000)
        for _ in range(3):
            buffer.read_data_into_buffer(data, 5000, stamps, timeout=5)
            ramp = data.reshape(-1, 2)[:, 0].astype(np.float64)
            assert np.all(np.abs(stamps - ramp / 10_000.0) <= 0.2 / 10_000.0)
        single, stamp = buffer.read_single_point()
        assert single.shape == (2,) and isinstance(stamp, np.float64)
    finally:
        module_manager.deactivate_module("timestamp_buffer")


def test_read_data_and_single_point(buffers):
    a = buffers[0]
    a.start_stream()
    data, stamps = a.read_data(1000)
    assert data.shape == (1000, 4) and stamps is None
    np.testing.assert_array_equal(data[:, 0], np.arange(data[0, 0], data[0, 0] + 1000))
    newest, stamp = a.read_single_point()
    assert newest.shape == (4,) and stamp is None and newest[0] >= data[-1, 0]


def test_a_buffer_shares_its_streamers_stream_with_a_consumer_elsewhere(buffers, module_manager):
    """What a buffer in another qudi gets when it connects to this buffer (not the streamer)."""
    buffer_a, buffer_b, _ = buffers
    remote = RemoteHub(buffer_a.share_stream("elsewhere"))  # the other side, via shared memory
    reader = remote.open_reader("elsewhere")
    try:
        assert remote.name == buffer_a.stream_name  # the streamer's one stream, not a copy
        reader.start()
        assert dummy(module_manager).module_state() == "locked"
        buffer_b.start_stream()
        data = np.empty((50_000, len(CHANNELS)))
        reader.read_into(data, timeout=10)
        np.testing.assert_array_equal(np.diff(data[:, 0]), 1)
        with pytest.raises(StreamBusyError, match="'buffer_b', 'elsewhere'"):
            buffer_b.configure(CHANNELS, StreamingMode.CONTINUOUS, 2**17, RATE / 2)
        buffer_b.stop_stream()
        assert dummy(module_manager).module_state() == "locked"  # 'elsewhere' still runs
        reader.stop()
        assert dummy(module_manager).module_state() == "idle"
    finally:
        remote.close()
