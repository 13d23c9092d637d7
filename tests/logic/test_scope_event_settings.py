"""The triggered view's event source without qudi: its settings' checks and the scope fed
event indices (windows at them, ``queued`` until samples reach them, a gap misses them)."""

from __future__ import annotations

import numpy as np
import pytest

from qudi.logic.instream.scope import Scope
from qudi.logic.instream.scope_settings import (
    DEFAULT_SCOPE_SETTINGS,
    checked_scope_settings,
    restored_scope_settings,
)

RATE = 1000.0
EVENTS = ["APD 1", "APD 2"]


def settings(events=EVENTS, **changes):
    return checked_scope_settings(DEFAULT_SCOPE_SETTINGS, changes, ["ramp"], RATE, events)


def test_the_event_source_needs_an_event_stream_and_names_the_valid_sources():
    with pytest.raises(ValueError, match=r"'source' is 'event'.*'trigger_events'.*'marker'"):
        settings(events=None, source="event")
    new = settings(source="event", event_channels=("APD 2",), event_threshold=1)
    assert new["event_channels"] == ["APD 2"] and new["event_threshold"] == 1.0


@pytest.mark.parametrize(
    "change, words",
    [
        ({"event_channels": ["APD 3"]}, ["'event_channels'", "'APD 3'", "'APD 1', 'APD 2'"]),
        ({"event_channels": ["APD 1", "APD 1"]}, ["'event_channels'", "distinct"]),
        ({"event_channels": "APD 1"}, ["'event_channels'", "a list"]),
        ({"event_threshold": float("nan")}, ["'event_threshold'", "nan", "None"]),
        ({"event_threshold": True}, ["'event_threshold'", "True"]),
    ],
)
def test_bad_event_settings_name_the_key_the_value_and_what_is_valid(change, words):
    current = settings(source="event")
    with pytest.raises(ValueError) as refused:
        checked_scope_settings(current, change, ["ramp"], RATE, EVENTS)
    assert all(word in str(refused.value) for word in words), str(refused.value)
    assert current == settings(source="event")


def test_saved_event_settings_without_an_event_stream_fall_back_to_the_defaults():
    saved = settings(source="event", event_channels=["APD 1"])
    restored, why = restored_scope_settings(saved, ["ramp"], RATE, None)
    assert restored == DEFAULT_SCOPE_SETTINGS and "'trigger_events'" in why
    restored, why = restored_scope_settings(saved, ["ramp"], RATE, EVENTS)
    assert restored == saved and why is None


def test_event_indices_trigger_windows_once_the_samples_reach_them():
    scope = Scope(settings(source="event", pre=5, post=20), ["ramp"], RATE)
    assert scope.add_triggers(np.array([3_000, 500, 1_200])) == 3  # any order
    ramp = np.arange(4_000, dtype=np.float64)[:, None]
    for chunk in np.array_split(ramp, 13):
        scope.feed(chunk)
    t, windows, _, stats = scope.view()  # a second (1000 samples) still waits to be cut
    assert stats["trigger_index"] == [500, 1200] and stats["queued"] == 1
    assert np.array_equal(windows["ramp"][:, 5], [500.0, 1200.0])
    level = Scope(settings(source="level"), ["ramp"], RATE)
    assert level.add_triggers([10]) == 0  # only an event scope takes indices


def test_an_event_whose_samples_were_lost_is_missed():
    scope = Scope(settings(source="event", pre=5, post=20), ["ramp"], RATE)
    scope.add_triggers([1_500, 2_600])
    scope.feed(np.arange(1_000, dtype=np.float64)[:, None])
    scope.feed(np.arange(2_000, 5_000, dtype=np.float64)[:, None], lost_before=1_000)
    scope.feed(np.arange(5_000, 7_000, dtype=np.float64)[:, None])  # past the second's wait
    stats = scope.view().stats
    assert stats["missed"] == 1 and stats["windows"] == 1 and stats["lost"] == 1_000
    assert stats["trigger_index"] == [2_600]
