"""Two qudi processes: the server owns the dummy streamer, the client reads it through its
own buffer and logic (cfg/instream_remote_server.cfg + cfg/instream_remote_client.cfg)."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import rpyc
from qudi_process import connect, free_port, headless_config, qudi_process, quit_qudi

from qudi.util.instream import StreamBusyError, attach, list_streams
from qudi.util.instream.sharing import RemoteHub

CHANNELS = ["APD", "analog 1", "sample index"]
INDEX = CHANNELS.index("sample index")


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


@pytest.fixture
def ports():
    """(server namespace, client namespace, server's remote modules) ports."""
    return free_port(), free_port(), free_port()


@pytest.fixture
def server_qudi(tmp_path, ports):
    """The server qudi and a connection to its namespace (as a Jupyter kernel has it)."""
    server_ns, _, remote = ports
    config = headless_config(
        "instream_remote_server.cfg",
        **{
            "namespace_server_port: 18861": f"namespace_server_port: {server_ns}",
            "port: 12345": f"port: {remote}",
        },
    )
    with qudi_process(config, tmp_path, "server") as server:
        yield server, connect(server_ns, server)


@pytest.fixture
def transport():
    return "auto"


@pytest.fixture
def two_qudis(tmp_path, ports, server_qudi, transport):
    """(server process, server namespace, client process, client namespace connection)."""
    _, client_ns, remote = ports
    client_config = headless_config(
        "instream_remote_client.cfg",
        **{
            "namespace_server_port: 18862": f"namespace_server_port: {client_ns}",
            "port: 12345": f"port: {remote}",
            "transport: 'auto'": f"transport: '{transport}'",
        },
    )
    server, server_connection = server_qudi
    with qudi_process(client_config, tmp_path, "client") as client:
        yield server, server_connection, client, connect(client_ns, client)


def namespace(connection):
    return connection.root.get_namespace_dict()


def read_index(buffer, samples: int) -> np.ndarray:
    """The 'sample index' channel of the next ``samples`` samples read through ``buffer``."""
    data, _ = buffer.read_data(samples)
    return rpyc.classic.obtain(data).reshape(samples, len(CHANNELS))[:, INDEX]


def test_client_qudi_streams_from_the_server_qudi_with_reference_counting_across_them(
    two_qudis,
):
    server, server_connection, client, client_connection = two_qudis
    server_manager = namespace(server_connection)["qudi"].module_manager
    server_manager.activate_module("instream_dummy")  # qudi shares active modules only
    client_manager = namespace(client_connection)["qudi"].module_manager
    client_manager.activate_module("stream_buffer")  # activates the server's dummy too
    client_buffer = namespace(client_connection)["stream_buffer"]
    dummy = namespace(server_connection)["instream_dummy"]
    assert dummy.module_state() == "idle"

    client_buffer.configure(CHANNELS, 0, 2**16, 50_000.0)
    assert dummy.sample_rate == 50_000.0  # configured through the client, applied on the server
    client_buffer.start_stream()
    assert dummy.module_state() == "locked"
    # every sample, in order, across consecutive reads (the data came via shared memory)
    index = np.concatenate([read_index(client_buffer, 20_000) for _ in range(10)])
    np.testing.assert_array_equal(np.diff(index), 1)
    assert client_buffer.lost_samples == 0

    # the server's own consumer and the client's count together
    server_manager.activate_module("stream_buffer")
    server_buffer = namespace(server_connection)["stream_buffer"]
    assert server_buffer.stream_name == client_buffer.stream_name
    server_buffer.start_stream()
    client_buffer.stop_stream()
    assert dummy.module_state() == "locked"  # the server's buffer still streams
    server_buffer.stop_stream()
    assert dummy.module_state() == "idle"

    # a changed configuration while another qudi streams is refused, naming that consumer
    server_buffer.start_stream()
    with pytest.raises(Exception, match="while readers are running: 'stream_buffer';"):
        client_buffer.configure(CHANNELS, 0, 2**16, 10_000.0)
    server_buffer.stop_stream()

    # the client's logic reads the remote stream (a Jupyter user finds its name there)
    client_manager.activate_module("time_series_logic")
    logic = namespace(client_connection)["time_series_logic"]
    logic.start_reading()
    assert dummy.module_state() == "locked"
    wait_for(lambda: len(logic.trace_data[0]) > 100, "the client logic's trace fills")
    name = logic.stream_name
    assert name == client_buffer.stream_name and name in list_streams()
    ring = attach(name)  # this process, like a Jupyter kernel: straight from shared memory
    try:
        out = np.empty((100, len(CHANNELS)))  # the logic set 50 samples/s
        ring.reader("jupyter").read_into(out, timeout=30)
        np.testing.assert_array_equal(np.diff(out[:, INDEX]), 1)
    finally:
        ring.close()

    # the client qudi dies while streaming: its place among the consumers goes with it
    client.send_signal(signal.SIGKILL)
    client.wait(30)
    wait_for(lambda: dummy.module_state() == "idle", "the dead client's stream stops")
    assert name in list_streams()  # the dead client took nothing of the server's with it
    server_buffer.start_stream()  # and the server's consumers carry on
    assert dummy.module_state() == "locked"
    server_buffer.stop_stream()

    quit_qudi(server_connection)
    assert server.wait(60) == 0
    assert name not in list_streams()


def test_a_notebook_joins_the_stream_of_a_qudi_streamer_and_reads_shared_memory(server_qudi):
    server, connection = server_qudi
    namespace(connection)["qudi"].module_manager.activate_module("instream_dummy")
    dummy = namespace(connection)["instream_dummy"]  # what a Jupyter kernel of qudi sees
    hub = RemoteHub.join(dummy, "notebook")
    reader = hub.open_reader("notebook")
    try:
        hub.configure(CHANNELS, "CONTINUOUS", 2**16, 100_000.0)
        reader.start()  # nobody else streams: this starts the card
        assert dummy.module_state() == "locked"
        out = np.empty((50_000, len(CHANNELS)))
        for _ in range(4):
            reader.read_into(out, timeout=30)
            np.testing.assert_array_equal(np.diff(out[:, INDEX]), 1)
        assert reader.lost == 0
        reader.stop()
        assert dummy.module_state() == "idle"
    finally:
        hub.close()
    quit_qudi(connection)
    assert server.wait(60) == 0


def test_a_notebook_cell_refused_while_others_stream_can_be_run_again(server_qudi):
    """docs/jupyter.md: the cell's configure is refused while qudi's logics stream; the
    refusal names them (across rpyc), and the cell, run again, joins again."""
    server, connection = server_qudi
    namespace(connection)["qudi"].module_manager.activate_module("instream_dummy")
    dummy = namespace(connection)["instream_dummy"]
    logic = RemoteHub.join(dummy, "logic stand-in")  # a consumer that streams
    logic_reader = logic.open_reader("logic stand-in")
    logic_reader.start()
    try:
        for _run in range(2):
            hub = RemoteHub.join(dummy, "my notebook")
            with pytest.raises(StreamBusyError) as refusal:
                hub.configure(CHANNELS, "CONTINUOUS", 2**16, 100_000.0)
            assert refusal.value.running_readers == ("logic stand-in",)
        reader = hub.open_reader("my notebook")
        reader.start()  # the stream's settings stay as they are
        out = np.empty((100, len(CHANNELS)))  # 2 s of the dummy's 50 Hz: nobody set a rate
        reader.read_into(out, timeout=30)
        np.testing.assert_array_equal(np.diff(out[:, INDEX]), 1)
        hub.close()
    finally:
        logic.close()
    wait_for(lambda: dummy.module_state() == "idle", "the card stops with its last consumer")
    quit_qudi(connection)
    assert server.wait(60) == 0


@pytest.mark.parametrize("transport", ["zmq"])
def test_client_qudi_streams_over_zeromq_when_told_to(two_qudis):
    server, server_connection, client, client_connection = two_qudis
    server_manager = namespace(server_connection)["qudi"].module_manager
    server_manager.activate_module("instream_dummy")
    client_manager = namespace(client_connection)["qudi"].module_manager
    client_manager.activate_module("stream_buffer")
    client_buffer = namespace(client_connection)["stream_buffer"]
    dummy = namespace(server_connection)["instream_dummy"]
    assert client_buffer.stream_name is None  # the samples do not come from shared memory

    client_buffer.configure(CHANNELS, 0, 2**16, 50_000.0)
    client_buffer.start_stream()
    assert dummy.module_state() == "locked"
    index = np.concatenate([read_index(client_buffer, 20_000) for _ in range(10)])
    np.testing.assert_array_equal(np.diff(index), 1)
    assert client_buffer.lost_samples == 0
    client_buffer.stop_stream()
    assert dummy.module_state() == "idle"

    client_manager.activate_module("time_series_logic")
    logic = namespace(client_connection)["time_series_logic"]
    assert logic.stream_name is None
    logic.start_reading()
    assert dummy.module_state() == "locked"
    wait_for(lambda: len(logic.trace_data[0]) > 100, "the client logic's trace fills")
    logic.stop_reading()
    assert dummy.module_state() == "idle"
    quit_qudi(client_connection)
    assert client.wait(60) == 0
    quit_qudi(server_connection)
    assert server.wait(60) == 0
