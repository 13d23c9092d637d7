"""InStreamDummy in a real qudi: timing, overflow like a real card, FINITE, bad config."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from qudi.interface.instream_interface import SampleTiming, StreamingMode

CHANNELS = ["ramp", "sine", "counts", "noise"]


def waiting_in(thread: threading.Thread, function: str, filename: str) -> bool:
    """Whether ``thread`` is inside ``function`` of a file named ``filename`` now."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == function and frame.f_code.co_filename.endswith(filename):
            return True
        frame = frame.f_back
    return False


@pytest.fixture
def dummy(activate, module_manager):
    streamer = activate("ramp_dummy")
    yield streamer
    streamer.stop_stream()
    module_manager.deactivate_module("ramp_dummy")


def test_samples_arrive_with_the_clock_and_reads_consume_them(dummy):
    dummy.configure(CHANNELS, StreamingMode.CONTINUOUS, 100_000, 10_000.0)
    dummy.start_stream()
    assert dummy.module_state() == "locked"
    data = np.empty(4 * 2000)
    dummy.read_data_into_buffer(data, 2000, timeout=5)
    first = data.reshape(-1, 4)
    np.testing.assert_array_equal(first[:, 0], np.arange(2000))
    dummy.read_data_into_buffer(data, 2000, timeout=5)
    np.testing.assert_array_equal(data.reshape(-1, 4)[:, 0], np.arange(2000, 4000))
    counts = first[:, 2]
    assert np.all(counts >= 0) and np.all(counts == np.round(counts))


def test_read_available_clips_to_the_buffer(dummy):
    dummy.configure(CHANNELS, StreamingMode.CONTINUOUS, 100_000, 100_000.0)
    dummy.start_stream()
    time.sleep(0.05)
    small = np.empty(4 * 10)
    assert dummy.read_available_data_into_buffer(small) == 10
    assert small[0] == 0 and small[-4] == 9


def test_overflow_is_reported_and_stops_the_card_without_overwriting(dummy):
    dummy.configure(CHANNELS, StreamingMode.CONTINUOUS, 1000, 100_000.0)
    dummy.start_stream()
    time.sleep(0.1)  # 10 000 samples are due; the buffer holds 1000
    with pytest.raises(RuntimeError, match="overflowed"):
        dummy.read_available_data_into_buffer(np.empty(4 * 10))
    assert dummy.module_state() == "idle"
    # what the buffer held when it filled is intact: samples 0..999, nothing newer
    data = np.empty(4 * 2000)
    assert dummy.read_available_data_into_buffer(data) == 1000
    np.testing.assert_array_equal(data.reshape(-1, 4)[:1000, 0], np.arange(1000))


def test_finite_acquisition_ends_and_reads_drain_it(dummy):
    dummy.configure(CHANNELS, StreamingMode.FINITE, 500, 50_000.0)
    dummy.start_stream()
    data = np.empty(4 * 500)
    dummy.read_data_into_buffer(data, 500, timeout=5)
    np.testing.assert_array_equal(data.reshape(-1, 4)[:, 0], np.arange(500))
    time.sleep(0.05)
    assert dummy.available_samples == 0
    with pytest.raises(RuntimeError, match="ended"):
        dummy.read_data_into_buffer(data, 1, timeout=5)


def test_blocking_read_times_out_without_consuming(dummy):
    dummy.configure(CHANNELS, StreamingMode.CONTINUOUS, 100_000, 100.0)
    dummy.start_stream()
    with pytest.raises(TimeoutError, match="nothing was consumed"):
        dummy.read_data_into_buffer(np.empty(4 * 1000), 1000, timeout=0.2)
    data = np.empty(4 * 10)
    dummy.read_data_into_buffer(data, 10, timeout=5)
    assert data[0] == 0


def test_a_waiting_read_holds_no_lock_and_ends_when_the_stream_stops(dummy):
    dummy.configure(CHANNELS, StreamingMode.CONTINUOUS, 100_000, 100.0)
    dummy.start_stream()
    outcome = []

    def wait_for_many_samples():
        try:
            dummy.read_data_into_buffer(np.empty(4 * 5000), 5000, timeout=30)
        except RuntimeError as error:
            outcome.append(error)

    waiting = threading.Thread(target=wait_for_many_samples)
    waiting.start()
    deadline = time.monotonic() + 30  # until the read waits in the source (not before it)
    while not waiting_in(waiting, "read_data_into_buffer", "simulated.py"):
        assert time.monotonic() < deadline and waiting.is_alive(), outcome
        time.sleep(0.005)
    dummy.stop_stream()  # not blocked by the waiting read
    waiting.join(10)
    assert not waiting.is_alive()
    assert "ended" in str(outcome[0])
    assert dummy.module_state() == "idle"


