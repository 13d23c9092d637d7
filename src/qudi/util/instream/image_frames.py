"""Camera images as stream samples: the frame counter every test frame carries, and fake images.

A camera stream's samples are whole images (``[frames, H, W]`` in the ring, axis 0 is time).
Two helpers here need no qudi and no Qt:

* :func:`stamp_frame_indices` / :func:`frame_indices`: the absolute index of each frame,
  written into the first 8 bytes of its pixels (little-endian uint64; pixels ``(0, 0)`` to
  ``(0, 3)`` of a uint16 image), so a consumer can prove that it saw every frame exactly once.
* :class:`SimulatedCamera`: images of a moving Gaussian spot on a readout offset with shot
  noise and read noise, cheap enough for 1024 x 1024 pixels at hundreds of frames per second:
  the noise is drawn once into a small bank of frames (and of spot patches), so making a frame
  costs one copy of a banked background and one of a small patch.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "COUNTER_BYTES",
    "SimulatedCamera",
    "frame_indices",
    "stamp_frame_indices",
]

COUNTER_BYTES = 8  # one uint64 per frame
_BANK_FRAMES = 8  # backgrounds drawn once; frame i uses one of them
_BANK_PATCHES = 16  # noisy spot patches drawn once
_ORDER_LENGTH = 1024  # the sequence of bank entries repeats after this many frames
_SPOT_PERIOD_FRAMES = (211, 137)  # the spot's Lissajous path, in frames along x and y


def _counter_view(frames: np.ndarray) -> np.ndarray:
    """``[frames, 8]`` uint8 view of the first 8 bytes of each frame (C-contiguous frames)."""
    if frames.ndim < 2 or not frames.flags.c_contiguous:
        raise ValueError("frames must be a C-contiguous [frames, ...] array")
    flat = frames.reshape(len(frames), -1).view(np.uint8)
    if flat.shape[1] < COUNTER_BYTES:
        raise ValueError(
            f"a frame of {flat.shape[1]} bytes cannot hold an {COUNTER_BYTES}-byte frame counter"
        )
    return flat[:, :COUNTER_BYTES]


def stamp_frame_indices(frames: np.ndarray, first_index: int) -> None:
    """Write ``first_index, first_index + 1, ...`` into the first 8 bytes of each frame."""
    indices = np.arange(first_index, first_index + len(frames), dtype="<u8")
    _counter_view(frames)[...] = indices.view(np.uint8).reshape(len(frames), COUNTER_BYTES)


def frame_indices(frames: np.ndarray) -> np.ndarray:
    """The frame counter of each frame (see :func:`stamp_frame_indices`) as int64."""
    raw = np.ascontiguousarray(_counter_view(np.ascontiguousarray(frames)))
    return raw.view("<u8").reshape(len(frames)).astype(np.int64)


def _full_scale(dtype: np.dtype) -> float:
    """The largest pixel value the spot may reach: half the integer range, 1000 otherwise."""
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max) / 2
    return 2000.0


class SimulatedCamera:
    """Images of a Gaussian spot moving on a Lissajous path, with shot and read noise.

    Frame ``i`` depends only on ``i`` and the seed, so a read in any chunking gives the same
    images. Pixel values are counts: a readout ``offset``, background photons (Poisson), read
    noise (Gaussian, ``read_noise`` counts rms) and the spot (Poisson, ``spot_peak`` counts at
    its centre), clipped to the dtype's range.

    Parameters
    ----------
    frame_shape
        ``(height, width)`` in pixels, each at least 4 (the counter needs 8 bytes).
    dtype
        Pixel type: an integer or float numpy type.
    seed
        Seeds the noise; None draws a new seed.
    offset, background, read_noise, spot_peak
        Counts (see above); ``spot_peak`` None means 2000 counts (at most a quarter of an
        integer dtype's range).
    """

    def __init__(
        self,
        frame_shape: tuple[int, int],
        dtype: npt.DTypeLike = np.uint16,
        *,
        seed: int | None = None,
        offset: float = 100.0,
        background: float = 20.0,
        read_noise: float = 3.0,
        spot_peak: float | None = None,
    ):
        height, width = (int(n) for n in frame_shape)
        if height < 4 or width < 4:
            raise ValueError(f"frame_shape must be at least (4, 4) pixels, got {frame_shape!r}")
        self.frame_shape = (height, width)
        self.dtype = np.dtype(dtype)
        if not (np.issubdtype(self.dtype, np.integer) or np.issubdtype(self.dtype, np.floating)):
            raise TypeError(f"dtype must be an integer or float type, got {self.dtype}")
        rng = np.random.default_rng(seed)
        top = _full_scale(self.dtype)
        low = float(np.iinfo(self.dtype).min) if np.issubdtype(self.dtype, np.integer) else -top
        peak = min(top / 2, 2000.0) if spot_peak is None else float(spot_peak)
        self._range = (low, 2 * top if np.issubdtype(self.dtype, np.integer) else math.inf)
        self._bank = np.stack(
            [
                self._pixels(offset + rng.poisson(background, (height, width)), rng, read_noise)
                for _ in range(_BANK_FRAMES)
            ]
        )
        sigma = max(1.5, min(height, width) / 40)
        half = min(int(math.ceil(4 * sigma)), (min(height, width) - 1) // 2)
        axis = np.arange(-half, half + 1)
        profile = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * sigma**2))
        self._patches = np.stack(
            [
                self._pixels(offset + rng.poisson(background + peak * profile), rng, read_noise)
                for _ in range(_BANK_PATCHES)
            ]
        )
        self._half = half
        self._order = rng.integers(0, _BANK_FRAMES * _BANK_PATCHES, _ORDER_LENGTH)

    def _pixels(self, counts: np.ndarray, rng: np.random.Generator, read_noise: float):
        noisy = counts + rng.normal(0.0, read_noise, counts.shape)
        if np.issubdtype(self.dtype, np.integer):
            noisy = np.rint(noisy)
        return np.clip(noisy, *self._range).astype(self.dtype)

    def spot_position(self, index: int) -> tuple[int, int]:
        """``(row, column)`` of the spot's centre in frame ``index``."""
        height, width = self.frame_shape
        half = self._half
        fx, fy = _SPOT_PERIOD_FRAMES
        column = width / 2 + (width / 2 - half - 1) * 0.8 * math.sin(2 * math.pi * index / fx)
        row = height / 2 + (height / 2 - half - 1) * 0.8 * math.sin(2 * math.pi * index / fy)
        return int(row), int(column)

    def render(self, out: np.ndarray, first_index: int) -> None:
        """Fill ``out`` (``[frames, H, W]`` of this camera's dtype) with frames
        ``first_index ...`` and stamp each with its index (:func:`stamp_frame_indices`)."""
        half = self._half
        for k in range(len(out)):
            index = first_index + k
            choice = int(self._order[index % _ORDER_LENGTH])
            out[k] = self._bank[choice % _BANK_FRAMES]
            row, column = self.spot_position(index)
            out[k, row - half : row + half + 1, column - half : column + half + 1] = self._patches[
                choice // _BANK_FRAMES
            ]
        if len(out):
            stamp_frame_indices(out, first_index)
