"""The pump: the thread that moves samples from a source into its ring, at a bounded rate.

Each poll asks the source how many samples it holds and reads exactly that many (in chunks that
fit the ring's contiguous free region) straight into the ring's free slots: no staging copy.
Between polls the thread sleeps; it never looks at readers, so none can hold it back.
After each chunk it adds a row to the ring's time table (see
:mod:`qudi.util.instream.time_table`): the write index, the host's monotonic time, and the
device time of the chunk's last sample (index / rate, or its timestamp).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from qudi.util.instream.contracts import StreamSource
from qudi.util.instream.enums import member_name
from qudi.util.instream.errors import StreamError
from qudi.util.instream.prefilter import pre_filter_for
from qudi.util.instream.ring import StreamRing
from qudi.util.instream.time_table import note_arrival

__all__ = ["Pump"]

_JOIN_TIMEOUT_S = 10.0
_DITHER = 0.2  # most stretch of a poll interval (see _run)
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


class Pump:
    """The thread that moves samples from the source into the ring.

    It ends by itself when the source fails, or when a FINITE acquisition has delivered all
    its samples; the ring then tells readers that no more data is coming.

    Parameters
    ----------
    hub_name
        Names the thread (``instream-pump-<hub_name>``).
    source
        What is read (see :class:`~qudi.util.instream.contracts.StreamSource`).
    ring
        Where the samples go (this pump is its only writer while it runs).
    period
        Seconds from one poll to the next, at least: each interval is stretched by up to
        20 % so that polls do not lock to the phase of a slow source's samples.
    on_fault
        Called in the thread with the ring and the source's exception when a read fails;
        the thread then ends.
    max_chunk
        Most samples claimed in the ring at once (default: a quarter of it). Claimed slots
        count as overwritten for readers, so a ring's headroom must hold two chunks (see
        :func:`~qudi.util.instream.hub.ring_size`).
    """

    def __init__(
        self,
        hub_name: str,
        source: StreamSource,
        ring: StreamRing,
        period: float,
        on_fault: Callable[[StreamRing, BaseException], None],
        *,
        max_chunk: int | None = None,
    ):
        self._source = source
        self._ring = ring
        finite = member_name(source.streaming_mode) == "FINITE"
        self._end_index = ring.write_index + source.channel_buffer_size if finite else None
        self._period = period
        self._on_fault = on_fault
        self._max_chunk = max(1, ring.capacity // 4 if max_chunk is None else max_chunk)
        # a qudi streamer reads an exact count; a minimal source may only read what it has
        self._read_exact = getattr(source, "read_data_into_buffer", None)
        # the source's pre_filters (issue 15), built in the thread: a bad spec is the
        # run's fault, told to every reader
        self._pre_filter: Any = None
        self._pre_filter_built = False
        self._stamped = str(ring.info.sample_timing) == "TIMESTAMP" and ring.has_timestamps
        self._stop = threading.Event()
        self._polls_done = 0
        self.polls: deque[tuple[float, int]] = deque(maxlen=max(4, int(4 / period)))
        self.fault: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"instream-pump-{hub_name}", daemon=True
        )
        self._thread.start()

    def measured_rate(self, window: float) -> float:
        """Samples per second moved over the last ``window`` seconds (0.0 before two polls)."""
        polls = list(self.polls)
        recent = [p for p in polls if p[0] >= polls[-1][0] - window] if polls else []
        if len(recent) < 2 or recent[-1][0] <= recent[0][0]:
            return 0.0
        return (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])

    @property
    def ended(self) -> bool:
        """The run ended by itself (fault or finite acquisition complete)."""
        return not self._thread.is_alive() and not self._stop.is_set()

    def stop(self) -> None:
        """End the thread and wait for it (unless called from the thread itself).

        Raises
        ------
        StreamError
            If the thread did not end within 10 s (the source's read is stuck).
        """
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(_JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                raise StreamError(
                    f"{self._thread.name} did not stop within {_JOIN_TIMEOUT_S} s "
                    "(the source's read is stuck)"
                )

    def _run(self) -> None:
        next_poll = time.monotonic()
        while not self._stop.is_set():
            try:
                self._drain()
            except Exception as exc:  # any source failure ends the run; readers are told
                self.fault = exc
                self._on_fault(self._ring, exc)
                return
            now = time.monotonic()
            self.polls.append((now, self._ring.write_index))
            if self._end_index is not None and self._ring.write_index >= self._end_index:
                self._ring.mark_stopped()  # finite acquisition complete
                return
            # Each interval is stretched by 0 to 20 % (a golden-ratio sequence): a source whose
            # rate divides the poll rate (10 Hz polled 30 times a second) is then not seen at
            # one phase for ever, so some rows of the time table come close to its true clock.
            self._polls_done += 1
            stretch = 1.0 + _DITHER * ((self._polls_done * _GOLDEN) % 1.0)
            next_poll = max(next_poll + self._period * stretch, now)  # late: no catching up
            self._stop.wait(next_poll - now)

    def _drain(self) -> None:
        """Read what the source says it holds, straight into the ring's free slots."""
        pending = int(self._source.available_samples)
        if self._end_index is not None:
            pending = min(pending, self._end_index - self._ring.write_index)
        if not self._pre_filter_built:
            self._pre_filter, self._pre_filter_built = pre_filter_for(self._source), True
        while pending > 0 and not self._stop.is_set():
            data, stamps = self._ring.reserve(min(pending, self._max_chunk))
            got = self._read_into(data.reshape(-1), len(data), stamps)
            if self._pre_filter is not None and got > 0:
                self._pre_filter(data[:got])  # once, in the ring's slots
            self._ring.publish(got)
            if got <= 0:
                return
            self._record_time(got, stamps)
            pending -= got

    def _record_time(self, got: int, stamps: np.ndarray | None) -> None:
        """A time-table row for the chunk just published (its last sample's device time)."""
        note_arrival(
            self._ring, float(stamps[got - 1]) if self._stamped and stamps is not None else None
        )

    def _read_into(self, data: np.ndarray, count: int, stamps: np.ndarray | None) -> int:
        """Fill ``count`` samples of the contiguous free region ``data``; returns how many.

        The count is exact and the source holds at least that many, so a blocking read
        returns at once. A source that fills whatever it holds, even more than the buffer
        takes (qudi-iqo-modules' InStreamDummy does), is read safely this way too.
        """
        if self._read_exact is not None:
            self._read_exact(data, count, stamps)
            return count
        got = self._source.read_available_data_into_buffer(data, stamps)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)) or not 0 <= got <= count:
            raise StreamError(
                f"the source's read_available_data_into_buffer returned {got!r} for a buffer of "
                f"{count} samples (it must return how many of those it filled)"
            )
        return int(got)
