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


def run_gui(frames: FramePacer, clock: FakeClock, arrivals, cost: float, latency: float):
    """Start times of the draws a GUI makes of frames arriving at ``arrivals`` (sorted s):
    like TimeSeriesGui, it keeps the newest frame, draws it when the pacer's delay is over
    (plus the timer's ``latency``), and each draw takes ``cost`` seconds of its loop."""
    starts, pending, free = [], None, clock.now
    arrivals = list(arrivals) + [float("inf")]
    i = 0
    while i < len(arrivals) - 1 or pending is not None:
        clock.now = max(clock.now, free)
        due = clock.now + frames.delay() + latency if pending is not None else float("inf")
        if arrivals[i] <= due:  # the next frame comes first: it replaces the waiting one
            clock.now, pending = max(clock.now, arrivals[i]), arrivals[i]
            i += 1
            continue
        clock.now = due
        starts.append(clock.now)
        frames.drawn(started=clock.now)
        pending, free = None, clock.now + cost
    return starts


@pytest.mark.parametrize("cost", [0.003, 0.010, 0.025])
def test_a_draws_cost_does_not_lengthen_the_interval(cost):
    frames, clock = pacer()
    frames.set_point_rate(1e6)
    frames.drawn()
    clock.now += cost
    assert frames.delay() == pytest.approx(1 / 30 - cost)


@pytest.mark.parametrize("cost", [0.003, 0.010, 0.025])
def test_every_frame_of_a_30_fps_logic_is_drawn(cost):
    """Frames every 1/30 s with their timer's jitter: each one drawn, though every draw costs
    ``cost`` and starts 1 ms after its timer was due (counted from its end: 27 and 23 fps)."""
    frames, clock = pacer()
    frames.set_point_rate(1e6)
    start = clock.now
    arrivals = [start + k / 30 + 0.0015 * ((k * 7) % 3 - 1) for k in range(300)]
    starts = run_gui(frames, clock, arrivals, cost, latency=0.001)
    assert len(starts) == 300


@pytest.mark.parametrize("cost", [0.0, 0.005, 0.030])
def test_draws_never_exceed_max_rate_nor_come_closer_than_half_an_interval(cost):
    frames, clock = pacer()
    frames.set_point_rate(1e6)
    start = clock.now
    arrivals = [start + k * 0.0037 for k in range(2700)]  # 270 frames/s for 10 s
    starts = run_gui(frames, clock, arrivals, cost, latency=0.0013)
    assert len(starts) <= 10 * 30 + 1
    assert len(starts) >= 10 * 30 * 0.95  # and the pacer is not what holds them back
    assert min(b - a for a, b in zip(starts[:-1], starts[1:], strict=True)) >= 1 / 60 - 1e-9


def test_a_draw_after_a_pause_starts_the_grid_anew():
    frames, clock = pacer()
    frames.set_point_rate(1e6)
    frames.drawn()
    clock.now += 0.2  # no frame for a while
    frames.drawn()
    assert frames.delay() == pytest.approx(1 / 30)  # a whole interval, not a catch-up burst
    clock.now += 1 / 30 + 0.004  # a little late: on the grid, the next is due 4 ms sooner
    frames.drawn()
    assert frames.delay() == pytest.approx(1 / 30 - 0.004)
