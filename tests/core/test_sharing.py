"""Consumers of a hub in other processes: a StreamShare for control, shared memory for data."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest
import rpyc
from rpyc.utils.server import ThreadedServer

from qudi.util.instream import (
    StreamBusyError,
    StreamError,
    StreamFaultError,
    StreamHub,
    StreamStoppedError,
    sharing,
)
from qudi.util.instream.sharing import HubRegistry, RemoteHub, StreamShare, SubscribedHub
from qudi.util.instream.simulated import SimulatedSource

SPAWN = multiprocessing.get_context("spawn")
RPYC_CONFIG = {"allow_all_attrs": True, "allow_pickle": False}


def assert_ramp(data: np.ndarray, first: float) -> None:
    expected = np.arange(first, first + len(data), dtype=np.float64)
    np.testing.assert_array_equal(data[:, 0], expected)


@pytest.fixture
def hub(stream_name):
    source = SimulatedSource(("ramp",), sample_rate=50_000.0)
    with StreamHub(source, name=stream_name, max_poll_rate=200.0) as hub:
        yield hub


def test_remote_reader_counts_as_a_consumer_and_reads_the_shared_ring(hub):
    share = StreamShare(hub, "client")
    remote = RemoteHub(share)
    reader = remote.open_reader("client")
    try:
        assert not hub.running
        reader.start()
        assert hub.running and hub.running_readers == ["client"]
        assert hub.source.is_running
        first, second = np.empty((5000, 1)), np.empty((5000, 1))
        reader.read_into(first, timeout=10)
        reader.read_into(second, timeout=10)
        assert_ramp(np.vstack([first, second]), first[0, 0])
        assert reader.lost == 0

        local = hub.open_reader("local")
        local.start()
        reader.stop()  # the local reader still runs: so does the source
        assert hub.running and hub.running_readers == ["local"]
        with pytest.raises(StreamStoppedError, match="'client' is stopped"):
            reader.read_into(first, timeout=1)
        local.stop()
        assert not hub.source.is_running
    finally:
        remote.close()
    assert [r.name for r in hub.readers] == ["local"]


def test_configure_through_a_share_follows_the_replaced_ring(hub):
    remote = RemoteHub(StreamShare(hub, "client"))
    reader = remote.open_reader("client")
    try:
        old_id = remote.ring.info.extra["stream_id"]
        remote.configure(["ramp"], "CONTINUOUS", 1000, 50_000.0)  # the running settings: a no-op
        assert remote.ring.info.extra["stream_id"] == old_id
        remote.configure(["ramp"], "CONTINUOUS", 1000, 20_000.0)
        assert remote.ring.info.extra["stream_id"] == hub.ring.info.extra["stream_id"] != old_id
        assert remote.ring.info.sample_rate == 20_000.0
        reader.start()
        out = np.empty((1000, 1))
        reader.read_into(out, timeout=10)
        assert_ramp(out, out[0, 0])
        with pytest.raises(StreamBusyError, match="client"):
            remote.configure(["ramp"], "CONTINUOUS", 1000, 10_000.0)
    finally:
        remote.close()


def test_a_source_fault_reaches_the_remote_reader_once_and_a_restart_clears_it(hub):
    remote = RemoteHub(StreamShare(hub, "client"))
    reader = remote.open_reader("client")
    out = np.empty((100, 1))
    try:
        reader.start()
        reader.read_into(out, timeout=10)
        hub.source.simulate_fault(OSError("card unplugged"))
        with pytest.raises(StreamFaultError, match="card unplugged"):
            reader.read_into(np.empty((40_000, 1)), timeout=10)
        reader.read_available_into(np.empty((50_000, 1)))  # what came before the fault
        with pytest.raises(StreamStoppedError, match="fault"):
            reader.read_into(out, timeout=1)
        assert not reader.running
        reader.start()
        reader.read_into(out, timeout=10)
        assert_ramp(out, out[0, 0])
    finally:
        remote.close()


def test_a_consumer_on_another_host_gets_the_stream_over_zeromq(hub):
    remote = SubscribedHub(StreamShare(hub, "far away"))
    reader = remote.open_reader("far away")
    try:
        assert remote.name is None  # nothing to attach to on this host
        assert remote.ring.info.channel_names == ("ramp",)  # the format, before any start
        with pytest.raises(StreamStoppedError, match="'far away' is stopped"):
            reader.read_into(np.empty((10, 1)), timeout=1)
        for _run in range(2):  # a restart subscribes afresh, without a gap
            reader.start()
            assert hub.running_readers == ["far away", "far away zmq"]
            data = np.empty((30_000, 1))
            for first in range(0, len(data), 10_000):
                reader.read_into(data[first : first + 10_000], timeout=10)
            assert_ramp(data, data[0, 0])
            reader.stop()
            assert not hub.running and hub.running_readers == []
        assert reader.lost == 0

        reader.start()
        hub.source.simulate_fault(OSError("card unplugged"))
        with pytest.raises(StreamFaultError, match="card unplugged"):
            reader.read_into(np.empty((40_000, 1)), timeout=10)
        reader.start()  # after a fault, a start works again
        reader.read_into(data[:1000], timeout=10)
        assert_ramp(data[:1000], data[0, 0])
    finally:
        remote.close()
    assert hub.readers == ()


class _FarAwayShare(StreamShare):
    """A share whose publisher is on the server's loopback, which this 'host' cannot reach."""

    def start_publishing(self) -> str:
        self.start()
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            return f"tcp://127.0.0.1:{unused.getsockname()[1]}"


