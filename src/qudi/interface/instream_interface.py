"""DataInStreamInterface: a continuous or finite stream of samples from a device into qudi.

Signature-compatible with the interface of the same name in qudi-iqo-modules, so qudi's
``Connector(interface='DataInStreamInterface')`` (which matches by class name) connects modules
of either package. Where that interface was ambiguous, this one is explicit:

- **Layout**: buffers are flat, C-contiguous and sample-major interleaved, i.e. they reshape to
  ``[samples, channels]``; channel order is the order of :attr:`active_channels`.
- **Reads consume**: a sample is returned by exactly one read.
- **Blocking reads** take an optional ``timeout`` in seconds and raise ``TimeoutError`` when it
  expires (nothing consumed), and an error when the stream stops or fails while they wait.
- **FINITE** streams stop by themselves after ``channel_buffer_size`` samples per channel;
  reads then drain what is left.
- :meth:`read_single_point` returns the **newest** sample.
- Samples lost because the device buffer overflowed are never hidden: reads raise, and
  :attr:`lost_samples` (optional for implementers) counts them.
"""

from __future__ import annotations

import re
import sys
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from enum import Enum

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.core.module import Base
from qudi.util.constraints import ScalarConstraint

from qudi.util.instream import arrays
from qudi.util.instream.arrays import check_count
from qudi.util.instream.network import DEFAULT_ADDRESS
from qudi.util.instream.sharing import StreamShare, share_module_stream

__all__ = [
    "DataInStreamConstraints",
    "DataInStreamInterface",
    "SampleTiming",
    "StreamingMode",
    "check_read_buffers",
]


class _InterchangeableEnum(Enum):
    """An enum whose members equal same-named, same-valued members of a namesake class.

    qudi-iqo-modules has its own ``StreamingMode`` and ``SampleTiming``. Its modules compare our
    members with theirs (``timing == SampleTiming.TIMESTAMP``) and pass theirs to us, so both
    must work: equality and hashing match, and :meth:`coerce` turns any member, name or int into
    ours.
    """

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Enum):
            return type(other).__name__ == type(self).__name__ and other.value == self.value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._name_)  # what a plain Enum member hashes to

    @classmethod
    def coerce(cls, value: object, what: str | None = None):
        """Our member for ``value``: a member of either package, a name or an int value."""
        if isinstance(value, Enum) and type(value).__name__ == cls.__name__:
            value = value.value
        try:
            if isinstance(value, str):
                return cls[value.strip().upper()]
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                return cls(int(value))
        except (KeyError, ValueError):
            pass
        valid = ", ".join(m.name for m in cls if m.value >= 0)
        raise ValueError(f"{what or cls.__name__} must be one of {valid}, got {value!r}")


class StreamingMode(_InterchangeableEnum):
    INVALID = -1
    CONTINUOUS = 0  # runs until stopped; the device buffer is a ring that must be read in time
    FINITE = 1  # stops by itself after channel_buffer_size samples per channel


class SampleTiming(_InterchangeableEnum):
    INVALID = -1
    CONSTANT = 0  # sample i is taken at i / sample_rate after the start
    TIMESTAMP = 1  # each sample carries its float64 time in s since the start; rate is a hint
    RANDOM = 2  # only the order of samples is known


def checked_publish_address(address: object) -> str:
    """Option ``publish_address``: a ZeroMQ TCP address to bind, e.g. ``tcp://127.0.0.1:*``."""
    if not isinstance(address, str) or not re.fullmatch(r"tcp://[^:/\s]+:(\*|\d{1,5})", address):
        raise ValueError(
            f"option 'publish_address' is {address!r}: use 'tcp://<address of this host>:<port "
            "or *>', e.g. 'tcp://127.0.0.1:*' (this host only) or 'tcp://192.168.1.5:5555'"
        )
    return address


