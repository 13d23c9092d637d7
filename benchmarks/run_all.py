"""Run every benchmark and write the performance report ``docs/performance.md``.

    python benchmarks/run_all.py            # every benchmark with --quick
    python benchmarks/run_all.py --full     # full runs
    python benchmarks/run_all.py --only fanout --only recording   # some of them

Each benchmark in ``benchmarks/`` runs as its own process (so one that crashes or hangs ends
only its own section), with ``--quick`` unless ``--full`` is given. The report holds the
machine (cores, CPU model, Python and numpy versions), the date, each benchmark's printed
tables and its last line (its headline), the CPU used at 8 channels x 1 MS/s (from the paced
hub run of ``fanout.py`` and from ``qudi_buffers.py``), and ``docs/performance_fanout.png``:
aggregate throughput against the number of consumers for the single shared ring, the
copy-per-consumer design and memcpy (from ``fanout.py --json``).

Benchmarks that need Qt are skipped, with the reason in the report, when a Qt application
cannot start here (no display libraries); plots use matplotlib's Agg backend (no display).
Exit status: 0 if every benchmark that ran succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"

# One process each, in this order (any other script after them, by name). Scripts without
# --quick get a shorter run from QUICK_ARGS instead.
ORDER = ("fanout", "qudi_buffers", "recording", "logic_frame", "gui_fps", "remote", "card_limits")
QUICK_ARGS = {"qudi_buffers": ["--seconds", "5"], "session_replay": ["--seconds", "10"]}
FULL_ARGS = {"qudi_buffers": ["--seconds", "30"]}
# These start a QApplication (offscreen, or under Xvfb for gui_idle and card_limits).
NEEDS_QT = {"qudi_buffers", "logic_frame", "gui_fps", "gui_idle", "card_limits"}
TIMEOUT_S = {"quick": 900.0, "full": 3600.0}
# modules in benchmarks/ that are not benchmarks (lsl_picture.py draws docs/lsl.png)
HELPERS = {"run_all", "qudi_harness", "lsl_picture"}

_QT_PROBE = """
import os
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6 import QtWidgets
app = QtWidgets.QApplication([])
widget = QtWidgets.QWidget()
widget.resize(40, 30)
widget.grab()
"""


@dataclass
class Run:
    """What one benchmark process did."""

    name: str
    command: list[str]
    returncode: int | None = None  # None: skipped or timed out
    seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""
    skipped: str | None = None  # the reason
    numbers: dict = field(default_factory=dict)  # its --json output, if it has one

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.returncode == 0

    @property
    def printed(self) -> str:
        """What it printed, without qudi's own start-up lines ("> Applying configuration")."""
        return "\n".join(line for line in self.stdout.splitlines() if not line.startswith("> "))

    @property
    def headline(self) -> str:
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


def benchmark_names() -> list[str]:
    """Every benchmark script in this folder, known ones first in their order."""
    found = {p.stem for p in HERE.glob("*.py")} - HELPERS
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def script_takes(name: str, option: str) -> bool:
    return f'"{option}"' in (HERE / f"{name}.py").read_text()


def needs_qt(name: str) -> bool:
    if name in NEEDS_QT:
        return True
    source = (HERE / f"{name}.py").read_text()
    return "start_qudi" in source or "PySide6" in source


