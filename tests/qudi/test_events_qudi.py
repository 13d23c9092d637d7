"""The event dummy in a real qudi, loaded from its docstring's example: two DataInStreamBuffers
share its stream of (time, channel, value) records, each gets every event once, in order."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from tests.qudi.added_modules import add_modules

import qudi.hardware.instream.event_dummy as event_dummy_module
from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream import attach
from qudi.util.instream.events import EVENT_DTYPE, PoissonEvents, as_events


def _docstring_example(module) -> str:
    return re.search(r"::\n\n((?:    .*\n|\n)+)", module.__doc__).group(1)


@pytest.fixture
def event_modules(qudi, tmp_path, module_manager):
    example = _docstring_example(event_dummy_module)
    buffers = "".join(
        f"    {name}:\n        module.Class: 'instream.buffer.DataInStreamBuffer'\n"
        f"        connect:\n            streamer: 'event_dummy'\n"
        for name in ("event_buffer_a", "event_buffer_b")
    )
    names = add_modules(qudi, tmp_path, example + buffers)
    yield names
    for name in reversed(names):
        module_manager.deactivate_module(name)


def test_the_event_dummy_example_streams_every_event_once_to_each_buffer(event_modules, activate):
    a, b = activate("event_buffer_a"), activate("event_buffer_b")
    dummy = activate("event_dummy")
    assert dummy.event_channels == ["APD 1", "APD 2", "APD 3", "APD 4"]
    assert dummy.constraints.data_type == EVENT_DTYPE and a.active_channels == ["events"]
    ring = attach(a.stream_name)  # what any process on this host sees of the stream
    assert ring.info.extra["event_channels"] == dummy.event_channels
    ring.close()
    a.configure(["events"], StreamingMode.CONTINUOUS, 1 << 20, 4e5)  # scales each channel
    assert a.sample_rate == 4e5
    a.start_stream()
    b.start_stream()
    got = {a: [], b: []}
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        for buffer, parts in got.items():
            out = np.empty(1 << 16, EVENT_DTYPE)
            n = buffer.read_available_data_into_buffer(out)
            parts.append(out[:n])
        time.sleep(0.01)
    a.stop_stream()
    b.stop_stream()
    events = {buffer: as_events(np.concatenate(parts)) for buffer, parts in got.items()}
    reference = PoissonEvents([1e5] * 4, seed=0).between(0, 2000)
    first = events[a]
    assert len(first) > 50_000  # about half a second at 4 * 10^5 events/s
    np.testing.assert_array_equal(first, reference[: len(first)])  # a started the stream
    second = events[b]  # b joined a moment later: a contiguous run of the same events
    offset = int(np.searchsorted(reference["time"], second["time"][0]))
    np.testing.assert_array_equal(second, reference[offset : offset + len(second)])
    assert a.lost_samples == b.lost_samples == 0


def test_a_bad_event_option_is_refused_naming_it(
    qudi, tmp_path, module_manager, expected_qudi_errors
):
    names = add_modules(
        qudi,
        tmp_path,
        "    bad_event_dummy:\n        module.Class: 'instream.event_dummy.InStreamEventDummy'\n"
        "        options:\n            event_channels: ['a', 'b']\n"
        "            event_rates: [1.0e5]\n",
    )
    with pytest.raises(RuntimeError):
        module_manager.activate_module(names[0])
    assert any("event_rates" in e and "use 2 mean event rates" in e for e in expected_qudi_errors())