def test_a_publisher_out_of_reach_is_reported_with_what_to_set(hub):
    remote = SubscribedHub(_FarAwayShare(hub, "far away"))
    reader = remote.open_reader("far away")
    try:
        with pytest.raises(StreamError, match="set the option 'publish_address'"):
            reader.start()
        assert not hub.running  # the failed start left the source stopped
    finally:
        remote.close()


def test_a_remote_reader_stopped_by_a_fault_never_reads_into_the_next_run(hub):
    remote = RemoteHub(StreamShare(hub, "client"))
    stale = remote.open_reader("client")
    restarter = hub.open_reader("restarter")
    try:
        stale.start()
        restarter.start()
        stale.read_into(np.empty((1000, 1)), timeout=10)
        hub.source.simulate_fault(OSError("card unplugged"))
        for reader in (stale, restarter):
            with pytest.raises(StreamFaultError):
                reader.read_into(np.empty((40_000, 1)), timeout=10)
        restarter.start()  # a new run: the ramp starts again at 0
        restarter.read_into(np.empty((20_000, 1)), timeout=10)
        left = np.empty((50_000, 1))
        count = stale.read_available_into(left)  # what is left of its own run, no more
        np.testing.assert_array_equal(np.diff(left[:count, 0]), 1)
        assert stale.available == 0
    finally:
        restarter.stop()
        remote.close()


def test_a_share_that_nobody_references_any_more_leaves_the_hub(hub):
    share = StreamShare(hub, "vanished client")
    share.start()
    assert hub.running
    del share
    gc.collect()
    assert not hub.running
    assert hub.readers == ()


def test_share_errors_reach_the_caller_as_plain_values_and_keep_nothing_alive(hub):
    local = hub.open_reader("local")
    local.start()
    share = StreamShare(hub, "remote")
    assert share.call("start")[0] == "ok"
    refused = share.call("configure", ("ramp",), "CONTINUOUS", 1000, 1.0)
    assert refused[:2] == ("error", "StreamBusyError")
    assert "while readers are running: 'local', 'remote'" in refused[2]
    assert share.call("eval", "1") == (
        "error",
        "ValueError",
        f"'eval' is not one of {list(sharing.REMOTE_METHODS)}",
    )
    gc.disable()  # no cycle collector: only reference counting may free the share
    try:
        del share
        assert [r.name for r in hub.readers] == ["local"]
    finally:
        gc.enable()
        local.stop()


def test_registry_refuses_a_second_consumer_of_the_same_name_and_closes_with_the_last(
    stream_name,
):
    registry = HubRegistry()
    opened = []

    def open_hub():
        opened.append(StreamHub(SimulatedSource(), name=stream_name))
        return opened[-1]

    hub = registry.join("key", "a", open_hub, 30.0)
    assert registry.join("key", "b", open_hub, 60.0) is hub and len(opened) == 1
    assert hub.max_poll_rate == 60.0
    with pytest.raises(ValueError, match="already has a consumer named 'a'"):
        registry.join("key", "a", open_hub, 30.0)
    registry.leave(hub, "a")
    assert not hub.ring.closed
    registry.leave(hub, "b")
    assert hub.ring.closed


class _Streamer:
    """What module_hub needs of a qudi streamer module: a uuid, a name, a source's shape."""

    def __init__(self, name: str):
        self.module_uuid = object()
        self.module_name = name
        self.source = SimulatedSource(("ramp",), sample_rate=10_000.0)

    def __getattr__(self, name):  # the source's DataInStreamInterface shape
        return getattr(self.source, name)


