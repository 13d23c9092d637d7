"""The triggered view's state (logic/instream/scope.py, chunk_feed.py, scope_settings.py):
windows cut from chunks handed in, aligned on the trigger sample, counted exactly across a
gap, the newest N kept and averaged; settings checked before anything changes."""

from __future__ import annotations

import numpy as np
import pytest

from qudi.logic.instream.chunk_feed import ChunkFeed
from qudi.logic.instream.scope import Scope
from qudi.logic.instream.scope_settings import (
    DEFAULT_SCOPE_SETTINGS,
    checked_scope_settings,
    restored_scope_settings,
)
from qudi.util.instream.triggered import LevelTrigger, TriggeredReader

CHANNELS = ["index", "sine", "ttl"]
RATE = 1000.0


def settings(**changes):
    return checked_scope_settings(DEFAULT_SCOPE_SETTINGS, changes, CHANNELS, RATE)


def signal(n: int, seed: int = 1) -> np.ndarray:
    """[n, 3]: the sample's index, a noisy sine, a random 0/1 line."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    sine = np.sin(2 * np.pi * i / 97.3) + rng.normal(0, 0.05, n)
    ttl = (np.cumsum(rng.random(n) < 0.02) % 2).astype(float)
    return np.column_stack([i, sine, ttl])


def rising_crossings(x: np.ndarray, level: float, hysteresis: float) -> list[int]:
    """The rule written as a loop: the first sample >= level after one < level - hysteresis."""
    state, hits = None, []
    for i, v in enumerate(x):
        new = 1 if v >= level else 0 if v < level - hysteresis else state
        if state == 0 and new == 1:
            hits.append(i)
        state = new
    return hits


def feed_in_chunks(scope: Scope, data: np.ndarray, gap: tuple[int, int] | None = None) -> None:
    """``data`` in chunks of random sizes; ``gap`` ``(start, length)``: those samples never
    arrive, and the chunk after them says so."""
    rng = np.random.default_rng(2)
    segments = [(0, len(data), 0)]
    if gap is not None:
        segments = [(0, gap[0], 0), (gap[0] + gap[1], len(data), gap[1])]
    for low, high, lost in segments:
        start = low
        while start < high:
            stop = min(high, start + int(rng.integers(1, 700)))
            scope.feed(data[start:stop], lost if start == low else 0)
            start = stop


def test_level_windows_sit_on_the_trigger_sample_exactly():
    data = signal(20_000)
    scope = Scope(settings(channel="sine", level=0.2, hysteresis=0.1, windows=1000), CHANNELS, RATE)
    feed_in_chunks(scope, data)
    want = [t for t in rising_crossings(data[:, 1], 0.2, 0.1) if t >= 100 and t + 400 <= 20_000]
    view = scope.view()
    assert view.stats["trigger_index"] == want
    assert view.windows["index"][:, 100].tolist() == want  # the trigger sample at index pre
    for window in view.windows["sine"]:
        assert window[100] >= 0.2
    assert view.t[100] == 0.0 and view.t[0] == pytest.approx(-0.1)
    stats = view.stats
    assert stats["windows"] == len(want) and stats["missed"] == 0
    assert stats["triggers"] == stats["windows"] + stats["too_early"] + stats["pending"]


def test_the_newest_n_windows_are_kept_and_averaged():
    data = signal(30_000)
    scope = Scope(settings(source="digital", channel="ttl", windows=7), CHANNELS, RATE)
    feed_in_chunks(scope, data)
    view = scope.view()
    edges = np.flatnonzero(np.diff(data[:, 2]) > 0) + 1
    complete = [t for t in edges if t >= 100 and t + 400 <= 30_000]
    assert view.stats["windows"] == len(complete) and view.stats["kept"] == 7
    assert view.windows["index"][:, 100].tolist() == complete[-7:]
    assert np.all(view.windows["ttl"][:, 100] == 1) and np.all(view.windows["ttl"][:, 99] == 0)
    expected = np.mean([data[t - 100 : t + 400, 1] for t in complete[-7:]], axis=0)
    np.testing.assert_allclose(view.average["sine"], expected, rtol=0, atol=1e-12)


def test_a_gap_misses_exactly_the_windows_it_tears():
    data = signal(20_000)
    gap_at, gap = 9_000, 1_234
    scope = Scope(settings(channel="sine", level=0.0, windows=1000), CHANNELS, RATE)
    feed_in_chunks(scope, data, gap=(gap_at, gap))
    resume = gap_at + gap
    before = rising_crossings(data[:gap_at, 1], 0.0, 0.0)
    after = [resume + t for t in rising_crossings(data[resume:, 1], 0.0, 0.0)]
    delivered = [t for t in before if t >= 100 and t + 400 <= gap_at]
    delivered += [t for t in after if t - 100 >= resume and t + 400 <= 20_000]
    missed = [t for t in before if t + 400 > gap_at] + [t for t in after if t - 100 < resume]
    stats = scope.view().stats
    assert stats["trigger_index"] == delivered
    assert stats["missed"] == len(missed) and stats["lost"] == gap
    assert scope.view().windows["index"][:, 100].tolist() == delivered  # indices of the stream


def test_holdoff_in_seconds_and_overlaps_are_counted():
    data = signal(20_000)
    s = settings(channel="sine", level=0.0, unit="seconds", pre=0.05, post=0.2, holdoff=0.15)
    scope = Scope({**s, "windows": 1000}, CHANNELS, RATE)
    assert (scope.pre, scope.post, scope.holdoff) == (50, 200, 150)
    feed_in_chunks(scope, data)
    hits, kept, last = rising_crossings(data[:, 1], 0.0, 0.0), [], None
    held = 0
    for t in hits:
        if last is not None and t - last < 150:
            held += 1
            continue
        kept.append(t)
        last = t
    stats = scope.view().stats
    assert stats["held_off"] == held
    assert stats["trigger_index"] == [t for t in kept if t >= 50 and t + 200 <= 20_000]
    assert stats["overlapping"] == int(np.sum(np.diff(stats["trigger_index"]) < 250))


def test_markers_trigger_at_their_sample():
    scope = Scope(settings(source="marker", marker_text="go"), CHANNELS, RATE)
    data = signal(5_000)
    assert scope.add_marker(1_000, "go now") and not scope.add_marker(2_000, "stop")
    assert scope.add_marker(3_000, "go")
    feed_in_chunks(scope, data)
    assert scope.view().windows["index"][:, 100].tolist() == [1_000, 3_000]


def test_a_chunk_feed_puts_a_gap_before_the_chunk_it_came_with():
    feed = ChunkFeed("x", 1, 1000)
    feed.push(np.ones((3, 1)))
    feed.push(np.ones((2, 1)), lost_before=5)
    out = np.empty((10, 1))
    assert feed.read_available_into(out) == 3 and feed.lost == 0 and feed.position == 3
    assert feed.read_available_into(out) == 2 and feed.lost == 5 and feed.position == 10
    with pytest.raises(ValueError, match="channels"):
        feed.push(np.ones((2, 2)))


def test_a_blocking_read_on_a_chunk_feed_returns_at_once():
    feed = ChunkFeed("x", 1, 4096)
    reader = TriggeredReader(feed, LevelTrigger(0, 0.5), pre=2, post=3)
    feed.push(np.array([[0.0], [0.0], [0.0], [1.0], [1.0], [1.0], [1.0]]))
    windows = reader.read(timeout=None)  # nothing more can come while it waits
    assert windows.trigger_index.tolist() == [3]
    assert len(reader.read(timeout=None)) == 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"edge": "up"}, ["'edge'", "'up'", "rising"]),
        ({"source": "event"}, ["'source'", "'event'", "marker"]),
        ({"channel": "nope"}, ["'channel'", "'nope'", "sine"]),
        ({"pre": -1}, ["'pre'", "-1", ">= 0"]),
        ({"post": 0}, ["'post'", "0", ">= 1"]),
        ({"pre": 1.5}, ["'pre'", "1.5", "whole number"]),
        ({"windows": 0}, ["'windows'", "0", "1 to 1000"]),
        ({"hysteresis": -0.1}, ["'hysteresis'", "-0.1", ">= 0"]),
        ({"level": float("nan")}, ["'level'", "nan", "finite"]),
        ({"enabled": "yes"}, ["'enabled'", "'yes'", "True or False"]),
        ({"colour": 1}, ["'colour'", "valid are"]),
        ({"pre": 600_000, "post": 600_000}, ["'pre' + 'post'", "1200000", "at most"]),
        ({"windows": 1000, "post": 100_000}, ["'windows'", "bytes", "fewer"]),
    ],
)
def test_bad_settings_are_refused_naming_key_value_and_what_is_valid(change, words):
    current = settings(level=0.5)
    before = dict(current)
    with pytest.raises(ValueError) as refused:
        checked_scope_settings(current, change, CHANNELS, RATE)
    for word in words:
        assert word in str(refused.value)
    assert current == before


def test_saved_settings_that_no_longer_fit_fall_back_to_the_defaults():
    restored, why = restored_scope_settings({"channel": "gone"}, CHANNELS, RATE)
    assert restored == DEFAULT_SCOPE_SETTINGS and "'gone'" in why
    restored, why = restored_scope_settings(settings(level=0.3), CHANNELS, RATE)
    assert restored["level"] == 0.3 and why is None


def test_an_inactive_trigger_channel_is_refused_by_the_scope():
    with pytest.raises(ValueError, match="'ttl' is not active"):
        Scope(settings(channel="ttl"), ["index", "sine"], RATE)


def test_a_marker_that_comes_after_its_samples_still_gets_its_window():
    scope = Scope(settings(source="marker"), CHANNELS, RATE)  # samples wait 1 s (1000)
    data = signal(6_000)
    for start in range(0, 3_000, 100):
        scope.feed(data[start : start + 100])
    assert scope.add_marker(2_500, "late but within the delay")
    assert scope.add_marker(1_000, "too late: its samples were cut already")
    for start in range(3_000, 6_000, 100):
        scope.feed(data[start : start + 100])
    view = scope.view()
    assert view.windows["index"][:, 100].tolist() == [2_500]
    assert view.stats["missed"] == 1
