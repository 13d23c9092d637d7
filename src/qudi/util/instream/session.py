"""Reading a recorded session: its streams, their gaps, time tables and the markers.

:func:`open_session` opens a session file (see :mod:`qudi.util.instream.session_file`) while it
is being written, after it was finished, or after its writer was killed, and also a one-stream
recording of :class:`~qudi.util.instream.recorder.StreamRecorder` (as a session of one stream
without markers or time table)::

    with open_session("session.h5") as session:
        stream = session.streams["counter"]
        data, stamps = stream.read(0, stream.rows)
        session.refresh()          # a running session: see what was flushed since

Only complete rows count: ``rows`` is the number the writer's last flush vouched for, never the
dataset's extent (which may be ahead of it in a killed file).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qudi.util.instream.recording_file import FILE_FORMAT
from qudi.util.instream.session_file import SESSION_FORMAT
from qudi.util.instream.session_time import ROW_DTYPE, recorded_stream_time
from qudi.util.instream.timebase import StreamTime

__all__ = ["RecordedStream", "Session", "open_session", "stream_indices"]


def stream_indices(rows: np.ndarray, gaps: np.ndarray, first_sample_index: int) -> np.ndarray:
    """The stream's own sample indices of data rows ``rows``, the gaps before them counted.

    Parameters
    ----------
    rows : numpy.ndarray
        Row numbers in a stream's ``data``.
    gaps : numpy.ndarray
        ``[gaps, 2]`` (row where samples are missing, count), rows increasing.
    first_sample_index : int
        The stream index of row 0 (before any gap at row 0).
    """
    rows = np.asarray(rows, np.int64)
    if len(gaps) == 0:
        return rows + first_sample_index
    lost_before = np.concatenate(([0], np.cumsum(gaps[:, 1])))
    # a gap at row r lies before row r: rows >= r have it counted
    which = np.searchsorted(gaps[:, 0], rows, side="right")
    return rows + first_sample_index + lost_before[which]


@dataclass
class RecordedStream:
    """One stream of a session: what it is, and its datasets (read on demand)."""

    label: str
    group: h5py.Group
    channel_names: tuple[str, ...]
    channel_units: tuple[str, ...]
    sample_rate: float | None
    sample_timing: str
    dtype: np.dtype
    sample_shape: tuple[int, ...]
    first_sample_index: int
    time_base: dict[str, Any]
    _single: bool = False

    @property
    def data(self) -> h5py.Dataset:
        return self.group["data"]

    @property
    def timestamps(self) -> h5py.Dataset | None:
        return self.group.get("timestamps")

    @property
    def rows(self) -> int:
        """Complete rows of ``data`` (what the writer's last flush vouched for)."""
        if self._single:
            return int(min(self.group.attrs["samples_recorded"], self.data.shape[0]))
        return int(min(self.group["counts"][0], self.data.shape[0]))

    @property
    def samples_lost(self) -> int:
        if self._single:
            return int(self.group.attrs["samples_lost"])
        return int(self.group["counts"][1])

    @property
    def gaps(self) -> np.ndarray:
        """``[gaps, 2]`` int64 (row of data where samples are missing, count)."""
        gaps = self.group["gaps"]
        count = gaps.shape[0] if self._single else int(self.group["counts"][2])
        return gaps[: min(count, gaps.shape[0])]

    @property
    def time_table(self) -> np.ndarray:
        """``[rows]`` (index, host, device) records; empty if none was kept."""
        table = self.group.get("time_table")
        return np.empty(0, ROW_DTYPE) if table is None else table[...]

    def stream_time(self) -> StreamTime | None:
        """When each sample was taken, as the live readers' time model has it (from the
        stored time base and time table); None without a time table."""
        return recorded_stream_time(self.time_base, self.time_table, self.sample_rate)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``start:stop`` of data and timestamps (None without), within :attr:`rows`.

        Raises
        ------
        ValueError
            A range outside ``0 <= start <= stop <= rows``.
        """
        rows = self.rows
        if not 0 <= start <= stop <= rows:
            raise ValueError(
                f"rows {start}:{stop} of stream '{self.label}' do not exist: it has {rows} "
                "complete rows"
            )
        stamps = self.timestamps
        return self.data[start:stop], None if stamps is None else stamps[start:stop]

    def sample_indices(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The stream's own sample indices of rows ``start:stop`` (see :func:`stream_indices`)."""
        stop = self.rows if stop is None else stop
        return stream_indices(np.arange(start, stop), self.gaps, self.first_sample_index)

    def refresh(self) -> None:
        """See what the writer flushed since (SWMR)."""
        for name in ("data", "timestamps", "gaps", "time_table", "counts"):
            dataset = self.group.get(name)
            if dataset is not None:
                dataset.refresh()


class Session:
    """An open session file; close it (or use ``with``) when done."""

    def __init__(self, file: h5py.File):
        self.file = file
        self.path = Path(file.filename)
        attrs = file.attrs
        self.format = str(attrs.get("format", ""))
        if self.format == SESSION_FORMAT:
            labels = [str(label) for label in attrs["streams"]]
            self.streams = {
                label: _stream(label, file[f"streams/{label}"], single=False) for label in labels
            }
        elif self.format == FILE_FORMAT:
            label = str(attrs.get("streamer", "")) or "stream"
            self.streams = {label: _stream(label, file["/"], single=True)}
        else:
            file.close()
            raise ValueError(
                f"'{self.path}' is no qudi-instream session or recording (its format "
                f"attribute is {self.format!r})"
            )

    @property
    def labels(self) -> list[str]:
        """The streams' labels, the primary first."""
        return list(self.streams)

    @property
    def primary(self) -> RecordedStream:
        """The stream whose samples the markers count."""
        return next(iter(self.streams.values()))

    @property
    def attributes(self) -> dict[str, Any]:
        return {key: _plain(value) for key, value in self.file.attrs.items()}

    @property
    def state(self) -> str:
        """``recording`` while written (or if the writer was killed), else how it ended."""
        if "state" in self.file:
            return self.file["state"][()].decode()
        return str(self.file.attrs.get("status", ""))

    @property
    def markers(self) -> np.ndarray:
        """``[n]`` records (time, sample_index, text bytes); see :meth:`marker_list`."""
        markers = self.file.get("markers")
        if markers is None:
            return np.empty(0, [("time", "f8"), ("sample_index", "i8"), ("text", "S1")])
        return markers[...]

    def marker_list(self) -> list[tuple[float, int, str]]:
        """The markers as (host monotonic time, primary sample index, text)."""
        return [
            (float(t), int(i), bytes(text).decode("utf-8")) for t, i, text in self.markers.tolist()
        ]

    def refresh(self) -> None:
        """See what the writer flushed since (SWMR): every stream, the markers, the state."""
        for stream in self.streams.values():
            stream.refresh()
        for name in ("markers", "state"):
            if name in self.file:
                self.file[name].refresh()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Session '{self.path}' {self.state}, streams {self.labels}>"


def open_session(path: str | os.PathLike) -> Session:
    """Open a session file (running, finished or killed) or a one-stream recording to read.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is no qudi-instream session or recording.
    OSError
        HDF5 cannot open it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no session file '{path}'")
    try:  # SWMR: a session being written (or whose writer died) opens too
        file = h5py.File(path, "r", swmr=True)
    except OSError:  # a file in the oldest format (a one-stream recording) has no SWMR
        file = h5py.File(path, "r")
    return Session(file)


def _stream(label: str, group: h5py.Group, *, single: bool) -> RecordedStream:
    attrs = group.attrs
    rate = float(attrs["sample_rate"])
    return RecordedStream(
        label=label,
        group=group,
        channel_names=tuple(str(name) for name in _strings(attrs["channel_names"])),
        channel_units=tuple(str(unit) for unit in _strings(attrs["channel_units"])),
        sample_rate=None if np.isnan(rate) else rate,
        sample_timing=str(attrs["sample_timing"]),
        dtype=np.dtype(str(attrs["dtype"])),
        sample_shape=tuple(int(n) for n in attrs["sample_shape"]),
        first_sample_index=int(attrs["first_sample_index"]),
        time_base=json.loads(attrs.get("time_base", "{}")),
        _single=single,
    )


def _strings(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
