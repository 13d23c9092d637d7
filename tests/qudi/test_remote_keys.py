"""Two qudi processes streaming over ZeroMQ with CURVE keys, configured as docs/remote.md says:
keys made by the documented command, named in cfg/instream_remote_server.cfg and
cfg/instream_remote_client.cfg."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import rpyc
from qudi_process import connect, free_port, headless_config, qudi_process, quit_qudi

CHANNELS = ["APD", "analog 1", "sample index"]
INDEX = CHANNELS.index("sample index")


def make_keys(folder, name):
    subprocess.run(
        [sys.executable, "-m", "qudi.util.instream.keys", "new", name, "--dir", str(folder)],
        check=True,
        capture_output=True,
    )


def test_two_qudis_stream_with_curve_keys_from_their_configs(tmp_path):
    keys = tmp_path / "keys"
    make_keys(keys, "daq-pc")
    make_keys(keys, "lab-laptop")
    (keys / "allowed").mkdir()
    shutil.copy(keys / "lab-laptop.key", keys / "allowed")
    server_ns, client_ns, remote = free_port(), free_port(), free_port()
    server_config = headless_config(
        "instream_remote_server.cfg",
        **{
            "namespace_server_port: 18861": f"namespace_server_port: {server_ns}",
            "port: 12345": f"port: {remote}",
            "# publish_key: '~/qudi/instream_keys/daq-pc.key_secret'": (
                f"publish_key: '{keys / 'daq-pc.key_secret'}'"
            ),
            "# allowed_clients: '~/qudi/instream_keys/allowed'": (
                f"allowed_clients: '{keys / 'allowed'}'"
            ),
        },
    )
    client_config = headless_config(
        "instream_remote_client.cfg",
        **{
            "namespace_server_port: 18862": f"namespace_server_port: {client_ns}",
            "port: 12345": f"port: {remote}",
            "transport: 'auto'": "transport: 'zmq'",
            "# subscribe_key: '~/qudi/instream_keys/lab-laptop.key_secret'": (
                f"subscribe_key: '{keys / 'lab-laptop.key_secret'}'"
            ),
            "# publisher_key: '~/qudi/instream_keys/daq-pc.key'": (
                f"publisher_key: '{keys / 'daq-pc.key'}'"
            ),
        },
    )
    with qudi_process(server_config, tmp_path, "server") as server:
        server_connection = connect(server_ns, server)
        server_space = server_connection.root.get_namespace_dict()
        server_space["qudi"].module_manager.activate_module("instream_dummy")
        with qudi_process(client_config, tmp_path, "client") as client:
            client_connection = connect(client_ns, client)
            client_space = client_connection.root.get_namespace_dict()
            client_space["qudi"].module_manager.activate_module("stream_buffer")
            buffer = client_connection.root.get_namespace_dict()["stream_buffer"]  # now active
            assert buffer.stream_name is None  # over ZeroMQ, not shared memory
            buffer.configure(CHANNELS, 0, 2**16, 50_000.0)
            buffer.start_stream()
            parts = []
            for _ in range(5):
                data, _ = buffer.read_data(20_000)
                parts.append(rpyc.classic.obtain(data).reshape(-1, len(CHANNELS))[:, INDEX])
            index = np.concatenate(parts)
            np.testing.assert_array_equal(np.diff(index), 1)
            assert buffer.lost_samples == 0
            buffer.stop_stream()
            quit_qudi(client_connection)
            assert client.wait(60) == 0
        quit_qudi(server_connection)
        assert server.wait(60) == 0
