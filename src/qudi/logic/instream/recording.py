"""TraceRecording: the logic's recording to HDF5, with a reader of its own on the stream.

A recording reads the stream on its own cursor, so the live trace and the file never compete
for samples. When the streamer shares its stream (``stream_name``), the recorder reads that
shared ring directly (``recorder ring``); otherwise the logic's frames feed a private ring
(``frames ring``) that the recorder reads. Either ring is closed when the recording ends.
"""

from __future__ import annotations

import datetime
import logging
import os

import numpy as np

from qudi.logic.instream.file_names import nametag, unused_path
from qudi.util.instream import StreamInfo, StreamRing, attach
from qudi.util.instream.recorder import RecordingSummary, StreamRecorder

__all__ = ["TraceRecording"]


class TraceRecording:
    """Starts, feeds and finishes the logic's recordings, one at a time."""

    def __init__(self) -> None:
        self._recorder: StreamRecorder | None = None
        self._recorder_ring: StreamRing | None = None  # the ring the recorder reads
        self._frames_ring: StreamRing | None = None  # private ring the frames feed, if any
        self.last: RecordingSummary | None = None  # of the last recording that ended
        self._max_bytes = 0

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
            Name of the recording's reader (shown by the stream's health).
        timing : str
            The stream's sample timing by name.
        timestamps : bool
            Whether samples carry timestamps.
        max_bytes : int
            The recording stops at this many bytes of samples.
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
            What the recorder raises (a taken file name, a closed stream); nothing stays open.
        """
        if self._recorder is not None:
            raise RuntimeError("a recording runs already; finish it first")
        os.makedirs(directory, exist_ok=True)
        path = unused_path(directory, datetime.datetime.now(), nametag(""), ".h5")
        stream_name = getattr(streamer, "stream_name", None)
        if stream_name is not None:
            ring, frames = attach(str(stream_name)), None
        else:
            channels = list(streamer.active_channels)
            constraints = streamer.constraints
            units = tuple(str(constraints.channel_units[ch]) for ch in channels)
            rate = float(streamer.sample_rate)
            info = StreamInfo(tuple(channels), units, rate, timing)
            capacity, dtype = max(1024, int(4 * rate)), np.dtype(constraints.data_type)
            ring = StreamRing(capacity, (len(channels),), dtype, timestamps=timestamps, info=info)
            frames = ring
        try:
            attributes = {**attributes, "streamer": str(getattr(streamer, "module_name", ""))}
            recorder = StreamRecorder(
                ring.reader(reader_name), path, max_bytes=max_bytes, attributes=attributes
            )
            recorder.start()
        except BaseException:
            ring.close()
            raise
        self._recorder, self._recorder_ring, self._frames_ring = recorder, ring, frames
        self._max_bytes = max_bytes
        return path

    def feed(self, data: np.ndarray, stamps: np.ndarray | None) -> None:
        """Hand a frame's raw samples to the private ring (a no-op on a shared stream)."""
        if self._frames_ring is not None:
            self._frames_ring.write(data, stamps)

    def finish(self, log: logging.Logger) -> str | None:
        """Stop the recording and close its ring; log how it ended, return the file's path.

        Parameters
        ----------
        log : logging.Logger
            Where to say how the recording ended (an error, the size limit, or saved).

        Returns
        -------
        str or None
            The file's path, None if no recording was running.
        """
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        try:
            summary = recorder.stop()
        finally:
            ring, self._recorder_ring, self._frames_ring = self._recorder_ring, None, None
            if ring is not None:
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
        return str(summary.path)

    def info(self) -> dict | None:
        """Path, samples, bytes and seconds of the running (or else the last) recording."""
        recorder = self._recorder
        if recorder is not None:
            return {
                "path": str(recorder.path),
                "samples": recorder.samples_written,
                "bytes": recorder.bytes_written,
                "seconds": recorder.elapsed_seconds,
                "running": True,
            }
        last = self.last
        if last is None:
            return None
        return {
            "path": str(last.path),
            "samples": last.samples,
            "bytes": last.bytes,
            "seconds": last.seconds,
            "running": False,
        }
