"""The soak itself, in a real in-process qudi (run by ``test_soak.py`` in a pytest process of
its own: qudi is one application per process, and clean resource baselines need a fresh one).

One ramp dummy at 1 MS/s x 2 channels feeds three buffers read by worker threads, two
buffer -> time-series logic chains, two readers of the hub itself and, in some phases, a
consumer in another process (rpyc + shared memory) that is killed with SIGKILL. Every phase
mixes random reads, stalls, restarts and reconfigurations in the workers with events in the
main thread (qudi activates modules there): deactivating and reactivating consumers, injected
streamer faults, killed processes. After each phase every sample read is accounted for; at the
end threads, file descriptors, shared memory and RSS are back to their baseline.

The fixtures are those of ``tests/qudi/conftest.py``, pointed at ``stress.cfg``.
"""

from __future__ import annotations

import ctypes
import faulthandler
import gc
import json
import logging
import multiprocessing
import os
import random
import re
import resource
import signal
import threading
import time
import weakref
from collections import Counter
from pathlib import Path

import rpyc
from PySide6 import QtCore
from rpyc.utils.server import ThreadedServer

import tests.qudi.conftest as qudi_fixtures
from qudi.interface.instream_interface import StreamingMode
from qudi.util.instream import list_streams
from qudi.util.instream.sharing import share_module_stream
from tests.stress import BOUNDED_SECONDS, phase_count
from tests.stress.consumers import (
    BUFFER_SIZE,
    CHANNELS,
    COUNTERS,
    RATES,
    BufferWorker,
    CoreWorker,
    LogicDriver,
    remote_consumer,
)
from tests.stress.report import format_summary

# qudi's fixtures for this module, with qudi started from our config
qudi_fixtures.CONFIG = Path(__file__).resolve().with_name("stress.cfg")
qudi_home = qudi_fixtures.qudi_home
qudi = qudi_fixtures.qudi
module_manager = qudi_fixtures.module_manager

PHASE_KINDS = ("consumers", "faults", "kills", "everything")
JOIN_TIMEOUT_S = 30.0
RSS_TOLERANCE_MB = 30.0
SPAWN = multiprocessing.get_context("spawn")
# the errors a logic logs when its reading stops; anything else logged as an error fails
_LOGIC_STOP = re.compile(r"reading stopped: (Stream(?:Fault|Overrun|Stopped)Error): (.*)", re.S)
_OVERRUN = re.compile(r"reader '(\w+)' fell behind and lost ([\d ]+) samples")
_SOURCE_FAILED = re.compile(r"stream '\w+': the source failed and was stopped: (.*)", re.S)
_LIBC = ctypes.CDLL("libc.so.6")
_MODULES = ("buffer_strict", "buffer_slow", "buffer_overwrite", "logic1", "logic2")


# ------------------------------------------------------------------------------ resources
def resources() -> dict:
    """This process's threads, descriptors, shared-memory streams and RSS (after a garbage
    collection and giving the allocator's free memory back, so RSS counts memory in use)."""
    gc.collect()
    _LIBC.malloc_trim(0)
    pid = os.getpid()
    with open("/proc/self/status") as status:
        memory = {
            key: int(value.split()[0])
            for key, value in (line.split(":", 1) for line in status)
            if key in ("VmRSS", "RssAnon", "RssShmem")
        }
    with open("/proc/self/maps") as maps:
        shm_maps = {line.split()[-1] for line in maps if f"_{pid}" in line and "/dev/shm/" in line}
    return {
        "threads_os": len(os.listdir("/proc/self/task")),
        "threads_py": sum(not isinstance(t, threading._DummyThread) for t in threading.enumerate()),
        "threads_instream": sorted(
            t.name for t in threading.enumerate() if t.name.startswith("instream-")
        ),
        "fds": len(os.listdir("/proc/self/fd")),
        "streams": sorted(n for n in list_streams() if n.endswith(f"_{pid}")),
        "shm_files": sorted(n for n in os.listdir("/dev/shm") if n.endswith(f"_{pid}")),
        "shm_maps": len(shm_maps),
        "rss_mb": memory["VmRSS"] / 1024,
        "rss_shmem_mb": memory["RssShmem"] / 1024,
        "fd_targets": sorted(_fd_target(fd) for fd in os.listdir("/proc/self/fd")),
        "python_objects": len(gc.get_objects()),
    }


def _fd_target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # the directory's own descriptor, closed by now
        return "?"


