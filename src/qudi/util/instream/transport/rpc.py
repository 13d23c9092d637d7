"""The calls between a stream share and its consumer in another process, as plain values.

Over rpyc a call's result and its exception would travel by reference (a traceback sent back
keeps the share alive, its frames reference it, past the death of the caller's process), so a
share answers every call with a tuple of plain values that rpyc copies:

* ``("ok", result)``
* ``("error", class name, message)``, or ``("error", class name, message, details)`` where
  ``details`` is a tuple of ``(attribute, value)`` pairs, e.g. a
  :class:`~qudi.util.instream.errors.StreamBusyError`'s ``running_readers``.

:func:`answer` makes the reply on the share's side; :func:`call` raises the error again on the
consumer's side, as the same class with the same attributes where it is one of the known ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qudi.util.instream.enums import member_name
from qudi.util.instream.errors import (
    StreamBusyError,
    StreamCapacityError,
    StreamError,
    StreamFaultError,
    StreamFormatError,
    StreamNotFoundError,
    StreamStoppedError,
    StreamTimeoutError,
)
from qudi.util.instream.ring import StreamRing

__all__ = ["REMOTE_ERRORS", "REMOTE_METHODS", "answer", "call", "configure_share", "stream_id"]

#: What a consumer may call on a share.
REMOTE_METHODS = (
    "start",
    "start_from",
    "start_publishing",
    "stop",
    "configure",
    "describe",
    "close",
    "publish_security",
)
#: The errors raised again as their own class on the consumer's side (else StreamError).
REMOTE_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        StreamError,
        StreamBusyError,
        StreamCapacityError,
        StreamStoppedError,
        StreamFaultError,
        StreamTimeoutError,
        StreamFormatError,
        StreamNotFoundError,
        ValueError,
        TypeError,
        RuntimeError,
    )
}


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(name) for name in value)


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


#: The attributes an error carries across, as plain values, by class.
_DETAILS: dict[type[Exception], dict[str, Any]] = {
    StreamBusyError: {"running_readers": _names},
    StreamCapacityError: {"capacity": _count, "nbytes": _count},
}


def stream_id(ring: StreamRing) -> str:
    """The unique id a hub gives each ring it creates (a replaced ring keeps its name)."""
    return str(ring.info.extra.get("stream_id", ""))


def answer(target: Any, method: str, *args: Any) -> tuple:
    """Run ``target.method(*args)`` for a caller in another process; the reply as above.

    ``method`` must be one of :data:`REMOTE_METHODS` (else the reply is a ``ValueError``).
    """
    if method not in REMOTE_METHODS:
        return ("error", "ValueError", f"{method!r} is not one of {list(REMOTE_METHODS)}")
    try:
        return ("ok", getattr(target, method)(*args))
    except Exception as exc:
        reply: tuple = ("error", type(exc).__name__, str(exc))
        details = _details_of(exc)
        return (*reply, details) if details else reply


def call(share: Any, method: str, *args: Any) -> Any:
    """Call ``method`` of a share (in another process, or this one) through its ``call``;
    return its result, or raise its error here (see the module doc)."""
    result = share.call(method, *args)
    if result[0] == "ok":
        return result[1]
    name, message = str(result[1]), str(result[2])
    known = REMOTE_ERRORS.get(name)
    if known is None:
        raise StreamError(f"{name}: {message}")
    error = known.__new__(known, message)  # the message as given, without re-formatting
    error.args = (message,)
    for attribute, value in _received_details(known, result[3] if len(result) > 3 else ()):
        setattr(error, attribute, value)
    raise error


def configure_share(
    share: Any,
    active_channels: Sequence[str],
    streaming_mode: Any,
    channel_buffer_size: int,
    sample_rate: float,
) -> str:
    """Configure a hub through its share, in plain values; returns the id of the ring to read.

    Raises what the hub's ``configure`` raises (:func:`call`).
    """
    return str(
        call(
            share,
            "configure",
            tuple(str(ch) for ch in active_channels),
            member_name(streaming_mode),  # a name crosses packages and processes
            int(channel_buffer_size),
            float(sample_rate),
        )
    )


def _details_of(exc: Exception) -> tuple[tuple[str, Any], ...]:
    fields = next((f for known, f in _DETAILS.items() if isinstance(exc, known)), {})
    return tuple(_converted(fields, name, getattr(exc, name, None)) for name in fields)


def _received_details(cls: type[Exception], details: Any) -> list[tuple[str, Any]]:
    """The details the class carries, converted again: nothing else is set on the error."""
    fields = next((f for known, f in _DETAILS.items() if issubclass(cls, known)), {})
    found = []
    for entry in tuple(details):
        name = str(entry[0])
        if name in fields:
            found.append(_converted(fields, name, entry[1]))
    return found


def _converted(fields: dict[str, Any], name: str, value: Any) -> tuple[str, Any]:
    """``(name, value as a plain value)``; None if it cannot be one (a reply never fails)."""
    try:
        return name, fields[name](value)
    except (TypeError, ValueError):
        return name, None