def check_read_buffers(
    data_buffer: object,
    timestamp_buffer: object,
    channels: int,
    dtype: np.dtype,
    has_timestamps: bool,
    timestamps_required: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """A read call's buffers, checked under the interface's argument names: the samples as a
    ``[samples, channels]`` view, the timestamps (or None) and how many samples fit in both."""
    return arrays.check_read_buffers(
        data_buffer,
        timestamp_buffer,
        (channels,),
        dtype,
        has_timestamps,
        timestamps_required=timestamps_required,
        names=("data_buffer", "timestamp_buffer"),
    )


class DataInStreamConstraints:
    """What a streaming device can do: channels and units, timing, modes, dtype, rates, buffers.

    ``data_type`` is stored as a numpy scalar *type* (``np.float64``), as consumers of the
    qudi-iqo-modules interface call ``issubclass`` on it.
    """

    def __init__(
        self,
        channel_units: Mapping[str, str],
        sample_timing: SampleTiming | int | str,
        streaming_modes: Iterable[StreamingMode | int | str],
        data_type: type | np.dtype | str,
        channel_buffer_size: ScalarConstraint,
        sample_rate: ScalarConstraint | None = None,
    ):
        if not isinstance(channel_buffer_size, ScalarConstraint):
            raise TypeError("channel_buffer_size must be a qudi.util.constraints.ScalarConstraint")
        if sample_rate is not None and not isinstance(sample_rate, ScalarConstraint):
            raise TypeError("sample_rate must be None or a qudi.util.constraints.ScalarConstraint")
        self._channel_units = dict(channel_units)
        self._sample_timing = SampleTiming.coerce(sample_timing, "sample_timing")
        self._streaming_modes = [StreamingMode.coerce(m, "streaming mode") for m in streaming_modes]
        self._data_type = np.dtype(data_type).type
        self._channel_buffer_size = channel_buffer_size
        if sample_rate is None:
            if self._sample_timing == SampleTiming.CONSTANT:
                raise ValueError("sample_rate constraints are required for SampleTiming.CONSTANT")
            sample_rate = ScalarConstraint(default=1, bounds=(1, 1), increment=0)
        self._sample_rate = sample_rate

    @property
    def channel_units(self) -> dict[str, str]:
        """Unit of every channel the device offers, in the device's channel order."""
        return dict(self._channel_units)

    @property
    def sample_timing(self) -> SampleTiming:
        return self._sample_timing

    @property
    def streaming_modes(self) -> list[StreamingMode]:
        return list(self._streaming_modes)

    @property
    def data_type(self) -> type:
        """numpy scalar type of the samples (e.g. ``np.float64``)."""
        return self._data_type

    @property
    def channel_buffer_size(self) -> ScalarConstraint:
        """Allowed device buffer sizes, in samples per channel."""
        return self._channel_buffer_size

    @property
    def sample_rate(self) -> ScalarConstraint:
        """Allowed sample rates in Hz (per channel)."""
        return self._sample_rate


class DataInStreamInterface(Base):
    """A device (or interfuse) that streams samples of its active channels into qudi.

    A streaming module is ``locked`` from :meth:`start_stream` until :meth:`stop_stream` (or
    until a FINITE acquisition ended and was stopped).
    """

    # qudi-instream extension: a consumer on another host reads the stream over ZeroMQ from
    # this address (no authentication: name another interface only on a trusted network)
    _publish_address = ConfigOption("publish_address", default=DEFAULT_ADDRESS)

    @property
    @abstractmethod
    def constraints(self) -> DataInStreamConstraints:
        """What the device can do."""

    @property
    @abstractmethod
    def available_samples(self) -> int:
        """Samples per channel that a read could return now without waiting."""

    @property
    @abstractmethod
    def sample_rate(self) -> float:
        """The configured sample rate in Hz, as the device set it (may differ from requested)."""

    @property
    @abstractmethod
    def channel_buffer_size(self) -> int:
        """Device buffer size in samples per channel (FINITE: the samples to acquire)."""

    @property
    @abstractmethod
    def streaming_mode(self) -> StreamingMode:
        """The configured streaming mode."""

    @property
    @abstractmethod
    def active_channels(self) -> list[str]:
        """The streamed channels, in the order their values appear in every sample."""

    @property
    def lost_samples(self) -> int:
        """Samples per channel lost since the stream started (device or buffer overflow).

        Optional: implementations that cannot lose samples silently may leave this at 0.
        """
        return 0

    def share_stream(self, consumer: str, max_poll_rate: float = 30.0) -> StreamShare:
        """Let ``consumer`` in another process join this module's shared stream.

        A qudi-instream extension, called over qudi's remote modules by a
        ``instream.buffer.DataInStreamBuffer`` in another qudi: that buffer starts, stops and
        configures the stream through the returned share and reads the samples from shared
        memory (same host) or over ZeroMQ (published on option ``publish_address``), never
        through the remote call.
        """
        return share_module_stream(self, consumer, max_poll_rate, self.publish_address)

    @property
    def publish_address(self) -> str:
        """Where the stream is published for consumers on other hosts (option
        ``publish_address``, loopback by default)."""
        return checked_publish_address(self._publish_address)

    def _show_streaming(self, streaming: bool) -> None:
        """Lock the module while it streams and unlock it when it stops (safe to repeat)."""
        locked = self.module_state() == "locked"
        if streaming and not locked:
            self.module_state.lock()
        elif locked and not streaming:
            self.module_state.unlock()

    @abstractmethod
    def configure(
        self,
        active_channels: Iterable[str],
        streaming_mode: StreamingMode | int,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Configure the stream while it is stopped; raises with the reason if refused."""

    @abstractmethod
    def start_stream(self) -> None:
        """Start acquiring; the module is locked while streaming."""

    @abstractmethod
    def stop_stream(self) -> None:
        """Stop acquiring; samples already acquired stay readable."""

    @abstractmethod
    def read_data_into_buffer(
        self,
        data_buffer: np.ndarray,
        samples_per_channel: int,
        timestamp_buffer: np.ndarray | None = None,
    ) -> None:
        """Block until ``samples_per_channel`` samples are read into ``data_buffer``.

        ``data_buffer``: flat, C-contiguous, of ``constraints.data_type``, at least
        ``samples_per_channel * len(active_channels)`` values, filled sample-major interleaved.
        ``timestamp_buffer``: float64, at least ``samples_per_channel`` long; required for
        ``SampleTiming.TIMESTAMP``. Implementations should accept a keyword ``timeout`` (s,
        default None = no limit) after these parameters.
        """

    @abstractmethod
    def read_available_data_into_buffer(
        self, data_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        """Read what is available now, never more than fits; returns samples per channel read."""

    def read_data(
        self, samples_per_channel: int | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Read into new arrays ``(data[samples, channels], timestamps | None)``.

        ``samples_per_channel=None`` returns what is available now without waiting. The
        default allocates and calls :meth:`read_data_into_buffer`; implementations may
        override it. A count that is no integer >= 0 raises TypeError or ValueError.
        """
        if samples_per_channel is None:
            samples_per_channel = self.available_samples
        else:
            samples_per_channel = check_count(
                samples_per_channel,
                sys.maxsize,
                "samples_per_channel",
                "the largest possible array",
            )
        data = np.empty(
            (samples_per_channel, len(self.active_channels)), self.constraints.data_type
        )
        timestamped = self.constraints.sample_timing == SampleTiming.TIMESTAMP
        stamps = np.empty(samples_per_channel) if timestamped else None
        if samples_per_channel:
            self.read_data_into_buffer(data, samples_per_channel, stamps)
        return data, stamps

    @abstractmethod
    def read_single_point(self) -> tuple[np.ndarray, np.float64 | None]:
        """The newest sample of every active channel ``(data[channels], timestamp | None)``."""
