"""Camera frames benchmark: one frame stream to four consumers through one ring.

    python benchmarks/frames.py            # full run (about 1 minute)
    python benchmarks/frames.py --quick    # shortened run (about 20 s)

What it measures, on this machine:

* the fan-out at 512 x 512 uint16, 100 frames/s (52 MB/s): a simulated camera
  (:class:`~qudi.util.instream.camera_source.SimulatedCameraSource`) behind an
  :class:`~qudi.util.instream.image_hub.ImageHub`, three reader threads in this process and one
  reader in another process attached by name (zero copy), every reader strict
  (``allow_overwrite=False``) and checked to see every frame once (frame counters). CPU is
  process CPU time (this process and the child) over wall time, in % of one core; the
  producer alone (making the same frames at the same rate, no ring) is measured too, so the
  table shows what the fan-out itself adds;
* how many 512 x 512 images per second the viewer window can draw (offscreen Qt), with fixed
  levels and with levels following each image (the viewer logic shows at most 30 a second);
* the highest lossless frame rate at 1024 x 1024 uint16 with four strict reader threads: rates
  are tried from low to high, each for a few seconds; a rate counts if every reader got every
  frame once, the camera's buffer never overflowed and the frames arrived at the rate asked.

Numbers depend on having the cores to yourself; the run prints the machine's load average.
The last line is the headline (see :func:`summary_line`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time

import numpy as np

from qudi.util.instream import StreamError, StreamRing
from qudi.util.instream.camera_source import SimulatedCameraSource
from qudi.util.instream.image_frames import frame_indices
from qudi.util.instream.image_hub import ImageHub

SPAWN = multiprocessing.get_context("spawn")
READ_FRAMES = 4  # frames per blocking read of a consumer
WARM_UP_S = 1.0


def summary_line(cpu_percent: float, max_rate: float) -> str:
    return (
        f"frames: 512x512 u16 100 fps to 4 consumers at {cpu_percent:.1f} % cpu, "
        f"max {max_rate:.0f} fps at 1024x1024"
    )


def _consume(reader, shape, stop: threading.Event, tally: dict) -> None:
    """Read frames until stopped; count them and check that each follows the one before."""
    frames = np.empty((READ_FRAMES, *shape), np.uint16)
    last = None
    try:
        while not stop.is_set():
            try:
                reader.read_into(frames, timeout=0.5)
            except StreamError as exc:
                if "did not arrive" in str(exc) and not stop.is_set():
                    continue
                if stop.is_set():
                    return
                raise
            indices = frame_indices(frames)
            if last is not None and indices[0] != last + 1:
                tally["breaks"] += 1
            if np.any(np.diff(indices) != 1):
                tally["breaks"] += 1
            last = int(indices[-1])
            tally["frames"] += READ_FRAMES
    except Exception as exc:  # reported in the table
        tally["error"] = f"{type(exc).__name__}: {exc}"


def _child_reader(name: str, seconds: float, queue) -> None:
    """Another process: attach by name, read strictly for ``seconds``, report."""
    cpu0 = time.process_time()
    ring = StreamRing.attach(name)
    reader = ring.reader("other process")
    tally = {"frames": 0, "breaks": 0, "error": None}
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    _consume(reader, ring.sample_shape, stop, tally)
    ring.close()
    queue.put((tally, time.process_time() - cpu0, reader.lost))


def run_fanout(
    shape, rate: float, seconds: float, child: bool, ring_seconds: float = 1.0, poll: float = 30.0
):
    """4 consumers (3 threads + 1 process if ``child``, else 4 threads), measured for
    ``seconds`` after a second of warm-up (the ring's pages are touched once first)."""
    camera = SimulatedCameraSource(shape, np.uint16, seed=1, frame_rate=rate, frame_buffer_size=256)
    name = f"bench_frames_{os.getpid()}"
    hub = ImageHub(camera, name=name, ring_seconds=ring_seconds, max_poll_rate=poll)
    with hub:
        threads_wanted = 3 if child else 4
        readers = [hub.open_reader(f"consumer {k}") for k in range(threads_wanted)]
        for reader in readers:
            reader.start()
        tallies = [{"frames": 0, "breaks": 0, "error": None} for _ in readers]
        stop = threading.Event()
        queue = SPAWN.Queue() if child else None
        process = None
        if child:
            process = SPAWN.Process(
                target=_child_reader, args=(name, WARM_UP_S + seconds + 0.5, queue)
            )
            process.start()
            time.sleep(1.0)  # let the child import numpy and attach before measuring
        threads = [
            threading.Thread(target=_consume, args=(r, shape, stop, t))
            for r, t in zip(readers, tallies, strict=True)
        ]
        for thread in threads:
            thread.start()
        time.sleep(WARM_UP_S)
        read0 = [t["frames"] for t in tallies]
        written0 = hub.ring.write_index
        wall0, cpu0 = time.perf_counter(), time.process_time()
        time.sleep(seconds)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        written = hub.ring.write_index - written0
        read = [t["frames"] - r for t, r in zip(tallies, read0, strict=True)]
        stop.set()
        for thread in threads:
            thread.join(10)
        fault = hub.error
        child_result = None
        if process is not None:
            child_result = queue.get(timeout=60)
            process.join(30)
        lost = [r.lost for r in readers]
    return {
        "wall": wall,
        "cpu": cpu,
        "written": written,
        "read": read,
        "tallies": tallies,
        "lost": lost,
        "fault": fault,
        "child": child_result,
    }


def producer_only(shape, rate: float, seconds: float) -> float:
    """CPU % of one core to make the frames alone, at ``rate``, into one buffer (no ring)."""
    camera = SimulatedCameraSource(shape, np.uint16, seed=1, frame_rate=rate, frame_buffer_size=256)
    frames = np.empty((READ_FRAMES, *shape), np.uint16)
    camera.start_stream()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        camera.read_frames_into_buffer(frames, READ_FRAMES, timeout=5.0)
    cpu = time.process_time() - cpu0
    camera.stop_stream()
    return 100 * cpu / (time.perf_counter() - wall0)


def viewer_draw_rate(seconds: float) -> tuple[float, float]:
    """Images per second the viewer window draws (512 x 512 uint16, offscreen Qt): with
    fixed levels, and with levels following each image; each draw is the GUI's own
    ``show_image`` followed by the repaint."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from qudi.gui.instream.camera_viewer_window import CameraViewerWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    window = CameraViewerWindow("benchmark")
    window.show()
    camera = SimulatedCameraSource((512, 512), np.uint16, seed=1, frame_rate=1000.0)
    frames = np.empty((16, 512, 512), np.uint16)
    camera.camera.render(frames, 0)
    rates = []
    for auto_levels in (False, True):
        window.show_image(frames[0], True)
        app.processEvents()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            window.show_image(frames[count % 16], auto_levels)
            window.image_view.repaint()
            app.processEvents()
            count += 1
        rates.append(count / (time.perf_counter() - start))
    window.close()
    return rates[0], rates[1]


def lossless(result, rate: float) -> bool:
    ok = all(t["error"] is None and t["breaks"] == 0 for t in result["tallies"])
    ok = ok and not any(result["lost"]) and result["fault"] is None
    # the camera kept its rate and every consumer kept up with it over the measured window
    due = 0.9 * rate * result["wall"]
    return ok and result["written"] >= due and min(result["read"]) >= due


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else 8.0
    trial = 2.0 if args.quick else 4.0
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    print("\n512 x 512 uint16 at 100 frames/s (52 MB/s), 4 strict consumers (3 threads, 1 process)")
    alone = producer_only((512, 512), 100.0, seconds)
    result = run_fanout((512, 512), 100.0, seconds, child=True)
    tally, child_cpu, child_lost = result["child"]
    parent = 100 * result["cpu"] / result["wall"]
    child = 100 * child_cpu / (WARM_UP_S + seconds + 0.5)
    total = parent + child
    print(
        f"{'':28}{'read':>8}{'breaks':>8}{'lost':>6}   (frames; breaks: a frame twice or missing)"
    )
    for k, t in enumerate(result["tallies"]):
        label = f"thread consumer {k}"
        print(f"{label:28}{t['frames']:>8}{t['breaks']:>8}{result['lost'][k]:>6}")
        if t["error"]:
            print(f"   error: {t['error']}")
    print(f"{'other process (attached)':28}{tally['frames']:>8}{tally['breaks']:>8}{child_lost:>6}")
    print(f"frames written in the {result['wall']:.1f} s measured: {result['written']}")
    print(f"{'producer alone (no ring)':40}{alone:6.1f} % of one core")
    print(f"{'hub + 3 thread consumers (this process)':40}{parent:6.1f} %")
    print(f"{'1 consumer in another process':40}{child:6.1f} %")
    print(f"{'total':40}{total:6.1f} %")
    print(f"{'fan-out itself (total - producer)':40}{total - alone:6.1f} %")

    fixed, following = viewer_draw_rate(1.0 if args.quick else 3.0)
    print("\nviewer window, 512 x 512 uint16 images drawn per second (offscreen Qt, one core)")
    print(f"{'fixed levels':40}{fixed:6.1f} /s")
    print(f"{'auto levels (each image)':40}{following:6.1f} /s")

    print("\n1024 x 1024 uint16, 4 strict thread consumers: highest lossless frame rate")
    rates = (100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1600, 2000)
    best = 0.0
    print(f"{'fps':>6}{'written':>9}{'cpu %':>8}  result")
    for rate in rates:
        run = run_fanout(
            (1024, 1024), float(rate), trial, child=False, ring_seconds=0.25, poll=100.0
        )
        ok = lossless(run, rate)
        cpu = 100 * run["cpu"] / run["wall"]
        errors = [t["error"] for t in run["tallies"] if t["error"]]
        note = "lossless" if ok else f"losses ({errors[0] if errors else run['lost']})"
        print(f"{rate:>6}{run['written']:>9}{cpu:>8.1f}  {note[:90]}")
        if not ok:
            break
        best = float(rate)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(summary_line(total, best))


if __name__ == "__main__":
    sys.exit(main())
