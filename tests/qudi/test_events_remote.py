"""Structured records over qudi remote: a server qudi runs the event dummy and a marker stream;
a client qudi's buffers read them through shared memory and over ZeroMQ, and a Jupyter user
(rpyc, ``netobtain``) reads the server's own buffers and writes markers. Every consumer gets
every event and marker once, in order, as records of the stream's structured dtype, and the
constraints say that dtype wherever they are read."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from qudi.util.network import netobtain
from qudi_process import connect, free_port, qudi_process, quit_qudi

import qudi.hardware.instream.event_dummy as event_dummy_module
from qudi.util.instream.events import EVENT_DTYPE, PoissonEvents, as_events
from qudi.util.instream.markers import MARKER_DTYPE, as_markers, marker_list

RATE = 4e4  # events per second, all four channels together
READ_S = 1.0


def _event_dummy_section() -> str:
    """The event dummy's docstring example, shared with other qudi processes."""
    example = re.search(r"::\n\n((?:    .*\n|\n)+)", event_dummy_module.__doc__).group(1)
    line = "        module.Class: 'instream.event_dummy.InStreamEventDummy'\n"
    assert line in example
    return example.replace(line, line + "        allow_remote: True\n")


def _buffer(name: str, streamer: str, transport: str = "auto") -> str:
    return (
        f"    {name}:\n"
        "        module.Class: 'instream.buffer.DataInStreamBuffer'\n"
        "        options:\n"
        f"            transport: '{transport}'\n"
        "        connect:\n"
        f"            streamer: '{streamer}'\n"
    )


def _remote(name: str, remote_port: int) -> str:
    return (
        f"    {name}:\n"
        f"        native_module_name: '{name}'\n"
        "        address: 'localhost'\n"
        f"        port: {remote_port}\n"
    )


def _server_config(namespace_port: int, remote_port: int) -> str:
    """The event dummy and a marker stream (with a buffer each: the marker stream is no
    SharedStreamer, so other qudi processes join its buffer)."""
    return (
        "global:\n"
        "    startup_modules: []\n"
        "    remote_modules_server:\n"
        "        address: 'localhost'\n"
        f"        port: {remote_port}\n"
        f"    namespace_server_port: {namespace_port}\n"
        "    force_remote_calls_by_value: True\n"
        "hardware:\n"
        f"{_event_dummy_section()}"
        f"{_buffer('event_buffer', 'event_dummy')}"
        "    marker_stream:\n"
        "        module.Class: 'instream.markers.MarkerStream'\n"
        f"{_buffer('marker_buffer', 'marker_stream')}"
        "        allow_remote: True\n"
    )


def _client_config(namespace_port: int, remote_port: int) -> str:
    return (
        "global:\n"
        "    startup_modules: []\n"
        f"    namespace_server_port: {namespace_port}\n"
        "hardware:\n"
        f"{_remote('event_dummy', remote_port)}"
        f"{_buffer('events_shm', 'event_dummy', 'shared_memory')}"
        f"{_buffer('events_zmq', 'event_dummy', 'zmq')}"
        f"{_remote('marker_buffer', remote_port)}"
        f"{_buffer('markers_shm', 'marker_buffer', 'shared_memory')}"
        f"{_buffer('markers_zmq', 'marker_buffer', 'zmq')}"
    )


def namespace(connection):
    return connection.root.get_namespace_dict()


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def obtained(buffer, samples: int | None = None) -> np.ndarray:
    """``buffer.read_data(samples)`` over rpyc, the records taken by value as a notebook does."""
    data, stamps = buffer.read_data(samples)
    records = netobtain(data)
    assert isinstance(records, np.ndarray) and netobtain(stamps) is None
    assert records.dtype == EVENT_DTYPE and records.shape[1:] == (1,)
    return records


@pytest.fixture(scope="module")
def qudis(tmp_path_factory):
    """(server namespace connection, client namespace connection); both qudis quit cleanly
    after the module's tests."""
    tmp_path = tmp_path_factory.mktemp("remote_events")
    server_ns, client_ns, remote = free_port(), free_port(), free_port()
    with qudi_process(_server_config(server_ns, remote), tmp_path, "server") as server:
        server_connection = connect(server_ns, server)
        manager = namespace(server_connection)["qudi"].module_manager
        for name in ("event_dummy", "marker_buffer"):  # qudi shares active modules only
            manager.activate_module(name)
        with qudi_process(_client_config(client_ns, remote), tmp_path, "client") as client:
            client_connection = connect(client_ns, client)
            yield server_connection, client_connection
            quit_qudi(client_connection)
            assert client.wait(60) == 0
        quit_qudi(server_connection)
        assert server.wait(60) == 0


