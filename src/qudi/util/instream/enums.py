"""Enum members that cross packages and processes are known by their names.

qudi-iqo-modules and this package each define ``StreamingMode`` and ``SampleTiming``; a member
that arrives through rpyc is a proxy of another process's class. Their names are what they
share, so every comparison and every message across those lines goes by :func:`member_name`.
"""

from __future__ import annotations

import enum

__all__ = ["in_kind_of", "member_name"]


def member_name(value: object) -> object:
    """The name of an enum member of any package or process; anything else as given.

    Parameters
    ----------
    value
        An enum member (ours, qudi-iqo-modules', one seen through rpyc), or a name or number
        standing for one.

    Returns
    -------
    object
        ``value.name`` if ``value`` has a str ``name``, else ``value`` itself (so a number
        stays a number for the receiving enum to interpret).
    """
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else value


def in_kind_of(value: object, example: object) -> object:
    """``value`` as a member of ``example``'s enum, when that enum has a member of its name.

    Each package's streamer then gets its own enum: qudi-iqo-modules' streamers build theirs
    from what they are given (``StreamingMode(mode)``), which a member of ours cannot be.

    Parameters
    ----------
    value
        What a caller asked for: a member of any package's enum, or a name.
    example
        What the receiver holds now (e.g. a source's ``streaming_mode``).

    Returns
    -------
    object
        ``example``'s enum member of ``value``'s name if ``example`` is an enum member and has
        one; ``value`` itself otherwise.
    """
    if not isinstance(example, enum.Enum):
        return value
    name = member_name(value)
    members = type(example).__members__
    return members[name] if isinstance(name, str) and name in members else value
