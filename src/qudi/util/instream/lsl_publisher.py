"""Publishing a qudi stream as an LSL outlet: its description, its clock, and the push thread.

:func:`outlet_info` describes a stream to LSL (name, type, source_id, channel count, nominal
rate, channel format, and ``desc/channels/channel/label|unit``). :class:`OutletClock` maps the
stream's samples to LSL time (host monotonic seconds, the clock of ``pylsl.local_clock()``).
:class:`LslPublisher` is the thread that reads a source (any ``DataInStreamInterface``, e.g. a
``DataInStreamBuffer``: then the outlet is one consumer among others) and pushes what it read
in chunks. Plain Python and numpy; pylsl is passed in (see ``lsl_support``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from qudi.util.instream.lsl_push import LslPushThread
from qudi.util.instream.lsl_support import channel_format_of, write_channels

__all__ = ["LslPublisher", "OutletClock", "outlet_info"]


def outlet_info(
    pylsl: ModuleType,
    name: str,
    stream_type: str,
    source_id: str,
    channels: Sequence[str],
    units: Sequence[str],
    rate: float,
    dtype: object,
) -> tuple[Any, np.dtype]:
    """The ``StreamInfo`` of an outlet for this stream, and the dtype its pushes take.

    ``rate`` 0 is LSL's irregular rate.

    Raises
    ------
    ValueError
        If LSL cannot carry ``dtype`` exactly (see ``channel_format_of``).
    """
    format_name, pushed = channel_format_of(dtype)
    info = pylsl.StreamInfo(
        name, stream_type, len(channels), float(rate), getattr(pylsl, format_name), source_id
    )
    write_channels(info, channels, units)
    info.desc().append_child_value("acquisition", "qudi-instream")
    return info, pushed


class OutletClock:
    """The LSL time of each sample of a qudi stream, in host monotonic seconds.

    With the stream's own time base (``stream_clock``, a
    :class:`~qudi.util.instream.stream_clock.StreamClock` of the ring the samples come from,
    and ``locate``, which says at which ring index the next unread sample is), each sample's
    time is the time base's: ``stream_clock.time_of(ring index)`` for a CONSTANT stream,
    ``stream_clock.time_of_stamps(stamps)`` for a TIMESTAMP one.

    Without it (a stream from another host, or a source without a shared ring), CONSTANT
    sample ``i`` of this outlet's run is at ``origin + i / rate`` and a TIMESTAMP sample
    stamped ``t`` at ``origin + t``, where ``origin`` is taken at the first samples as if the
    newest had just been taken: LSL times are then late by the stream's latency (about a poll
    period of the source and of this outlet), which :attr:`origin_uncertainty` estimates.
    """

    def __init__(
        self,
        rate: float,
        timestamped: bool,
        stream_clock: Any = None,
        locate: Callable[[], int | None] | None = None,
    ):
        self.rate = float(rate)
        self.timestamped = timestamped
        self.origin: float | None = None
        self.origin_uncertainty = float("nan")
        self._stream_clock = stream_clock
        self._locate = locate
        self._ring_offset: int | None = None  # ring index of this outlet's sample 0
        self.uses_time_base = False
        # (ring index of the last sample of a push, its uncertainty in s), recent pushes
        self.pushed_uncertainty: deque[tuple[int, float]] = deque(maxlen=100_000)

    def times(
        self, first_index: int, count: int, stamps: np.ndarray | None, now: float, waited: float
    ) -> np.ndarray | float:
        """LSL times of ``count`` samples from this run's index ``first_index`` (all of them
        for a TIMESTAMP stream; the newest one's only for a CONSTANT stream, as LSL derives
        the others from the nominal rate). Call it right after the samples were read."""
        last = first_index + count - 1
        if self.origin is None:
            self._start(first_index, count, stamps, now, waited)
        origin = float(self.origin) if self.origin is not None else now
        if self.timestamped and stamps is None:
            raise ValueError("a TIMESTAMP stream's samples came without their stamps")
        offset = self._ring_offset
        if self.uses_time_base and offset is not None:
            clock = self._stream_clock
            if stamps is not None and self.timestamped:
                times = np.asarray(clock.time_of_stamps(stamps[:count]), np.float64)  # refits
                uncertainty = float(clock.time.fit.uncertainty(stamps[count - 1 : count])[0])
                self.pushed_uncertainty.append((offset + last, uncertainty))
                return times
            uncertainty = float(clock.uncertainty_of([offset + last])[0])
            self.pushed_uncertainty.append((offset + last, uncertainty))
            return float(clock.time_of(offset + last))
        if stamps is not None and self.timestamped:
            return origin + stamps[:count]
        return origin + last / self.rate

    def _start(self, first_index: int, count: int, stamps, now: float, waited: float) -> None:
        """Take the origin: from the stream's time base if it answers, else from ``now``."""
        if self._stream_clock is not None and self._locate is not None:
            try:
                position = self._locate()
                if position is not None:
                    self._ring_offset = position - first_index - count
                    zero = self._ring_offset
                    if self.timestamped:
                        self.origin = float(self._stream_clock.time_of_stamps([0.0])[0])
                        fit = self._stream_clock.time.fit
                        self.origin_uncertainty = float(fit.uncertainty([stamps[0]])[0])
                    else:
                        self.origin = float(self._stream_clock.time_of([zero])[0])
                        uncertainty = self._stream_clock.uncertainty_of([zero])[0]
                        self.origin_uncertainty = float(uncertainty)
                    self.uses_time_base = True
                    return
            except ValueError:  # no time yet (no table row, no rate): estimate instead
                self._ring_offset = None
        newest = float(stamps[count - 1]) if self.timestamped else (first_index + count - 1)
        self.origin = now - (newest if self.timestamped else newest / self.rate)
        self.origin_uncertainty = waited


