"""The triggered (scope) view of a real qudi's TimeSeriesReaderLogic on the dummy: windows
arrive aligned on the trigger sample (a digital edge, a level crossing with hysteresis), cut
from the chunks the logic reads; with the logic stalled until its buffer overwrote samples,
every count is exactly what the samples it did read say; bad settings change nothing."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6 import QtCore
from tests.qudi.added_modules import add_modules

RATE = 20_000.0
HARDWARE = """\
    scope_dummy:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['ramp', 'noise', 'ttl']
            channel_units: ['samples', 'V', '']
            channel_signals: ['ramp', 'noise', 'digital']
            digital_edge_rate: 200.0
            seed: 11
    scope_buffer:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        options:
            allow_overwrite: True
        connect:
            streamer: 'scope_dummy'
"""
LOGIC = """\
    scope_logic:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        options:
            channel_buffer_size: 16384
        connect:
            streamer: 'scope_buffer'
"""


class Received:
    """Every chunk the logic read (``sigNewRawData``, in the logic's thread) and every view
    it emitted."""

    def __init__(self, logic):
        self.chunks: list[np.ndarray] = []
        self.views: list = []
        self._lock = threading.Lock()
        direct = QtCore.Qt.ConnectionType.DirectConnection
        logic.sigNewRawData.connect(self._chunk, direct)
        logic.sigScopeChanged.connect(self._view, direct)

    def _chunk(self, data, _stamps) -> None:
        with self._lock:
            self.chunks.append(np.array(data, dtype=np.float64))

    def _view(self, view) -> None:
        with self._lock:
            self.views.append(view)

    def stream(self) -> np.ndarray:
        with self._lock:
            return np.concatenate(self.chunks)


@pytest.fixture
def scope_logic(qudi, tmp_path, module_manager, activate):
    names = add_modules(qudi, tmp_path, HARDWARE, LOGIC)
    logic = activate("scope_logic")
    logic.set_channel_settings(["ramp", "noise", "ttl"], [])
    logic.set_trace_settings(
        data_rate=RATE, oversampling_factor=1, trace_window_size=1.0, moving_average_width=1
    )
    yield logic
    logic.set_scope_settings(enabled=False)
    for name in reversed(names):
        module_manager.deactivate_module(name)


def windows_seen(logic) -> int:
    return logic.scope_windows.stats.get("windows", 0)


def test_digital_edges_give_windows_aligned_on_the_edge(scope_logic, qtbot):
    logic = scope_logic
    received = Received(logic)
    logic.set_scope_settings(
        source="digital",
        channel="ttl",
        edge="rising",
        pre=50,
        post=200,
        windows=100,
        enabled=True,
    )
    logic.start_reading()
    qtbot.waitUntil(lambda: windows_seen(logic) >= 150, timeout=20_000)
    logic.stop_reading()
    t, windows, average, stats = logic.scope_windows
    assert len(t) == 250 and t[50] == 0.0 and t[1] == pytest.approx(-49 / RATE)
    ramp, ttl = windows["ramp"], windows["ttl"]
    assert ramp.shape == (100, 250) and stats["kept"] == 100
    assert np.all(np.diff(ramp, axis=1) == 1)  # each window is whole: consecutive samples
    assert np.all(ttl[:, 50] == 1) and np.all(ttl[:, 49] == 0)  # the edge at index pre
    first = received.stream()[0, 0]  # the ramp is the dummy's sample index
    assert (ramp[:, 50] - first).tolist() == stats["trigger_index"]
    np.testing.assert_array_equal(average["ttl"], ttl.mean(axis=0))
    # every count, from every sample the logic read (a rising edge: 0 then 1)
    line = received.stream()[:, 2]
    edges = np.flatnonzero((line[1:] == 1) & (line[:-1] == 0)) + 1
    complete = edges[(edges >= 50) & (edges + 200 <= len(line))]
    assert stats["triggers"] == len(edges) and stats["windows"] == len(complete)
    assert stats["too_early"] == int(np.sum(edges < 50)) and stats["missed"] == 0
    assert stats["pending"] == int(np.sum(edges + 200 > len(line))) and stats["lost"] == 0
    assert received.views and received.views[-1].stats["windows"] == stats["windows"]


def reference_counts(stream: np.ndarray, level, hysteresis, pre, post, holdoff) -> dict:
    """What the triggered view must count, from the samples read (their ramp shows the gap)."""
    index = (stream[:, 0] - stream[0, 0]).astype(np.int64)
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    segments = np.split(np.arange(len(index)), breaks)
    found, where = [], []
    for number, rows in enumerate(segments):
        state = None
        for row in rows:  # the rule as a loop: >= level after < level - hysteresis
            v = stream[row, 1]
            new = 1 if v >= level else 0 if v < level - hysteresis else state
            if state == 0 and new == 1:
                found.append(int(index[row]))
                where.append(number)
            state = new
    counts = dict(triggers=len(found), held_off=0, windows=0, missed=0, too_early=0, pending=0)
    delivered, last = [], None
    for t, number in zip(found, where, strict=True):
        if last is not None and t - last < holdoff:
            counts["held_off"] += 1
            continue
        last = t
        start, end = index[segments[number][0]], index[segments[number][-1]] + 1
        if t - pre < 0:
            counts["too_early"] += 1
        elif t - pre < start or (t + post > end and number < len(segments) - 1):
            counts["missed"] += 1
        elif t + post > end:
            counts["pending"] += 1
        else:
            counts["windows"] += 1
            delivered.append(t)
    counts["lost"] = int(index[-1] + 1 - len(index))
    return {**counts, "trigger_index": delivered}


def test_a_stalled_logic_misses_windows_and_counts_them_exactly(scope_logic, activate, qtbot):
    logic = scope_logic
    buffer = activate("scope_buffer")
    received = Received(logic)
    level, hysteresis, pre, post, holdoff = 1.5, 1.0, 40, 160, 100
    logic.set_scope_settings(
        source="level",
        channel="noise",
        edge="rising",
        level=level,
        hysteresis=hysteresis,
        pre=pre,
        post=post,
        holdoff=holdoff,
        windows=1000,
        enabled=True,
    )
    logic.start_reading()
    qtbot.waitUntil(lambda: windows_seen(logic) >= 50, timeout=20_000)
    capacity = buffer.channel_buffer_size
    with logic._lock:  # the logic's frames wait: its buffer falls behind and overwrites
        last_read = received.stream()[-1, 0]
        qtbot.waitUntil(
            lambda: buffer.read_single_point()[0][0] > last_read + capacity + 2000,
            timeout=20_000,
        )
    qtbot.waitUntil(lambda: buffer.lost_samples > 0, timeout=10_000)
    qtbot.waitUntil(lambda: windows_seen(logic) >= 2 * 50 + 100, timeout=20_000)
    logic.stop_reading()
    stats = logic.scope_windows.stats
    want = reference_counts(received.stream(), level, hysteresis, pre, post, holdoff)
    assert want["lost"] > 0 and want["missed"] > 0  # the stall tore windows
    assert stats["lost"] == want["lost"] == buffer.lost_samples
    for key, value in want.items():
        assert stats[key] == value, key
    overlapping = int(np.sum(np.diff(want["trigger_index"]) < pre + post))
    assert stats["overlapping"] >= overlapping  # the first after a gap may overlap one missed


def test_bad_scope_settings_are_refused_and_nothing_changes(scope_logic, qtbot):
    logic = scope_logic
    logic.set_scope_settings(source="level", channel="noise", level=0.5)
    before = logic.scope_settings
    announced = []
    logic.sigScopeSettingsChanged.connect(announced.append)
    for change, words in (
        ({"edge": "up"}, ["'edge'", "'up'", "rising"]),
        ({"channel": "APD"}, ["'channel'", "'APD'", "noise"]),
        ({"windows": 0, "level": 0.7}, ["'windows'", "0", "1 to 1000"]),
        ({"post": 10**7}, ["'pre' + 'post'", "at most"]),
    ):
        with pytest.raises(ValueError) as refused:
            logic.set_scope_settings(**change)
        assert all(word in str(refused.value) for word in words), str(refused.value)
        assert logic.scope_settings == before
    assert announced == []


def test_scope_settings_are_saved_and_a_trigger_channel_that_is_not_active_says_why(
    scope_logic, module_manager, activate, qtbot
):
    logic = scope_logic
    logic.set_scope_settings(source="digital", channel="ttl", pre=10, post=20, enabled=True)
    logic.set_channel_settings(["ramp", "noise"], [])
    logic.start_reading()
    qtbot.waitUntil(lambda: "not active" in logic.scope_windows.stats["state"], timeout=10_000)
    logic.stop_reading()
    assert "'ttl' is not active" in logic.scope_windows.stats["state"]
    module_manager.deactivate_module("scope_logic")
    logic = activate("scope_logic")
    assert logic.scope_settings["channel"] == "ttl" and logic.scope_settings["post"] == 20


MARKER_HARDWARE = """\
    scope_marker_stream:
        module.Class: 'instream.markers.MarkerStream'
    scope_marker_dummy:
        module.Class: 'instream.dummy.InStreamDummy'
        options:
            channel_names: ['ramp', 'noise']
            channel_units: ['samples', 'V']
            channel_signals: ['ramp', 'noise']
    scope_marker_buffer:
        module.Class: 'instream.buffer.DataInStreamBuffer'
        connect:
            streamer: 'scope_marker_dummy'
"""
MARKER_LOGIC = """\
    scope_marker_logic:
        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'
        connect:
            streamer: 'scope_marker_buffer'
            markers: 'scope_marker_stream'
"""


def test_markers_whose_text_matches_trigger_windows_at_their_place(
    qudi, tmp_path, module_manager, activate, qtbot
):
    names = add_modules(qudi, tmp_path, MARKER_HARDWARE, MARKER_LOGIC)
    try:
        logic = activate("scope_marker_logic")
        rate = 2000.0
        logic.set_trace_settings(
            data_rate=rate, oversampling_factor=1, trace_window_size=5.0, moving_average_width=1
        )
        logic.set_scope_settings(
            source="marker", marker_text="go", pre=100, post=400, windows=10, enabled=True
        )
        logic.start_reading()
        qtbot.waitUntil(lambda: logic.scope_windows.stats.get("samples", 0) > 0, timeout=10_000)
        for text in ("go 1", "stop", "go 2"):
            logic.add_marker(text)
            qtbot.waitUntil(
                lambda t=text: t in [m for _, m in logic.markers_in_view], timeout=10_000
            )
        qtbot.waitUntil(lambda: logic.scope_windows.stats.get("windows") == 2, timeout=10_000)
        places = {text: x for x, text in logic.markers_in_view}
        logic.stop_reading()
        t, windows, _, stats = logic.scope_windows
        assert stats["triggers"] == 2 and stats["missed"] == 0  # 'stop' holds no 'go'
        assert np.all(np.diff(windows["ramp"], axis=1) == 1)  # whole windows
        for index, text in zip(stats["trigger_index"], ("go 1", "go 2"), strict=True):
            assert abs(index - round(places[text] * rate)) <= 1, (index, text, places)
    finally:
        for name in reversed(names):
            module_manager.deactivate_module(name)
