"""Digital (TTL-like 0/1) lines of the simulated source, and triggers on their edges through a
real hub: the line's edges are the windows' triggers, one for one."""

from __future__ import annotations

import numpy as np
import pytest

from qudi.util.instream import StreamHub
from qudi.util.instream.simulated_kinds import DigitalLine, KindsSource, check_edge_rate
from qudi.util.instream.triggered import TriggeredReader, digital_edge


def test_a_digital_line_is_0_or_1_with_its_mean_edge_rate_however_it_is_read():
    whole = np.empty(200_000)
    DigitalLine(5000.0, seed=[1, 0]).fill(whole, 1e5)
    parts = np.empty(200_000)
    line = DigitalLine(5000.0, seed=[1, 0])
    for start in range(0, 200_000, 7_777):
        line.fill(parts[start : start + 7_777], 1e5)
    np.testing.assert_array_equal(whole, parts)
    assert set(np.unique(whole)) == {0.0, 1.0}
    edges = int(np.count_nonzero(np.diff(whole)))
    expected = 5000.0 * 2.0  # 2 s of samples at 1e5 S/s
    assert abs(edges - expected) < 5 * np.sqrt(expected)


def test_digital_channels_next_to_the_others_keep_both_exact():
    source = KindsSource(
        ["ramp", "ttl", "ttl2"],
        ["ramp", "digital", "digital"],
        edge_rate=200.0,
        sample_rate=1000.0,
        data_type=np.uint8,
        seed=4,
    )
    source.configure(["ttl", "ramp"], "CONTINUOUS", 1000, 1000.0)
    assert source.active_channels == ["ttl", "ramp"]
    source.start_stream()
    out = np.empty(200 * 2, np.uint8)
    source.read_data_into_buffer(out, 200, timeout=5.0)
    data = out.reshape(200, 2)
    np.testing.assert_array_equal(data[:, 1], np.arange(200))
    assert set(np.unique(data[:, 0])) <= {0, 1}
    source.stop_stream()
    with pytest.raises(ValueError, match="unknown channels"):
        source.configure(["nope"], "CONTINUOUS", 1000, 1000.0)


def test_edges_of_a_streamed_digital_line_are_the_triggers_one_for_one():
    source = KindsSource(["ttl"], ["digital"], edge_rate=2e4, sample_rate=2e5, seed=9)
    source.configure(["ttl"], "CONTINUOUS", 1 << 20, 2e5)
    with StreamHub(source, name="ttl_hub", shared=False, max_poll_rate=100) as hub:
        scope = hub.open_reader("scope")
        raw = hub.open_reader("raw")
        scope.start()
        raw.start()
        first = raw.position  # the pump may have written before raw joined: absolute indices
        tr = TriggeredReader(scope, digital_edge(0), pre=3, post=5)
        line = np.empty((40_000, 1))
        raw.read_into(line, timeout=10.0)
        found = []
        while not found or found[-1][-1:].tolist() < [first + len(line)]:
            found.append(tr.read(timeout=10.0).trigger_index)
        found = np.concatenate(found)
        rising = np.flatnonzero(np.diff(line[:, 0]) == 1) + 1 + first
        end = first + len(line)
        assert found[-1] >= end  # the scope read on beyond what the raw reader took
        np.testing.assert_array_equal(found[(found > first) & (found < end)], rising)
        assert tr.stats.missed == 0 and tr.stats.lost == 0
        scope.close()
        raw.close()


@pytest.mark.parametrize("rate", [-1.0, float("nan"), "fast", True])
def test_a_bad_edge_rate_is_refused_naming_it(rate):
    with pytest.raises(ValueError, match="option 'digital_edge_rate' is"):
        check_edge_rate(rate)


def test_what_the_kinds_source_does_not_say_its_simulated_source_says():
    source = KindsSource(["a", "ttl"], ["ramp", "digital"], sample_rate=100.0)
    inner_only = [name for name in ("sample_clock",) if hasattr(source._inner, name)]
    for name in inner_only:
        assert getattr(source, name) == getattr(source._inner, name)
    with pytest.raises(AttributeError):
        _ = source._no_such_thing