def test_each_local_consumer_leaves_its_place_and_the_last_closes_the_hub():
    streamer = _Streamer(f"test_local_{os.getpid()}")
    first = sharing.join_module_hub(streamer, "buffer 1", 30.0)
    second = sharing.join_module_hub(streamer, "buffer 2", 30.0)
    assert first.hub is second.hub and first.name == second.name == first.hub.name
    reader = first.open_reader("buffer 1")
    reader.start()
    data = np.empty((100, 1))
    reader.read_into(data, timeout=10)
    assert_ramp(data, data[0, 0])
    reader.close()
    first.leave()
    assert not second.ring.closed
    first.leave()  # again: harmless, and not counted against the other consumer
    assert not second.ring.closed
    second.leave()
    assert first.hub.ring.closed


def test_every_joined_hub_kind_leaves_with_one_call(hub):
    remote, far = RemoteHub(StreamShare(hub, "near")), SubscribedHub(StreamShare(hub, "far"))
    near_reader, far_reader = remote.open_reader("near"), far.open_reader("far")
    near_reader.start()
    far_reader.start()
    assert hub.running_readers == ["far", "far zmq", "near"]
    assert far_reader.subscriber is not None and far_reader.position >= 0
    for joined, reader in ((remote, near_reader), (far, far_reader)):
        reader.close()
        joined.leave()
    assert hub.readers == () and not hub.running
    assert far_reader.subscriber is None


def test_a_refused_configure_through_a_remote_hub_names_the_running_consumers(hub):
    logic = hub.open_reader("logic 1")
    logic.start()
    remote = RemoteHub(StreamShare(hub, "my notebook"))
    try:
        with pytest.raises(StreamBusyError, match="'logic 1'") as caught:
            remote.configure(["ramp"], "CONTINUOUS", 1000, 10_000.0)
        assert caught.value.running_readers == ("logic 1",)  # as a local hub's refusal says
        assert hub.ring.info.sample_rate == 50_000.0 and hub.running  # nothing changed
    finally:
        remote.close()
        logic.close()


class _SharedStreamer(_Streamer):
    """A qudi-instream streamer module as a consumer in another process sees it."""

    def share_stream(self, consumer: str, max_poll_rate: float = 30.0) -> StreamShare:
        return sharing.share_module_stream(self, consumer, max_poll_rate)


def test_a_notebook_cell_joins_again_after_its_configure_was_refused():
    """docs/jupyter.md: the cell's configure is refused (qudi's logics stream); run again, its
    join failed with "already has a consumer named 'my notebook'"."""
    streamer = _SharedStreamer(f"test_rejoin_{os.getpid()}")
    logic = sharing.join_module_hub(streamer, "logic", 30.0)
    logic_reader = logic.open_reader("logic")
    logic_reader.start()
    try:
        for _run in range(2):  # the cell, as written, run twice
            notebook = RemoteHub.join(streamer, "my notebook")
            with pytest.raises(StreamBusyError, match="'logic'"):
                notebook.configure(["ramp"], "CONTINUOUS", 2**16, 100_000.0)
        reader = notebook.open_reader("my notebook")
        reader.start()
        data = np.empty((1000, 1))
        reader.read_into(data, timeout=10)
        assert_ramp(data, data[0, 0])
        assert sorted(r.name for r in logic.hub.readers) == ["logic", "my notebook"]
        with RemoteHub.join(streamer, "my notebook") as again:  # the earlier place is given up
            assert not again.closed and notebook.closed
            with pytest.raises(StreamStoppedError):
                reader.read_into(data, timeout=1)
        assert [r.name for r in logic.hub.readers] == ["logic"]  # left with the block
    finally:
        logic_reader.close()
        logic.leave()
    assert logic.hub.ring.closed


class _PrivateStreamer(_Streamer):
    """A streamer whose hub is in private memory: a consumer cannot attach to it."""

    def __init__(self):
        super().__init__("private")
        self.hub = StreamHub(self.source, name="test_private", shared=False)

    def share_stream(self, consumer: str, max_poll_rate: float = 30.0) -> StreamShare:
        return StreamShare(self.hub, consumer)


def test_a_join_that_fails_leaves_nothing_joined():
    streamer = _PrivateStreamer()
    try:
        for _run in range(2):  # and it can be tried again
            with pytest.raises(StreamError, match="not in this host's shared memory"):
                RemoteHub.join(streamer, "my notebook")
            assert streamer.hub.readers == ()
    finally:
        streamer.hub.close()


def test_a_remote_stopped_reader_keeps_its_position(hub):
    far = SubscribedHub(StreamShare(hub, "far"))
    reader = far.open_reader("far")
    try:
        assert reader.position == 0
        reader.start()
        reader.read_into(np.empty((500, 1)), timeout=10)
        at = reader.position
        reader.stop()
        assert reader.position == at and at > 0
    finally:
        far.leave()


