"""cfg/instream_markers.cfg in its own qudi, driven over qudi's remote connection as a Jupyter
kernel does: markers written through the marker stream and through a logic reach both logics'
markers_in_view, a session recording stores them, bad text is refused naming it. The docs'
blocks marked for qudi's kernel with this config run there as written."""

from __future__ import annotations

import re

import pytest
import rpyc
from qudi_process import connect, free_port, headless_config, qudi_process, quit_qudi
from tests.docs.kernel import kernel_of_qudi_at, logic_streaming_cell, printed, run_in_kernel
from tests.docs.markdown import qudi_kernel_blocks
from tests.qudi.test_remote_qudi import wait_for

from qudi.util.instream.session import open_session


@pytest.fixture
def markers_qudi(tmp_path):
    port = free_port()
    config = headless_config(
        "instream_markers.cfg",
        **{
            "namespace_server_port: 18861": f"namespace_server_port: {port}",
            "port: 12345": f"port: {free_port()}",
        },
    )
    with qudi_process(config, tmp_path, "markers") as process:  # HOME: tmp_path / "markers"
        connection = connect(port, process)
        yield process, connection
        quit_qudi(connection)
        assert process.wait(60) == 0


def test_jupyter_writes_markers_both_logics_show_and_a_session_stores(markers_qudi):
    process, connection = markers_qudi
    manager = connection.root.get_namespace_dict()["qudi"].module_manager
    manager.activate_module("time_series_logic1")  # and their marker stream and streamers
    manager.activate_module("time_series_logic2")
    namespace = connection.root.get_namespace_dict()  # what a Jupyter kernel of qudi sees
    logic1, logic2 = namespace["time_series_logic1"], namespace["time_series_logic2"]
    stream = namespace["marker_stream"]
    wait_for(lambda: min(len(logic1.trace_data[0]), len(logic2.trace_data[0])) > 20, "traces")

    def texts(logic) -> list[str]:
        return [text for _, text in rpyc.classic.obtain(logic.markers_in_view)]

    first = rpyc.classic.obtain(stream.add_marker("from jupyter"))
    second = rpyc.classic.obtain(logic1.add_marker("through logic 1"))
    assert first["text"] == "from jupyter" and second["time"] > first["time"]
    for logic in (logic1, logic2):
        wait_for(lambda lg=logic: texts(lg) == ["from jupyter", "through logic 1"], "markers")

    with pytest.raises(ValueError, match=re.escape(repr("bad\x00"))):
        logic2.add_marker("bad\x00")
    with pytest.raises(ValueError, match="1 to 256 bytes"):
        stream.add_marker("")
    assert stream.marker_count == 2  # nothing written

    logic2.start_recording()
    wait_for(lambda: logic2.recording_info["samples"] > 50, "the recording's first samples")
    third = rpyc.classic.obtain(stream.add_marker("while recording"))
    wait_for(lambda: texts(logic2)[-1:] == ["while recording"], "the third marker")
    path = str(logic2.stop_recording())
    with open_session(path) as session:
        assert [(t, text) for t, _, text in session.marker_list()] == [
            (third["time"], "while recording")
        ]
    assert process.poll() is None


def test_the_docs_blocks_for_this_config_run_as_written_in_qudis_kernel(
    markers_qudi, tmp_path, monkeypatch
):
    """Every block the pages mark ``in qudi's kernel: cfg/instream_markers.cfg``, in order, in
    qudi's own Jupyter kernel (installed as docs/jupyter.md says) of the running qudi, after
    a cell that brings the logic up as its GUI would; then what the blocks did is checked."""
    process, connection = markers_qudi
    blocks = qudi_kernel_blocks("cfg/instream_markers.cfg")
    assert any("add_marker" in b.code for b in blocks), [b.id for b in blocks]
    environment = kernel_of_qudi_at(tmp_path / "markers")
    check = (
        "from qudi.util.instream.session import open_session\n"
        "print('stopped', time_series_logic1.stop_recording())\n"
        "with open_session(path) as recorded:\n"
        "    print('markers', [text for *_, text in recorded.marker_list()])\n"
    )
    cells = [logic_streaming_cell("time_series_logic1"), *(b.code for b in blocks), check]
    notebook = run_in_kernel(cells, "qudi", environment, tmp_path, monkeypatch)
    out = printed(notebook.cells[-1])
    assert "markers ['pump laser on']" in out, out
    assert process.poll() is None
