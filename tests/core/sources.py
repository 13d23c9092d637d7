"""A hand-fed source for hub tests: samples exist when the test says so, faults on demand."""

from __future__ import annotations

import threading

import numpy as np

from qudi.util.instream.simulated import SourceConstraints


class HandFedSource:
    """A complete ``DataInStreamInterface``-shaped source; the test decides when samples exist.

    Every channel carries the sample's absolute index (a ramp), so readers can check that no
    sample is lost or repeated. The calls a hub makes are counted.
    """

    def __init__(
        self, channels=("a", "b"), sample_rate=1000.0, buffer_size=10_000, timing="CONSTANT"
    ):
        self.constraints = SourceConstraints({ch: "V" for ch in channels}, np.float64, timing)
        self.active_channels = list(channels)
        self.streaming_mode = "CONTINUOUS"
        self.sample_rate = float(sample_rate)
        self.channel_buffer_size = buffer_size
        self.starts = self.stops = self.configures = self.polls = 0
        self.running = False
        self._lock = threading.Lock()
        self._produced = self._read = 0
        self._failure: BaseException | None = None

    def feed(self, count: int) -> None:
        with self._lock:
            self._produced += count

    def fail_next_read(self, error: BaseException) -> None:
        self._failure = error

    def configure(self, active_channels, streaming_mode, channel_buffer_size, sample_rate):
        self.configures += 1
        self.active_channels = list(active_channels)
        self.streaming_mode = streaming_mode
        self.channel_buffer_size = channel_buffer_size
        self.sample_rate = round(float(sample_rate), 1)  # "hardware" coerces the rate

    def start_stream(self):
        self.starts += 1
        self.running = True

    def stop_stream(self):
        self.stops += 1
        self.running = False

    @property
    def available_samples(self) -> int:
        self.polls += 1
        if self._failure is not None:
            return 1
        with self._lock:
            return self._produced - self._read

    def read_available_data_into_buffer(self, data_buffer, timestamp_buffer=None) -> int:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        channels = len(self.active_channels)
        with self._lock:
            count = min(self._produced - self._read, data_buffer.size // channels)
            index = np.arange(self._read, self._read + count, dtype=np.float64)
            data_buffer[: count * channels].reshape(count, channels)[:] = index[:, None]
            if timestamp_buffer is not None:
                timestamp_buffer[:count] = index / self.sample_rate
            self._read += count
        return count
