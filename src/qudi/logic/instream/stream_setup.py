"""How the logic's settings meet its streamer: configuring it, and the trace for its stream.

:func:`configure_stream` asks the streamer for a stream; a running consumer pauses its own
stream only when a change must be made, and resumes it whether or not the change was accepted.
:func:`build_trace` makes the :class:`~qudi.logic.instream.trace.TraceBuilder` for the stream's
channels, timing and units (counts per sample shown as counts per second where asked).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from qudi.interface.instream_interface import SampleTiming, StreamingMode
from qudi.logic.instream.settings import TraceSettings
from qudi.logic.instream.trace import TIMINGS, TraceBuilder

__all__ = ["build_trace", "configure_stream", "shown_units", "timing_name"]


def configure_stream(
    streamer, active: Sequence[str], sample_rate: float, buffer_size: int, running: bool
) -> None:
    """Configure ``streamer`` for a continuous stream of ``active`` at ``sample_rate``.

    Parameters
    ----------
    streamer : DataInStreamInterface
        The streamer.
    active : sequence of str
        The channels to stream.
    sample_rate : float
        Samples per second.
    buffer_size : int
        The ``channel_buffer_size`` to ask for.
    running : bool
        Whether this consumer streams now: it then tries the configuration as it is (a
        streamer already running so accepts it as a no-op), and only if that is refused stops
        its stream, configures and starts it again; not when the refusal names other running
        consumers (a ``StreamBusyError``), which pausing would not change.

    Raises
    ------
    Exception
        What the streamer raises (``StreamBusyError`` while others stream, a bad value);
        a running consumer streams again afterwards.
    """
    arguments = {
        "active_channels": list(active),
        "streaming_mode": StreamingMode.CONTINUOUS,
        "channel_buffer_size": int(buffer_size),
        "sample_rate": sample_rate,
    }
    if running:
        try:
            streamer.configure(**arguments)
            return
        except Exception as refused:  # a change: this consumer must not stream while it is made
            if _others_stream(refused, streamer):
                raise  # pausing would not help, and would lose samples
        streamer.stop_stream()
        try:
            streamer.configure(**arguments)
        finally:
            streamer.start_stream()
        return
    streamer.configure(**arguments)


def _others_stream(refused: Exception, streamer) -> bool:
    """Whether a refusal names running consumers other than this one: our buffer's reader
    is named after the buffer module, on a remote hub ``<module>@<host>:<pid>``."""
    running = getattr(refused, "running_readers", None)
    own = getattr(streamer, "module_name", None)
    if not isinstance(running, (tuple, list)) or not isinstance(own, str):
        return False
    return any(name != own and not str(name).startswith(f"{own}@") for name in running)


def timing_name(constraints) -> str:
    """The stream's sample timing as a name the trace knows (``CONSTANT`` if it is INVALID)."""
    name = SampleTiming.coerce(constraints.sample_timing).name
    return name if name in TIMINGS else "CONSTANT"


def shown_units(
    units: Mapping[str, str],
    channels: Iterable[str],
    count_units: Iterable[str],
    to_rate: bool,
    digital: Iterable[str] = (),
) -> dict[str, str]:
    """Units as the trace shows them: counts-like units become ``c/s`` if ``to_rate``.

    Parameters
    ----------
    units : mapping of str to str
        The streamer's unit per channel.
    channels : iterable of str
        The channels to give.
    count_units : iterable of str
        Units that are counts per sample (any case).
    to_rate : bool
        The logic's ``calc_digital_freq``.
    digital : iterable of str, optional
        Digital lines: their 0/1 values keep their unit.

    Returns
    -------
    dict
        Unit per channel.
    """
    counts, lines = {unit.lower() for unit in count_units}, set(digital)
    return {
        ch: "c/s" if to_rate and ch not in lines and units[ch].lower() in counts else units[ch]
        for ch in channels
    }


def build_trace(
    constraints,
    channels: Sequence[str],
    averaged: Sequence[str],
    settings: TraceSettings,
    count_units: Iterable[str],
    to_rate: bool,
    placeholder: bool = False,
    raw_scaling: Sequence[Sequence[float]] | None = None,
    digital: Sequence[str] = (),
) -> TraceBuilder:
    """The trace for ``channels`` of a stream with these constraints and settings.

    Parameters
    ----------
    constraints : DataInStreamConstraints
        The streamer's constraints (units, timing).
    channels, averaged : sequence of str
        The trace's channels, and those with a moving average.
    settings : TraceSettings
        The settings in force.
    count_units : iterable of str
        Units that are counts per sample.
    to_rate : bool
        Show counts per sample as counts per second (multiplied by the sample rate).
    placeholder : bool, optional
        Show a window of zeros before the first point (see ``TraceBuilder``).
    raw_scaling : sequence of sequence of float, optional
        Each channel's polynomial from raw codes to volts, if the stream carries codes.
    digital : sequence of str, optional
        The digital lines among ``channels``: never scaled, oversampled by their highest value.

    Returns
    -------
    TraceBuilder
        A new, empty trace.

    Raises
    ------
    MemoryError
        The window does not fit in memory.
    """
    counts = {unit.lower() for unit in count_units}
    units = constraints.channel_units
    lines = set(digital)
    scale = {
        ch: settings.sample_rate
        for ch in channels
        if to_rate and ch not in lines and units[ch].lower() in counts
    }
    return TraceBuilder(
        list(channels),
        settings.data_rate,
        settings.trace_window_size,
        oversampling=settings.oversampling_factor,
        moving_average_width=settings.moving_average_width,
        averaged=list(averaged),
        count_scale=scale,
        timing=timing_name(constraints),
        placeholder=placeholder,
        raw_scaling=raw_scaling,
        digital=list(digital),
    )
