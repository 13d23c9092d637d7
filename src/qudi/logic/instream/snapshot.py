"""Trace snapshots: the window (raw and averaged) as qudi text data, plus a thumbnail.

The table has a column ``time (s)``, one per raw channel and one per averaged channel. An
averaged point sits in the row of its centre (its x is that raw point's x); rows without a
centred average yet (the newest ``width // 2``) hold NaN there. The file name comes from
:mod:`qudi.logic.instream.file_names`: a snapshot never replaces an earlier one.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Mapping

import numpy as np
from qudi.util.datastorage import TextDataStorage

from qudi.logic.instream.file_names import nametag, unused_path

__all__ = ["save_snapshot", "snapshot_figure", "snapshot_table"]


def snapshot_table(
    x: np.ndarray,
    raw: Mapping[str, np.ndarray],
    x_avg: np.ndarray | None,
    averaged: Mapping[str, np.ndarray] | None,
    units: Mapping[str, str],
) -> tuple[np.ndarray, list[str]]:
    """The snapshot's rows and column headers.

    Parameters
    ----------
    x : numpy.ndarray
        Times (or indices) of the raw points.
    raw : mapping of str to numpy.ndarray
        Raw points per channel.
    x_avg : numpy.ndarray or None
        Times of the averaged points (a subset of ``x``).
    averaged : mapping of str to numpy.ndarray or None
        Averaged points per channel.
    units : mapping of str to str
        Unit per channel, as the trace shows it.

    Returns
    -------
    tuple
        The table ``[rows, columns]`` and its headers.
    """
    columns = [np.asarray(x)] + [np.asarray(values) for values in raw.values()]
    headers = ["time (s)"] + [f"{ch} ({units[ch]})" for ch in raw]
    if averaged and x_avg is not None:
        rows = np.searchsorted(x, x_avg)
        inside = rows < len(x)
        for channel, values in averaged.items():
            column = np.full(len(x), np.nan)
            column[rows[inside]] = values[inside]
            columns.append(column)
            headers.append(f"{channel} averaged ({units[channel]})")
    table = np.column_stack(columns) if len(x) else np.empty((0, len(columns)))
    return table, headers


def snapshot_figure(x, raw, x_avg, averaged, units):
    """A matplotlib figure of the snapshot (time from the window's start), for the thumbnail.

    Parameters are those of :func:`snapshot_table`; returns a ``matplotlib.figure.Figure``.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4))
    axes = figure.add_subplot()
    origin = x[0] if len(x) else 0.0
    for channel, values in raw.items():
        axes.plot(x - origin, values, linewidth=0.8, label=f"{channel} ({units[channel]})")
    for channel, values in (averaged or {}).items():
        axes.plot(x_avg - origin, values, linewidth=1.5, label=f"{channel} averaged")
    axes.set_xlabel("time (s)")
    axes.legend(loc="upper right", fontsize="small")
    return figure


def save_snapshot(
    directory: str,
    x: np.ndarray,
    raw: Mapping[str, np.ndarray],
    x_avg: np.ndarray | None,
    averaged: Mapping[str, np.ndarray] | None,
    units: Mapping[str, str],
    *,
    metadata: Mapping[str, object],
    name_tag: str = "",
    save_figure: bool = True,
) -> str:
    """Write a snapshot as qudi text data (and a PNG thumbnail) into ``directory``.

    Parameters
    ----------
    directory : str
        The logic's data directory (created if missing).
    x, raw, x_avg, averaged, units
        The trace, as for :func:`snapshot_table`.
    metadata : mapping
        Written to the file's header.
    name_tag : str, optional
        The user's tag for the file name (made safe, see :func:`~file_names.nametag`).
    save_figure : bool, optional
        Whether to save the thumbnail too.

    Returns
    -------
    str
        The data file's path.

    Raises
    ------
    TypeError
        ``name_tag`` is not a str.
    """
    if not isinstance(name_tag, str):
        raise TypeError(f"name_tag must be a string (may be empty), got {name_tag!r}")
    table, headers = snapshot_table(x, raw, x_avg, averaged, units)
    os.makedirs(directory, exist_ok=True)
    timestamp = datetime.datetime.now()
    path = unused_path(
        directory, timestamp, nametag(name_tag), ".dat", companions=(".png",), reserve=True
    )
    try:
        storage = TextDataStorage(root_dir=directory)
        path, _, _ = storage.save_data(
            table,
            metadata=dict(metadata),
            timestamp=timestamp,
            column_headers=headers,
            filename=os.path.basename(path),
        )
        if save_figure:
            figure = snapshot_figure(x, raw, x_avg, averaged, units)
            storage.save_thumbnail(figure, os.path.splitext(path)[0])
    except BaseException:
        with contextlib.suppress(OSError):  # our own file: never leave half a snapshot
            os.unlink(path)
        raise
    return path
