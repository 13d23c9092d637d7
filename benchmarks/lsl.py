"""LSL bridge throughput and CPU, each direction, against plain pylsl in the same run.

    python benchmarks/lsl.py --seconds 5 --rate 1e5 --channels 8

Four runs of ``--seconds`` each, on this host only (liblsl configured for machine scope, no
IPv6), float32 samples with a sample counter in channel 0:

* **outlet, ours**: qudi's ``InStreamDummy`` -> ``DataInStreamBuffer`` -> ``LslOutlet`` ->
  a plain pylsl inlet (``pull_chunk`` into numpy) that checks every sample arrives once.
* **outlet, plain pylsl**: a plain pylsl outlet pushing the same stream from a thread (chunks
  every 10 ms, one timestamp per chunk) -> the same plain inlet.
* **inlet, ours**: a plain pylsl outlet -> ``LslInStreamer`` -> ``DataInStreamBuffer`` -> a
  consumer thread reading blocks of 1/20 s, checking the counter.
* **inlet, plain pylsl**: the same outlet -> a plain pylsl inlet pulling into numpy.

Throughput is values (samples x channels) that arrived per second, in MS/s; CPU is this
process's CPU time over the run (producer, bridge and consumer all run in it) in % of one
core. Everything shares 2 cores with whatever else runs: timings are noisy, compare the rows
of one run. The last line sums it up: ``lsl: outlet X MS/s, inlet Y MS/s, lossless`` (or what
was lost).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CONFIG = "[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n[log]\nlevel = -3\n"
_cfg = Path(tempfile.mkdtemp(prefix="lsl_bench_")) / "lsl_api.cfg"
_cfg.write_text(CONFIG)
os.environ["LSLAPICFG"] = str(_cfg)  # before liblsl is first used in this process

import pylsl  # noqa: E402

from qudi_harness import buffer_entry, start_qudi, stop_qudi  # noqa: E402

TAG = f"bench{os.getpid()}"


class Counter:
    """Checks that a stream's channel-0 counter goes up by one, sample after sample."""

    def __init__(self) -> None:
        self.samples = 0
        self.breaks = 0
        self.missing = 0
        self._next: float | None = None

    def add(self, ramp: np.ndarray) -> None:
        if not len(ramp):
            return
        if self._next is not None and ramp[0] != self._next:
            self.breaks += 1
            self.missing += int(ramp[0] - self._next)
        steps = np.diff(ramp)
        bad = steps != 1
        if bad.any():
            self.breaks += int(np.count_nonzero(bad))
            self.missing += int(np.sum(steps[bad] - 1))
        self._next = ramp[-1] + 1
        self.samples += len(ramp)


def plain_pusher(name, channels, rate, stop, ready, started):
    """A plain pylsl outlet that pushes a counter in real time (chunks every 10 ms)."""
    info = pylsl.StreamInfo(name, "bench", channels, rate, pylsl.cf_float32, f"{name}-src")
    outlet = pylsl.StreamOutlet(info, max_buffered=10)
    ready.set()
    outlet.wait_for_consumers(30)
    started.wait(30)
    chunk = max(1, int(rate / 100))
    row = np.arange(channels, dtype=np.float32)
    t0 = pylsl.local_clock()
    sent = 0
    while not stop.is_set():
        due = int((pylsl.local_clock() - t0) * rate)
        while sent + chunk <= due:
            data = np.empty((chunk, channels), np.float32)
            data[:] = row
            data[:, 0] = np.arange(sent, sent + chunk, dtype=np.float32)
            outlet.push_chunk(data, t0 + (sent + chunk - 1) / rate)
            sent += chunk
        time.sleep(0.005)
    del outlet


def plain_puller(name, channels, stop, counter, timeout=30.0):
    """A plain pylsl inlet pulling into numpy and counting."""
    [info] = pylsl.resolve_byprop("name", name, 1, timeout)
    inlet = pylsl.StreamInlet(info, max_buflen=10)
    inlet.open_stream(timeout)
    buffer = np.empty((1 << 16, channels), np.float32)
    while not stop.is_set():
        _, times = inlet.pull_chunk(timeout=0.02, max_samples=len(buffer), dest_obj=buffer)
        counter.add(buffer[: len(times), 0].astype(np.float64))
    del inlet


def timed(seconds: float, started: threading.Event, threads, counter) -> tuple[float, float]:
    """Run ``threads``, and from 1 s after the first samples arrived on for ``seconds``:
    (MS/s of values that arrived in that time, CPU share of one core)."""
    for thread in threads:
        thread.start()
    started.set()
    deadline = time.monotonic() + 30
    while counter.samples == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.0)  # warm-up: what queued while the inlet opened drains first
    samples0, cpu0, wall0 = counter.samples, time.process_time(), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - wall0
    return (counter.samples - samples0) / wall, (time.process_time() - cpu0) / wall


def buffer_reader(buffer, rate, channels, stop, counter):
    """A consumer of a qudi buffer reading blocks of 1/20 s and counting."""
    chunk = max(1, int(rate / 20))
    data = np.empty((chunk, channels), np.float32)
    stamps = np.empty(chunk)
    buffer.start_stream()
    try:
        while not stop.is_set():
            try:
                buffer.read_data_into_buffer(data, chunk, stamps, timeout=1.0)
            except TimeoutError:
                continue
            counter.add(data[:, 0].astype(np.float64))
    finally:
        buffer.stop_stream()


