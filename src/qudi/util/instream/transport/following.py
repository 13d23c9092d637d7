"""Which of the streams on an endpoint a receiver follows, and where its indices fall locally.

A stream on the wire is a ``(session, generation)`` pair: a publisher's run on one of its
rings, with indices of its own. A receiver follows one at a time and maps its indices onto its
local ring by an offset, so that local indices go on without a jump when it follows another
(a restarted publisher, a reconfigured hub). :class:`Following` holds that choice:

* While a stream is followed, another one (a broker in front of two publishers, or a forger)
  is not: its messages are refused, and so counted, until the followed one has closed or gone
  quiet (four of its heartbeats, at least 0.5 s, at most the silence timeout). The same
  publisher's next ring (its session, a higher generation) takes over at once.
* A stream followed before is remembered with where it ended; when it is followed again, the
  offset puts what it sent meanwhile into a gap rather than out of sight.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from qudi.util.instream.transport.wire import WireError

__all__ = ["Following"]

_MIN_QUIET_S = 0.5
_DEFAULT_HEARTBEAT_S = 0.25  # until two of the followed stream's own were seen
_REMEMBERED = 16  # streams followed before whose end is kept


class Following:
    """The followed stream and its index offset (local index = remote index + offset).

    Parameters
    ----------
    silence_timeout
        The longest a followed stream counts as alive without a message.
    max_jump
        A stream followed again continues where it ended only if it moved on by at most this
        (else its indices are taken as new).
    """

    def __init__(self, silence_timeout: float, max_jump: int):
        self.stream: tuple[int, int] | None = None
        self.offset = 0
        self.closed = False  # the followed stream said its ring is closed
        self._silence_timeout = silence_timeout
        self._max_jump = max_jump
        self._last_seen = 0.0
        self._control_times: deque[float] = deque(maxlen=8)
        self._ended: OrderedDict[tuple[int, int], int] = OrderedDict()  # stream: its end

    def seen(self, *, control: bool = False) -> None:
        """The followed stream sent a message (a control message, if ``control``)."""
        now = time.monotonic()
        self._last_seen = now
        if control:
            self._control_times.append(now)

    def check_may_follow(self, stream: tuple[int, int]) -> None:
        """Raise :class:`WireError` if ``stream`` may not take the followed one's place now."""
        followed = self.stream
        if followed is None or self.closed:
            return
        if stream[0] == followed[0] and stream[1] > followed[1]:
            return  # the same publisher on a new ring (its hub was reconfigured)
        if time.monotonic() - self._last_seen > self.quiet():
            return  # the followed publisher has gone quiet: this may be its successor
        raise WireError(self.second_stream(stream))

    def second_stream(self, stream: tuple[int, int]) -> str:
        """Why a message of ``stream`` is refused while another is followed."""
        followed = self.stream or (0, 0)
        return (
            f"a message of a second stream (session {stream[0]:#x}, generation {stream[1]}) on "
            f"this endpoint while session {followed[0]:#x}, generation {followed[1]} is followed"
        )

    def quiet(self) -> float:
        """Seconds of silence after which the followed stream may be replaced."""
        times = list(self._control_times)
        beats = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        beat = max(beats, default=_DEFAULT_HEARTBEAT_S)
        return min(self._silence_timeout, max(_MIN_QUIET_S, 4 * beat))

    def switch(self, stream: tuple[int, int], next_index: int, write: int) -> bool:
        """Follow ``stream``, whose next index is ``next_index``, from local index ``write``.

        Returns True if it was followed before and goes on where it ended (what it sent
        meanwhile is then a gap up to ``next_index``), False if its indices are new here (a
        resync: ``next_index`` lands on ``write``).
        """
        if self.stream is not None:  # remember where the stream we leave ended
            self._ended[self.stream] = write - self.offset
            while len(self._ended) > _REMEMBERED:
                self._ended.popitem(last=False)
        ended = self._ended.pop(stream, None)
        again = ended is not None and 0 <= next_index - ended <= self._max_jump
        self.offset = write - (ended if again and ended is not None else next_index)
        self.stream = stream
        self.closed = False
        self._control_times.clear()
        self.seen()
        return again

    def resync(self, next_index: int, write: int) -> None:
        """The followed stream's ``next_index`` lands on local index ``write`` from now on."""
        self.offset = write - next_index
