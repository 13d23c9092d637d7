"""MarkerStream: the markers of a session, written by anyone, streamed like any stream.

Example config (copy into the ``hardware:`` section)::

    marker_stream:
        module.Class: 'instream.markers.MarkerStream'
        options:
            history: 10000       # optional: markers kept for the logics to show
            sample_rate: 100.0   # optional: nominal markers per second (sizes a hub's ring)

and connect every time-series logic of the session to it (``connect: markers:
'marker_stream'``). One MarkerStream module is one session's marker stream: every logic
connected to it shows its markers, and a logic's session recording stores every marker
written while it records, whoever wrote it.

Anyone writes a marker with :meth:`MarkerStream.add_marker` (from any thread; from Jupyter
over qudi's remote connection: ``marker_stream.add_marker("pump on")``), or through a
logic's ``add_marker``. A marker is one record of
:data:`~qudi.util.instream.markers.MARKER_DTYPE`, ``(time, text)``: ``time`` in host
monotonic seconds, ``text`` at most 256 bytes of UTF-8 without NUL (anything else is refused,
naming the text, and nothing is written).

As a ``DataInStreamInterface`` streamer it streams one column, ``markers``, of those records
(TIMESTAMP timing, each record's timestamp its time; ``stream_extra`` ``{"kind":
"markers"}``), so ``DataInStreamBuffer`` consumers share it through one ring as any streamer:
an ``LslOutlet`` on such a buffer publishes an LSL marker stream. Markers are queued for the
stream while it streams (a consumer started it); while active, markers are always accepted
and kept for the logics.
"""

from __future__ import annotations

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.util.constraints import ScalarConstraint

from qudi.hardware.instream.source_streamer import SourceStreamer
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    SampleTiming,
    StreamingMode,
    StreamRequest,
)
from qudi.util.instream.arrays import check_count, option_error
from qudi.util.instream.markers import DEFAULT_BUFFER, MARKER_DTYPE, MarkerSource

__all__ = ["MarkerStream"]

RATE_LIMITS = (0.1, 1e4)  # nominal markers per second
BUFFER_LIMITS = (16, 2**22)  # markers


class MarkerStream(SourceStreamer, DataInStreamInterface):
    """A session's markers as a stream of ``(time, text)`` records; see the module docstring."""

    _history = ConfigOption("history", default=10_000)
    _rate = ConfigOption("sample_rate", default=100.0)
    _configure_refusal = "cannot configure the marker stream '{name}' while it streams"

    def on_activate(self) -> None:
        history = self._history
        if isinstance(history, bool) or not isinstance(history, int) or not 1 <= history <= 10**7:
            raise option_error("history", history, "use a whole number of markers, 1 to 1e7")
        rate = self._rate
        low, high = RATE_LIMITS
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not low <= rate <= high:
            raise option_error(
                "sample_rate", rate, f"use nominal markers per second, {low:g} to {high:g}"
            )
        self._constraints = DataInStreamConstraints(
            channel_units={"markers": ""},
            sample_timing=SampleTiming.TIMESTAMP,
            streaming_modes=[StreamingMode.CONTINUOUS],
            data_type=MARKER_DTYPE,  # structured: constraints keep the whole dtype
            channel_buffer_size=ScalarConstraint(
                default=DEFAULT_BUFFER, bounds=BUFFER_LIMITS, increment=1, enforce_int=True
            ),
            sample_rate=ScalarConstraint(default=float(rate), bounds=RATE_LIMITS, increment=0.0),
        )
        self._source = MarkerSource(history=history, sample_rate=float(rate))

    def on_deactivate(self) -> None:
        if self._source is not None:
            self._source.stop_stream()
        self._source = None

    # ---------------------------------------------------------------------------- markers
    def add_marker(self, text: str) -> dict:
        """Note ``text`` now; callable from any thread and over qudi's remote connection.

        Returns
        -------
        dict
            ``time`` (host monotonic s) and ``text``: plain values.

        Raises
        ------
        TypeError, ValueError
            ``text`` is no str, empty, over 256 bytes of UTF-8 or has a NUL (the message shows
            it); nothing is written.
        RuntimeError
            The module is not active, or the stream's reader does not read.
        """
        when, text = self._active_source().add(text)
        return {"time": when, "text": text}

    @property
    def marker_count(self) -> int:
        """Markers written since activation."""
        return self._active_source().count

    @property
    def marker_session(self) -> str:
        """An id of this activation's markers (``markers_since`` counts them; a new
        activation counts anew)."""
        return self._active_source().id

    def markers_since(self, count: int) -> tuple[list[tuple[float, str]], int]:
        """``(markers, next count)``: the ``(time, text)`` markers written after the first
        ``count`` (as far as the history reaches), oldest first."""
        return self._active_source().since(count)

    # --------------------------------------------------------------------------- settings
    @property
    def stream_extra(self) -> dict:
        """What a hub keeps with the stream: its kind."""
        return {"kind": "markers"}

    @property
    def streaming_mode(self) -> StreamingMode:
        return StreamingMode.CONTINUOUS

    def _checked_request(
        self, active_channels, streaming_mode, channel_buffer_size, sample_rate
    ) -> StreamRequest:
        """``configure``: only ``['markers']``, CONTINUOUS; a nominal rate."""
        if list(active_channels) != ["markers"]:
            raise ValueError(f"active_channels is {list(active_channels)!r}: use ['markers']")
        mode = StreamingMode.coerce(streaming_mode, "streaming_mode")
        if mode is not StreamingMode.CONTINUOUS:
            raise ValueError(f"streaming_mode is {streaming_mode!r}: use CONTINUOUS")
        size = check_count(
            channel_buffer_size,
            BUFFER_LIMITS[1],
            "channel_buffer_size",
            "the largest marker buffer",
            minimum=BUFFER_LIMITS[0],
        )
        if not (
            isinstance(sample_rate, (int, float))
            and self.constraints.sample_rate.is_valid(sample_rate)
        ):
            raise ValueError(
                f"sample_rate is {sample_rate!r}: use {RATE_LIMITS[0]:g} to {RATE_LIMITS[1]:g} "
                "nominal markers per second"
            )
        return StreamRequest(("markers",), mode, size, float(sample_rate))

    # ----------------------------------------------------------------------- acquisition
    def read_single_point(self) -> tuple[np.ndarray, float]:
        """The newest marker (an empty record at time 0 before the first)."""
        newest, _ = self._active_source().since(self._active_source().count - 1)
        record = np.zeros(1, MARKER_DTYPE)
        if newest:
            record[0] = (newest[-1][0], newest[-1][1].encode("utf-8"))
        return record, float(record["time"][0])