def run_path(qudi, direction: str, ours: bool, seconds, rate, channels):
    """One row: ``direction`` ("outlet" or "inlet") through qudi's bridge (``ours``), or its
    baseline, a plain pylsl outlet -> a plain pylsl inlet. Returns (counter, samples per
    second, CPU share, samples the bridge reported lost)."""
    manager = qudi.module_manager
    stop, ready, started, counter = (
        threading.Event(),
        threading.Event(),
        threading.Event(),
        Counter(),
    )
    qudi_outlet, qudi_inlet = ours and direction == "outlet", ours and direction == "inlet"
    if qudi_outlet:
        name = f"{TAG}-qudi-out"  # the name lsl_out publishes
    elif qudi_inlet:
        name = f"{TAG}-in"  # the name lsl_in resolves
    else:
        name = f"{TAG}-plain-{direction}"
    pusher = None
    if not qudi_outlet:  # a plain outlet pushes the counter in real time
        pusher = threading.Thread(
            target=plain_pusher, args=(name, channels, rate, stop, ready, started)
        )
        pusher.start()
        ready.wait(10)
    modules: list[str] = []  # activated here, deactivated at the end
    if qudi_outlet:
        modules = ["lsl_out", "out_buffer"]
        manager.activate_module("out_buffer")
        names = [f"ch{i}" for i in range(channels)]
        manager["out_buffer"].instance.configure(names, "CONTINUOUS", 2**20, rate)
        manager.activate_module("lsl_out")
    if qudi_inlet:
        modules = ["in_buffer", "lsl_in"]
        manager.activate_module("in_buffer")
        buffer = manager["in_buffer"].instance
        args = (buffer, rate, channels, stop, counter)
        consumer = threading.Thread(target=buffer_reader, args=args)
    else:
        consumer = threading.Thread(target=plain_puller, args=(name, channels, stop, counter))
    per_second, cpu = timed(seconds, started, [consumer], counter)
    stop.set()
    consumer.join(30)
    if pusher is not None:
        pusher.join(30)
    lost = 0
    if qudi_outlet:
        lost = manager["lsl_out"].instance.lost_samples
    elif qudi_inlet:
        lost = manager["lsl_in"].instance.lost_samples + buffer.lost_samples
    for module in modules:
        manager.deactivate_module(module)
    return counter, per_second, cpu, lost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1e5, help="samples per second per channel")
    parser.add_argument("--channels", type=int, default=8)
    args = parser.parse_args(argv)
    rate, channels = args.rate, args.channels
    names = [f"ch{i}" for i in range(channels)]
    hardware = [
        "    dummy:",
        "        module.Class: 'instream.dummy.InStreamDummy'",
        "        options:",
        f"            channel_names: {names}",
        f"            channel_units: {['V'] * channels}",
        f"            channel_signals: {['ramp'] * channels}",
        "            data_type: 'float32'",
        *buffer_entry("out_buffer", "dummy"),
        "    lsl_out:",
        "        module.Class: 'instream.lsl_outlet.LslOutlet'",
        f"        options: {{stream_name: '{TAG}-qudi-out'}}",
        "        connect: {streamer: 'out_buffer'}",
        "    lsl_in:",
        "        module.Class: 'instream.lsl.LslInStreamer'",
        f"        options: {{stream_name: '{TAG}-in', resolve_timeout: 10.0}}",
        *buffer_entry("in_buffer", "lsl_in"),
    ]
    app, qudi = start_qudi({"hardware": hardware})
    try:
        bridges = {"outlet": "qudi LslOutlet", "inlet": "qudi LslInStreamer"}
        rows = [
            (direction, path, run_path(qudi, direction, ours, args.seconds, rate, channels))
            for direction in ("outlet", "inlet")
            for ours, path in ((True, bridges[direction]), (False, "plain pylsl"))
        ]
    finally:
        stop_qudi(app, qudi)

    offered = rate * channels / 1e6
    print(f"{channels} ch x {rate:g} S/s float32 = {offered:.2f} MS/s offered, {args.seconds:g} s")
    print(
        f"{'direction':<9} {'path':<20} {'MS/s':>7} {'CPU %':>7} {'samples':>10} "
        f"{'missing':>8} {'breaks':>7} {'lost':>6}"
    )
    throughput = {}
    problems = []
    for direction, path, (counter, per_second, cpu, lost) in rows:
        msps = per_second * channels / 1e6
        print(
            f"{direction:<9} {path:<20} {msps:7.3f} {100 * cpu:7.1f} {counter.samples:10d} "
            f"{counter.missing:8d} {counter.breaks:7d} {lost:6d}"
        )
        if path.startswith("qudi"):
            throughput[direction] = msps
            if counter.missing or counter.breaks or lost:
                problems.append(
                    f"{direction} lost {counter.missing + lost} samples in {counter.breaks} breaks"
                )
    verdict = "lossless" if not problems else "; ".join(problems)
    print(
        f"lsl: outlet {throughput['outlet']:.2f} MS/s, inlet {throughput['inlet']:.2f} MS/s, "
        f"{verdict}"
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
