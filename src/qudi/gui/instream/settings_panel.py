"""The settings docks of the time series window: what the user asks for, what is in force.

The docks show the settings in force whenever the logic reports them; what the user types
stays a request until Apply. A refused Apply leaves the settings in force on screen and says
why, in the dock itself (and in the status bar), until an Apply of that dock succeeds.
"""

from __future__ import annotations

from qudi.gui.instream.time_series_window import TimeSeriesWindow, show_text

__all__ = ["SettingsPanel"]

_TRACE_KEYS = ("data_rate", "oversampling_factor", "moving_average_width", "trace_window_size")


class SettingsPanel:
    """Reads and shows the trace settings and the channel choice of a window.

    Parameters
    ----------
    window : TimeSeriesWindow
        The window whose settings docks and readout channel list it manages.
    """

    def __init__(self, window: TimeSeriesWindow):
        self._window = window
        self._spinboxes = {
            "data_rate": window.data_rate_spinbox,
            "oversampling_factor": window.oversampling_spinbox,
            "moving_average_width": window.average_width_spinbox,
            "trace_window_size": window.window_size_spinbox,
        }
        self._refusal_labels = {
            "trace settings": window.trace_refusal_label,
            "channel settings": window.channel_refusal_label,
        }

    # ------------------------------------------------------------------------- requests
    def requested_trace_settings(self) -> dict:
        """The trace settings as typed: ``data_rate``, ``oversampling_factor``,
        ``moving_average_width``, ``trace_window_size``."""
        return {key: self._spinboxes[key].value() for key in _TRACE_KEYS}

    def requested_channels(self) -> tuple[list[str], list[str]]:
        """(active, averaged) as ticked."""
        return self._window.checked_channels()

    # --------------------------------------------------------------------------- in force
    def show_trace_settings(self, settings: dict) -> None:
        """Show trace settings in force (a dict with the keys of ``requested_trace_settings``)."""
        for key in _TRACE_KEYS:
            spinbox, value = self._spinboxes[key], settings[key]
            if spinbox.value() != value:
                spinbox.blockSignals(True)
                spinbox.setValue(value)
                spinbox.blockSignals(False)

    def show_channels(
        self,
        available: list[str],
        active: list[str],
        averaged: list[str],
        readout: list[str] | None = None,
        digital: list[str] = (),
    ) -> None:
        """Tick the channels in force and offer the trace's curves (``readout``, else the
        active channels) to the value readout; a digital line's "averaged" cannot be ticked."""
        window = self._window
        if (
            window.checked_channels() != (list(active), list(averaged))
            or window.channel_table.rowCount() != len(available)
            or window.digital_rows() != list(digital)
        ):
            window.set_channels(available, list(active), list(averaged), list(digital))
        readout = list(active) if readout is None else list(readout)
        combo = window.readout_channel_combo
        offered = [combo.itemText(index) for index in range(combo.count())]
        if offered == readout:
            return
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(readout)
        if current in readout:
            combo.setCurrentText(current)
        combo.blockSignals(False)

    def set_editable(self, editable: bool) -> None:
        """Allow changes (False while recording: settings cannot change then)."""
        self._window.trace_settings_dock.widget().setEnabled(editable)
        self._window.channel_dock.widget().setEnabled(editable)

    # --------------------------------------------------------------------------- refusals
    def show_refusal(self, what: str, error: BaseException) -> str:
        """Say in the dock and the status bar why an Apply was refused.

        Parameters
        ----------
        what : str
            ``"trace settings"`` or ``"channel settings"``.
        error : BaseException
            The refusal the logic raised.

        Returns
        -------
        str
            The message shown (for the log).
        """
        message = f"{what} refused: {error}"
        label = self._refusal_labels[what]
        show_text(label, f"Not applied: {type(error).__name__}: {error}")
        label.setToolTip(message)
        label.setVisible(True)
        self._window.statusBar().showMessage(message, 15000)
        return message

    def clear_refusal(self, what: str) -> None:
        """An Apply of ``what`` succeeded: its refusal is history."""
        label = self._refusal_labels[what]
        show_text(label, "")
        label.setVisible(False)
