"""Min/max decimation of a trace for drawing: a spike of one sample stays visible at any zoom.

Drawing a million points per curve at 20 frames/s is more than a plot widget can do, and a
screen only has about a thousand pixel columns. Each column (bin) is drawn as its minimum and
its maximum, so the envelope of the data, every spike included, looks exactly as it would
with all points drawn.

pyqtgraph can do this itself (``setClipToView`` and ``setDownsampling(method='peak')``) and we
would rather use it; ``benchmarks/gui_fps.py --compare`` measures both ways, and at 4 curves of
10^6 points pyqtgraph's own reached about half the frame rate at more CPU (docs/performance.md).
"""

from __future__ import annotations

import numpy as np


def visible_slice(x: np.ndarray, x_min: float, x_max: float) -> slice:
    """Indices of the increasing ``x`` inside ``[x_min, x_max]``, plus one point either side
    so that lines leave the view at its edges."""
    start = max(0, int(np.searchsorted(x, x_min, side="left")) - 1)
    stop = min(len(x), int(np.searchsorted(x, x_max, side="right")) + 1)
    return slice(start, stop)


def peak_decimate(x: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``2 * bins`` points drawing the same envelope as ``(x, y)``.

    The newest points fill whole bins; the few oldest points that do not fill one are kept
    as they are. Each bin becomes its minimum and maximum, at the bin's first and last x.
    """
    count = len(x)
    if bins < 1 or count <= 2 * bins:
        return x, y
    per_bin = count // bins
    head = count - per_bin * bins
    xs = x[head:].reshape(bins, per_bin)
    ys = y[head:].reshape(bins, per_bin)
    x_out = np.column_stack([xs[:, 0], xs[:, -1]]).ravel()
    y_out = np.column_stack([ys.min(axis=1), ys.max(axis=1)]).ravel()
    return np.concatenate([x[:head], x_out]), np.concatenate([y[:head], y_out])
