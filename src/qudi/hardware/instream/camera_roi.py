"""ImageRoiStreamer: regions of interest of a camera stream, as a channel stream.

Example config (copy into the ``hardware:`` section)::

    camera_roi:
        module.Class: 'instream.camera_roi.ImageRoiStreamer'
        options:
            rois:                     # name: [row, column, height, width] in pixels
                spot: [224, 224, 64, 64]
                dark: [0, 448, 64, 64]
            statistic: 'mean'         # optional: 'mean' or 'sum' of each region's pixels
            allow_overwrite: False    # optional: False fails the stream on lost frames
            max_poll_rate: 30.0       # optional: most reads of the camera per second
        connect:
            camera: 'camera_dummy'

Each region of interest becomes a channel (named as the region, unit ``counts``) of a
``DataInStreamInterface`` stream with one sample per frame, timed by the frame's time
(``SampleTiming.TIMESTAMP``), at the camera's frame rate. Put an ``instream.buffer
.DataInStreamBuffer`` on it, and the time-series logic and GUI plot the regions as they plot
a DAQ card's channels. The streamer is one consumer of the camera's shared ring of frames
(like an ``instream.camera_buffer.ImageStreamBuffer``); configuring its ``sample_rate`` sets
the camera's frame rate (refused with ``StreamBusyError`` while other consumers stream at
another rate). It holds no samples of its own: its buffer is its share of the frame ring
(``channel_buffer_size`` reports how many frames that is). :meth:`set_roi` moves a region
while it streams (the viewer GUI's region handles call it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.util.constraints import ScalarConstraint

from qudi.hardware.instream.camera_buffer import checked_consumer_options
from qudi.hardware.instream.reader_consumer import ReaderConsumer
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    SampleTiming,
    StreamingMode,
    check_read_buffers,
    check_stream_request,
)
from qudi.util.instream.arrays import check_count, option_error
from qudi.util.instream.hub import HubReader
from qudi.util.instream.image_hub import JoinedImageHub, join_image_hub

__all__ = ["ImageRoiStreamer", "checked_region"]

STATISTICS = ("mean", "sum")
_MAX_SAMPLES = 2**30


def checked_region(name: str, region: object, frame_shape: tuple[int, int]) -> tuple[int, ...]:
    """``region`` as ``(row, column, height, width)`` inside a frame of ``frame_shape``.

    Raises
    ------
    ValueError
        Naming the region, the value and the frame it must fit in.
    """
    height, width = frame_shape
    valid = (
        f"use [row, column, height, width] in whole pixels, inside the {height} x {width} frame "
        "(height and width at least 1)"
    )
    if not isinstance(region, (list, tuple)) or len(region) != 4:
        raise ValueError(f"region '{name}' is {region!r}: {valid}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in region):
        raise ValueError(f"region '{name}' is {region!r}: {valid}")
    row, column, rows, columns = (int(v) for v in region)
    if row < 0 or column < 0 or rows < 1 or columns < 1:
        raise ValueError(f"region '{name}' is {region!r}: {valid}")
    if row + rows > height or column + columns > width:
        raise ValueError(f"region '{name}' is {region!r}: {valid}")
    return row, column, rows, columns


class ImageRoiStreamer(ReaderConsumer[JoinedImageHub, HubReader], DataInStreamInterface):
    """Camera regions of interest as a channel stream; see the module docstring."""

    _inactive_message = "ROI streamer '{name}' is not active"

    _camera = Connector(name="camera", interface="ImageStreamInterface")
    _rois_option = ConfigOption("rois", missing="error")
    _statistic = ConfigOption("statistic", default="mean")
    _allow_overwrite = ConfigOption("allow_overwrite", default=False)
    _max_poll_rate = ConfigOption("max_poll_rate", default=30.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._regions: dict[str, tuple[int, ...]] = {}
        self._active: list[str] = []
        self._frames = np.empty(0)
        self._stamps = np.empty(0)
        self._read_lock = threading.Lock()

    def on_activate(self) -> None:
        checked_consumer_options(self._allow_overwrite, self._max_poll_rate, 1.0)
        if self._statistic not in STATISTICS:
            raise option_error("statistic", self._statistic, f"use one of {list(STATISTICS)}")
        camera = self._camera()
        rois = self._rois_option
        if not isinstance(rois, Mapping) or not rois:
            raise option_error(
                "rois", rois, "use a mapping of names to [row, column, height, width]"
            )
        shape = tuple(camera.constraints.frame_shape)
        regions = {}
        for name, region in rois.items():
            try:
                regions[str(name)] = checked_region(str(name), region, shape)
            except ValueError as exc:
                raise option_error("rois", dict(rois), str(exc)) from None
        self._regions = regions
        self._active = list(regions)
        hub = join_image_hub(camera, self.module_name, float(self._max_poll_rate))
        self._open_consumer(hub, self._allow_overwrite)

    def on_deactivate(self) -> None:
        self._close_consumer()
        self._frames = np.empty(0)

    # ---------------------------------------------------------------------------- regions
    @property
    def rois(self) -> dict[str, tuple[int, ...]]:
        """Every region: name -> ``(row, column, height, width)``."""
        return dict(self._regions)

    @property
    def statistic(self) -> str:
        return str(self._statistic)

    @property
    def camera_stream_name(self) -> str:
        """The shared frame stream this streamer reads (see ``ImageStreamBuffer``)."""
        return self._active_hub().name

    def set_roi(self, name: str, region: Iterable[int]) -> None:
        """Move region ``name`` to ``[row, column, height, width]`` (also while streaming).

        Raises
        ------
        KeyError, ValueError
            For an unknown name or a region outside the frame; nothing changes then.
        """
        if name not in self._regions:
            raise KeyError(f"no region named {name!r}; regions: {list(self._regions)}")
        shape = tuple(self._camera().constraints.frame_shape)
        checked = checked_region(name, list(region), shape)
        self._regions = {**self._regions, name: checked}  # one swap: a read sees old or new

    # --------------------------------------------------------------------------- settings
    @property
    def constraints(self) -> DataInStreamConstraints:
        camera = self._camera().constraints
        return DataInStreamConstraints(
            channel_units=dict.fromkeys(self._regions, camera.pixel_unit),
            sample_timing=SampleTiming.TIMESTAMP,
            streaming_modes=[StreamingMode.CONTINUOUS],
            data_type=np.float64,
            channel_buffer_size=ScalarConstraint(
                default=1024, bounds=(1, _MAX_SAMPLES), increment=1, enforce_int=True
            ),
            sample_rate=camera.frame_rate,
        )

    @property
    def available_samples(self) -> int:
        return self._active_reader().available

    @property
    def sample_rate(self) -> float:
        return float(self._camera().frame_rate)

    @property
    def channel_buffer_size(self) -> int:
        return self._active_hub().hub.readable_frames

    @property
    def streaming_mode(self) -> StreamingMode:
        return StreamingMode.CONTINUOUS

    @property
    def active_channels(self) -> list[str]:
        return list(self._active)

    @property
    def lost_samples(self) -> int:
        return self._active_reader().lost

    def configure(
        self,
        active_channels: Iterable[str],
        streaming_mode: StreamingMode | int,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Choose the regions to stream; ``sample_rate`` sets the camera's frame rate.

        Raises ``StreamBusyError`` if the frame rate would change while other consumers of
        the camera stream, ``ValueError``/``TypeError`` for refused arguments.
        """
        request = check_stream_request(
            self.constraints, active_channels, streaming_mode, channel_buffer_size, sample_rate
        )
        camera = self._camera()
        if self.module_state() == "locked" and list(request.channels) != self._active:
            raise RuntimeError("cannot change the regions streamed while streaming; stop first")
        # the rate only: the camera keeps its own buffer
        self._active_hub().configure(request.rate, None, camera.streaming_mode)
        self._active = list(request.channels)

    # ----------------------------------------------------------------------- acquisition
    # start_stream / stop_stream: ReaderConsumer's
    def read_data_into_buffer(
        self,
        data_buffer: np.ndarray,
        samples_per_channel: int,
        timestamp_buffer: np.ndarray | None = None,
        timeout: float | None = None,
    ) -> None:
        """Block until ``samples_per_channel`` frames arrived; write their region statistics."""
        data, stamps, room = self._checked(data_buffer, timestamp_buffer)
        count = check_count(samples_per_channel, room, "samples_per_channel", "what fits")
        with self._read_lock:
            frames, times = self._scratch(count)
            self._active_reader().read_into(frames, count, timeout=timeout, timestamps=times)
            self._reduce(frames, times, data, stamps)

    def read_available_data_into_buffer(
        self, data_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        data, stamps, room = self._checked(data_buffer, timestamp_buffer)
        with self._read_lock:
            frames, times = self._scratch(min(room, max(1, self._active_reader().available)))
            got = self._active_reader().read_available_into(frames, timestamps=times)
            self._reduce(
                frames[:got], times[:got], data[:got], None if stamps is None else stamps[:got]
            )
        return got

    def read_single_point(self) -> tuple[np.ndarray, np.float64 | None]:
        """The statistics of the newest frame (nothing consumed)."""
        if self._active_hub().ring.write_index == 0:
            frame, stamp = self._camera().read_latest_frame()
            frames, times = frame[None], np.array([stamp or 0.0])
        else:
            frames, times = self._active_reader().latest(1, with_timestamps=True)
        out = np.empty((1, len(self._active)))
        self._reduce(frames, times, out, None)
        return out[0], np.float64(times[0])

    # -------------------------------------------------------------------------- internals
    def _checked(self, data_buffer, timestamp_buffer):
        return check_read_buffers(
            data_buffer,
            timestamp_buffer,
            len(self._active),
            np.dtype(np.float64),
            True,
            timestamps_required=False,
        )

    def _scratch(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Room for ``count`` frames and their times (grown as needed, kept between reads)."""
        ring = self._active_hub().ring
        if len(self._frames) < count or self._frames.shape[1:] != ring.sample_shape:
            self._frames = np.empty((count, *ring.sample_shape), ring.dtype)
            self._stamps = np.empty(count)
        return self._frames[:count], self._stamps[:count]

    def _reduce(self, frames, times, data: np.ndarray, stamps: np.ndarray | None) -> None:
        regions = self._regions
        total = self._statistic == "sum"
        for k, name in enumerate(self._active):
            row, column, rows, columns = regions[name]
            part = frames[:, row : row + rows, column : column + columns]
            values = part.sum(axis=(1, 2), dtype=np.float64)
            data[: len(frames), k] = values if total else values / (rows * columns)
        if stamps is not None:
            stamps[: len(frames)] = times
