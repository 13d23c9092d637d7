"""What TimeSeriesReaderLogic accepts: its config options and trace settings, checked.

Every check raises before anything changes, with a message that names the key, the value given
and what would be valid. :func:`in_force` gives the settings a stream really runs with, for a
shared stream whose rate another consumer may have chosen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qudi.logic.instream.trace import trace_bytes_per_point
from qudi.util.instream.arrays import as_channel_names

__all__ = [
    "MIN_FRAME_RATE",
    "TRACE_SETTING_KEYS",
    "PointLimit",
    "TraceSettings",
    "check_options",
    "checked_channels",
    "checked_trace_settings",
    "default_settings",
    "in_force",
    "merged_trace_settings",
    "setting_number",
]

TRACE_SETTING_KEYS = (
    "oversampling_factor",
    "moving_average_width",
    "trace_window_size",
    "data_rate",
)
MAX_FRAME_RATE = 200.0
MIN_FRAME_RATE = 0.01  # one frame every 100 s; a Qt timer's interval must fit in 32 bits


@dataclass(frozen=True)
class TraceSettings:
    """The four trace settings users know (``trace_settings`` of the logic)."""

    oversampling_factor: int
    moving_average_width: int
    trace_window_size: float  # seconds, a whole number of points
    data_rate: float  # trace points per second

    @property
    def sample_rate(self) -> float:
        """The stream's sample rate these settings need, in Hz."""
        return self.data_rate * self.oversampling_factor

    def as_dict(self) -> dict[str, int | float]:
        """The settings as ``trace_settings`` and ``sigTraceSettingsChanged`` carry them."""
        return asdict(self)


@dataclass(frozen=True)
class PointLimit:
    """How many points a trace window may hold: its memory bounded by ``max_bytes``.

    Parameters
    ----------
    max_bytes : int
        The logic's option ``max_trace_bytes``.
    channels : int
        Channels of the trace.
    averaged : int
        Channels with a moving average.
    timestamps : bool
        Whether the stream is a ``TIMESTAMP`` stream.
    """

    max_bytes: int
    channels: int
    averaged: int
    timestamps: bool

    @property
    def points(self) -> int:
        """The most points the window may hold."""
        per_point = trace_bytes_per_point(self.channels, self.averaged, self.timestamps)
        return self.max_bytes // per_point


def setting_number(settings: Mapping, key: str, integer: bool = False) -> float | int:
    """One trace setting as a finite number (a whole one if ``integer``).

    Parameters
    ----------
    settings : mapping
        The settings given.
    key : str
        The setting to take.
    integer : bool, optional
        Whether it must be a whole number.

    Returns
    -------
    int or float
        The value.

    Raises
    ------
    ValueError
        The key is missing or its value is not such a number.
    """
    if key not in settings:
        raise ValueError(f"trace setting '{key}' is missing")
    given = value = settings[key]
    kind = "a whole number" if integer else "a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{key} must be {kind}, got {value!r}")
    if isinstance(value, (int, np.integer)):
        if integer:
            return int(value)  # any size: a huge one is refused by the range checks
        value = float(value) if abs(value) < 2**1000 else math.inf
    if not math.isfinite(value) or (integer and value != int(value)):
        raise ValueError(f"{key} must be {kind}, got {given!r}")
    return int(value) if integer else float(value)


def checked_trace_settings(
    settings: Mapping,
    rate_bounds: tuple[float, float],
    limit: PointLimit,
    bounds_of: str = "the streamer's",
) -> TraceSettings:
    """Validated trace settings, the window rounded to whole points.

    Parameters
    ----------
    settings : mapping
        ``oversampling_factor``, ``moving_average_width``, ``trace_window_size`` (s) and
        ``data_rate`` (Hz).
    rate_bounds : tuple of float
        The streamer's lowest and highest sample rate, in Hz.
    limit : PointLimit
        The most points the window may hold.
    bounds_of : str, optional
        Whose bounds ``rate_bounds`` are, for the message (an event stream's bins).

    Returns
    -------
    TraceSettings
        The settings as they will be in force.

    Raises
    ------
    ValueError
        Naming the bad setting, its value and what would be valid.
    """
    oversampling = setting_number(settings, "oversampling_factor", integer=True)
    width = setting_number(settings, "moving_average_width", integer=True)
    rate = setting_number(settings, "data_rate")
    window = setting_number(settings, "trace_window_size")
    if oversampling < 1:
        raise ValueError(f"oversampling_factor must be an integer >= 1, got {oversampling}")
    if width < 1 or width % 2 == 0:
        raise ValueError(f"moving_average_width must be an odd integer >= 1, got {width}")
    low, high = rate_bounds
    if not (rate > 0 and low <= rate * oversampling <= high):
        raise ValueError(
            f"data_rate {rate} Hz x oversampling_factor {oversampling} = "
            f"{rate * oversampling} Hz is outside {bounds_of} {low} to {high} Hz"
        )
    points = round(window * rate)
    if points < max(width, 2):
        raise ValueError(
            f"trace_window_size {window} s holds {points} points at {rate} Hz; it needs at "
            f"least {max(width, 2)} (the moving average width)"
        )
    if points > limit.points:
        raise ValueError(
            f"trace_window_size {window} s holds {points} points at {rate} Hz; a trace of "
            f"{limit.channels} channels ({limit.averaged} averaged) may hold at most "
            f"{limit.points} points (option max_trace_bytes: {limit.max_bytes}): use "
            f"trace_window_size <= {limit.points / rate:.6g} s"
        )
    return TraceSettings(int(oversampling), int(width), points / rate, float(rate))


