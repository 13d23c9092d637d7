"""When the time series GUI draws (qudi.gui.instream.frame_pacer), on a clock the test moves."""

from __future__ import annotations

import pytest

from qudi.gui.instream.frame_pacer import FramePacer


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pacer(**options) -> tuple[FramePacer, FakeClock]:
    clock = FakeClock()
    options = {"max_rate": 30.0, "points_per_draw": 15.0, "longest_wait": 0.5, **options}
    return FramePacer(clock=clock, **options), clock


def test_the_first_draw_is_due_at_once():
    frames, _ = pacer()
    assert frames.delay() == 0.0


@pytest.mark.parametrize(
    ("points_per_second", "interval"),
    [
        (50.0, 0.3),  # the demo: 15 points per draw
        (450.0, 1 / 30),  # from here on at the highest rate
        (1e6, 1 / 30),
        (10.0, 0.5),  # slow streams still show each new point within 0.5 s
        (0.1, 0.5),
        (0.0, 1 / 30),  # unknown rate: as fast as allowed, the GUI skips frames without news
        (float("nan"), 1 / 30),
        (None, 1 / 30),
    ],
)
def test_draws_are_spaced_by_the_point_rate(points_per_second, interval):
    frames, _ = pacer()
    frames.set_point_rate(points_per_second)
    assert frames.interval == pytest.approx(interval)


def test_a_draw_waits_for_the_rest_of_the_interval():
    frames, clock = pacer()
    frames.set_point_rate(50.0)
    frames.drawn()
    assert frames.delay() == pytest.approx(0.3)
    clock.now += 0.1
    assert frames.delay() == pytest.approx(0.2)
    clock.now += 0.25
    assert frames.delay() == 0.0


def test_a_new_rate_counts_from_the_last_draw():
    frames, clock = pacer()
    frames.set_point_rate(50.0)
    frames.drawn()
    clock.now += 0.05
    frames.set_point_rate(1000.0)  # faster stream: the next draw is due already
    assert frames.delay() == 0.0


@pytest.mark.parametrize(
    "options",
    [
        {"max_rate": 0},
        {"max_rate": -1},
        {"points_per_draw": 0},
        {"points_per_draw": float("inf")},
        {"longest_wait": 0.01},  # shorter than 1 / max_rate
        {"max_rate": "30"},
    ],
)
def test_bad_options_are_refused_with_their_name(options):
    name = next(iter(options))
    with pytest.raises(ValueError, match=name):
        pacer(**options)
