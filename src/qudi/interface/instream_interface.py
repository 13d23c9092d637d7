"""DataInStreamInterface: the contract of a device that streams samples into qudi.

The abstract module class, its enums and constraints, and the argument checks every
implementation shares. Nothing here moves data: sharing a stream with other processes and
hosts is :class:`qudi.hardware.instream.stream_sharing.SharedStreamer`, a mixin.

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
- **Units**: a channel whose unit is a rate (``Hz``, ``c/s``, ``cps``, ...) carries a rate,
  whatever the sample rate: a counting channel in ``c/s`` holds counts per second, not counts
  per sample (as qudi-iqo-modules' NI streamer delivers them).
- **Enums** of either package are accepted wherever a mode or a timing is passed:
  ``StreamingMode(theirs.StreamingMode.FINITE)``, ``StreamingMode("finite")`` and
  ``StreamingMode(1)`` all give our ``StreamingMode.FINITE``, and our members equal theirs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

import numpy as np
from qudi.core.module import Base
from qudi.util.constraints import ScalarConstraint

from qudi.util.instream import arrays
from qudi.util.instream.arrays import as_channel_names, check_count, check_in_range
from qudi.util.instream.stream_format import check_sample_dtype

__all__ = [
    "DataInStreamConstraints",
    "DataInStreamInterface",
    "SampleTiming",
    "StreamRequest",
    "StreamingMode",
    "check_read_buffers",
    "checked_sample_dtype",
    "check_stream_request",
    "interchange_type",
]


class _InterchangeableEnum(Enum):
    """An enum whose members equal same-named, same-valued members of a namesake class.

    qudi-iqo-modules has its own ``StreamingMode`` and ``SampleTiming``. Its modules compare our
    members with theirs (``timing == SampleTiming.TIMESTAMP``) and pass theirs to us, so both
    must work: equality and hashing match, construction (``StreamingMode(x)``) takes their
    members, names (any case) and ints, and :meth:`coerce` does the same with a clear error.

    Their enums cannot take ours the same way (``theirs.StreamingMode(ours)`` raises): a plain
    ``Enum`` finds a member by hashing the value, and ours hash like their members (by name),
    not like ints. Pass ``member.value`` (an int, which both interfaces accept) to a module of
    theirs.
    """

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Enum):
            return type(other).__name__ == type(self).__name__ and other.value == self.value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._name_)  # what a plain Enum member hashes to

    @classmethod
    def _missing_(cls, value: object):
        """Our member for a namesake package's member or for a name; None if there is none."""
        if isinstance(value, Enum) and type(value).__name__ == cls.__name__:
            member = cls.__members__.get(value.name)
            return member if member is not None and member.value == value.value else None
        if isinstance(value, str):
            name = value.strip().upper()
            prefix = f"{cls.__name__.upper()}."
            return cls.__members__.get(name[len(prefix) :] if name.startswith(prefix) else name)
        if isinstance(value, np.integer):
            return cls._value2member_map_.get(int(value))
        return None

    @classmethod
    def coerce(cls, value: object, what: str | None = None):
        """Our member for ``value``, with an error that names what is valid.

        Parameters
        ----------
        value : object
            A member of ours or of the namesake enum of another package, a member's name (any
            case) or its int value. A ``bool`` or a ``float`` is none of these.
        what : str, optional
            The argument's name, for the error message (default: the enum's name).

        Returns
        -------
        StreamingMode or SampleTiming
            Our member (``INVALID`` too, if ``value`` names it).

        Raises
        ------
        ValueError
            If ``value`` names no member.
        """
        named = isinstance(value, (Enum, str, np.integer)) or (
            isinstance(value, int) and not isinstance(value, bool)
        )
        if named:
            try:
                return cls(value)
            except ValueError:
                pass
        valid = ", ".join(m.name for m in cls if m.value >= 0)
        raise ValueError(f"{what or cls.__name__} must be one of {valid}, got {value!r}")


class StreamingMode(_InterchangeableEnum):
    """How long a stream runs."""

    INVALID = -1
    CONTINUOUS = 0  # runs until stopped; the device buffer is a ring that must be read in time
    FINITE = 1  # stops by itself after channel_buffer_size samples per channel


class SampleTiming(_InterchangeableEnum):
    """When the samples of a stream were taken."""

    INVALID = -1
    CONSTANT = 0  # sample i is taken at i / sample_rate after the start
    TIMESTAMP = 1  # each sample carries its float64 time in s since the start; rate is a hint
    RANDOM = 2  # only the order of samples is known


