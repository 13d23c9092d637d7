"""Remote fetch benchmark: one bulk array into another process, three ways.

    python benchmarks/remote.py            # full run (about a minute)
    python benchmarks/remote.py --quick    # fewer repetitions

Each fetch moves 1e6 samples x 8 channels of float64 (64 MB) from a server process into a
numpy array of this process, timed from the request to the data in the local array:

* rpyc: ``rpyc.classic.obtain`` of an array a loopback rpyc server (a ``ThreadedServer`` in a
  child process, configured like qudi's remote module server) returns as a netref. The
  baseline: how bulk data moves through qudi's remote access today.
* shm: read the shared-memory ring another process filled through a reader of our own.
  "shm cold": ``StreamRing.attach`` and a new output array per fetch, so the time includes
  mapping the block and first-touch page faults of both (about half of it); "shm attached":
  attached once, reading into the consumer's own preallocated array, as a consumer that
  reads repeatedly does.
* zmq: a ``StreamPublisher`` in a child process, a ``StreamSubscriber`` here, on loopback,
  reading into the consumer's own array; the request asks the child to write the samples into
  its ring (that write is in the time too).

rpyc has no cold/warm distinction to make: ``obtain`` always unpickles into a new array.

Every fetch is checked (the data is a ramp: sample i holds i in every channel). The last
line sums up: ``remote: shm <A>x rpyc, zmq <B>x rpyc`` (ratios of the median rates, shm as
attached).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import rpyc
from rpyc.utils.server import ThreadedServer

from qudi.util.instream import StreamRing, StreamStoppedError
from qudi.util.instream.network import StreamPublisher, StreamSubscriber

SAMPLES = 1_000_000
CHANNELS = 8
NBYTES = SAMPLES * CHANNELS * 8
TIMEOUT_S = 120.0
RPYC_CONFIG = {"allow_pickle": True, "allow_public_attrs": True, "sync_request_timeout": 120}


def ramp(first: int, count: int) -> np.ndarray:
    index = np.arange(first, first + count, dtype=np.float64)
    return np.repeat(index[:, None], CHANNELS, axis=1)


def check(data: np.ndarray, first: int) -> None:
    if (
        data.shape != (SAMPLES, CHANNELS)
        or data[0, 0] != first
        or data[-1, -1] != first + SAMPLES - 1
    ):
        raise AssertionError("fetched data is not the ramp that was sent")
    if not np.array_equal(data[:, 0], np.arange(first, first + SAMPLES, dtype=np.float64)):
        raise AssertionError("fetched data is not the ramp that was sent")


# ------------------------------------------------------------------------ server processes
class ArrayService(rpyc.Service):
    """Like a qudi module behind the remote server: a method that returns an array."""

    array = ramp(0, SAMPLES)

    def exposed_get_array(self):
        return self.array


def rpyc_server(port_queue) -> None:
    server = ThreadedServer(ArrayService, hostname="127.0.0.1", port=0, protocol_config=RPYC_CONFIG)
    port_queue.put(server.port)
    server.start()


def shm_server(name: str, ready, done) -> None:
    with StreamRing(SAMPLES, (CHANNELS,), shared=True, name=name) as ring:
        ring.write(ramp(0, SAMPLES))
        ready.set()
        done.wait(TIMEOUT_S * 10)


def zmq_server(endpoint_queue, requests) -> None:
    with StreamRing(2 * SAMPLES, (CHANNELS,)) as ring:
        # HWM: a whole fetch may queue (a fetch must be lossless; the subscriber keeps up)
        with StreamPublisher(ring, send_hwm=512) as publisher:
            endpoint_queue.put(publisher.endpoint)
            data = ramp(0, SAMPLES)
            while (first := requests.recv()) is not None:
                data += first - data[0, 0]  # the ramp continues from the requested index
                ring.write(data)


# --------------------------------------------------------------------------- measurements
@dataclass
class Result:
    name: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return NBYTES / self.median


def timed(fetch: Callable[[], tuple[np.ndarray, int]], repeats: int) -> list[float]:
    """Time each fetch (it returns the local array and its first index), check it afterwards."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        data, first = fetch()
        times.append(time.perf_counter() - started)
        check(data, first)
    return times


