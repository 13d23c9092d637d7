"""The processes of the multi-host tests: a CURVE publisher of a paced ramp, and a subscriber
that checks every sample it reads. Run inside a network namespace (``ip netns exec``)::

    python tests/net/peers.py publish --port 5555 --keys DIR --channels 2 --rate 1e5
    python tests/net/peers.py subscribe --endpoint tcp://10.77.1.1:5555 --keys DIR --name sub1

Every sample's value is its publisher index, so the subscriber can tell from the data alone
where samples are missing; it reports those jumps next to the gaps its receiver logged (the
two must be the same: "gaps exact"). Both print one JSON line when they start and one when
they end (SIGTERM, or a subscriber's ``--seconds``).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from qudi.util.instream import StreamInfo, StreamRing, StreamStoppedError, StreamTimeoutError
from qudi.util.instream.network import ClientKeys, ServerKeys, StreamPublisher, StreamSubscriber


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def cpu_seconds() -> float:
    """User and system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def stop_on_sigterm() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def publish(args) -> None:
    stop = stop_on_sigterm()
    channels, rate = args.channels, args.rate
    info = StreamInfo(tuple(f"ch{i}" for i in range(channels)), ("V",) * channels, rate)
    capacity = max(1 << 16, int(rate))  # one second
    ring = StreamRing(capacity, (channels,), info=info)
    keys = None
    if args.keys:
        folder = Path(args.keys)
        keys = ServerKeys.from_files(folder / "server.key_secret", folder / "allowed")
    publisher = StreamPublisher(
        ring, f"tcp://*:{args.port}", keys=keys, insecure=keys is None, name="net"
    )
    ring.mark_running()
    say(ready=True, endpoint=publisher.endpoint)
    start, cpu_start = time.monotonic(), cpu_seconds()
    written = 0
    rss_start = peak = 0
    block = np.empty((int(rate // 100) + 1, channels))
    while not stop.is_set():  # a paced ramp: value = index
        due = int((time.monotonic() - start) * rate)
        while written < due:
            count = min(due - written, len(block))
            block[:count] = np.arange(written, written + count, dtype=np.float64)[:, None]
            ring.write(block[:count])
            written += count
        if not rss_start and time.monotonic() - start > 1.0:
            rss_start = rss_bytes()
        peak = max(peak, rss_bytes())
        stop.wait(0.002)
    stats = publisher.stats()
    publisher.close()
    ring.close()
    say(
        written=written,
        sent=stats.samples_sent,
        lost=stats.lost,
        refused=stats.refused,
        peak_queued=stats.peak_queued_bytes,
        rss_start=rss_start,
        rss_peak=peak,
        cpu=cpu_seconds() - cpu_start,
        seconds=time.monotonic() - start,
    )


class Checker:
    """The ramp a subscriber reads: where its values jump, and how many arrived."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.samples = 0
        self.jumps: list[tuple[int, int]] = []  # (first missing index, how many)
        self.restarts = 0  # the values started over: a new publisher

    def take(self, values: np.ndarray) -> None:
        if not len(values):
            return
        series = values if self.last is None else np.concatenate(([self.last], values))
        steps = np.diff(series)
        for at in np.flatnonzero(steps != 1):
            if steps[at] > 1:
                self.jumps.append((int(series[at]) + 1, int(steps[at]) - 1))
            else:
                self.restarts += 1
        self.last = float(values[-1])
        self.samples += len(values)


def subscribe(args) -> None:
    stop = stop_on_sigterm()
    keys = None
    if args.keys:
        folder = Path(args.keys)
        keys = ClientKeys.from_files(folder / f"{args.name}.key_secret", folder / "server.key")
    sub = StreamSubscriber(
        args.endpoint,
        name=args.name,
        allow_overwrite=True,
        keys=keys,
        seconds=args.ring_seconds,
        timeout=30.0,
        silence_timeout=args.silence_timeout,
    )
    channels = sub.ring.sample_shape[0]
    say(ready=True, position=sub.position)
    checker = Checker()
    out = np.empty((1 << 16, channels))
    begin, cpu_start = time.monotonic(), cpu_seconds()
    rss_start = peak = 0
    first = sub.position
    while not stop.is_set() and (args.seconds <= 0 or time.monotonic() - begin < args.seconds):
        try:
            count = sub.read_into(out, 1, timeout=0.2)
            count += sub.read_available_into(out[count:])
        except (StreamTimeoutError, StreamStoppedError):
            continue  # a link down or a publisher away: wait on, no user action
        checker.take(out[:count, 0])
        if not rss_start and time.monotonic() - begin > 1.0:
            rss_start = rss_bytes()
        peak = max(peak, rss_bytes())
    passed = [g for g in sub.gaps if g.local_index + g.lost <= sub.position]
    stats = sub.stats()
    sub.close()
    say(
        first=first,
        samples=checker.samples,
        jumps=checker.jumps,
        gaps=[(g.remote_index, g.lost) for g in passed],
        restarts=checker.restarts,
        resyncs=stats.resyncs,
        lost=stats.lost,
        rejected=stats.rejected,
        rss_start=rss_start,
        rss_peak=peak,
        maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        cpu=cpu_seconds() - cpu_start,
        seconds=time.monotonic() - begin,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    pub = roles.add_parser("publish")
    pub.add_argument("--port", type=int, required=True)
    pub.add_argument("--keys", default="")
    pub.add_argument("--channels", type=int, default=2)
    pub.add_argument("--rate", type=float, default=1e5)
    sub = roles.add_parser("subscribe")
    sub.add_argument("--endpoint", required=True)
    sub.add_argument("--keys", default="")
    sub.add_argument("--name", required=True)
    sub.add_argument("--seconds", type=float, default=0.0)
    sub.add_argument("--ring-seconds", type=float, default=8.0)
    sub.add_argument("--silence-timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    if not math.isfinite(getattr(args, "rate", 1.0)):
        raise SystemExit("rate must be finite")
    (publish if args.role == "publish" else subscribe)(args)


if __name__ == "__main__":
    sys.exit(main())
