"""The processes of the cross-host time test: a CURVE publisher of a simulated 1 kHz card
whose clock drifts, and a subscriber that times the samples it gets and lines them up with a
local 10 Hz "wavemeter". Run inside network namespaces (``ip netns exec``)::

    python tests/net/time_peers.py publish --port 5555 --keys DIR
    python tests/net/time_peers.py subscribe --endpoint tcp://10.77.1.1:5555 --keys DIR

Namespaces share the kernel's monotonic clock, so each side's simulated truth is on the other
side's clock too: the test compares what the subscriber says with what the publisher knows.
Each prints one JSON line when ready and one when done (SIGTERM, or the subscriber's
``--seconds``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from qudi.util.instream.aligned_reader import AlignedReader
from qudi.util.instream.hub import StreamHub
from qudi.util.instream.network import ClientKeys, ServerKeys, StreamPublisher, StreamSubscriber
from qudi.util.instream.simulated import SimulatedSource
from qudi.util.instream.simulated_clock import SimulatedClock

FAST, SLOW = 1000.0, 10.0


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def truth_line(clock: SimulatedClock, rate: float) -> dict:
    """Sample i of the run was taken at ``first + i * period`` (host monotonic seconds)."""
    return {"first": float(clock.true_time(0)), "period": 1.0 / (rate * clock.speed)}


def publish(args) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    folder = Path(args.keys)
    keys = ServerKeys.from_files(folder / "server.key_secret", folder / "allowed")
    clock = SimulatedClock(start_offset=0.02, drift_ppm=args.drift)
    source = SimulatedSource(["ramp"], sample_rate=FAST, clock=clock)
    with StreamHub(source, name="net_time_card", shared=False, max_poll_rate=100.0) as hub:
        with StreamPublisher(hub, f"tcp://*:{args.port}", keys=keys, name="net") as publisher:
            say(ready=True, endpoint=publisher.endpoint)
            stop.wait()
            run = hub.ring.time_table.run()
            say(truth=truth_line(clock, FAST), first_index=run.first_index)


def subscribe(args) -> None:
    folder = Path(args.keys)
    keys = ClientKeys.from_files(folder / "sub1.key_secret", folder / "server.key")
    clock = SimulatedClock(start_offset=0.05, drift_ppm=-args.drift)
    wavemeter = SimulatedSource(["ramp"], sample_rate=SLOW, clock=clock)
    with (
        StreamHub(wavemeter, name="net_time_wm", shared=False, max_poll_rate=100.0) as hub,
        StreamSubscriber(args.endpoint, keys=keys, allow_overwrite=True, timeout=30.0) as remote,
    ):
        say(ready=True)
        local = hub.open_reader("aligned")
        local.start()
        aligned = AlignedReader(remote, {"wavemeter": local}, missing="wait")
        chunks, times = [], []
        begin = time.monotonic()
        while time.monotonic() - begin < args.seconds:
            chunk = aligned.read(250, timeout=10.0)
            got = chunk.secondary["wavemeter"][:, 0]
            ok = np.flatnonzero(np.isfinite(got))[::25]
            published = chunk.primary[:, 0]  # the ramp: each sample's publisher index
            chunks.append(
                {
                    "index": published[ok].tolist(),
                    "wavemeter": got[ok].tolist(),
                    "uncertainty": chunk.uncertainty["wavemeter"],
                    "method": chunk.method["wavemeter"],
                }
            )
            some = np.arange(0, len(chunk.index), 50)
            times.append(
                {
                    "index": published[some].tolist(),
                    "time": remote.clock.time_of(chunk.index[some]).tolist(),
                    "uncertainty": remote.clock.uncertainty_of(chunk.index[some]).tolist(),
                }
            )
        receiver = remote.receiver
        offset = receiver.remote_time.offset
        local.close()
        say(
            chunks=chunks,
            times=times,
            wavemeter=truth_line(clock, SLOW),
            active=receiver.remote_time.active,
            offset=None if offset is None else list(offset),
            host_uncertainty=remote.ring.time_table.run().host_uncertainty,
            rejected=receiver.rejected,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    pub = roles.add_parser("publish")
    pub.add_argument("--port", type=int, required=True)
    pub.add_argument("--keys", required=True)
    pub.add_argument("--drift", type=float, default=100.0)
    sub = roles.add_parser("subscribe")
    sub.add_argument("--endpoint", required=True)
    sub.add_argument("--keys", required=True)
    sub.add_argument("--drift", type=float, default=100.0)
    sub.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    (publish if args.role == "publish" else subscribe)(args)


if __name__ == "__main__":
    sys.exit(main())