# ------------------------------------------------------------------ across real processes
def _serve_hub(stream_name: str, port, stop) -> None:
    """A child process owning a ramp source and its hub, sharing it over rpyc like qudi."""
    source = SimulatedSource(("ramp", "minus"), ("ramp", "ramp"), sample_rate=100_000.0)
    hub = StreamHub(source, name=stream_name, max_poll_rate=100.0)

    class HubService(rpyc.Service):
        def exposed_share(self, consumer):
            return StreamShare(hub, consumer)

        def exposed_running_consumers(self):
            return tuple(hub.running_readers)

        def exposed_consumers(self):
            return tuple(r.name for r in hub.readers)

    server = ThreadedServer(HubService, hostname="127.0.0.1", port=0, protocol_config=RPYC_CONFIG)
    port.value = server.port
    threading.Thread(target=server.start, daemon=True).start()
    stop.wait(120)
    server.close()
    hub.close()


@pytest.fixture
def hub_server(stream_name, spawn_process):
    port, stop = SPAWN.Value("i", 0), SPAWN.Event()
    child = spawn_process(_serve_hub, stream_name, port, stop)
    deadline = time.monotonic() + 60
    while port.value == 0:
        assert child.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    yield port.value
    stop.set()
    child.join(30)
    assert child.exitcode == 0


def _connect(port: int):
    return rpyc.connect("127.0.0.1", port, config=RPYC_CONFIG)


def _read_remote_ramp(port: int, total: int, started, queue) -> None:
    """A child process reading the served stream through a share; reports what it saw."""
    connection = _connect(port)
    remote = RemoteHub(connection.root.share(f"reader {os.getpid()}"))
    reader = remote.open_reader("reader")
    reader.start()
    started.set()
    out = np.empty((total, 2))  # several ring lengths, read a chunk at a time
    for first in range(0, total, 10_000):
        reader.read_into(out[first : first + 10_000], timeout=60)
    breaks = int(np.count_nonzero(np.diff(out[:, 0]) != 1))
    mirrored = bool(np.array_equal(out[:, 0], out[:, 1]))
    queue.put((breaks, mirrored, reader.lost))
    time.sleep(600)  # until killed


def test_reader_processes_share_a_stream_and_a_killed_one_leaves_and_disturbs_nobody(
    hub_server, spawn_process
):
    queue = SPAWN.Queue()
    started = [SPAWN.Event(), SPAWN.Event()]
    readers = [
        spawn_process(_read_remote_ramp, hub_server, 300_000, event, queue) for event in started
    ]
    assert all(event.wait(60) for event in started)
    results = [queue.get(timeout=60) for _ in readers]
    assert results == [(0, True, 0), (0, True, 0)]  # every sample, once, in each process

    control = _connect(hub_server)
    try:
        survivor = RemoteHub(control.root.share("survivor"))
        reader = survivor.open_reader("survivor")
        reader.start()
        assert len(control.root.running_consumers()) == 3
        for child in readers:
            os.kill(child.pid, signal.SIGKILL)
            child.join(30)
        # the killed processes' connections drop, and with them their shares
        deadline = time.monotonic() + 30
        while control.root.consumers() != ("survivor",):
            assert time.monotonic() < deadline, control.root.consumers()
            time.sleep(0.05)
        out = np.empty((20_000, 2))
        reader.read_into(out, timeout=30)
        assert_ramp(out, out[0, 0])
        survivor.close()
        assert control.root.consumers() == ()
    finally:
        control.close()


class SlowReplies:
    """A share whose answers take ``delay`` seconds to come back, as over a busy connection."""

    def __init__(self, share: StreamShare, delay: float):
        self._share, self._delay = share, delay
        self.stream_name, self.stream_id = share.stream_name, share.stream_id

    def call(self, method, *args):
        reply = self._share.call(method, *args)
        time.sleep(self._delay)  # the reply is on its way: the source goes on meanwhile
        return reply


def test_a_remote_reader_reads_from_its_start_not_from_where_the_ring_is_when_told(hub):
    remote = RemoteHub(SlowReplies(StreamShare(hub, "client"), delay=0.2))
    reader = remote.open_reader("client")
    try:
        reader.start()  # this start starts the source: its first sample is the run's first
        assert hub.ring.write_index > 1000  # 0.2 s at 50 kS/s were written before the reply
        data = np.empty((2000, 1))
        reader.read_into(data, timeout=10)
        assert_ramp(data, 0.0)
        assert reader.lost == 0
        reader.stop()
        reader.start()  # a start of a running consumer's place: from the newest sample on
    finally:
        remote.close()
