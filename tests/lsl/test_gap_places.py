"""Where GapDetector places LSL's losses, on the exact timestamps liblsl gives an inlet.

An outlet that pushes a chunk with one timestamp stamps its first sample only; the inlet's
receiver times every other sample as the one it received before plus ``1.0 / rate``
(liblsl's data_receiver, bit for bit). LSL drops samples in two places: the inlet's own
buffer (after they were timed: the gap shows exactly) and the outlet's queue for that inlet
(before they were sent: the rest of the chunk is timed from the sample before the loss, which
shows only at the next stamped sample). :func:`inlet_times` builds what such an inlet holds.
"""

from __future__ import annotations

import numpy as np
import pytest

from qudi.util.instream.lsl_timing import GapDetector

RATE = 1000.0
T0 = 5000.123456  # an LSL clock some hours after boot


def inlet_times(total: int, chunk: int, outlet_drops=(), inlet_drops=()):
    """The ramp values and raw timestamps an inlet holds of ``total`` samples pushed in chunks
    of ``chunk`` with one timestamp each, after the outlet's queue dropped ``outlet_drops``
    and the inlet's buffer ``inlet_drops`` (each a ``range`` of sample numbers)."""
    sent = np.ones(total, bool)
    for dropped in outlet_drops:
        sent[list(dropped)] = False
    values, times = [], []
    last = 0.0
    for k in np.flatnonzero(sent):
        if k % chunk == 0:  # the outlet's stamp: the chunk's last time, back by the rest
            last = (T0 + (k + chunk - 1) / RATE) - (chunk - 1) / RATE
        else:  # DEDUCED_TIMESTAMP: the receiver's previous time plus one period
            last += 1.0 / RATE
        values.append(k)
        times.append(last)
    values, times = np.array(values), np.array(times)
    kept = np.ones(len(values), bool)
    for dropped in inlet_drops:
        kept &= ~np.isin(values, list(dropped))
    return values[kept], times[kept]


def detect(times, pulls, queue_full=True):
    """Gaps found in ``times`` pulled in ``pulls`` chunks."""
    detector = GapDetector(RATE, tolerance=0.005)
    detector.reset()
    gaps, first = [], 0
    for part in np.array_split(times, pulls):
        gaps += detector.check(first, part, queue_full)
        first += len(part)
    return gaps


def test_an_inlet_overflow_within_a_chunk_is_placed_exactly():
    values, times = inlet_times(3000, 100, inlet_drops=[range(1250, 1290)])
    [gap] = detect(times, 7)
    assert (gap.index, gap.lost, gap.earliest) == (1250, 40, 1250)  # the chain shows it


def test_an_inlet_overflow_across_stamps_is_bounded_by_the_last_stamp():
    # samples after the loss are timed from a stamp that was dropped (1700): the times cannot
    # tell this loss from one in the outlet's queue after sample 1200
    values, times = inlet_times(3000, 100, inlet_drops=[range(1250, 1730)])
    [gap] = detect(times, 7)
    assert (gap.index, gap.lost, gap.earliest) == (1250, 480, 1201)


def test_an_outlet_queue_loss_shows_at_the_next_stamp_and_is_bounded_by_the_last():
    # what the test between reads met: the outlet dropped 1300..1569; 1570.. timed as 1300..
    values, times = inlet_times(3000, 100, outlet_drops=[range(1300, 1570)])
    assert times[values == 1570] == pytest.approx(T0 + 1.3, abs=1e-9)  # timed too early
    [gap] = detect(times, 5)
    shown, loss, stamp = (int(np.searchsorted(values, v)) for v in (1600, 1570, 1201))
    assert (gap.index, gap.lost) == (shown, 270)  # exact count, shown 30 samples late
    assert gap.earliest == stamp  # after the newest sample known to carry its own time
    assert gap.earliest <= loss <= gap.index


def test_losses_in_both_queues_are_counted_once_and_bounded():
    rng = np.random.default_rng(7)
    for _ in range(200):
        drops = {"outlet_drops": [], "inlet_drops": []}
        start = 200
        for _ in range(rng.integers(1, 5)):
            where = rng.choice(["outlet_drops", "inlet_drops"])
            length = int(rng.integers(1, 400))
            drops[where].append(range(start, start + length))
            start += length + int(rng.integers(1, 300))
        total = (start // 100 + 2) * 100  # a whole chunk after the last loss
        values, times = inlet_times(total, 100, **drops)
        gaps = detect(times, int(rng.integers(1, 12)))
        missing = values - np.arange(len(values))  # samples missing before each one read
        shown = np.zeros(len(values), np.int64)
        possible = np.zeros(len(values), np.int64)
        for gap in gaps:
            assert gap.earliest <= gap.index
            shown[gap.index :] += gap.lost
            possible[gap.earliest :] += gap.lost
        assert np.all(shown <= missing) and np.all(missing <= possible), drops
        assert shown[-1] == missing[-1] == total - len(values), drops


def test_samples_stamped_one_by_one_place_every_gap_exactly():
    k = np.arange(2000.0)
    k[700:] += 13
    k[1500:] += 1
    times = T0 + k / RATE  # every sample its own timestamp
    gaps = detect(times, 6)
    assert [(g.index, g.lost, g.earliest) for g in gaps] == [(700, 13, 700), (1500, 1, 1500)]
