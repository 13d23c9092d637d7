"""cfg/instream_markers.cfg with a one-stream recording (``recording_format: 'single'``) in
its own qudi, driven over qudi's remote connection as a Jupyter kernel does: markers written
while it records reach the file with the samples' flushes, so a SIGKILLed qudi leaves a file
that opens with plain h5py and holds them."""

from __future__ import annotations

import signal

import h5py
import pytest
import rpyc
from qudi_process import connect, free_port, headless_config, qudi_process
from tests.qudi.test_remote_qudi import wait_for


@pytest.fixture
def single_qudi(tmp_path):
    port = free_port()
    config = headless_config(
        "instream_markers.cfg",
        **{
            "namespace_server_port: 18861": f"namespace_server_port: {port}",
            "port: 12345": f"port: {free_port()}",
            "recording_format: 'session'  # markers go into a session file's markers table": (
                "recording_format: 'single'"
            ),
        },
    )
    with qudi_process(config, tmp_path, "markers_kill") as process:
        yield process, connect(port, process)


def _flushed_texts(path: str) -> list[str] | None:
    """The markers the file holds now, read beside its writer (no lock: the writer has it
    open; a read that meets a half-written state is tried again)."""
    try:
        with h5py.File(path, "r", locking=False) as file:
            return [bytes(text).decode() for text in file["markers"]["text"]]
    except (OSError, KeyError, ValueError, RuntimeError):
        return None


def test_a_killed_qudi_leaves_its_one_stream_recording_with_the_markers(single_qudi):
    process, connection = single_qudi
    namespace = connection.root.get_namespace_dict()
    namespace["qudi"].module_manager.activate_module("time_series_logic1")
    namespace = connection.root.get_namespace_dict()
    logic, stream = namespace["time_series_logic1"], namespace["marker_stream"]
    wait_for(lambda: len(logic.trace_data[0]) > 20, "a trace")
    logic.start_recording()
    wait_for(lambda: logic.recording_info["samples"] > 50, "the recording's first samples")
    path = str(logic.recording_info["path"])
    written = [
        rpyc.classic.obtain(stream.add_marker("from jupyter")),
        rpyc.classic.obtain(logic.add_marker("through the logic")),
    ]
    texts = [marker["text"] for marker in written]
    wait_for(lambda: logic.recording_info.get("markers") == 2, "the recording took both")
    # the recorder's thread flushes them with the samples (once a second)
    wait_for(lambda: _flushed_texts(path) == texts, "the markers in the file", timeout=20)

    process.send_signal(signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL

    with h5py.File(path, "r") as file:  # plain h5py opens the killed recording
        assert file.attrs["status"] == "recording" and int(file.attrs["samples_recorded"]) > 0
        rows = file["markers"][...]
    assert [bytes(text).decode() for text in rows["text"]] == texts  # each once, in order
    assert rows["time"].tolist() == [marker["time"] for marker in written]
