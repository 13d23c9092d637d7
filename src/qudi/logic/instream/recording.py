"""TraceRecording: the logic's recording to HDF5, with a reader of its own on the stream.

A recording reads the stream on its own cursor, so the live trace and the file never compete
for samples. When the streamer shares its stream (``stream_name``), the recorder reads that
shared ring directly (``recorder ring``); otherwise the logic's frames feed a private ring
(``frames ring``) that the recorder reads. Every ring is closed when the recording ends.

With ``recording_format: 'session'`` the file is a session
(:mod:`qudi.util.instream.session_file`): the logic's stream first (labelled by its streamer's
module name), then each stream of ``recording_streams``, attached by its shared name on this
host or as this qudi's streamer module of that name (:func:`attach_stream`); markers go into
it with :meth:`TraceRecording.add_marker`.

A one-stream recording (``'single'``, the default) of a logic with a marker stream (its
``markers`` connector) gets the session's markers table too (``/markers``, the same rows,
written by :class:`~qudi.util.instream.session_file.MarkerTable`): every marker handed to it
while it records (:meth:`TraceRecording.keep_markers`), each with the index of the stream's
sample taken at its time, as a session's. The recorder's thread owns the file while it
records, so the markers wait in a :class:`~qudi.util.instream.pending_markers.PendingMarkers`
that the thread writes at each flush: a killed process loses at most the last flush
interval's markers, as its samples.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import time
from collections.abc import Callable

import numpy as np

from qudi.logic.instream.file_names import nametag, unused_path
from qudi.util.instream import StreamInfo, StreamRing, attach
from qudi.util.instream.errors import StreamNotFoundError
from qudi.util.instream.hub import declared_extra
from qudi.util.instream.pending_markers import PendingMarkers
from qudi.util.instream.reader import RingReader
from qudi.util.instream.recorder import RecordingSummary, StreamRecorder
from qudi.util.instream.session_file import checked_label, checked_marker_text
from qudi.util.instream.session_recorder import SessionRecorder, SessionSummary, sample_index_at
from qudi.util.instream.time_table import note_arrival, now_pair
from qudi.util.instream.timebase import RunStart

__all__ = [
    "RECORDING_FORMATS",
    "TraceRecording",
    "attach_stream",
    "checked_session_options",
]

RECORDING_FORMATS = ("single", "session")


def checked_session_options(recording_format: object, streams: object) -> list[str]:
    """The options ``recording_format`` and ``recording_streams``, checked; the stream names.

    Raises
    ------
    ValueError
        Naming the option, its value and what would be valid.
    """
    if recording_format not in RECORDING_FORMATS:
        raise ValueError(
            f"option 'recording_format' is {recording_format!r}: use 'single' (one stream per "
            "file, the default) or 'session' (several streams, time tables and markers)"
        )
    if not isinstance(streams, list) or not all(isinstance(name, str) for name in streams):
        raise ValueError(
            f"option 'recording_streams' is {streams!r}: use a list of stream names, e.g. "
            "['wavemeter'] (a shared stream on this host or a streamer module of this qudi)"
        )
    for name in streams:
        try:
            checked_label(name)
        except ValueError as exc:
            raise ValueError(f"option 'recording_streams' is {streams!r}: {exc}") from None
    if len(set(streams)) != len(streams):
        raise ValueError(f"option 'recording_streams' is {streams!r}: name each stream once")
    if streams and recording_format != "session":
        raise ValueError(
            f"option 'recording_streams' is {streams!r} but 'recording_format' is "
            f"{recording_format!r}: several streams go into one file with 'session'"
        )
    return list(streams)


def attach_stream(name: str) -> StreamRing:
    """The shared stream ``name`` on this host, or this qudi's streamer module ``name``'s
    (whose hub names its stream ``<module name>_<process id>``).

    Raises
    ------
    StreamNotFoundError
        Neither exists; the message names the streams there are.
    """
    try:
        return attach(name)
    except StreamNotFoundError as first:
        try:
            return attach(f"{name}_{os.getpid()}")
        except StreamNotFoundError:
            raise StreamNotFoundError(
                f"recording_streams: no stream '{name}' ({first}); a streamer module of this "
                "qudi is found once a buffer has joined it"
            ) from None


class TraceRecording:
    """Starts, feeds and finishes the logic's recordings, one at a time."""

    def __init__(self) -> None:
        self._recorder: StreamRecorder | SessionRecorder | None = None
        self._rings: list[StreamRing] = []  # the rings the recorder reads, closed at the end
        self._frames_ring: StreamRing | None = None  # private ring the frames feed, if any
        self.last: RecordingSummary | SessionSummary | None = None  # of the last one ended
        self._max_bytes = 0
        self._session = False
        self._streams: list[str] = []
        self.started_at = float("inf")  # host monotonic s at the running recording's start
        #: called before a recording finishes: hands over the markers not handed over yet
        self.before_finish: Callable[[], None] | None = None
        #: the running (or last) one-stream recording's markers, written by its thread
        self._single_markers: PendingMarkers | None = None

    def configure(self, recording_format: object, streams: object) -> None:
        """Set the options ``recording_format`` and ``recording_streams`` (checked, see
        :func:`checked_session_options`)."""
        self._streams = checked_session_options(recording_format, streams)
        self._session = recording_format == "session"

    @property
    def active(self) -> bool:
        """Whether a recording runs (or ended by itself and was not finished yet)."""
        return self._recorder is not None

    @property
    def ended_by_itself(self) -> bool:
        """A recording that stopped on its own (size limit, error) waits to be finished."""
        return self._recorder is not None and not self._recorder.running

    def start(
        self,
        directory: str,
        streamer,
        *,
        reader_name: str,
        timing: str,
        timestamps: bool,
        max_bytes: int,
        attributes: dict,
    ) -> str:
        """Start recording what ``streamer`` streams to a new file in ``directory``.

        Parameters
        ----------
        directory : str
            Where the file goes (created if missing); its name is qudi's timestamped one.
        streamer : DataInStreamInterface
            The logic's streamer: its ``stream_name`` (if it shares its stream, the recorder
            reads that), else its channels, units, rate and dtype for the private ring that
            the frames feed (:meth:`feed`).
        reader_name : str
            Name of the recording's readers (shown by the streams' health).
        timing : str
            The stream's sample timing by name.
        timestamps : bool
            Whether samples carry timestamps.
        max_bytes : int
            The recording stops at this many bytes of samples (of all its streams).
        attributes : dict
            Extra attributes of the file (``streamer``, its module name, is added).

        Returns
        -------
        str
            The new file's path.

        Raises
        ------
        RuntimeError
            A recording runs already.
        Exception
            What the recorder raises (a taken file name, a closed or missing stream, a
            stream that does not run); nothing stays open.
        """
        if self._recorder is not None:
            raise RuntimeError("a recording runs already; finish it first")
        os.makedirs(directory, exist_ok=True)
        path = unused_path(directory, datetime.datetime.now(), nametag(""), ".h5")
        module = str(getattr(streamer, "module_name", "")) or "stream"
        stream_name = getattr(streamer, "stream_name", None)
        frames = None
        if stream_name is not None:
            ring = attach(str(stream_name))
        else:
            ring = frames = _frames_ring(streamer, timing, timestamps)
        rings = [ring]
        pending: PendingMarkers | None = None
        try:
            attributes = {**attributes, "streamer": module}
            if self._session:
                if module in self._streams:
                    raise ValueError(
                        f"option 'recording_streams' names '{module}', the logic's own stream"
                    )
                for name in self._streams:
                    rings.append(attach_stream(name))
                labels = [module, *self._streams]
                pairs = zip(labels, rings, strict=True)
                readers = {label: opened.reader(reader_name) for label, opened in pairs}
                recorder: StreamRecorder | SessionRecorder = SessionRecorder(
                    readers, path, max_bytes=max_bytes, attributes=attributes
                )
            else:
                pending = PendingMarkers()  # kept once the logic says it has a marker stream
                recorder = StreamRecorder(
                    ring.reader(reader_name),
                    path,
                    max_bytes=max_bytes,
                    attributes=attributes,
                    markers=pending,
                )
            started_at = time.monotonic()
            recorder.start()
        except BaseException:
            for opened in rings:
                opened.close()
            raise
        self._recorder, self._rings, self._frames_ring = recorder, rings, frames
        self._single_markers = pending
        self._max_bytes = max_bytes
        self.started_at = started_at
        return path

    def feed(self, data: np.ndarray, stamps: np.ndarray | None) -> None:
        """Hand a frame's raw samples to the private ring (a no-op on a shared stream), with
        a time-table row for them, as a pump notes its chunks (late by the frame's latency,
        which the clock fit takes as any latency)."""
        ring = self._frames_ring
        if ring is not None and len(data):
            ring.write(data, stamps)
            note_arrival(ring, None if stamps is None else float(stamps[-1]))

    @property
    def takes_markers(self) -> bool:
        """Whether a recording runs that takes markers: a session, or a one-stream recording
        told to keep them (:meth:`keep_markers`)."""
        recorder = self._recorder
        if isinstance(recorder, SessionRecorder):
            return recorder.running
        pending = self._single_markers
        return recorder is not None and recorder.running and pending is not None and pending.kept

    def keep_markers(self) -> None:
        """A running one-stream recording keeps the markers handed to it from now on (its
        logic has a marker stream): its file gets a markers table at the next flush;
        harmless for a session or when none runs."""
        if isinstance(self._recorder, StreamRecorder) and self._single_markers is not None:
            self._single_markers.keep()

    def add_marker(self, text: str, at: float | None = None) -> dict:
        """Note ``text`` in the running session's markers table (now, or at host monotonic
        time ``at``: then its sample index is that of the time, see
        :meth:`SessionRecorder.add_marker`).

        Returns
        -------
        dict
            ``time`` (host monotonic s), ``sample_index`` (of the logic's own stream) and
            ``text``: plain values, for Jupyter over qudi's remote connection.

        Raises
        ------
        RuntimeError
            No recording runs that takes markers (the message says what to do), or it has
            just ended.
        TypeError, ValueError
            ``text`` is no str, empty, over 256 bytes of UTF-8 or has a NUL; nothing is noted.
        """
        recorder = self._recorder
        if isinstance(recorder, StreamRecorder) and self.takes_markers:
            return self._add_single_marker(recorder.reader, text, at)
        if not isinstance(recorder, SessionRecorder):
            needs = "start a recording" if self._session else "set recording_format: 'session'"
            raise RuntimeError(f"markers go into a session recording: {needs} first")
        marker = recorder.add_marker(text, at)
        return {"time": marker.time, "sample_index": marker.sample_index, "text": marker.text}

    def _add_single_marker(self, reader: RingReader, text: str, at: float | None) -> dict:
        checked_marker_text(text)
        when = time.monotonic() if at is None else at
        if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
            raise ValueError(f"a marker's time must be a finite number of seconds, got {at!r}")
        index = sample_index_at(reader, float(when))
        assert self._single_markers is not None  # takes_markers said so
        self._single_markers.put(float(when), index, text)  # its thread writes it
        return {"time": float(when), "sample_index": index, "text": text}

    def finish(self, log: logging.Logger) -> str | None:
        """Stop the recording and close its rings; log how it ended, return the file's path.

        Parameters
        ----------
        log : logging.Logger
            Where to say how the recording ended (an error, the size limit, or saved).

        Returns
        -------
        str or None
            The file's path, None if no recording was running.
        """
        recorder = self._recorder
        if recorder is None:
            return None
        if self.before_finish is not None:
            try:
                self.before_finish()
            except Exception as exc:  # noqa: BLE001 - the recording ends all the same
                log.error(f"markers not handed to the recording before it ended: {exc}")
        try:  # active until said how it ended: a caller that waits for the end reads the log
            try:
                summary = recorder.stop()
            finally:
                rings, self._rings, self._frames_ring = self._rings, [], None
                for ring in rings:
                    ring.close()
            self.last = summary
            if summary.error is not None:
                log.error(f"recording to {summary.path} stopped: {summary.error}")
            elif summary.stopped_by_size_limit:
                log.info(
                    f"recording reached max_raw_data_bytes ({self._max_bytes} bytes) and "
                    f"stopped; saved to {summary.path}"
                )
            else:
                log.info(f"recording saved to {summary.path} ({summary.samples} samples)")
        finally:
            self._recorder = None
            self.started_at = float("inf")
        return str(summary.path)

    def info(self) -> dict | None:
        """Path, samples, bytes and seconds of the running (or else the last) recording; a
        session's also has each stream's samples (``streams``) and its ``markers``."""
        recorder = self._recorder
        summary = self.last if recorder is None else recorder.summary()
        if summary is None:
            return None
        info = {
            "path": str(summary.path),
            "samples": summary.samples,
            "bytes": summary.bytes,
            "seconds": summary.seconds,
            "running": recorder is not None,
        }
        if isinstance(summary, SessionSummary):
            info["streams"] = dict(summary.samples)
            info["samples"] = next(iter(summary.samples.values()))
            info["markers"] = summary.markers
        elif self._single_markers is not None and self._single_markers.kept:
            pending = self._single_markers  # handed over while running, then those written
            info["markers"] = pending.written if pending.closed else pending.handed
        return info


def _frames_ring(streamer, timing: str, timestamps: bool) -> StreamRing:
    """A private ring in the streamer's format, fed by the logic's frames."""
    channels = list(streamer.active_channels)
    constraints = streamer.constraints
    units = tuple(str(constraints.channel_units[ch]) for ch in channels)
    rate = float(streamer.sample_rate)
    # extra: what the streamer declares for its description (raw codes: their scaling)
    info = StreamInfo(tuple(channels), units, rate, timing, extra=declared_extra(streamer))
    capacity, dtype = max(1024, int(4 * rate)), np.dtype(constraints.data_type)
    ring = StreamRing(capacity, (len(channels),), dtype, timestamps=timestamps, info=info)
    if ring.time_table is not None:  # a run from now on, so a session gets its time table
        monotonic, utc = now_pair()
        ring.time_table.write_run(RunStart(ring.run_epoch, ring.write_index, monotonic, utc))
    return ring