class LslPublisher(LslPushThread):
    """The thread that reads ``source`` and pushes what it read into ``outlet``.

    Parameters
    ----------
    name
        Names the thread (``instream-lsl-outlet-<name>``).
    source
        A started ``DataInStreamInterface`` (``read_available_data_into_buffer``).
    outlet
        A ``pylsl.StreamOutlet``.
    dtype, pushed
        The source's sample dtype, and the dtype LSL takes (a conversion if they differ).
    channels
        Values per sample.
    clock
        Maps samples to LSL times.
    period
        Seconds between reads of the source.
    room
        Samples read at most at once.
    """

    _log = logging.getLogger(__name__)  # logs as this module

    def __init__(
        self,
        name: str,
        source: Any,
        outlet: Any,
        dtype: np.dtype,
        pushed: np.dtype,
        channels: int,
        clock: OutletClock,
        period: float,
        room: int,
        *,
        on_fault: Callable[[BaseException], None] | None = None,
    ):
        self._pushed = pushed
        self._clock = clock
        self._period = period
        self._on_fault = on_fault
        self.index = 0  # stream index of the next sample (samples pushed + samples lost)
        self._previous_read = time.monotonic()
        data = np.empty((room, channels), dtype)
        stamps = np.empty(room) if clock.timestamped else None
        super().__init__(f"instream-lsl-outlet-{name}", source, outlet, data, stamps)

    def _run(self) -> None:
        next_read = time.monotonic()
        while not self._stop.is_set():
            if not self._drain(until_stop=True):
                return
            now = time.monotonic()
            next_read = max(next_read + self._period, now)
            self._stop.wait(next_read - now)

    def _faulted(self, exc: BaseException) -> None:
        """Tell the owner, who may restart the outlet."""
        if self._on_fault is not None:
            self._on_fault(exc)

    def _overrun(self, lost: int) -> None:
        """Lost samples still took their stream indices."""
        self.index += lost

    def _push_once(self) -> int:
        """Read what the source holds (at most a buffer) and push it; how many were read."""
        before, self._previous_read = self._previous_read, time.monotonic()
        count = self._read()
        if count <= 0:
            return 0
        now = time.monotonic()
        waited = now - before  # the newest sample came in after the previous read
        times = self._clock.times(self.index, count, self._stamps, now, waited)
        data = self._data[:count]
        if data.dtype != self._pushed:
            data = data.astype(self._pushed)
        if isinstance(times, float):
            self._outlet.push_chunk(data, times)
        else:
            push_with_times(self._outlet, data, times)
        self.index += count
        self.pushed += count
        return count


def push_with_times(outlet: Any, data: np.ndarray, times: np.ndarray) -> None:
    """Push ``data`` with one timestamp per sample, without a Python loop over the samples.

    pylsl's ``push_chunk`` converts a timestamp array element by element; its per-sample push
    function (``do_push_chunk_n``, liblsl's ``lsl_push_chunk_*tn``) takes the array as is.
    """
    import ctypes

    push = getattr(outlet, "do_push_chunk_n", None)
    if push is None:  # an older pylsl
        outlet.push_chunk(data, list(times))
        return
    data = np.ascontiguousarray(data)
    times = np.ascontiguousarray(times, dtype=np.float64)
    error = push(
        outlet.obj,
        ctypes.c_void_p(data.ctypes.data),
        ctypes.c_long(data.size),
        ctypes.c_void_p(times.ctypes.data),
        ctypes.c_int(1),
    )
    if error:
        from pylsl.util import handle_error

        handle_error(error)
