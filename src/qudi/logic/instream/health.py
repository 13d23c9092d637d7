"""StreamHealth: sample and frame rates over the last second, from what each frame brought."""

from __future__ import annotations

import time
from collections import deque

__all__ = ["StreamHealth"]


class StreamHealth:
    """Rates measured from the logic's frames (no clock of the stream's own is needed).

    ``buffer_fill`` is set by the logic at each frame: the unread part of the streamer's buffer
    (0..1).
    """

    def __init__(self) -> None:
        self._frames: deque[tuple[float, int]] = deque()
        self.buffer_fill = 0.0

    def note_fill(self, streamer) -> None:
        """Note how full the streamer's buffer is now (its unread part, 0..1)."""
        self.buffer_fill = streamer.available_samples / max(1, streamer.channel_buffer_size)

    def report(self, streamer) -> dict:
        """Measured sample rate (Hz, last second), frame rate (Hz), unread part of the
        streamer's buffer at the last frame (0..1), samples the streamer reports lost, and
        the streamer's state."""
        return {
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "buffer_fill": self.buffer_fill,
            "lost_samples": int(getattr(streamer, "lost_samples", 0)),
            "streamer_state": streamer.module_state(),
        }

    def frame(self, samples: int) -> None:
        """Note a frame that brought ``samples`` raw samples."""
        now = time.monotonic()
        self._frames.append((now, samples))
        while self._frames and self._frames[0][0] < now - 1.0:
            self._frames.popleft()

    def _span(self) -> float:
        return self._frames[-1][0] - self._frames[0][0] if len(self._frames) > 1 else 0.0

    @property
    def sample_rate(self) -> float:
        """Raw samples per second over the last second (0 before two frames)."""
        span = self._span()
        return sum(n for _, n in list(self._frames)[1:]) / span if span else 0.0

    @property
    def frame_rate(self) -> float:
        """Frames per second over the last second (0 before two frames)."""
        span = self._span()
        return (len(self._frames) - 1) / span if span else 0.0