def test_event_records_reach_a_client_qudi_and_a_notebook_whole_every_one_in_order(qudis):
    server_connection, client_connection = qudis
    dummy = namespace(server_connection)["event_dummy"]
    client_manager = namespace(client_connection)["qudi"].module_manager
    for name in ("events_shm", "events_zmq"):
        client_manager.activate_module(name)
    shm, zmq = (namespace(client_connection)[name] for name in ("events_shm", "events_zmq"))
    namespace(server_connection)["qudi"].module_manager.activate_module("event_buffer")
    notebook = namespace(server_connection)["event_buffer"]  # a Jupyter user's view of it
    assert zmq.stream_name is None and shm.stream_name == notebook.stream_name

    # the constraints carry the structured dtype: the client's copies, the notebook's copy
    for buffer in (shm, zmq, notebook, dummy):
        constraints = netobtain(buffer.constraints)
        assert constraints.data_type == EVENT_DTYPE == constraints.dtype
    point, stamp = shm.read_single_point()  # nothing streamed yet: the dummy's, by value
    assert netobtain(point).dtype == EVENT_DTYPE and stamp is None

    shm.configure(["events"], "CONTINUOUS", 1 << 20, RATE)  # through the client, on the server
    assert dummy.sample_rate == RATE
    shm.start_stream()  # the first consumer: it starts the dummy
    assert dummy.module_state() == "locked"
    zmq.start_stream()
    notebook.start_stream()
    got: dict = {buffer: [obtained(buffer, 1000)] for buffer in (shm, zmq, notebook)}
    end = time.monotonic() + READ_S
    while time.monotonic() < end:
        for buffer, parts in got.items():
            parts.append(obtained(buffer))  # what is there now
        time.sleep(0.05)
    for buffer in got:
        buffer.stop_stream()
    wait_for(lambda: dummy.module_state() == "idle", "the dummy stops with its last consumer")

    streams = {buffer: as_events(np.concatenate(parts)) for buffer, parts in got.items()}
    last = max(float(events["time"][-1]) for events in streams.values())
    reference = PoissonEvents([RATE / 4] * 4, seed=0).between(0, int(last * 1000) + 2)
    for events in streams.values():  # each from its start on: a contiguous run of the same
        # (a remote consumer counts from where the ring was when its start call returned,
        # a moment after the server started the dummy for it)
        assert len(events) > RATE * READ_S / 2
        offset = int(np.searchsorted(reference["time"], events["time"][0]))
        np.testing.assert_array_equal(events, reference[offset : offset + len(events)])
    assert shm.lost_samples == zmq.lost_samples == notebook.lost_samples == 0


def test_markers_written_from_a_notebook_reach_a_client_qudi_and_the_notebook_as_records(qudis):
    server_connection, client_connection = qudis
    client_manager = namespace(client_connection)["qudi"].module_manager
    for name in ("markers_shm", "markers_zmq"):
        client_manager.activate_module(name)
    buffers = [namespace(client_connection)[name] for name in ("markers_shm", "markers_zmq")]
    notebook = namespace(server_connection)["marker_buffer"]
    markers = namespace(server_connection)["marker_stream"]
    for buffer in (*buffers, notebook):
        assert netobtain(buffer.constraints).data_type == MARKER_DTYPE
    for buffer in (*buffers, notebook):
        buffer.start_stream()
    texts = ["pump on", "Übergang 2 µs", "x" * 256, "last one"]  # UTF-8, up to 256 bytes
    before = time.monotonic()
    written = [markers.add_marker(text) for text in texts]  # a Jupyter user's calls
    after = time.monotonic()
    assert [w["text"] for w in written] == texts
    for buffer in (*buffers, notebook):
        records, stamps = _markers_read(buffer, len(texts))
        assert [text for _, text in marker_list(records)] == texts  # each once, in order
        assert before <= records["time"][0] <= records["time"][-1] <= after
        np.testing.assert_array_equal(np.diff(records["time"]) >= 0, True)
        assert len(stamps) == len(records)
        assert len(_marker_read(buffer)[0]) == 0  # and nothing after them
        buffer.stop_stream()


def _markers_read(buffer, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Read ``buffer`` until it gave ``count`` markers (30 s at most)."""
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    deadline = time.monotonic() + 30.0
    while sum(len(records) for records, _ in parts) < count:
        assert time.monotonic() < deadline, f"{count} markers did not arrive in 30 s: {parts}"
        parts.append(_marker_read(buffer))
        time.sleep(0.02)
    records = as_markers(np.concatenate([records for records, _ in parts]))
    return records, np.concatenate([stamps for _, stamps in parts])


def _marker_read(buffer) -> tuple[np.ndarray, np.ndarray]:
    """What ``buffer`` holds now, records and timestamps taken by value."""
    data, stamps = buffer.read_data()
    records, stamps = netobtain(data), netobtain(stamps)
    assert records.dtype == MARKER_DTYPE and stamps.dtype == np.float64
    return records, stamps
