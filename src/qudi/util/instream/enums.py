"""Enum members that cross packages and processes are known by their names.

qudi-iqo-modules and this package each define ``StreamingMode`` and ``SampleTiming``; a member
that arrives through rpyc is a proxy of another process's class. Their names are what they
share, so every comparison and every message across those lines goes by :func:`member_name`.
"""

from __future__ import annotations

__all__ = ["member_name"]


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
