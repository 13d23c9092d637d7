"""File names for the logic's snapshots and recordings: qudi's timestamped names, never a taken one.

A name is ``<YYYYmmdd-HHMM-SS>_time_series[_<tag>][_<n>]<ext>`` in one directory. A user's tag is
made safe first: path separators, NUL and other control characters become ``_``, runs of
whitespace one ``_`` (as qudi does), and it is cut to :data:`MAX_TAG_CHARACTERS`; so a tag can
neither leave the directory nor drop the timestamp, and the name stays within the file
system's 255-byte limit.
"""

from __future__ import annotations

import datetime
import os
import re

from qudi.util.datastorage import get_timestamp_filename

__all__ = ["MAX_TAG_CHARACTERS", "nametag", "unused_path"]

#: Longest tag kept (characters; at most 4 bytes each in UTF-8, so names stay < 255 bytes).
MAX_TAG_CHARACTERS = 48
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def nametag(tag: str) -> str:
    """The name tag of a file: ``time_series`` and the user's tag, made safe.

    Parameters
    ----------
    tag : str
        The user's tag, may be empty.

    Returns
    -------
    str
        ``time_series`` or ``time_series_<safe tag>``.
    """
    safe = _UNSAFE.sub("_", tag)
    safe = re.sub(r"\s+", "_", safe.strip())[:MAX_TAG_CHARACTERS]
    return f"time_series_{safe}" if safe else "time_series"


def unused_path(
    directory: str,
    timestamp: datetime.datetime,
    tag: str,
    ext: str,
    *,
    companions: tuple[str, ...] = (),
    reserve: bool = False,
) -> str:
    """qudi's file name for this time and tag, numbered if that name is taken already.

    Parameters
    ----------
    directory : str
        Where the file goes (it must exist).
    timestamp : datetime.datetime
        The time in the name.
    tag : str
        A name tag from :func:`nametag`.
    ext : str
        The extension, with its dot.
    companions : tuple of str, optional
        Extensions of files that will share the name's stem (a snapshot's ``.png``); the
        name is taken if any of them exists too.
    reserve : bool, optional
        Create the file, empty, so that nobody else takes the name before it is written
        (atomic: ``O_EXCL``).

    Returns
    -------
    str
        The path.
    """
    stem = os.path.join(directory, get_timestamp_filename(timestamp, tag))
    number = 0
    while True:
        base = stem if number == 0 else f"{stem}_{number}"
        number += 1
        if any(os.path.lexists(base + other) for other in companions):
            continue
        path = base + ext
        if not reserve:
            if not os.path.lexists(path):
                return path
            continue
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            continue
        return path