def test_read_single_point_is_the_newest_sample(dummy):
    dummy.configure(CHANNELS, StreamingMode.CONTINUOUS, 100_000, 1000.0)
    before_start = time.monotonic()
    dummy.start_stream()
    after_start = time.monotonic()
    time.sleep(0.2)
    before_read = time.monotonic()
    sample, stamp = dummy.read_single_point()
    after_read = time.monotonic()
    assert sample.shape == (4,) and stamp is None
    # the newest: the ramp's index of the last sample due by the read, at 1000 Hz (bracketed
    # by the clock around start and read, however long a loaded machine made the sleep)
    assert sample[0] >= 150
    assert (before_read - after_start) * 1000 - 2 <= sample[0] <= (after_read - before_start) * 1000
    assert dummy.available_samples >= sample[0]  # nothing was consumed


def test_same_seed_gives_the_same_data(dummy):
    dummy.configure(CHANNELS, StreamingMode.CONTINUOUS, 100_000, 10_000.0)
    runs = []
    for _ in range(2):
        dummy.start_stream()
        data = np.empty(4 * 1000)
        dummy.read_data_into_buffer(data, 1000, timeout=5)
        dummy.stop_stream()
        runs.append(data)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_configure_checks_against_the_constraints(dummy):
    with pytest.raises(ValueError, match="sample_rate=20000000.0 is outside"):  # 10 MHz at most
        dummy.configure(CHANNELS, StreamingMode.CONTINUOUS, 1000, 2e7)
    with pytest.raises(ValueError, match="channel_buffer_size=10 is outside"):
        dummy.configure(CHANNELS, StreamingMode.CONTINUOUS, 10, 1000.0)
    with pytest.raises(ValueError, match=r"must be a non-empty selection of .*unknown: \['nope'\]"):
        dummy.configure(["ramp", "nope"], StreamingMode.CONTINUOUS, 1000, 1000.0)
    with pytest.raises(ValueError, match="streaming_mode must be one of CONTINUOUS, FINITE"):
        dummy.configure(CHANNELS, "SOMETIMES", 1000, 1000.0)
    dummy.start_stream()
    with pytest.raises(RuntimeError, match="while it streams"):
        dummy.configure(CHANNELS, StreamingMode.CONTINUOUS, 1000, 1000.0)


def test_constraints_speak_the_qudi_iqo_modules_dialect(dummy):
    constraints = dummy.constraints
    assert constraints.data_type is np.float64
    assert issubclass(constraints.data_type, np.floating)
    assert list(constraints.channel_units) == CHANNELS
    assert constraints.sample_timing == SampleTiming.CONSTANT
    assert isinstance(dummy.active_channels, list)


BAD_OPTIONS = [
    ({"channel_signals": ["ramp", "square"]}, "channel_signals", "'square'", "valid are"),
    ({"channel_units": ["V"]}, "channel_units", "['V']", "give 2 entries"),
    ({"channel_names": ["a", "a"]}, "channel_names", "['a', 'a']", "unique"),
    ({"data_type": "complex-ish"}, "data_type", "'complex-ish'", "numpy number type"),
    ({"data_type": "str"}, "data_type", "'str'", "numpy number type"),
    ({"sample_timing": "SOMETIMES"}, "sample_timing", "'SOMETIMES'", "'TIMESTAMP'"),
    ({"seed": "lucky"}, "seed", "'lucky'", "integer"),
    ({"channel_names": "a"}, "channel_names", "'a'", "list of strings"),
]


@pytest.mark.parametrize(("override", "key", "shown_value", "hint"), BAD_OPTIONS)
def test_bad_options_fail_activation_naming_key_value_and_what_is_valid(
    module_manager, expected_qudi_errors, override, key, shown_value, hint
):
    options = {
        "channel_names": ["a", "b"],
        "channel_units": ["V", "V"],
        "channel_signals": ["ramp", "sine"],
        **override,
    }
    # qudi-core 1.8 cannot remove modules cleanly at run time: each variant gets its own name
    name = f"bad_dummy_{len(module_manager.module_names)}"
    module_manager.add_module(
        name, "hardware", {"module.Class": "instream.dummy.InStreamDummy", "options": options}
    )
    with pytest.raises(RuntimeError, match="Failed to activate"):
        module_manager.activate_module(name)
    messages = "\n".join(expected_qudi_errors())
    assert f"option '{key}' is {shown_value}" in messages and hint in messages


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"allow_overwrite": "yes"}, "option 'allow_overwrite' is 'yes': use True or False"),
        ({"max_poll_rate": 0}, "option 'max_poll_rate' is 0: use a number of Hz from 1 to 1000"),
        ({"max_poll_rate": "fast"}, "option 'max_poll_rate' is 'fast'"),
    ],
)
def test_bad_buffer_options_fail_activation(module_manager, expected_qudi_errors, options, message):
    name = f"bad_buffer_{len(module_manager.module_names)}"
    module_manager.add_module(
        name,
        "hardware",
        {
            "module.Class": "instream.buffer.DataInStreamBuffer",
            "options": options,
            "connect": {"streamer": "ramp_dummy"},
        },
    )
    with pytest.raises(RuntimeError, match="Failed to activate"):
        module_manager.activate_module(name)
    assert any(message in m for m in expected_qudi_errors())