def check_read_buffers(
    data_buffer: object,
    timestamp_buffer: object,
    channels: int,
    dtype: np.dtype,
    has_timestamps: bool,
    timestamps_required: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """A read call's buffers, checked under the interface's argument names.

    Parameters
    ----------
    data_buffer : object
        The caller's sample buffer: ``[samples, channels]`` or flat, C-contiguous, writable.
    timestamp_buffer : object
        The caller's float64 timestamp buffer, or None.
    channels : int
        Values per sample (the active channels).
    dtype : numpy.dtype
        The stream's sample dtype.
    has_timestamps : bool
        Whether the stream carries timestamps (``SampleTiming.TIMESTAMP``).
    timestamps_required : bool, optional
        Whether a stream with timestamps needs a ``timestamp_buffer``.

    Returns
    -------
    tuple
        The samples as a ``[samples, channels]`` view, the timestamps (or None) and how many
        samples fit in both.

    Raises
    ------
    TypeError, ValueError
        If a buffer is of the wrong type, dtype, shape or layout, named as the caller's
        argument.
    """
    return arrays.check_read_buffers(
        data_buffer,
        timestamp_buffer,
        (channels,),
        dtype,
        has_timestamps,
        timestamps_required=timestamps_required,
        names=("data_buffer", "timestamp_buffer"),
    )


@dataclass(frozen=True)
class StreamRequest:
    """The arguments of one ``configure`` call, checked against the constraints."""

    channels: tuple[str, ...]
    mode: StreamingMode
    buffer_size: int  # samples per channel
    rate: float  # Hz, as requested (the device may coerce it)


def check_stream_request(
    constraints: DataInStreamConstraints,
    active_channels: object,
    streaming_mode: object,
    channel_buffer_size: object,
    sample_rate: object,
    *,
    rate_check: Callable[[object, tuple[str, ...]], float] | None = None,
    buffer_note: str = "",
) -> StreamRequest:
    """Check the arguments of ``configure`` against ``constraints``, each by its own name.

    Parameters
    ----------
    constraints : DataInStreamConstraints
        What the device can do.
    active_channels, streaming_mode, channel_buffer_size, sample_rate : object
        The arguments of :meth:`DataInStreamInterface.configure`, as the caller gave them.
    rate_check : callable, optional
        ``rate_check(sample_rate, channels) -> float`` for devices whose rate limits depend
        on the channels; by default the rate must lie within ``constraints.sample_rate``.
    buffer_note : str, optional
        Where the buffer size limit comes from, for its message (e.g. the option that sets it).

    Returns
    -------
    StreamRequest
        The checked settings.

    Raises
    ------
    TypeError
        If an argument is of the wrong type (e.g. a str for ``active_channels``).
    ValueError
        If an argument is outside what ``constraints`` allow; the message names the argument,
        the value and what is valid.
    """
    channels = as_channel_names(active_channels, known=list(constraints.channel_units))
    mode = StreamingMode.coerce(streaming_mode, "streaming_mode")
    if mode not in constraints.streaming_modes:
        supported = [m.name for m in constraints.streaming_modes]
        raise ValueError(f"streaming_mode {mode.name} is not supported; supported: {supported}")
    size = check_in_range(
        channel_buffer_size,
        constraints.channel_buffer_size.bounds,
        "channel_buffer_size",
        integer=True,
        unit=" samples per channel",
        note=buffer_note,
    )
    if rate_check is None:
        rate = check_in_range(
            sample_rate, constraints.sample_rate.bounds, "sample_rate", unit=" Hz"
        )
    else:
        rate = rate_check(sample_rate, channels)
    return StreamRequest(channels, mode, size, rate)


def checked_sample_dtype(data_type: object) -> np.dtype:
    """``data_type`` as the numpy dtype of a stream's samples.

    Raises
    ------
    ValueError
        If it is no numpy dtype, or one a shared ring cannot hold (see
        :func:`qudi.util.instream.stream_format.check_sample_dtype`: Python objects, no bytes,
        a subarray), naming the value and what would be valid.
    """
    valid = (
        "use a numpy number type such as 'float64', or a fixed-size dtype such as 'S256' or "
        "[('time', '<f8'), ('channel', '<u4'), ('value', '<f4')]"
    )
    try:
        if data_type is None:  # numpy would take it for float64
            raise TypeError
        dtype = np.dtype(data_type)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"data_type {data_type!r} is no numpy dtype: {valid}") from None
    try:
        check_sample_dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"data_type {data_type!r}: {exc}") from None
    return dtype


def interchange_type(dtype: np.dtype) -> type | np.dtype:
    """What :attr:`DataInStreamConstraints.data_type` gives for ``dtype``: its scalar type if
    that rebuilds it exactly (what qudi-iqo-modules expects), else ``dtype`` itself."""
    return dtype.type if np.dtype(dtype.type) == dtype else dtype


