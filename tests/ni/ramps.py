"""What the fake card's ramps look like in the stream, for the NI tests.

The fake card's data are ramps (see ``fake_daqmx``): after the reference edge is dropped,
output sample ``j`` holds ``j + 1 + N/8`` V for ``aiN``, ``(j + 1 + L) * rate`` c/s for
``PFIL`` and bit ``L % 16`` of ``j + 1`` for digital line ``portP/lineL``.
"""

from __future__ import annotations

import numpy as np

CHANNELS = ["PFI8", "PFI9", "ai0", "ai1"]


def offset(channel: str) -> float:
    """PFI line ``L`` counts ``e + L`` photons, ``aiN`` reads ``e + N / 8`` V at edge ``e``."""
    return int(channel[3:]) if channel.startswith("PFI") else int(channel[2:]) / 8


def line_states(line: str, edges: np.ndarray) -> np.ndarray:
    """Digital line ``'port0/line3'`` reads bit ``3 % 16`` of the edge number (0 or 1)."""
    return ((edges.astype(np.int64) >> (int(line.rsplit("line", 1)[1]) % 16)) & 1).astype(float)


def expected(channels, first, count, rate):
    """What the fake card gives for output samples ``first .. first + count - 1``."""
    index = np.arange(first, first + count, dtype=np.float64) + 1
    columns = [
        line_states(ch, index)
        if ch.startswith("port")
        else (index + offset(ch)) * (rate if ch.startswith("PFI") else 1)
        for ch in channels
    ]
    return np.stack(columns, axis=1)


def assert_ramps(data, channels, rate, at_least):
    """``data`` is the stream from its first sample on, aligned, complete and unrepeated."""
    assert len(data) >= at_least
    np.testing.assert_array_equal(data, expected(channels, 0, len(data), rate))


def started(fake):
    """What the tasks started so far stream, in start order ('PFI8', 'ai', 'clock')."""
    return [name.rsplit("_", 1)[1] for name in fake.starts]


def read_all(streamer):
    out = np.empty((streamer.available_samples, len(streamer.active_channels)))
    assert streamer.read_available_data_into_buffer(out) == len(out)
    return out