class LogRecords(logging.Handler):
    """Keeps the warnings and errors logged anywhere (qudi's modules log through ``logging``)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]}"
        self.records.append((record.levelno, text))

    def take(self) -> list[tuple[int, str]]:
        taken, self.records = self.records, []
        return taken


class Watchdog:
    """Dumps every thread's stack to ``path`` and ends the process if a phase hangs."""

    def __init__(self, path: Path):
        self._file = open(path, "w")  # noqa: SIM115 (faulthandler needs it open throughout)

    def arm(self, seconds: float) -> None:
        faulthandler.dump_traceback_later(seconds, exit=True, file=self._file)

    def dump(self) -> None:
        faulthandler.dump_traceback(self._file, all_threads=True)
        self._file.flush()

    def close(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        self._file.close()


class ShareServer:
    """Hands out StreamShares of the dummy's hub over rpyc, as a qudi process shares modules."""

    def __init__(self, streamer_of):
        shares = self.shares = weakref.WeakValueDictionary()

        class ShareService(rpyc.Service):
            def exposed_share(self, consumer):
                share = share_module_stream(streamer_of(), consumer, 50.0)
                shares[consumer] = share
                return share

        self._server = ThreadedServer(
            ShareService,
            hostname="127.0.0.1",
            port=0,
            protocol_config={"allow_all_attrs": True, "allow_pickle": False},
        )
        self.port = self._server.port
        self._thread = threading.Thread(target=self._server.start, name="stress-rpyc", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.close()
        self._thread.join(JOIN_TIMEOUT_S)


# ----------------------------------------------------------------------------- the soak
class Soak:
    def __init__(self, manager, qapp, seed: int, workdir: Path, watchdog: Watchdog):
        self.manager, self.qapp, self.seed = manager, qapp, seed
        self.workdir, self.watchdog = workdir, watchdog
        self.rng = random.Random(seed)
        self.logs = LogRecords()
        self.failures: list[str] = []
        self.events = Counter()
        self.totals: dict[str, Counter] = {}
        self.logic_buffer_lost = Counter()  # samples the logics' buffers lost, by buffer
        self.logged_overrun_lost = Counter()  # ... and what the logged overrun errors said
        self.phase_index = 0
        self.server: ShareServer | None = None
        self.children = []
        self.rss_trace: list[float] = []  # RSS (MB) after each phase
        self.spawned_at: dict[str, float] = {}
        self.remote_log: list[dict] = []  # what each killed process had read

    # -------------------------------------------------------------------------- helpers
    def streamer(self):
        return self.manager["ramp_dummy"].instance

    def activate_all(self) -> None:
        for name in _MODULES:
            self.manager.activate_module(name)

    def deactivate_all(self) -> None:
        self._note_lost("buffer_logic1")
        self._note_lost("buffer_logic2")
        self.manager.deactivate_module("ramp_dummy")  # and everything that depends on it
        self.process_events()

    def process_events(self) -> None:
        self.qapp.processEvents()

    def wait_until(self, condition, timeout: float, what: str) -> bool:
        """Wait for ``condition`` while serving qudi's main thread; note a failure on timeout."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.failures.append(f"phase {self.phase_index}: {what} within {timeout} s")
                return False
            self.process_events()
            time.sleep(0.01)
        return True

    def fail(self, message: str) -> None:
        self.failures.append(f"phase {self.phase_index}: {message}")

    def _note_lost(self, buffer: str) -> None:
        """Before a logic's buffer is deactivated: add up what its reader lost."""
        module = self.manager[buffer]
        if module.is_active:
            self.logic_buffer_lost[buffer] += module.instance.lost_samples

    # ---------------------------------------------------------------------- warm-up
    def warm_up(self) -> None:
        """Everything once, so lazily made resources (Qt, numpy, rpyc) exist for the baseline."""
        self.activate_all()
        for name in ("logic1", "logic2"):
            logic = self.manager[name].instance
            logic.set_channel_settings(CHANNELS, [])
            logic.set_trace_settings(
                data_rate=RATES[0] / 1000,
                oversampling_factor=1000,
                moving_average_width=1,
                trace_window_size=2.0,
            )
        self.manager["buffer_strict"].instance.configure(
            CHANNELS, StreamingMode.CONTINUOUS, BUFFER_SIZE, RATES[0]
        )
        self.run_phase("everything", 10.0)

    # ------------------------------------------------------------------------ a phase
    def run_phase(self, kind: str, seconds: float) -> None:
        self.watchdog.arm(seconds + 240)  # a hang anywhere ends the run with every stack
        started = time.monotonic()
        self.logs.take()
        self.activate_all()
        stop = threading.Event()
        seed = self.seed * 1000 + self.phase_index * 10
        streamer = self.streamer()
        workers = {
            "buffer_strict": BufferWorker(
                self.manager,
                "buffer_strict",
                seed + 1,
                stop,
                overwrite=False,
                slow=False,
                reconfigures=False,
            ),
            "buffer_slow": BufferWorker(
                self.manager,
                "buffer_slow",
                seed + 2,
                stop,
                overwrite=False,
                slow=True,
                reconfigures=False,
            ),
            "buffer_overwrite": BufferWorker(
                self.manager,
                "buffer_overwrite",
                seed + 3,
                stop,
                overwrite=True,
                slow=True,
                reconfigures=True,
            ),
            "core_strict": CoreWorker(
                streamer,
                "core_strict",
                seed + 4,
                stop,
                overwrite=False,
                slow=True,
                reconfigures=True,
            ),
            "core_overwrite": CoreWorker(
                streamer,
                "core_overwrite",
                seed + 5,
                stop,
                overwrite=True,
                slow=True,
                reconfigures=False,
            ),
            "logic1": LogicDriver(self.manager, "logic1", seed + 6, stop),
            "logic2": LogicDriver(self.manager, "logic2", seed + 7, stop),
        }
        logics = {name: self.manager[name].instance for name in ("logic1", "logic2")}
        for name, logic in logics.items():
            logic.sigNewRawData.connect(
                workers[name].on_raw_data, QtCore.Qt.ConnectionType.DirectConnection
            )
        for worker in workers.values():
            worker.start()
        faults = kind in ("faults", "everything")
        cycles = kind in ("consumers", "everything")
        kills = kind in ("kills", "everything")
        injected: list[str] = []
        remote = []
        now = time.monotonic()
        next_fault = now + self.rng.uniform(1.0, 4.0)
        next_cycle = now + self.rng.uniform(1.0, 3.0)
        child = self.spawn_remote() if kills else None
        kill_at = None
        end = started + seconds
        while time.monotonic() < end:
            self.process_events()
            now = time.monotonic()
            if faults and now >= next_fault:
                next_fault = now + self.rng.uniform(2.0, 5.0)
                if streamer.module_state() == "locked":
                    message = f"stress fault {self.events['faults_injected']}"
                    streamer.simulate_fault(message)
                    injected.append(message)
                    self.events["faults_injected"] += 1
            if cycles and now >= next_cycle:
                next_cycle = now + self.rng.uniform(2.0, 5.0)
                self.cycle_module(workers)
            if child is not None:
                process, counters, name = child
                if kill_at is None and counters[COUNTERS.index("reads")] > 0:
                    kill_at = now + self.rng.uniform(1.0, 5.0)
                elif kill_at is None and now - self.spawned_at[name] > 20.0:
                    self.watchdog.dump()
                    kill_at = now  # and kill_remote says that it read nothing
                if kill_at is not None and now >= kill_at:
                    remote.append(self.kill_remote(child))
                    child, kill_at = None, None
                    if end - time.monotonic() > 8.0:
                        child = self.spawn_remote()
            time.sleep(0.01)
        if child is not None:
            remote.append(self.kill_remote(child, reads_required=False))
        stop.set()
        for worker in workers.values():
            worker.join(JOIN_TIMEOUT_S)
            if worker.is_alive():
                self.watchdog.dump()
                self.fail(f"worker {worker.name} did not end within {JOIN_TIMEOUT_S} s (hang?)")
        for name, logic in logics.items():
            logic.sigNewRawData.disconnect(workers[name].on_raw_data)
        self.wait_until(lambda: streamer.module_state() == "idle", 30, "the streamer stops")
        self.check_phase(kind, workers, remote, injected)
        self.deactivate_all()
        self.wait_until(
            lambda: not resources()["threads_instream"], 10, "every instream-* thread ends"
        )
        left = resources()
        self.rss_trace.append(round(left["rss_mb"], 1))
        if left["streams"] or left["shm_files"] or left["shm_maps"]:
            self.fail(f"shared memory left after deactivation: {left}")
        elapsed = time.monotonic() - started
        if elapsed > seconds + 120:
            self.fail(f"phase '{kind}' took {elapsed:.0f} s for {seconds:.0f} s of chaos")
        self.phase_index += 1

    def cycle_module(self, workers) -> None:
        """Deactivate a consumer under its worker (parked between two calls) and reactivate it."""
        target = self.rng.choice(
            ["buffer_strict", "buffer_slow", "buffer_overwrite", "logic1", "buffer_logic2"]
        )
        activate = "logic2" if target == "buffer_logic2" else target
        worker = workers[activate]
        if not worker.park():
            self.watchdog.dump()
            self.fail(f"worker {worker.name} did not pause within its timeout (hang?)")
            return
        if target == "buffer_logic2":  # a new reader follows: keep what this one lost
            self._note_lost("buffer_logic2")
        self.manager.deactivate_module(target)  # a logic alone: its buffer's count goes on
        self.process_events()
        self.manager.activate_module(activate)
        self.events["reactivations"] += 1
        worker.unpark()

    # --------------------------------------------------------------- the other process
    def spawn_remote(self):
        if self.server is None:
            self.server = ShareServer(self.streamer)
        name = f"remote{self.events['processes_started']}"
        self.events["processes_started"] += 1
        counters = SPAWN.RawArray("q", len(COUNTERS))
        process = SPAWN.Process(
            target=remote_consumer,
            args=(self.server.port, name, counters, self.rng.randrange(2**32), str(self.workdir)),
            daemon=True,
        )
        process.start()
        self.children.append(process)
        self.spawned_at[name] = time.monotonic()
        return process, counters, name

    def kill_remote(self, child, reads_required: bool = True) -> dict:
        """SIGKILL the child; its share must leave the hub, and what it read must add up."""
        process, counters, name = child
        if process.exitcode is not None:
            log = self.workdir / f"{name}.log"
            self.fail(
                f"{name} ended by itself with exit code {process.exitcode}:\n"
                + (log.read_text()[-3000:] if log.exists() else "")
            )
        os.kill(process.pid, signal.SIGKILL)
        process.join(JOIN_TIMEOUT_S)
        process.close()  # its sentinel descriptor
        self.children.remove(process)
        self.events["processes_killed"] += 1
        seen = dict(zip(COUNTERS, counters, strict=True))
        failure_file = self.workdir / f"{name}_failures.txt"
        seen.update(
            name=name,
            kind="remote",
            overwrite=False,
            failure_count=seen.pop("failures"),
            failures=failure_file.read_text().splitlines() if failure_file.exists() else [],
        )
        seen["alive_s"] = round(time.monotonic() - self.spawned_at.pop(name), 1)
        self.remote_log.append({"phase": self.phase_index, **seen})
        if not seen["reads"] and (reads_required or seen["alive_s"] > 15.0):
            log = self.workdir / f"{name}.log"
            self.fail(
                f"{name} read nothing before it was killed ({seen}):\n"
                + (log.read_text()[-3000:] if log.exists() else "")
            )
        shares = self.server.shares
        self.wait_until(lambda: name not in shares, 30, f"the killed {name}'s share leaves the hub")
        return seen

    # ---------------------------------------------------------------------- the checks
    def check_phase(self, kind, workers, remote, injected) -> None:
        ledgers = [worker.ledger.summary() for worker in workers.values()] + remote
        for ledger in ledgers:
            if ledger["failure_count"]:
                self.fail(
                    f"{ledger['name']}: {ledger['failure_count']} failures: "
                    + "\n".join(ledger["failures"])
                )
            if ledger["kind"] != "remote" and not ledger["samples"]:
                self.fail(f"{ledger['name']} read nothing in phase '{kind}'")
            totals = self.totals.setdefault(ledger["kind"], Counter())
            for key in ("samples", "lost", "overruns", "faults", "runs", "stalls", "failure_count"):
                totals[key] += ledger.get(key, 0)
        reported_faults = []
        for level, text in self.logs.take():
            source_failed = _SOURCE_FAILED.search(text)
            logic_stopped = _LOGIC_STOP.search(text)
            if source_failed:
                reported_faults.append(source_failed.group(1))
            elif logic_stopped:
                self.events[f"logic stops on {logic_stopped.group(1)}"] += 1
                if logic_stopped.group(1) == "StreamFaultError":
                    self.totals["logic"]["faults"] += 1
                overrun = _OVERRUN.search(text)
                if overrun:
                    lost = int(overrun.group(2).replace(" ", ""))
                    self.logged_overrun_lost[overrun.group(1)] += lost
                    self.totals["logic"]["lost"] += lost
                    self.totals["logic"]["overruns"] += 1
            elif level >= logging.ERROR:
                self.fail(f"unexpected error logged: {text}")
        natural = [f for f in reported_faults if not f.startswith("stress fault")]
        self.events["faults_natural"] += len(natural)
        injected_seen = [f for f in reported_faults if f not in natural]
        pending = self.streamer()._source._injected_fault
        if len(injected_seen) + (pending is not None) != len(injected):
            self.fail(f"faults injected {injected}, the hub reported {reported_faults}")

    def check_logic_losses(self) -> None:
        """A logic's buffer loses samples only with an overrun error, which the logic logs."""
        for name in ("buffer_logic1", "buffer_logic2"):
            if self.logic_buffer_lost[name] != self.logged_overrun_lost[name]:
                self.failures.append(
                    f"{name} lost {self.logic_buffer_lost[name]} samples, its logic's overrun "
                    f"errors said {self.logged_overrun_lost[name]}"
                )

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for process in self.children:
            if process.is_alive():
                process.kill()
            process.join(JOIN_TIMEOUT_S)


def test_soak(qudi, module_manager, qapp, request, tmp_path):
    """Chaos for ``--long`` seconds (default: bounded); see the module docstring."""
    seconds = request.config.getoption("--long") or BOUNDED_SECONDS
    seed = request.config.getoption("--seed")
    seed = 20261122 if seed is None else seed
    workdir = Path(os.environ.get("INSTREAM_SOAK_DIR", tmp_path))
    workdir.mkdir(parents=True, exist_ok=True)
    watchdog = Watchdog(workdir / "stacks.txt")
    soak = Soak(module_manager, qapp, seed, workdir, watchdog)
    logging.getLogger().addHandler(soak.logs)
    summary = {"seed": seed, "rate": RATES[0], "channels": len(CHANNELS), "resources": {}}
    summary["resources"]["start"] = resources()
    try:
        soak.warm_up()
        baseline = summary["resources"]["baseline"] = resources()
        soak.totals.clear()
        soak.events.clear()
        soak.logic_buffer_lost.clear()
        soak.logged_overrun_lost.clear()
        cpu_start = resource.getrusage(resource.RUSAGE_SELF)
        children_start = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        phases = phase_count(seconds, len(PHASE_KINDS))
        for index in range(phases):
            soak.run_phase(PHASE_KINDS[index % len(PHASE_KINDS)], seconds / phases)
        elapsed = time.monotonic() - started
        cpu_end = resource.getrusage(resource.RUSAGE_SELF)
        children_end = resource.getrusage(resource.RUSAGE_CHILDREN)
        soak.check_logic_losses()
    finally:
        soak.close()
        logging.getLogger().removeHandler(soak.logs)
        watchdog.close()
    end = summary["resources"]["end"] = resources()
    cpu = (cpu_end.ru_utime + cpu_end.ru_stime) - (cpu_start.ru_utime + cpu_start.ru_stime)
    children = children_end.ru_utime + children_end.ru_stime
    children -= children_start.ru_utime + children_start.ru_stime
    summary.update(
        seconds=elapsed,
        phases=phases,
        cpu_percent=100 * cpu / elapsed,
        children_cpu_percent=100 * children / elapsed,
        kinds={kind: dict(totals) for kind, totals in soak.totals.items()},
        events=dict(soak.events),
        rss_after_phases=soak.rss_trace,
        remote_processes=soak.remote_log,
        all_accounted=not any(t["failure_count"] for t in soak.totals.values()),
        failures=soak.failures,
    )
    (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
    text = format_summary(summary)
    print(text)
    assert not soak.failures, "\n".join(soak.failures) + "\n" + text
    assert not end["threads_instream"] and not end["streams"] and not end["shm_maps"], text
    assert end["threads_os"] <= baseline["threads_os"], text
    assert end["threads_py"] <= baseline["threads_py"], text
    leaked_fds = Counter(end["fd_targets"]) - Counter(baseline["fd_targets"])
    assert end["fds"] <= baseline["fds"], f"descriptors left open: {leaked_fds}\n{text}"
    assert end["rss_mb"] <= baseline["rss_mb"] + RSS_TOLERANCE_MB, text