@pytest.mark.parametrize("rate", [50.0, 2000.0])
def test_counts_in_a_rate_unit_are_counts_per_second_whatever_the_sample_rate(module_manager, rate):
    """The seed's ``channel_units: ['Hz', ...]`` on a counts channel: 50 kHz of photons read
    about 50 000 Hz at any sample rate; a ``counts`` channel holds counts per sample."""
    name = f"counting_dummy_{len(module_manager.module_names)}"
    options = {
        "channel_names": ["APD", "APD kc/s", "APD counts", "ramp"],
        "channel_units": ["Hz", "kc/s", "counts", "samples"],
        "channel_signals": ["counts", "counts", "counts", "ramp"],
        "seed": 3,
    }
    module_manager.add_module(
        name, "hardware", {"module.Class": "instream.dummy.InStreamDummy", "options": options}
    )
    module_manager.activate_module(name)
    dummy = module_manager[name].instance
    try:
        dummy.configure(options["channel_names"], StreamingMode.CONTINUOUS, 10_000, rate)
        dummy.start_stream()
        count = int(rate / 2)  # half a second of samples
        data = np.empty((count, 4))
        dummy.read_data_into_buffer(data, count, timeout=10)
    finally:
        dummy.stop_stream()
        module_manager.deactivate_module(name)
    hz, khz, per_sample, ramp = data.T
    np.testing.assert_array_equal(ramp, np.arange(count))
    assert np.mean(hz) == pytest.approx(50e3, rel=0.05)
    assert np.mean(khz) == pytest.approx(50.0, rel=0.05)
    assert np.mean(per_sample) == pytest.approx(50e3 / rate, rel=0.05)
    np.testing.assert_array_equal(hz % rate, 0)  # whole counts per period, times the rate


def test_an_infinite_timeout_is_refused_alike_by_the_dummy_and_a_buffer(activate, dummy):
    """Issue 21: the dummy took ``timeout=inf`` and the buffer refused it; None is the way to
    wait without a limit, for both (arrays.check_timeout)."""
    buffer = activate("buffer_a")
    try:
        buffer.configure(CHANNELS, StreamingMode.CONTINUOUS, 2**14, 10_000.0)
        buffer.start_stream()
        refusals = []
        for streamer in (buffer, dummy):
            with pytest.raises(ValueError) as raised:
                streamer.read_data_into_buffer(np.empty(4), 1, timeout=float("inf"))
            refusals.append(str(raised.value))
        assert (
            refusals
            == [
                "timeout must be a number of seconds >= 0 or None, got inf: pass None to wait "
                "without a limit"
            ]
            * 2
        )
        data = np.empty(4 * 10)
        buffer.read_data_into_buffer(data, 10, timeout=None)  # nothing was consumed
        np.testing.assert_array_equal(data.reshape(-1, 4)[:, 0], np.arange(10))
    finally:
        buffer.stop_stream()


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("tcp://127.0.0.1:99999", "port 99999 does not exist: use 0 to 65535, or *"),
        ("tcp://127.0.0.1:65536", "port 65536 does not exist"),
        ("tcp://999.999.999.999:*", "'999.999.999.999' is neither an IPv4 address"),
        ("tcp://no-such-host.invalid:*", "'no-such-host.invalid' is neither an IPv4 address"),
        ("tcp://192.0.2.1:5555", "'192.0.2.1' is not an address of this host"),  # TEST-NET-1
        ("udp://127.0.0.1:5555", "use 'tcp://<address of this host>:<port or *>'"),
        (5555, "use 'tcp://<address of this host>:<port or *>'"),
    ],
)
def test_an_impossible_publish_address_fails_activation_naming_the_option(
    module_manager, expected_qudi_errors, address, problem
):
    name = f"bad_address_dummy_{len(module_manager.module_names)}"
    options = {
        "channel_names": ["a"],
        "channel_units": ["V"],
        "channel_signals": ["ramp"],
        "publish_address": address,
    }
    module_manager.add_module(
        name, "hardware", {"module.Class": "instream.dummy.InStreamDummy", "options": options}
    )
    with pytest.raises(RuntimeError, match="Failed to activate"):
        module_manager.activate_module(name)
    messages = "\n".join(expected_qudi_errors())
    assert f"option 'publish_address' is {address!r}: " in messages and problem in messages


@pytest.mark.parametrize(
    ("address", "insecure"),
    [("tcp://127.0.0.1:*", False), ("tcp://lo:0", False), ("tcp://*:5555", True)],
)
def test_a_possible_publish_address_is_taken(module_manager, address, insecure):
    # beyond loopback only with keys or insecure: True (tests/qudi/test_publish_keys.py)
    name = f"address_dummy_{len(module_manager.module_names)}"
    options = {
        "channel_names": ["a"],
        "channel_units": ["V"],
        "channel_signals": ["ramp"],
        "publish_address": address,
        "insecure": insecure,
    }
    module_manager.add_module(
        name, "hardware", {"module.Class": "instream.dummy.InStreamDummy", "options": options}
    )
    module_manager.activate_module(name)
    assert module_manager[name].instance.publish_address == address
    module_manager.deactivate_module(name)
