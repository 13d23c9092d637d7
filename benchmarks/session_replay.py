"""Session benchmark: three streams recorded for 60 s, replayed at x10, checked sample by sample.

    python benchmarks/session_replay.py              # the issue's run: 60 s recorded (~70 s)
    python benchmarks/session_replay.py --seconds 5  # shorter

Three simulated cards run through real hubs into one session file (a SessionRecorder on its
own thread): ``counter`` (1 kS/s, ramp + photon counts, CONSTANT), ``analog`` (100 S/s, ramp +
sine, TIMESTAMP) and ``wavemeter`` (10 S/s, TIMESTAMP), with a marker every 10 s. Then each
stream is replayed at x10 (SessionReplay as a hub's source) into two readers of its hub, and
every sample and timestamp each reader got is compared with the file: the first reader's from
the first row on (its start starts the replay), the second's from the row at which it joined
the running replay a moment later; the markers must come back at their samples. The
session's file is deleted afterwards.

Printed: per stream the rows recorded and lost, the replay's wall time against the recording's
span divided by the speed (the pacing), and what the readers got. The qudi version of this
check (two buffers and a recording logic on RecordingReplayStreamer modules) is
``QUDI_INSTREAM_SESSION_SECONDS=60 pytest tests/qudi/test_replay.py``.

The last line of output is (P: the replay's wall time against the paced time, in %)::

    session: 3 streams x <S> s, replayed at x10 in <T> s (<P> % of paced), <N> samples identical
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qudi.util.instream import StreamHub
from qudi.util.instream.replay_source import ReplayStreamSource, SessionReplay
from qudi.util.instream.session import open_session
from qudi.util.instream.session_recorder import SessionRecorder
from qudi.util.instream.simulated import SimulatedSource

SPEED = 10.0


def record(path: Path, seconds: float) -> dict:
    sources = {
        "counter": SimulatedSource(
            ("ramp", "apd"), ("ramp", "counts"), channel_units=("", "c/s"), sample_rate=1000.0
        ),
        "analog": SimulatedSource(("ramp", "sine"), sample_rate=100.0, sample_timing="TIMESTAMP"),
        "wavemeter": SimulatedSource(
            ("wavelength",), ("noise",), sample_rate=10.0, sample_timing="TIMESTAMP"
        ),
    }
    hubs = {
        label: StreamHub(s, name=f"bench_{label}", shared=False) for label, s in sources.items()
    }
    try:
        readers = {label: hub.open_reader("recording") for label, hub in hubs.items()}
        for reader in readers.values():
            reader.start()
        recorder = SessionRecorder(readers, path)
        recorder.start()
        started = time.monotonic()
        next_marker = 0.0
        while (elapsed := time.monotonic() - started) < seconds:
            if elapsed >= next_marker:
                recorder.add_marker(f"t = {next_marker:.0f} s")
                next_marker += 10.0
            time.sleep(min(0.1, max(0.0, seconds - elapsed)))
        for reader in readers.values():
            reader.stop()
        summary = recorder.stop()
    finally:
        for hub in hubs.values():
            hub.close()
    if summary.error is not None:
        raise SystemExit(f"recording failed: {summary.error}")
    return {"samples": summary.samples, "lost": summary.lost, "markers": summary.markers}


def replay(path: Path, label: str) -> tuple[float, float, int]:
    """Replays ``label`` at x10 into two readers; returns (wall s, paced s, samples checked)."""
    with open_session(path) as session:
        stream = session.streams[label]
        data, stamps = stream.read(0, stream.rows)
        rate = stream.sample_rate
        span = (stamps[-1] - stamps[0]) if stamps is not None else (stream.rows - 1) / rate
        markers = session.marker_list() if label == session.labels[0] else []
    source = ReplayStreamSource(SessionReplay(path, label, speed=SPEED))
    got = {name: ([], []) for name in ("reader 1", "reader 2")}
    with StreamHub(source, name=f"bench_replay_{label}", shared=False) as hub:
        hub.configure(list(stream.channel_names), "CONTINUOUS", max(1024, len(data)), rate)
        readers = {name: hub.open_reader(name) for name in got}
        started = time.monotonic()
        joined = {}  # the first sample each reader has: reader 1 starts the replay and has
        for name, reader in readers.items():  # all of it; reader 2 joins it a moment later
            reader.start()
            joined[name] = reader.position
        block = np.empty((4096, data.shape[1]))
        block_stamps = np.empty(4096) if stamps is not None else None
        while True:
            for name, reader in readers.items():
                n = reader.read_available_into(block, timestamps=block_stamps)
                got[name][0].append(block[:n].copy())
                if block_stamps is not None:
                    got[name][1].append(block_stamps[:n].copy())
            if source.replay.finished and not any(r.available for r in readers.values()):
                break
            time.sleep(0.005)
        wall = time.monotonic() - started
        played_markers = source.replay.played_markers()
    source.close()
    checked = 0
    for name, (blocks, stamp_blocks) in got.items():
        received, first = np.concatenate(blocks), joined[name]
        if (name == "reader 1" and first != 0) or not np.array_equal(received, data[first:]):
            raise SystemExit(
                f"{label}: {name} got {len(received)} samples from {first} on unlike the file's"
            )
        if stamps is not None and not np.array_equal(np.concatenate(stamp_blocks), stamps[first:]):
            raise SystemExit(f"{label}: {name}'s timestamps differ from the file's")
        checked += len(received)
    if played_markers != markers:
        raise SystemExit(f"{label}: markers replayed {played_markers}, recorded {markers}")
    return wall, span / SPEED, checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="recorded seconds (60)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "session.h5"
        print(f"recording 3 streams for {args.seconds:g} s ...", flush=True)
        recorded = record(path, args.seconds)
        print(
            f"{'stream':<10} {'rows':>8} {'lost':>5} {'replay s':>9} {'paced s':>8} {'checked':>9}"
        )
        total_wall = total_paced = 0.0
        identical = 0
        for label in ("counter", "analog", "wavemeter"):
            wall, paced, checked = replay(path, label)
            total_wall, total_paced = total_wall + wall, total_paced + paced
            identical += checked
            print(
                f"{label:<10} {recorded['samples'][label]:>8} {recorded['lost'][label]:>5} "
                f"{wall:>9.2f} {paced:>8.2f} {checked:>9}"
            )
        print(f"markers recorded and replayed: {recorded['markers']}")
    print(
        f"session: 3 streams x {args.seconds:g} s, replayed at x{SPEED:g} in {total_wall:.1f} s "
        f"({100 * total_wall / total_paced:.0f} % of paced), {identical} samples identical"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
