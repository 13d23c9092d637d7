"""The status bar of the time series window: stream health, samples lost, recording progress.

Labels are set only when their text changes: an unchanged label costs no layout and no paint.
"""

from __future__ import annotations

import time

from qudi.gui.instream.formatting import format_value
from qudi.gui.instream.time_series_window import TimeSeriesWindow, show_text
from qudi.util.instream.errors import format_bytes

__all__ = ["StreamStatus"]

_LOST_STYLE = "color: red; font-weight: bold;"


class StreamStatus:
    """Shows what the logic reports about its stream in a window's status bar.

    Parameters
    ----------
    window : TimeSeriesWindow
        The window whose ``health_label``, ``lost_label`` and ``recording_label`` it sets.
    """

    def __init__(self, window: TimeSeriesWindow):
        self._window = window
        self._lost_shown: bool | None = None

    def show_health(self, health: dict) -> None:
        """Measured sample and frame rates, buffer fill, streamer state and samples lost.

        Parameters
        ----------
        health : dict
            The logic's ``stream_health``: ``sample_rate`` (Hz), ``frame_rate`` (Hz),
            ``buffer_fill`` (0..1), ``lost_samples`` and ``streamer_state``.
        """
        window = self._window
        show_text(
            window.health_label,
            f"rate {format_value(health['sample_rate'], 'Hz', 3)} | "
            f"frames {health['frame_rate']:.1f} Hz | "
            f"buffer {100 * health['buffer_fill']:.1f} % | "
            f"streamer {health['streamer_state']}",
        )
        lost = int(health["lost_samples"])
        show_text(window.lost_label, f"lost {lost}")
        if (lost > 0) != self._lost_shown:  # a style sheet change re-polishes the label
            self._lost_shown = lost > 0
            window.lost_label.setStyleSheet(_LOST_STYLE if lost > 0 else "")

    def show_recording(self, info: dict | None) -> None:
        """Time and bytes of a running recording (``recording_info`` of the logic)."""
        if info is not None and info.get("running"):
            elapsed = time.strftime("%H:%M:%S", time.gmtime(info["seconds"]))
            show_text(self._window.recording_label, f"REC {elapsed} {format_bytes(info['bytes'])}")

    def recording_finished(self, info: dict | None) -> str | None:
        """Clear the progress; returns the message saying where the recording went, if any."""
        show_text(self._window.recording_label, "")
        if info is None:
            return None
        message = f"recording saved to {info['path']}"
        self._window.statusBar().showMessage(message)
        return message