def measure_rpyc(context, repeats: int) -> Result:
    ports = context.Queue()
    child = context.Process(target=rpyc_server, args=(ports,), daemon=True)
    child.start()
    try:
        conn = rpyc.connect("127.0.0.1", ports.get(timeout=TIMEOUT_S), config=RPYC_CONFIG)

        def fetch() -> tuple[np.ndarray, int]:
            return rpyc.classic.obtain(conn.root.get_array()), 0

        try:
            return Result("rpyc obtain", timed(fetch, repeats))
        finally:
            conn.close()
    finally:
        child.kill()
        child.join()


def measure_shm(context, repeats: int) -> tuple[Result, Result]:
    """Cold: attach and a new array per fetch. Attached: one attach, the consumer's own buffer."""
    name = f"bench_remote_{os.getpid()}"
    ready, done = context.Event(), context.Event()
    child = context.Process(target=shm_server, args=(name, ready, done), daemon=True)
    child.start()
    try:
        if not ready.wait(TIMEOUT_S):
            raise RuntimeError("the shared-memory server did not start")

        def fetch_cold() -> tuple[np.ndarray, int]:
            with StreamRing.attach(name) as ring:
                out = np.empty((SAMPLES, CHANNELS))
                ring.reader("bench", from_oldest=True).read_into(out, timeout=TIMEOUT_S)
            return out, 0

        cold = Result("shm cold", timed(fetch_cold, repeats))
        with StreamRing.attach(name) as ring:
            out = np.zeros((SAMPLES, CHANNELS))

            def fetch_attached() -> tuple[np.ndarray, int]:
                ring.reader("bench", from_oldest=True).read_into(out, timeout=TIMEOUT_S)
                return out, 0

            attached = Result("shm attached", timed(fetch_attached, repeats))
        return cold, attached
    finally:
        done.set()
        child.join(TIMEOUT_S)


def measure_zmq(context, repeats: int) -> tuple[Result, int]:
    endpoints = context.Queue()
    requests, child_end = context.Pipe()
    child = context.Process(target=zmq_server, args=(endpoints, child_end), daemon=True)
    child.start()
    try:
        endpoint = endpoints.get(timeout=TIMEOUT_S)
        with StreamSubscriber(endpoint, capacity=2 * SAMPLES, receive_hwm=512) as sub:
            out = np.zeros((SAMPLES, CHANNELS))

            def fetch() -> tuple[np.ndarray, int]:
                first = sub.position
                requests.send(first)
                sub.read_into(out, timeout=TIMEOUT_S)
                return out, first

            result = Result("zmq loopback", timed(fetch, repeats))
            return result, sub.lost
    finally:
        requests.send(None)
        child.join(TIMEOUT_S)
        if child.is_alive():
            child.kill()


def print_table(results: Sequence[Result], baseline: Result) -> None:
    print(f"fetch of {SAMPLES:.0e} samples x {CHANNELS} ch float64 ({NBYTES / 1e6:.0f} MB)")
    print(f"{'path':<14}{'median s':>10}{'best s':>9}{'MB/s':>10}{'x rpyc':>9}  runs")
    for result in results:
        print(
            f"{result.name:<14}{result.median:>10.4f}{min(result.seconds):>9.4f}"
            f"{result.rate / 1e6:>10.0f}{result.rate / baseline.rate:>9.1f}  {len(result.seconds)}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    repeats = 3 if args.quick else 7
    context = multiprocessing.get_context("spawn")
    rpyc_result = measure_rpyc(context, repeats)
    shm_cold, shm_result = measure_shm(context, 2 * repeats)
    try:
        zmq_result, zmq_lost = measure_zmq(context, 2 * repeats)
    except StreamStoppedError as exc:
        print(f"zmq fetch failed: {exc}", file=sys.stderr)
        return 1
    results = (rpyc_result, shm_cold, shm_result, zmq_result)
    print_table(results, rpyc_result)
    print(f"zmq samples lost: {zmq_lost}")
    print(
        f"remote: shm {shm_result.rate / rpyc_result.rate:.0f}x rpyc, "
        f"zmq {zmq_result.rate / rpyc_result.rate:.1f}x rpyc"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