def qt_problem() -> str | None:
    """Why a Qt application cannot start here (offscreen), or None if it can."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _QT_PROBE], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return "starting a Qt application took more than 60 s"
    if probe.returncode == 0:
        return None
    lines = [line for line in probe.stderr.splitlines() if line.strip()]
    return f"Qt cannot start here: {lines[-1] if lines else f'exit code {probe.returncode}'}"


def run_benchmark(name: str, full: bool, json_dir: Path, qt_missing: str | None) -> Run:
    """Run one benchmark script as a subprocess and keep what it printed."""
    args = list((FULL_ARGS if full else QUICK_ARGS).get(name, []))
    if not full and name not in QUICK_ARGS and script_takes(name, "--quick"):
        args.append("--quick")
    print(f"--- python benchmarks/{name}.py {' '.join(args)}", flush=True)
    json_path = json_dir / f"{name}.json"
    if script_takes(name, "--json"):
        args += ["--json", str(json_path)]
    run = Run(name, [sys.executable, str(HERE / f"{name}.py"), *args])
    if qt_missing is not None and needs_qt(name):
        run.skipped = qt_missing
        print(f"skipped: {qt_missing}", flush=True)
        return run
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    env["MPLBACKEND"] = "Agg"
    # the file writes of the benchmark before (the recording ones write gigabytes) are
    # flushed now, not while this one measures (it once made a logic frame cost 8 ms, not 1.4)
    os.sync()
    start = time.monotonic()
    try:
        done = subprocess.run(
            run.command,
            cwd=HERE.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S["full" if full else "quick"],
        )
    except subprocess.TimeoutExpired as expired:
        run.stdout = _text(expired.stdout)
        run.stderr = _text(expired.stderr) + f"\ntimed out after {expired.timeout:g} s"
    else:
        run.returncode, run.stdout, run.stderr = done.returncode, done.stdout, done.stderr
    run.seconds = time.monotonic() - start
    if json_path.exists():
        run.numbers = json.loads(json_path.read_text())
    print(run.stdout, end="", flush=True)
    if not run.ok:
        print(f"{name} FAILED (exit code {run.returncode}):\n{_tail(run.stderr)}", flush=True)
    return run


def _text(output: bytes | str | None) -> str:
    if output is None:
        return ""
    return output if isinstance(output, str) else output.decode(errors="replace")


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# ----------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> list[tuple[str, str]]:
    import numpy

    rows = [
        ("CPU", cpu_model()),
        ("cores available", f"{len(os.sched_getaffinity(0))} (of {os.cpu_count()} on the host)"),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("numpy", numpy.__version__),
    ]
    for package in ("h5py", "qudi-core", "PySide6", "pyqtgraph"):
        try:
            from importlib.metadata import version

            rows.append((package, version(package)))
        except Exception:  # not installed: leave it out
            pass
    return rows


# ----------------------------------------------------------------------------- figures
def cpu_at_8x1e6(runs: dict[str, Run]) -> list[str]:
    """Lines on CPU at 8 channels x 1 MS/s, from the runs that measured it."""
    lines = []
    fanout = runs.get("fanout")
    paced = fanout.numbers.get("paced") if fanout is not None else None
    if paced:
        lost = sum(paced["lost_per_reader"]) + sum(paced["breaks_per_reader"])
        lines.append(
            f"- **Stream core** (`fanout.py`, paced `StreamHub` over a simulated card, "
            f"{paced['channels']} ch x {paced['sample_rate'] / 1e6:g} MS/s, "
            f"{paced['readers']} readers): **{paced['cpu_percent']:.1f} % of one core** for the "
            f"whole process, {lost} samples lost or out of order."
        )
    buffers = runs.get("qudi_buffers")
    if buffers is not None and buffers.ok:
        cpu = re.search(r"CPU of the qudi process: ([\d.]+%)", buffers.stdout)
        setup = re.search(r"^(\d+) buffers x (\d+) ch x (\S+) S/s", buffers.stdout, re.M)
        if cpu and setup:
            count, channels, rate = setup.groups()
            lines.append(
                f"- **qudi** (`qudi_buffers.py`, an `InStreamDummy` at {channels} ch x "
                f"{float(rate) / 1e6:g} MS/s read by {count} `DataInStreamBuffer`s, one thread "
                f"each): **{cpu.group(1)} of one core** for the qudi process; "
                f"{buffers.headline}."
            )
    return lines or ["- not measured (fanout.py and qudi_buffers.py did not run)"]


def load_note(runs: list[Run]) -> list[str]:
    """A warning when other processes competed for the cores (fanout.py measures it)."""
    shares = [
        int(share)
        for run in runs
        for share in re.findall(r"other processes used (\d+) % of one core", run.stdout)
    ]
    if not shares or max(shares) < 20:
        return []
    return [
        f"While these ran, other processes used up to {max(shares)} % of one core "
        f"({len(os.sched_getaffinity(0))} cores here): expect lower throughput and more scatter "
        "than on an idle machine.",
        "",
    ]


def plot_fanout(numbers: dict, path: Path) -> None:
    """Throughput vs consumers: single ring, copy per consumer (both ring sizes), memcpy."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    sample_bytes = numbers["sample_bytes"]
    chosen = numbers["ring_samples"]
    figure = Figure(figsize=(7.5, 4.8), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    styles = {"single ring": ("tab:blue", "o"), "copy/consumer": ("tab:orange", "s")}
    labels = {"single ring": "single shared ring", "copy/consumer": "copy per consumer"}
    rings_word = {"single ring": "ring", "copy/consumer": "ring each"}
    rings = sorted(
        {row["ring_samples"] for row in numbers["throughput"]}, key=lambda r: r != chosen
    )
    for ring in rings:
        for design, (colour, marker) in styles.items():
            rows = sorted(
                (
                    r
                    for r in numbers["throughput"]
                    if r["design"] == design and r["ring_samples"] == ring
                ),
                key=lambda r: r["readers"],
            )
            if not rows:
                continue
            mib = ring * sample_bytes / 2**20
            axes.plot(
                [r["readers"] for r in rows],
                [r["aggregate_rate"] * sample_bytes / 1e9 for r in rows],
                color=colour,
                marker=marker,
                linestyle="-" if ring == chosen else ":",
                label=f"{labels[design]} ({mib:g} MiB {rings_word[design]})",
            )
    memcpy = numbers["memcpy_rate"] * sample_bytes / 1e9
    axes.axhline(memcpy, color="black", linestyle="--", linewidth=1, label="memcpy (one copy)")
    readers = sorted({r["readers"] for r in numbers["throughput"]})
    axes.set_xscale("log", base=2)
    axes.set_xticks(readers, [str(n) for n in readers])
    axes.set_xlabel("number of consumers (reader threads)")
    axes.set_ylabel("aggregate throughput (GB/s copied out)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.set_title(
        "One stream to N consumers: 8-ch float64, "
        f"{numbers['chunk_samples'] * sample_bytes / 2**20:g} MiB reads, lossless"
        + (" (quick run)" if numbers.get("quick") else "")
    )
    axes.legend(fontsize="small", loc="best")
    figure.savefig(path)


# ----------------------------------------------------------------------------- report
README = HERE.parent / "README.md"
#: README.md shows the report's headline table between these lines; run_all.py rewrites it, so
#: the README and docs/performance.md always show the numbers of the same run.
README_BEGIN = "<!-- performance headlines: written by benchmarks/run_all.py -->"
README_END = "<!-- end of performance headlines -->"


def headlines(runs: list[Run]) -> list[str]:
    """The table of each benchmark's last line, as Markdown lines."""
    out = ["| benchmark | result |", "| --- | --- |"]
    for run in runs:
        result = (
            f"skipped: {run.skipped}"
            if run.skipped
            else run.headline
            if run.ok
            else f"FAILED (exit code {run.returncode})"
        )
        out.append(f"| `{run.name}.py` | {result.replace('|', '/')} |")
    return out


def report_headlines(report: str) -> list[str]:
    """The headline table of a written report (its lines under ``## Headlines``)."""
    lines = report.splitlines()
    start = lines.index("## Headlines") + 2
    end = lines.index("", start)
    return lines[start:end]


def update_readme(table: list[str], readme: Path = README) -> None:
    """Put ``table`` between the README's headline markers (which must both be there)."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme} lacks the lines {README_BEGIN!r} and {README_END!r}")
    before, rest = text.split(README_BEGIN, 1)
    _, after = rest.split(README_END, 1)
    readme.write_text(before + README_BEGIN + "\n" + "\n".join(table) + "\n" + README_END + after)


def write_report(runs: list[Run], full: bool, png: Path | None, path: Path) -> None:
    by_name = {run.name: run for run in runs}
    mode = "full runs" if full else "quick runs (`--quick`: shorter, so noisier)"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Performance",
        "",
        f"Generated by `python benchmarks/run_all.py{' --full' if full else ''}` on {now}, "
        f"{mode}. What each benchmark measures and how: [benchmarks/README.md]"
        "(../benchmarks/README.md). Numbers depend on having the cores to yourself; the "
        '"other processes used" lines say how busy the rest of the machine was.',
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {key} | {value} |" for key, value in machine()],
        "",
        "## Headlines",
        "",
        *headlines(runs),
        "",
        *load_note(runs),
        "## CPU at 8 channels x 1 MS/s",
        "",
        *cpu_at_8x1e6(by_name),
        "",
    ]
    if png is not None:
        out += [
            "## Throughput against the number of consumers",
            "",
            f"![Aggregate throughput vs consumers]({png.name})",
            "",
            "Every consumer gets every sample (`allow_overwrite=False`, the writer waits for the "
            "slowest reader). *single shared ring*: one copy into the ring, each consumer copies "
            "out through its own cursor. *copy per consumer*: the design it replaces, a ring per "
            "consumer that the writer fills. *memcpy*: numpy copying 128 MiB blocks (DRAM-bound), "
            "the yardstick. Dotted: the same with 64 MiB rings, the time-series logic's default "
            "buffer.",
            "",
        ]
    out += ["## Each benchmark", ""]
    for run in runs:
        out += [f"### `{run.name}.py`", ""]
        if run.skipped:
            out += [f"Skipped: {run.skipped.rstrip('.')}.", ""]
            continue
        shown = [Path(run.command[1]).name, *run.command[2:]]
        if "--json" in shown:
            shown = shown[: shown.index("--json")]
        out += [f"`python benchmarks/{' '.join(shown)}`, {run.seconds:.0f} s", "", "```"]
        out += [run.printed.rstrip() or "(no output)", "```", ""]
        if not run.ok:
            out += [f"Exit code {run.returncode}; the end of its error output:", "", "```"]
            out += [_tail(run.stderr), "```", ""]
    path.write_text("\n".join(out))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full runs instead of --quick")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)"
    )
    parser.add_argument(
        "--out", type=Path, default=DOCS, help="folder for performance.md and the plot (docs/)"
    )
    args = parser.parse_args(argv)
    known = benchmark_names()
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; there are {known}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n for n in benchmark_names() if not args.only or n in args.only]
    qt_missing = qt_problem() if any(needs_qt(n) for n in names) else None
    if qt_missing:
        print(f"{qt_missing}: Qt benchmarks are skipped", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="instream_bench_json_") as json_dir:
        runs = [run_benchmark(n, args.full, Path(json_dir), qt_missing) for n in names]
    fanout = next((r for r in runs if r.name == "fanout" and r.numbers.get("throughput")), None)
    png = None
    if fanout is not None:
        png = args.out / "performance_fanout.png"
        plot_fanout(fanout.numbers, png)
    report = args.out / "performance.md"
    write_report(runs, args.full, png, report)
    print(f"wrote {report}" + (f" and {png}" if png else ""))
    if args.out.resolve() == DOCS.resolve() and not args.only:
        update_readme(report_headlines(report.read_text()))
        print(f"updated the headline table in {README}")
    return 0 if all(run.ok or run.skipped for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
