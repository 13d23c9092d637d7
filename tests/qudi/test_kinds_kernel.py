"""cfg/instream_kinds.cfg in its own qudi, and the docs' blocks marked for qudi's kernel with
this config (docs/processing.md's triggered view: a level and an event source) run there as
written, in qudi's own Jupyter kernel; then the windows they asked for are checked."""

from __future__ import annotations

import ast

from qudi_process import connect, free_port, headless_config, qudi_process, quit_qudi
from tests.docs.kernel import kernel_of_qudi_at, logic_streaming_cell, printed, run_in_kernel
from tests.docs.markdown import qudi_kernel_blocks

# after the last block (the event source): its windows come, each pre + post samples long
CHECK = """\
deadline = time.monotonic() + 30
while time_series_logic_kinds.scope_windows[3].get("windows", 0) < 2:
    assert time.monotonic() < deadline, time_series_logic_kinds.scope_windows[3]
    time.sleep(0.1)
t, windows, average, stats = time_series_logic_kinds.scope_windows
print(repr({
    "source": time_series_logic_kinds.scope_settings["source"],
    "windows": stats["windows"],
    "event_triggers": stats["event_triggers"],
    "events_lost": stats["events_lost"],
    "samples": len(t),
}))
"""


def test_the_docs_blocks_for_this_config_run_as_written_in_qudis_kernel(tmp_path, monkeypatch):
    blocks = qudi_kernel_blocks("cfg/instream_kinds.cfg")
    assert any('source="event"' in b.code for b in blocks), [b.id for b in blocks]
    port = free_port()
    config = headless_config(
        "instream_kinds.cfg",
        **{"global:\n": f"global:\n    namespace_server_port: {port}\n"},
    )
    with qudi_process(config, tmp_path, "kinds") as process:  # HOME: tmp_path / "kinds"
        connection = connect(port, process)
        environment = kernel_of_qudi_at(tmp_path / "kinds")
        cells = [logic_streaming_cell("time_series_logic_kinds"), *(b.code for b in blocks), CHECK]
        notebook = run_in_kernel(cells, "qudi", environment, tmp_path, monkeypatch)
        seen = ast.literal_eval(printed(notebook.cells[-1]).strip().splitlines()[-1])
        assert seen["source"] == "event" and seen["samples"] == 10 + 40, seen
        assert seen["windows"] >= 2 and seen["event_triggers"] >= seen["windows"], seen
        assert seen["events_lost"] == 0, seen
        quit_qudi(connection)
        assert process.wait(60) == 0
