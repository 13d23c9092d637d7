"""Run qudi-core's application in a benchmark process: headless, HOME in a temporary folder."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def dummy_entry(name: str, channels: int, signals: str = "ramp") -> list[str]:
    """Config lines of an InStreamDummy with ``channels`` channels of one signal each."""
    names = [f"ch{i}" for i in range(channels)]
    return [
        f"    {name}:",
        "        module.Class: 'instream.dummy.InStreamDummy'",
        "        options:",
        f"            channel_names: {names}",
        f"            channel_units: {['V'] * channels}",
        f"            channel_signals: {[signals] * channels}",
    ]


def buffer_entry(name: str, streamer: str) -> list[str]:
    return [
        f"    {name}:",
        "        module.Class: 'instream.buffer.DataInStreamBuffer'",
        "        options: {allow_overwrite: False, max_poll_rate: 30.0}",
        f"        connect: {{streamer: '{streamer}'}}",
    ]


def logic_entry(name: str, streamer: str, options: str = "{}") -> list[str]:
    """Config lines of a TimeSeriesReaderLogic; ``options`` as a YAML flow mapping."""
    return [
        f"    {name}:",
        "        module.Class: 'instream.time_series_reader_logic.TimeSeriesReaderLogic'",
        f"        options: {options}",
        f"        connect: {{streamer: '{streamer}'}}",
    ]


def gui_entry(name: str, logic: str) -> list[str]:
    return [
        f"    {name}:",
        "        module.Class: 'instream.time_series_gui.TimeSeriesGui'",
        f"        connect: {{_time_series_logic_con: '{logic}'}}",
    ]


def start_qudi(sections: dict[str, list[str]], no_gui: bool = True):
    """Start qudi in this process with the given config sections; returns (qapp, qudi).

    ``no_gui=False`` is needed to activate GUI modules (QT_QPA_PLATFORM stays offscreen)."""
    home = tempfile.mkdtemp(prefix="qudi-instream-bench-")
    os.environ["HOME"] = home
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication
    from qudi.core.application import Qudi

    lines = ["global:", "    startup_modules: []"]
    for section, entries in sections.items():
        lines += [f"{section}:", *entries]
    config = Path(home) / "bench.cfg"
    config.write_text("\n".join(lines) + "\n")
    app = QApplication.instance() or QApplication(sys.argv)
    qudi = Qudi(no_gui=no_gui, log_dir=str(Path(home) / "log"), config_file=str(config))
    qudi._configure_qudi()
    return app, qudi


def stop_qudi(app, qudi) -> None:
    qudi.module_manager.stop_all_modules()
    qudi.thread_manager.quit_all_threads()
    app.processEvents()
