"""The logic's frames are paced to the data rate: about twenty new points each, 2 to max per s."""

import pytest

from qudi.logic.instream.frames import LONGEST_FRAME_S, POINTS_PER_FRAME, frame_interval_ms


@pytest.mark.parametrize(
    ("data_rate", "max_frame_rate", "expected_ms"),
    [
        (50.0, 20.0, 400),  # the demo: 20 points per frame, 2.5 frames/s
        (1000.0, 20.0, 50),  # fast: max_frame_rate decides
        (1e6, 30.0, 33),
        (1.0, 20.0, 500),  # slow: still two frames a second
        (1.0, 1.0, 1000),  # but never more often than max_frame_rate allows
    ],
)
def test_frames_bring_about_twenty_points_within_the_rate_limits(
    data_rate, max_frame_rate, expected_ms
):
    assert frame_interval_ms(data_rate, max_frame_rate) == expected_ms


def test_the_constants_say_what_the_interval_follows():
    assert frame_interval_ms(POINTS_PER_FRAME / 0.3, 1000.0) == 300
    assert frame_interval_ms(1e-3, 1000.0) == round(1000 * LONGEST_FRAME_S)
