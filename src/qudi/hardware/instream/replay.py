"""RecordingReplayStreamer: a recorded stream played back as a live DataInStreamInterface stream.

Example config (copy into the ``hardware:`` section)::

    replay_counter:
        module.Class: 'instream.replay.RecordingReplayStreamer'
        options:
            file_path: '/data/2026/12/session.h5'  # a session file or a one-stream recording
            stream: 'counter'      # optional: the stream's label in a session (its first)
            speed: 1.0             # optional: 1.0 real time, 10.0 ten times faster, or 'max'
                                   # (as fast as its strict readers allow, losing nothing)

Analysis and GUIs can be developed without the instrument: connect buffers and logics to this
module as to a streamer. It streams the recorded channel names, units, rate, dtype and timing,
and a TIMESTAMP stream's recorded timestamps; ``configure`` accepts any subset of the
recorded channels, the recorded rate only, and ``FINITE`` mode to play the first
``channel_buffer_size`` samples (``CONTINUOUS`` plays the whole stream, then delivers no more;
:attr:`RecordingReplayStreamer.replay_finished` says when). Every start plays from the first
sample.

Faster than real time, give the buffers room: a hub sizes its ring by the stream's (recorded)
rate, so at ``speed: 10`` configure a ``channel_buffer_size`` ten times what a consumer of the
live stream would need (the logic asks for its ``channel_buffer_size`` option, 1 Mi samples).

Recorded gaps come back where they were: ``lost_samples`` grows by a gap's count when playback
passes it (and at ``speed`` > 0 the gap is a silence as long as the lost samples took). The
markers of a session's first stream are listed by :meth:`RecordingReplayStreamer.played_markers`
once playback has reached them. ``'max'`` paces playback by the readers of this module's hub in
this process that must not lose samples (``allow_overwrite: False``, the buffers' default);
readers that accept losses, and consumers in other processes, do not hold it back.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.util.constraints import ScalarConstraint

from qudi.hardware.instream.source_streamer import KeptSettingsStreamer
from qudi.hardware.instream.stream_sharing import SharedStreamer
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    StreamingMode,
    StreamRequest,
)
from qudi.util.instream.arrays import option_error
from qudi.util.instream.replay_source import SessionReplay, checked_speed
from qudi.util.instream.transport.registry import hubs

__all__ = ["RecordingReplayStreamer"]

BUFFER_SIZE_LIMITS = (128, 2**30)  # samples per channel
_WAIT_STEP_S = 0.01


class RecordingReplayStreamer(KeptSettingsStreamer, SharedStreamer, DataInStreamInterface):
    """Plays a recorded stream as a live one; see the module docstring for its config."""

    _file_path = ConfigOption("file_path", missing="error")
    _stream = ConfigOption("stream", default=None)
    _speed = ConfigOption("speed", default=1.0)
    _configure_refusal = "cannot configure the replay while it streams; stop it first"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._source: SessionReplay | None = None
        self._constraints: DataInStreamConstraints | None = None

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        path = self._file_path
        if not isinstance(path, str) or not Path(path).expanduser().is_file():
            raise option_error("file_path", path, "name an existing session or recording file")
        try:
            speed = checked_speed(self._speed)
        except ValueError as exc:
            raise option_error("speed", self._speed, str(exc)) from None
        if self._stream is not None and not isinstance(self._stream, str):
            raise option_error("stream", self._stream, "give a stream's label (text) or null")
        self.check_publish_address()
        try:
            replay = SessionReplay(
                Path(path).expanduser(), self._stream, speed=speed, room=self._lossless_room
            )
        except ValueError as exc:
            if "no stream" in str(exc):
                raise option_error("stream", self._stream, str(exc)) from None
            raise option_error("file_path", path, str(exc)) from None
        recorded = replay.stream
        if not recorded.sample_rate:
            replay.close()
            raise option_error("file_path", path, "the stream has no sample rate to replay at")
        rate = float(recorded.sample_rate)
        default_size = 1024**2  # as the dummy's: at x10 of 10 kS/s, 10 s of slack
        self._constraints = DataInStreamConstraints(
            channel_units=dict(zip(recorded.channel_names, recorded.channel_units, strict=True)),
            sample_timing=recorded.sample_timing,
            streaming_modes=[StreamingMode.CONTINUOUS, StreamingMode.FINITE],
            data_type=recorded.dtype,
            channel_buffer_size=ScalarConstraint(
                default=default_size, bounds=BUFFER_SIZE_LIMITS, increment=1, enforce_int=True
            ),
            sample_rate=ScalarConstraint(default=rate, bounds=(rate, rate), increment=0.0),
        )
        self._active_names = list(recorded.channel_names)
        self._buffer_size = default_size
        self._mode = StreamingMode.CONTINUOUS
        self._source = replay

    def on_deactivate(self) -> None:
        replay, self._source = self._source, None
        if replay is not None:
            replay.close()

    # --------------------------------------------------------------------------- settings
    @property
    def lost_samples(self) -> int:
        """Samples of the recorded gaps that playback has passed."""
        return self._active_source().lost_samples

    @property
    def replay_finished(self) -> bool:
        """This run has handed out every sample it plays."""
        return self._active_source().finished

    @property
    def replay_speed(self) -> float | str:
        return self._active_source().speed

    def played_markers(self) -> list[tuple[float, int, str]]:
        """(host monotonic time at recording, sample index, text) of the markers reached."""
        return self._active_source().played_markers()

    def played_gaps(self) -> list[tuple[int, int]]:
        """(row in the recording, lost samples) of the recorded gaps playback has passed."""
        return [(int(row), int(count)) for row, count in self._active_source().played_gaps()]

    def _apply_request(self, source: SessionReplay, request: StreamRequest) -> None:
        """``configure``: channels (any subset of the recorded ones), mode, buffer size; the
        recorded rate."""
        finite = request.mode == StreamingMode.FINITE
        source.configure(list(request.channels), request.buffer_size if finite else None)
        super()._apply_request(source, request)

    # ----------------------------------------------------------------------- acquisition
    def _start_source(self, source: SessionReplay) -> None:
        """``start_stream``: play from the first recorded sample (harmless while streaming)."""
        source.start()

    def _stop_source(self, source: SessionReplay) -> None:
        source.stop()

    def _read_samples(self, data, stamps, count: int, timeout: float | None) -> None:
        """``read_data_into_buffer``: block until ``count`` samples are copied.

        Raises
        ------
        TimeoutError
            The samples did not fall due in time (those that did are kept for the next read).
        RuntimeError
            Not streaming, or fewer samples than asked are left to play.
        """
        replay = self._active_source()
        if count > replay.remaining:
            raise RuntimeError(
                f"cannot wait for {count} samples: only {replay.remaining} are left to play"
            )
        if self.module_state() != "locked" and replay.available_samples < count:
            raise RuntimeError(f"'{self.module_name}' is not streaming; call start_stream() first")
        deadline = None if timeout is None else time.monotonic() + timeout
        while replay.available_samples < count:  # samples fall due with the clock: poll it
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{count} samples did not fall due within {timeout} s")
            if self.module_state() != "locked":
                raise RuntimeError(f"'{self.module_name}' stopped while a read waited")
            time.sleep(_WAIT_STEP_S)
        replay.read_into(data, stamps, count)

    def _read_available(self, data, stamps, room: int) -> int:
        """``read_available_data_into_buffer``: copy what has fallen due, never more than
        fits; 0 when nothing is due."""
        return self._active_source().read_into(data, stamps, room)

    def read_single_point(self) -> tuple[np.ndarray, np.float64 | None]:
        """The last sample handed out (the first recorded one before playback)."""
        replay = self._active_source()
        row = max(0, replay.position - 1)
        data, stamps = replay.stream.read(row, row + 1) if replay.rows else (None, None)
        if data is None:
            return np.zeros(len(self._active_names), self._constraints.data_type), None
        names = list(replay.stream.channel_names)
        values = data[0][[names.index(ch) for ch in self._active_names]]
        return values, None if stamps is None else np.float64(stamps[0])

    # -------------------------------------------------------------------------- internals
    def _lossless_room(self) -> int:
        """Samples the hub's ring takes now without overwriting a strict reader's unread one."""
        hub = hubs.hub_of(self.module_uuid)
        if hub is None:  # read directly (a logic without a buffer): each read takes what fits
            return self._active_source().remaining
        ring = hub.ring
        behind = [
            ring.write_index - reader.position
            for reader in hub.readers
            if reader.running and not reader.allow_overwrite
        ]
        return max(0, ring.capacity - max(behind, default=0))