def in_force(adopted: TraceSettings, sample_rate: float, limit: PointLimit) -> TraceSettings:
    """The settings a stream running at ``sample_rate`` really has.

    Another consumer of a shared stream may have set its rate: the data rate then follows the
    stream (at the adopted oversampling), and the window keeps its length in seconds as far
    as the moving average and the point limit allow.

    Parameters
    ----------
    adopted : TraceSettings
        The settings last adopted.
    sample_rate : float
        The stream's sample rate now, in Hz.
    limit : PointLimit
        The most points the window may hold.

    Returns
    -------
    TraceSettings
        ``adopted`` itself when the stream runs as it asked.
    """
    if not (isinstance(sample_rate, (int, float)) and math.isfinite(sample_rate)):
        return adopted
    if sample_rate <= 0 or math.isclose(sample_rate, adopted.sample_rate, rel_tol=1e-12):
        return adopted
    data_rate = sample_rate / adopted.oversampling_factor
    least = max(adopted.moving_average_width, 2)
    points = min(round(adopted.trace_window_size * data_rate), limit.points)
    points = max(points, least)
    return TraceSettings(
        adopted.oversampling_factor, adopted.moving_average_width, points / data_rate, data_rate
    )


def default_settings(default_rate: float) -> dict[str, int | float]:
    """Settings every streamer can do: its default rate, 100 points, no averaging."""
    return {
        "oversampling_factor": 1,
        "data_rate": float(default_rate),
        "moving_average_width": 1,
        "trace_window_size": 100 / float(default_rate),
    }


def check_options(options: Mapping[str, Any]) -> None:
    """Check the logic's config options, by their config keys.

    Parameters
    ----------
    options : mapping
        ``max_frame_rate``, ``channel_buffer_size``, ``max_raw_data_bytes``,
        ``max_trace_bytes``, ``calc_digital_freq``, ``start_reading_on_activation`` and
        ``count_units``, as configured.

    Raises
    ------
    ValueError
        Naming the option, its value and what would be valid.
    """
    rate = options["max_frame_rate"]
    number = isinstance(rate, (int, float)) and not isinstance(rate, bool)
    if not number or not 0 < rate <= MAX_FRAME_RATE:
        raise ValueError(f"option 'max_frame_rate' is {rate!r}: use 0 < Hz <= {MAX_FRAME_RATE:g}")
    if rate < MIN_FRAME_RATE:
        raise ValueError(
            f"option 'max_frame_rate' is {rate!r}: use at least {MIN_FRAME_RATE} Hz (one frame "
            f"every {1 / MIN_FRAME_RATE:g} s)"
        )
    for key in ("channel_buffer_size", "max_raw_data_bytes", "max_trace_bytes"):
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"option '{key}' is {value!r}: use a positive integer")
    for key in ("calc_digital_freq", "start_reading_on_activation"):
        if not isinstance(options[key], bool):
            raise ValueError(f"option '{key}' is {options[key]!r}: use True or False")
    units = options["count_units"]
    if not isinstance(units, list) or not all(isinstance(u, str) for u in units):
        raise ValueError(
            f"option 'count_units' is {units!r}: use a list of unit names such as ['counts']"
        )


def merged_trace_settings(
    current: Mapping[str, object], settings_dict: object, changes: Mapping[str, object]
) -> dict[str, object]:
    """The settings in force with a caller's changes (a dict and keywords) over them.

    Parameters
    ----------
    current : mapping
        The settings in force.
    settings_dict : mapping or None
        Changes given as a dict.
    changes : mapping
        Changes given as keywords (they win).

    Returns
    -------
    dict
        All four settings, not yet checked (see :func:`checked_trace_settings`).

    Raises
    ------
    TypeError
        ``settings_dict`` is not a mapping.
    ValueError
        A key that is no trace setting, naming the valid ones.
    """
    if settings_dict is not None and not isinstance(settings_dict, Mapping):
        raise TypeError(f"settings_dict must be a dict of trace settings, got {settings_dict!r}")
    changes = {**(settings_dict or {}), **changes}
    unknown = sorted(str(key) for key in set(changes) - set(TRACE_SETTING_KEYS))
    if unknown:
        raise ValueError(
            f"unknown trace settings {unknown}; valid are {sorted(TRACE_SETTING_KEYS)}"
        )
    return {**current, **changes}


def checked_channels(
    enabled: Any, averaged: Any, available: Iterable[str]
) -> tuple[list[str], list[str]]:
    """A channel selection: the active channels and those of them with a moving average.

    Parameters
    ----------
    enabled : list of str
        Channels to stream, each once, at least one.
    averaged : list of str
        Channels to average; those not enabled are dropped.
    available : iterable of str
        The streamer's channels.

    Returns
    -------
    tuple of list of str
        ``(enabled, averaged)``.

    Raises
    ------
    TypeError
        A selection that is not a list of names (a lone str is refused).
    ValueError
        Unknown, repeated or no channels, naming the valid ones.
    """
    # averaged may be empty, so only its type is checked; enabled gets the streamers' check
    if isinstance(averaged, str) or not isinstance(averaged, Iterable):
        raise TypeError(f"averaged must be a list of channel names, got {averaged!r}")
    enabled = list(as_channel_names(enabled, "enabled", known=list(available)))
    return enabled, [ch for ch in averaged if ch in enabled]
