"""cfg/instream_dummy.cfg in a real, separate qudi process: activate, stream, attach, quit;
cfg/instream_dummy_headless.cfg is the same demo without its windows (tests/docs runs it with
the README's command)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from qudi.util.yaml import yaml_load
from qudi_process import ROOT, connect, free_port, headless_config, qudi_process, quit_qudi

from qudi.util.instream import attach, list_streams


@pytest.fixture
def headless_qudi(tmp_path):
    """qudi with the demo config on free loopback ports and a private HOME."""
    namespace_port, remote_port = free_port(), free_port()
    config = headless_config(
        "instream_dummy.cfg",
        **{
            "namespace_server_port: 18861": f"namespace_server_port: {namespace_port}",
            "port: 12345": f"port: {remote_port}",
        },
    )
    with qudi_process(config, tmp_path, "demo") as process:
        yield process, connect(namespace_port, process)


def test_demo_config_streams_headless_with_both_logics_and_other_processes_attach(
    headless_qudi,
):
    process, connection = headless_qudi
    manager = connection.root.get_namespace_dict()["qudi"].module_manager
    manager.activate_module("stream_buffer1")
    manager.activate_module("stream_buffer2")
    namespace = connection.root.get_namespace_dict()
    buffer1, buffer2 = namespace["stream_buffer1"], namespace["stream_buffer2"]
    dummy = namespace["instream_dummy"]
    buffer1.configure(["APD", "analog 1"], 0, 2**16, 1000.0)
    buffer1.start_stream()
    buffer2.start_stream()
    assert dummy.module_state() == "locked"

    name = str(buffer1.stream_name)
    assert name in list_streams()
    ring = attach(name)  # this test process reads qudi's stream from shared memory
    try:
        assert ring.info.channel_names == ("APD", "analog 1")
        assert ring.info.channel_units == ("Hz", "V")
        reader = ring.reader("test process")
        data = np.empty((200, 2))
        reader.read_into(data, timeout=10)
        assert np.all(np.abs(data[:, 1]) <= 1.0) and np.all(data[:, 0] >= 0)
    finally:
        ring.close()

    buffer1.stop_stream()
    assert dummy.module_state() == "locked"  # buffer2 still streams
    buffer2.stop_stream()
    assert dummy.module_state() == "idle"

    # both time-series logics read the stream at the same time, each through its buffer
    manager.activate_module("time_series_logic1")
    manager.activate_module("time_series_logic2")
    namespace = connection.root.get_namespace_dict()
    logics = [namespace["time_series_logic1"], namespace["time_series_logic2"]]
    for logic in logics:
        logic.start_reading()
    deadline = time.monotonic() + 30
    while min(len(logic.trace_data[0]) for logic in logics) < 100:
        assert time.monotonic() < deadline, "the logics did not fill their traces"
        time.sleep(0.2)
    for logic in logics:
        assert logic.module_state() == "locked"
        logic.stop_reading()
    assert dummy.module_state() == "idle"
    quit_qudi(connection)
    assert process.wait(60) == 0
    assert name not in list_streams()


def test_headless_demo_config_is_the_demo_without_its_windows():
    demo = yaml_load(str(ROOT / "cfg" / "instream_dummy.cfg"))
    headless = yaml_load(str(ROOT / "cfg" / "instream_dummy_headless.cfg"))
    assert headless["hardware"] == demo["hardware"]
    assert headless["logic"] == demo["logic"]
    assert not headless.get("gui")
    # the logics start at once (and with them their buffers and the dummy)
    assert headless["global"]["startup_modules"] == ["time_series_logic1", "time_series_logic2"]
    assert all(
        logic["options"]["start_reading_on_activation"] for logic in headless["logic"].values()
    )
    # Jupyter and scripts reach it where they reach the demo; it serves no remote modules
    assert headless["global"]["namespace_server_port"] == demo["global"]["namespace_server_port"]
    assert "remote_modules_server" not in headless["global"]
