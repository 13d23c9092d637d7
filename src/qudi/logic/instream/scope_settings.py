"""The triggered ("scope") view's settings: names, defaults and the checks of a change.

One dict of plain values (it is saved as a status variable and shown in the GUI):

* ``enabled``: whether the logic cuts windows while it reads (False);
* ``source``: what triggers: ``'level'`` (a crossing of ``level`` by ``channel``),
  ``'digital'`` (an edge of the 0/1 line ``channel``, a crossing of 0.5), ``'marker'``
  (every marker whose text holds ``marker_text``; ``''`` matches every marker) or
  ``'event'`` (every event of the logic's ``trigger_events`` stream, see
  :mod:`qudi.logic.instream.scope_events`);
* ``event_channels``: the event channels whose events trigger (``[]``: every channel);
  ``event_threshold``: only events whose ``value`` is at least this trigger (None: every
  event; e.g. 0.5 keeps the rising edges of a TTL line's edge events, valued 1 and 0);
* ``channel``: the channel that triggers (None: the first active channel);
* ``edge``: ``'rising'``, ``'falling'`` or ``'both'``; ``level`` and ``hysteresis`` in the
  channel's unit (see :class:`~qudi.util.instream.triggered.LevelTrigger`);
* ``unit``: ``'samples'`` or ``'seconds'``, the unit of ``pre``, ``post`` and ``holdoff``;
* ``pre``, ``post``: the window before the trigger sample and from it on; ``holdoff``: the
  time after a trigger in which further triggers are held off (counted, no window);
* ``windows``: how many of the newest windows are kept (overlaid and averaged);
* ``display``: ``'overlay'``, ``'average'`` or ``'both'``, what a view draws.

:func:`checked_scope_settings` checks a change against the settings in force and returns
the new settings whole, or raises naming the key, the value and what is valid (so a refused
change changes nothing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from qudi.util.instream.triggered import EDGES

__all__ = [
    "DEFAULT_SCOPE_SETTINGS",
    "MAX_SCOPE_BYTES",
    "MAX_WINDOW_SAMPLES",
    "SCOPE_DISPLAYS",
    "SCOPE_SOURCES",
    "SCOPE_UNITS",
    "checked_scope_settings",
    "restored_scope_settings",
    "window_samples",
]

SCOPE_SOURCES = ("level", "digital", "marker", "event")
SCOPE_UNITS = ("samples", "seconds")
SCOPE_DISPLAYS = ("overlay", "average", "both")
MAX_KEPT_WINDOWS = 1000
MAX_WINDOW_SAMPLES = 1 << 20  # pre + post: one window of a 1 MS/s stream is a second
MAX_SCOPE_BYTES = 256 * 1024**2  # the kept windows of every channel, float64

DEFAULT_SCOPE_SETTINGS: dict[str, Any] = {
    "enabled": False,
    "source": "level",
    "channel": None,
    "edge": "rising",
    "level": 0.0,
    "hysteresis": 0.0,
    "unit": "samples",
    "pre": 100,
    "post": 400,
    "holdoff": 0,
    "windows": 10,
    "display": "both",
    "marker_text": "",
    "event_channels": [],
    "event_threshold": None,
}


def _number(key: str, value: object, low: float = -math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"scope setting {key!r} is {value!r}: use a finite number")
    if value < low:
        raise ValueError(f"scope setting {key!r} is {value!r}: use a number >= {low:g}")
    return float(value)


def _choice(key: str, value: object, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ValueError(f"scope setting {key!r} is {value!r}: use one of {list(valid)}")
    return str(value)


def _span(key: str, value: object, unit: str, low: int) -> int | float:
    """A pre/post/holdoff value: a whole number of samples, or seconds."""
    if unit == "samples":
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(
                f"scope setting {key!r} is {value!r}: use a whole number >= {low} of samples "
                "(or set unit 'seconds')"
            )
        return int(value)
    return _number(key, value, 0.0)


def window_samples(settings: Mapping[str, Any], sample_rate: float) -> tuple[int, int, int]:
    """``(pre, post, holdoff)`` in samples at ``sample_rate`` (seconds are rounded)."""
    if settings["unit"] == "samples":
        return int(settings["pre"]), int(settings["post"]), int(settings["holdoff"])
    pre, post, holdoff = (round(settings[k] * sample_rate) for k in ("pre", "post", "holdoff"))
    return int(pre), max(1, int(post)), int(holdoff)


def checked_scope_settings(
    current: Mapping[str, Any],
    changes: Mapping[str, Any],
    channels: Sequence[str],
    sample_rate: float,
    event_channels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The settings ``current`` with ``changes`` applied, each checked.

    Parameters
    ----------
    current : mapping
        The settings in force (checked before).
    changes : mapping
        Settings to change, by name.
    channels : sequence of str
        The streamer's channels (``channel`` must be one of them, or None).
    sample_rate : float
        The stream's sample rate in Hz (to check the window in samples).
    event_channels : sequence of str, optional
        The channels of the event stream that may trigger (None: no event stream is
        connected, so ``source`` ``'event'`` is refused).

    Returns
    -------
    dict
        The new settings, whole.

    Raises
    ------
    ValueError
        An unknown key, a bad value, or windows that would take too much memory; the
        message names the key, the value and what is valid.
    """
    unknown = sorted(set(changes) - set(DEFAULT_SCOPE_SETTINGS))
    if unknown:
        raise ValueError(
            f"unknown scope setting {unknown[0]!r}: valid are {list(DEFAULT_SCOPE_SETTINGS)}"
        )
    new = {**current, **changes}
    if not isinstance(new["enabled"], bool):
        raise ValueError(f"scope setting 'enabled' is {new['enabled']!r}: use True or False")
    _choice("source", new["source"], SCOPE_SOURCES)
    _check_events(new, event_channels)
    _choice("edge", new["edge"], EDGES)
    _choice("unit", new["unit"], SCOPE_UNITS)
    _choice("display", new["display"], SCOPE_DISPLAYS)
    if new["channel"] is not None and new["channel"] not in channels:
        raise ValueError(
            f"scope setting 'channel' is {new['channel']!r}: use one of {list(channels)} "
            "(or None for the first active channel)"
        )
    new["level"] = _number("level", new["level"])
    new["hysteresis"] = _number("hysteresis", new["hysteresis"], 0.0)
    unit = new["unit"]
    new["pre"] = _span("pre", new["pre"], unit, 0)
    new["post"] = _span("post", new["post"], unit, 1)
    new["holdoff"] = _span("holdoff", new["holdoff"], unit, 0)
    kept = new["windows"]
    if isinstance(kept, bool) or not isinstance(kept, int) or not 1 <= kept <= MAX_KEPT_WINDOWS:
        raise ValueError(
            f"scope setting 'windows' is {kept!r}: use a whole number from 1 to "
            f"{MAX_KEPT_WINDOWS} (the newest windows kept)"
        )
    if not isinstance(new["marker_text"], str):
        raise ValueError(
            f"scope setting 'marker_text' is {new['marker_text']!r}: use a str ('' matches "
            "every marker)"
        )
    pre, post, _ = window_samples(new, sample_rate)
    if unit == "seconds" and post < 1:
        raise ValueError(f"scope setting 'post' is {new['post']!r} s: less than one sample")
    width = pre + post
    if width > MAX_WINDOW_SAMPLES:
        raise ValueError(
            f"scope settings 'pre' + 'post' are {width} samples at {sample_rate:g} Hz: use at "
            f"most {MAX_WINDOW_SAMPLES}"
        )
    memory = width * kept * max(1, len(channels)) * 8
    if memory > MAX_SCOPE_BYTES:
        raise ValueError(
            f"scope setting 'windows' is {kept}: {kept} windows of {width} samples of "
            f"{len(channels)} channels take {memory} bytes, more than {MAX_SCOPE_BYTES}; keep "
            "fewer or shorter windows"
        )
    return new


