"""SourceStreamer: the ``DataInStreamInterface`` plumbing of a streamer backed by one source.

The package's streamers (the dummies, the replay, the LSL inlet, the sync) each hand their work
to one source object of the :class:`~qudi.util.instream.contracts.StreamSource` shape. What they
would otherwise each write again lives here, once: the settings properties read from the source,
``configure`` (active check, argument check, refusal while streaming under the state lock),
``start_stream`` / ``stop_stream`` with the module state ``'locked'`` while streaming, and the
``read_*`` methods with their argument checks. A module mixes it in first::

    class InStreamDummy(SourceStreamer, SharedStreamer, DataInStreamInterface): ...

and sets ``self._source`` (None while inactive) and ``self._constraints`` in ``on_activate``.
It says what is its own by overriding the hooks: :meth:`~SourceStreamer._checked_request`,
:meth:`~SourceStreamer._apply_request`, :meth:`~SourceStreamer._start_source`,
:meth:`~SourceStreamer._stop_source`, :meth:`~SourceStreamer._read_samples`,
:meth:`~SourceStreamer._read_available`, and any property whose value is not the source's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from qudi.interface.instream_interface import (
    StreamingMode,
    StreamRequest,
    check_read_buffers,
    check_stream_request,
)
from qudi.util.instream.arrays import check_count, check_timeout

__all__ = ["KeptSettingsStreamer", "SourceStreamer"]


class SourceStreamer:
    """Mixin: a ``DataInStreamInterface`` module whose work one source object does.

    See the module docstring. ``_configure_refusal`` is the message of a ``configure`` refused
    while streaming (``{name}`` is the module's name); ``_timestamps_required`` says whether a
    timestamped stream's reads need a timestamp buffer.
    """

    _configure_refusal: ClassVar[str] = "cannot configure '{name}' while it streams; stop it first"
    _timestamps_required: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._source: Any = None
        self._constraints: Any = None
        # held while settings or the run change (re-entrant: a hook may take it again)
        self._state_lock = threading.RLock()

    # --------------------------------------------------------------------------- settings
    @property
    def constraints(self) -> Any:
        return self._constraints

    @property
    def available_samples(self) -> int:
        return self._active_source().available_samples

    @property
    def sample_rate(self) -> float:
        return self._active_source().sample_rate

    @property
    def channel_buffer_size(self) -> int:
        return self._active_source().channel_buffer_size

    @property
    def streaming_mode(self) -> StreamingMode:
        return StreamingMode.coerce(self._active_source().streaming_mode)

    @property
    def active_channels(self) -> list[str]:
        return list(self._active_source().active_channels)

    def configure(
        self,
        active_channels: Iterable[str],
        streaming_mode: StreamingMode | int,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Set channels, mode, buffer size and rate, checked first (what the module accepts:
        its ``_checked_request`` and ``_apply_request``).

        Raises
        ------
        TypeError, ValueError
            If an argument is refused (see :func:`check_stream_request`); nothing changes.
        RuntimeError
            While streaming, or when the module is not active.
        """
        source = self._active_source()
        request = self._checked_request(
            active_channels, streaming_mode, channel_buffer_size, sample_rate
        )
        with self._state_lock:
            if self.module_state() == "locked":
                raise RuntimeError(self._configure_refusal.format(name=self.module_name))
            self._apply_request(source, request)

    # ----------------------------------------------------------------------- acquisition
    def start_stream(self) -> None:
        """Start streaming (harmless while already streaming); see ``_start_source``.

        Raises
        ------
        RuntimeError
            If the module is not active.
        """
        source = self._active_source()
        with self._state_lock:
            if self.module_state() == "locked":
                return
            self._start_source(source)
            self._show_streaming(True)

    def stop_stream(self) -> None:
        """Stop streaming (nothing to do while inactive); see ``_stop_source``."""
        with self._state_lock:
            if self._source is None:
                return
            self._stop_source(self._source)
            self._show_streaming(False)

    def read_data_into_buffer(
        self,
        data_buffer: np.ndarray,
        samples_per_channel: int,
        timestamp_buffer: np.ndarray | None = None,
        timeout: float | None = None,
    ) -> None:
        """Block until ``samples_per_channel`` samples are copied into ``data_buffer``
        (``[samples, active channels]`` or flat, of ``constraints.data_type``); what the wait
        may raise is the module's ``_read_samples``.

        Raises
        ------
        TypeError, ValueError
            If an argument is refused; nothing was consumed.
        RuntimeError
            If the module is not active.
        """
        data, stamps, room = self._checked_buffers(data_buffer, timestamp_buffer)
        count = check_count(samples_per_channel, room, "samples_per_channel", "what fits")
        self._read_samples(data, stamps, count, check_timeout(timeout))

    def read_available_data_into_buffer(
        self, data_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        """Read what has arrived, never more than fits; 0 when nothing waits.

        Raises
        ------
        TypeError, ValueError
            If a buffer is refused; nothing was consumed.
        """
        data, stamps, room = self._checked_buffers(data_buffer, timestamp_buffer)
        return self._read_available(data, stamps, room)

    # ------------------------------------------------------------------------------ hooks
    def _active_source(self) -> Any:
        """The source; a clear error if the module is not active."""
        source = self._source
        if source is None:
            raise RuntimeError(f"'{self.module_name}' is not active; activate it first")
        return source

    def _checked_request(
        self,
        active_channels: object,
        streaming_mode: object,
        channel_buffer_size: object,
        sample_rate: object,
    ) -> StreamRequest:
        """``configure``'s arguments checked against the constraints (nothing changes yet)."""
        return check_stream_request(
            self._constraints, active_channels, streaming_mode, channel_buffer_size, sample_rate
        )

    def _apply_request(self, source: Any, request: StreamRequest) -> None:
        """Apply a checked ``configure`` (under the state lock, not streaming)."""
        source.configure(
            list(request.channels), request.mode.name, request.buffer_size, request.rate
        )

    def _start_source(self, source: Any) -> None:
        """Start the source (under the state lock, not yet streaming)."""
        source.start_stream()

    def _stop_source(self, source: Any) -> None:
        """Stop the source (under the state lock)."""
        source.stop_stream()

    def _has_timestamps(self, source: Any) -> bool:
        return bool(source.has_timestamps)

    def _data_dtype(self) -> np.dtype:
        """The dtype a read's ``data_buffer`` must have."""
        return np.dtype(self._constraints.data_type)

    def _checked_buffers(
        self, data_buffer: object, timestamp_buffer: object
    ) -> tuple[np.ndarray, np.ndarray | None, int]:
        """A read's buffers checked against the active channels and the data type."""
        source = self._active_source()
        return check_read_buffers(
            data_buffer,
            timestamp_buffer,
            len(self.active_channels),
            self._data_dtype(),
            self._has_timestamps(source),
            timestamps_required=self._timestamps_required,
        )

    def _read_samples(
        self, data: np.ndarray, stamps: np.ndarray | None, count: int, timeout: float | None
    ) -> None:
        """Wait for ``count`` samples and copy them (arguments checked)."""
        self._active_source().read_data_into_buffer(data.reshape(-1), count, stamps, timeout)

    def _read_available(self, data: np.ndarray, stamps: np.ndarray | None, room: int) -> int:
        """Copy what has arrived, at most ``room`` samples (arguments checked)."""
        return self._active_source().read_available_data_into_buffer(data.reshape(-1), stamps)


class KeptSettingsStreamer(SourceStreamer):
    """A :class:`SourceStreamer` that keeps the settings itself, for a source that does not:
    the active channels (``_active_names``), the mode and the buffer size a ``configure`` set,
    and one rate, the constraints' default (a recording's, an LSL stream's nominal one).

    A module sets ``_active_names`` and ``_buffer_size`` in ``on_activate``; its
    ``_apply_request`` configures its source, if it needs to, and then calls this one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._active_names: list[str] = []
        self._mode = StreamingMode.CONTINUOUS
        self._buffer_size = 0

    @property
    def sample_rate(self) -> float:
        return float(self._constraints.sample_rate.default)

    @property
    def channel_buffer_size(self) -> int:
        return self._buffer_size

    @property
    def streaming_mode(self) -> StreamingMode:
        return self._mode

    @property
    def active_channels(self) -> list[str]:
        return list(self._active_names)

    def _apply_request(self, source: Any, request: StreamRequest) -> None:
        """Keep a checked ``configure``'s channels, mode and buffer size."""
        self._active_names = list(request.channels)
        self._mode = request.mode
        self._buffer_size = request.buffer_size
