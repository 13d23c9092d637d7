"""FrameReader: what a streamer holds now, read without waiting into one preallocated block.

A frame of the logic drains the streamer with ``read_available_data_into_buffer`` (never the
blocking read), at most :data:`MAX_READS_PER_FRAME` blocks per frame so that a backlog cannot
hold the logic's thread; each block is copied out, because consumers of ``sigNewRawData`` may
keep it while the next frame reuses the block.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_READS_PER_FRAME", "FrameReader"]

MAX_READS_PER_FRAME = 16
#: trace points a frame brings when the data rate allows: drawing a frame costs about the same
#: for one new point as for twenty, so a slow stream gets fewer frames (benchmarks/gui_idle.py)
POINTS_PER_FRAME = 20
LONGEST_FRAME_S = 0.5  # but at least two frames a second, so a slow stream still looks live


def frame_interval_ms(data_rate: float, max_frame_rate: float) -> int:
    """Milliseconds between the logic's frames.

    Parameters
    ----------
    data_rate : float
        Trace points per second (positive).
    max_frame_rate : float
        The most frames per second (positive).

    Returns
    -------
    int
        About :data:`POINTS_PER_FRAME` points' time, at most :data:`LONGEST_FRAME_S`, and
        never shorter than ``1 / max_frame_rate``.
    """
    seconds = max(min(POINTS_PER_FRAME / data_rate, LONGEST_FRAME_S), 1 / max_frame_rate)
    return max(1, round(1000 * seconds))


class FrameReader:
    """One read block for a stream of ``channels`` channels.

    Parameters
    ----------
    channels : int
        Channels per sample.
    dtype : numpy.dtype
        The streamer's sample dtype.
    sample_rate : float
        The stream's sample rate in Hz.
    frame_rate : float
        Frames per second: a block holds four frames' worth of samples (at least 1024).
    timestamps : bool
        Whether samples carry timestamps (read too).
    """

    def __init__(
        self,
        channels: int,
        dtype: np.dtype,
        sample_rate: float,
        frame_rate: float,
        timestamps: bool,
    ):
        samples = max(1024, int(4 * sample_rate / frame_rate))
        self.channels = int(channels)
        self._block = np.empty(samples * self.channels, np.dtype(dtype))
        self._stamps = np.empty(samples) if timestamps else None

    @property
    def timestamps(self) -> bool:
        """Whether timestamps are read."""
        return self._stamps is not None

    def drain(self, streamer) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Copies of what ``streamer`` holds now, as ``(data [samples, channels], stamps)``.

        Parameters
        ----------
        streamer : DataInStreamInterface
            The streamer to read.

        Returns
        -------
        list of tuple
            The blocks read, oldest first (empty if nothing was there).

        Raises
        ------
        Exception
            What the streamer's read raises (a stopped stream, a fault, an overrun).
        """
        blocks = []
        for _ in range(MAX_READS_PER_FRAME):
            count = streamer.read_available_data_into_buffer(self._block, self._stamps)
            if count == 0:
                break
            data = self._block[: count * self.channels].reshape(count, self.channels).copy()
            stamps = None if self._stamps is None else self._stamps[:count].copy()
            blocks.append((data, stamps))
            if count * self.channels < len(self._block):
                break
        return blocks