def _check_events(new: dict[str, Any], event_channels: Sequence[str] | None) -> None:
    """The event keys: ``source`` 'event' only with an event stream; its channels; the
    threshold (``new``'s ``event_channels`` becomes a list, its threshold a float)."""
    if new["source"] == "event" and event_channels is None:
        raise ValueError(
            "scope setting 'source' is 'event': no event stream is connected (the logic's "
            "'trigger_events' connector); use one of ['level', 'digital', 'marker']"
        )
    chosen = new["event_channels"]
    valid = list(event_channels or [])
    if (
        not isinstance(chosen, (list, tuple))
        or not all(isinstance(name, str) for name in chosen)
        or len(set(chosen)) != len(chosen)
        or any(name not in valid for name in chosen)
    ):
        raise ValueError(
            f"scope setting 'event_channels' is {chosen!r}: use a list of distinct names "
            f"from {valid} ([] for every event channel)"
        )
    new["event_channels"] = list(chosen)
    threshold = new["event_threshold"]
    if threshold is not None:
        number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
        if not number or not math.isfinite(threshold):
            raise ValueError(
                f"scope setting 'event_threshold' is {threshold!r}: use a finite number (the "
                "least value of an event that triggers) or None for every event"
            )
        new["event_threshold"] = float(threshold)


def restored_scope_settings(
    saved: object,
    channels: Sequence[str],
    sample_rate: float,
    event_channels: Sequence[str] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Saved settings if they are still valid, else the defaults, with the reason why not."""
    if not isinstance(saved, Mapping):
        return {**DEFAULT_SCOPE_SETTINGS, "event_channels": []}, None
    try:
        checked = checked_scope_settings(
            DEFAULT_SCOPE_SETTINGS, saved, channels, sample_rate, event_channels
        )
        return checked, None
    except ValueError as invalid:
        return {**DEFAULT_SCOPE_SETTINGS, "event_channels": []}, str(invalid)