class DataInStreamConstraints:
    """What a streaming device can do: channels and units, timing, modes, dtype, rates, buffers.

    ``data_type`` is a numpy scalar *type* (``np.float64``) wherever that type says all there
    is to say, as consumers of the qudi-iqo-modules interface call ``issubclass`` on it. A
    dtype the type cannot rebuild (a structured record such as the event stream's
    ``(time, channel, value)``, ``'S256'`` text, a non-native byte order) stays the whole
    ``numpy.dtype`` instead: its scalar type (``np.void``, ``np.bytes_``) would drop the fields
    and sizes. :attr:`dtype` is always the whole ``numpy.dtype``; either allocates a read's
    buffer (``np.empty(n, constraints.data_type)``).

    Parameters
    ----------
    channel_units : mapping of str to str
        Unit of every channel the device offers, in the device's channel order.
    sample_timing : SampleTiming, int or str
        When the samples are taken (a member of either package, a name or an int).
    streaming_modes : iterable of StreamingMode, int or str
        The modes the device supports.
    data_type : type, numpy.dtype or str
        The samples' numpy dtype: a number type, or any fixed-size dtype (structured records
        included) that holds no Python objects.
    channel_buffer_size : qudi.util.constraints.ScalarConstraint
        Allowed device buffer sizes, in samples per channel.
    sample_rate : qudi.util.constraints.ScalarConstraint, optional
        Allowed sample rates in Hz; required for ``SampleTiming.CONSTANT``.

    Raises
    ------
    TypeError
        If a size or rate constraint is no ``ScalarConstraint``.
    ValueError
        If a timing or mode names no member, ``sample_rate`` is missing for CONSTANT timing, or
        ``data_type`` is no fixed-size numpy dtype.
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
        self._dtype = checked_sample_dtype(data_type)
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
        """When the samples are taken."""
        return self._sample_timing

    @property
    def streaming_modes(self) -> list[StreamingMode]:
        """The modes the device supports."""
        return list(self._streaming_modes)

    @property
    def data_type(self) -> type | np.dtype:
        """The samples' numpy scalar type (e.g. ``np.float64``), or their whole ``numpy.dtype``
        where the type would lose part of it (structured records, text, byte order)."""
        return interchange_type(self._dtype)

    @property
    def dtype(self) -> np.dtype:
        """The samples' whole numpy dtype (fields of a structured record included)."""
        return self._dtype

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
        """Configure the stream while it is stopped.

        Parameters
        ----------
        active_channels : list of str
            The channels to stream, in the order their values appear in each sample.
        streaming_mode : StreamingMode or int
            CONTINUOUS or FINITE (a member of either package, a name or an int).
        channel_buffer_size : int
            Device buffer size in samples per channel (FINITE: the samples to acquire).
        sample_rate : float
            Samples per second per channel; the device may coerce it (see :attr:`sample_rate`).

        Raises
        ------
        TypeError, ValueError
            If an argument is refused; the message says why. A refused call changes nothing.
        """

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

        Implementations should accept a keyword ``timeout`` (s, default None = no limit) after
        these parameters, and raise ``TimeoutError`` (nothing consumed) when it expires.

        Parameters
        ----------
        data_buffer : numpy.ndarray
            Flat (or ``[samples, channels]``), C-contiguous, of ``constraints.data_type``, at
            least ``samples_per_channel * len(active_channels)`` values; filled sample-major
            interleaved.
        samples_per_channel : int
            How many samples of every active channel to read.
        timestamp_buffer : numpy.ndarray, optional
            float64, at least ``samples_per_channel`` long; required for
            ``SampleTiming.TIMESTAMP``.
        """

    @abstractmethod
    def read_available_data_into_buffer(
        self, data_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        """Read what is available now, never more than fits.

        Parameters
        ----------
        data_buffer : numpy.ndarray
            As for :meth:`read_data_into_buffer`.
        timestamp_buffer : numpy.ndarray, optional
            As for :meth:`read_data_into_buffer`.

        Returns
        -------
        int
            Samples per channel read.
        """

    def read_data(
        self, samples_per_channel: int | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Read into new arrays.

        The default allocates and calls :meth:`read_data_into_buffer`; implementations may
        override it.

        Parameters
        ----------
        samples_per_channel : int, optional
            How many samples to wait for; None returns what is available now without waiting.

        Returns
        -------
        tuple
            ``(data[samples, channels], timestamps)``; timestamps are None unless the stream
            has ``SampleTiming.TIMESTAMP``.

        Raises
        ------
        TypeError, ValueError
            If ``samples_per_channel`` is no integer >= 0, or more than
            ``channel_buffer_size`` (nothing is read then).
        """
        if samples_per_channel is None:
            samples_per_channel = self.available_samples
        else:
            # a blocking read can wait for at most a buffer's worth: asking for more would
            # only allocate arrays (perhaps of many GiB) for a read that cannot succeed
            samples_per_channel = check_count(
                samples_per_channel,
                int(self.channel_buffer_size),
                "samples_per_channel",
                "the buffer a blocking read can wait for (channel_buffer_size; read in parts)",
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
