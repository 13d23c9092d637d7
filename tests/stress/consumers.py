"""The soak test's consumers: a ramp ledger that checks every sample read, and the threads (and
the process) that read the stream while misbehaving on purpose.

Every consumer keeps a :class:`RampLedger`. The dummy's ``ramp`` channel is the sample's index
since the streamer started, so a consumer's reads must continue the ramp exactly, except where
the consumer was told it lost samples (a ``StreamOverrunError``, or its ``lost`` counter with
overwriting allowed): then the jump must equal the loss, to the sample.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import traceback

import numpy as np

from qudi.util.instream import (
    StreamBusyError,
    StreamFaultError,
    StreamOverrunError,
    StreamStoppedError,
    StreamTimeoutError,
)

CHANNELS = ["ramp", "sine"]
RATES = (1_000_000.0, 500_000.0)  # per channel; the first is the logics' and the usual one
BUFFER_SIZE = 2**20  # samples per channel asked of the streamer by everyone
MAX_CHUNK = 50_000
READ_TIMEOUT_S = 2.0
PARK_TIMEOUT_S = 30.0
_MAX_MESSAGES = 20


class RampLedger:
    """What one consumer read and lost, checked as it arrives (thread-safe)."""

    def __init__(self, name: str, kind: str, overwrite: bool):
        self.name, self.kind, self.overwrite = name, kind, overwrite
        self.samples = self.reads = self.runs = 0
        self.lost = 0  # samples lost and reported (overrun errors or the lost counter)
        self.overruns = self.faults = self.stops = self.timeouts = self.busy = 0
        self.reconfigured = self.reactivations = self.stalls = 0
        self.failures: list[str] = []
        self.failure_count = 0
        self._expected: float | None = None  # the next ramp value, None at a run's start
        self._offset: int | None = None  # stream position minus ramp value, fixed in a run
        self._gap = 0  # reported losses not yet seen in the ramp
        self._lock = threading.Lock()

    def new_run(self) -> None:
        """The consumer (re)started: its next read may begin anywhere."""
        with self._lock:
            self._expected, self._offset, self._gap = None, None, 0
            self.runs += 1

    def reported_loss(self, lost: int) -> None:
        """The consumer was told it lost ``lost`` samples: the ramp must jump by that much."""
        with self._lock:
            self._gap += lost
            self.lost += lost

    def fail(self, message: str) -> None:
        with self._lock:
            self.failure_count += 1
            if len(self.failures) < _MAX_MESSAGES:
                self.failures.append(message)

    def check(self, ramp: np.ndarray, position_after: int | None = None) -> None:
        """Check one read's ramp column (vectorised); ``position_after`` is the reader's stream
        position after the read, when known (it ties ramp values to stream positions)."""
        count = len(ramp)
        if count == 0:
            return
        with self._lock:
            first = float(ramp[0])
            if not np.array_equal(ramp, np.arange(first, first + count)):
                breaks = np.flatnonzero(np.diff(ramp) != 1)
                self._failed(
                    f"{self.name}: the ramp breaks inside one read of {count} samples at "
                    f"{breaks[:5].tolist()} ({ramp[breaks[0]]} -> {ramp[breaks[0] + 1]})"
                )
            elif self._expected is not None and first != self._expected + self._gap:
                self._failed(
                    f"{self.name}: read starts at ramp {first:.0f}, expected "
                    f"{self._expected:.0f} + reported loss {self._gap} = "
                    f"{self._expected + self._gap:.0f} (unaccounted jump "
                    f"{first - self._expected - self._gap:.0f})"
                )
            if position_after is not None:
                offset = position_after - count - int(first)
                if self._offset is not None and offset != self._offset:
                    self._failed(
                        f"{self.name}: ramp {first:.0f} sits at stream position "
                        f"{position_after - count}; in this run it sat {self._offset} further"
                    )
                self._offset = offset
            self._expected = first + count
            self._gap = 0
            self.samples += count
            self.reads += 1

    def _failed(self, message: str) -> None:
        self.failure_count += 1
        if len(self.failures) < _MAX_MESSAGES:
            self.failures.append(message)

    def summary(self) -> dict:
        return {
            key: getattr(self, key)
            for key in (
                "name",
                "kind",
                "overwrite",
                "samples",
                "reads",
                "runs",
                "lost",
                "overruns",
                "faults",
                "stops",
                "timeouts",
                "busy",
                "reconfigured",
                "reactivations",
                "stalls",
                "failure_count",
                "failures",
            )
        }


class Worker(threading.Thread):
    """A thread that does random things to one consumer until ``stop`` is set.

    The main thread can park it (:meth:`park`) to deactivate its module underneath: the worker
    then waits, without reading, until :meth:`unpark`.
    """

    def __init__(self, name: str, ledger: RampLedger, seed: int, stop: threading.Event):
        super().__init__(name=f"stress-{name}", daemon=True)
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.stop_event = stop
        self._park = threading.Event()
        self._parked = threading.Event()
        self._unparked = threading.Event()

    def park(self) -> bool:
        """Ask the worker to pause between two calls; True once it has (bounded wait)."""
        self._unparked.clear()
        self._park.set()
        return self._parked.wait(PARK_TIMEOUT_S)

    def unpark(self) -> None:
        self._park.clear()
        self._unparked.set()

    def run(self) -> None:
        try:
            self.setup()
            while not self.stop_event.is_set():
                if self._park.is_set():
                    self._parked.set()
                    while not self._unparked.wait(0.1):
                        if self.stop_event.is_set():
                            return
                    self._parked.clear()
                    self.unparked()
                    continue
                self.step()
        except Exception:
            self.ledger.fail(f"{self.name} crashed:\n{traceback.format_exc()}")
        finally:
            try:
                self.teardown()
            except Exception:
                self.ledger.fail(f"{self.name} teardown failed:\n{traceback.format_exc()}")

    def setup(self) -> None: ...

    def step(self) -> None: ...

    def unparked(self) -> None: ...

    def teardown(self) -> None: ...

    def pause(self, seconds: float) -> None:
        """Wait, but end at once when the phase ends or the main thread wants to park us."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set() and not self._park.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.stop_event.wait(min(remaining, 0.05))


class _ReaderWorker(Worker):
    """Reads, stalls, restarts and reconfigures one reader (a buffer's or a hub's)."""

    def __init__(self, name, ledger, seed, stop, *, slow: bool, reconfigures: bool):
        super().__init__(name, ledger, seed, stop)
        self.slow = slow  # stalls longer than the ring holds: provokes overruns
        self.reconfigures = reconfigures
        self._run_start: tuple[int, int, int] | None = None
        self._out = np.empty((MAX_CHUNK, len(CHANNELS)))
        actions = {"read": 60, "read_available": 10, "restart": 4, "configure_same": 3}
        if slow:
            actions["stall"] = 3
        if reconfigures:
            actions["configure_other"] = 2
        self._actions, self._weights = list(actions), list(actions.values())

    def step(self) -> None:
        action = self.rng.choices(self._actions, self._weights)[0]
        try:
            getattr(self, f"_{action}")()
        except StreamOverrunError as overrun:
            self.ledger.overruns += 1
            self.ledger.reported_loss(overrun.lost)
        except StreamFaultError:
            self.ledger.faults += 1
            self._restart()
        except StreamStoppedError:
            self.ledger.stops += 1
            self._restart()
        except StreamTimeoutError:
            self.ledger.timeouts += 1

    def _read(self) -> None:
        count = self.rng.randint(1, MAX_CHUNK)
        out = self._out[:count]
        lost = self.lost()
        try:
            self.read_into(out, count)
        except StreamOverrunError as overrun:
            if self.lost() - lost != overrun.lost:
                self.ledger.fail(
                    f"{self.name}: StreamOverrunError says {overrun.lost} lost, the reader's "
                    f"counter grew by {self.lost() - lost}"
                )
            raise
        self._account(lost)
        self.ledger.check(out[:, 0], self.position())
        self._check_run()

    def _read_available(self) -> None:
        lost = self.lost()
        count = self.read_available_into(self._out)
        self._account(lost)
        self.ledger.check(self._out[:count, 0], self.position())
        self._check_run()

    def _account(self, lost_before: int) -> None:
        """With overwriting allowed, a read skips lost samples silently: count them."""
        lost = self.lost() - lost_before
        if lost and not self.ledger.overwrite:
            self.ledger.fail(f"{self.name}: lost {lost} samples without a StreamOverrunError")
        elif lost:
            self.ledger.reported_loss(lost)

    def _stall(self) -> None:
        self.ledger.stalls += 1
        self.pause(self.rng.uniform(0.3, 1.6))  # the ring holds about 1 s

    def _restart(self) -> None:
        self.stop_reader()
        self.start_reader()
        self._begin_run()

    def _begin_run(self) -> None:
        self.ledger.new_run()
        position = self.position()
        ledger = self.ledger
        self._run_start = None if position is None else (position, ledger.samples, ledger.lost)

    def _check_run(self) -> None:
        """Where the reader's position is known: read + lost == written since its start."""
        if self._run_start is None:
            return
        position, samples, lost = self._run_start
        read, lost = self.ledger.samples - samples, self.ledger.lost - lost
        if self.position() - position != read + lost:
            self.ledger.fail(
                f"{self.name}: {read} read + {lost} lost != {self.position() - position} "
                "written since the reader started"
            )

    def _configure_same(self) -> None:
        try:
            self.configure(self.current_rate())
        except StreamBusyError:  # another worker changed the rate meanwhile
            self.ledger.busy += 1

    def _configure_other(self) -> None:
        """Stop, ask for the other rate (refused while anybody else streams), start again."""
        rate = RATES[1] if self.current_rate() == RATES[0] else RATES[0]
        self.stop_reader()
        try:
            self.configure(rate)
            self.ledger.reconfigured += 1
        except StreamBusyError:  # the usual outcome: somebody streams
            self.ledger.busy += 1
        finally:
            self.start_reader()  # in a new ring this reader had no place until started
            self._begin_run()

    def configure(self, rate: float) -> None:
        from qudi.interface.instream_interface import StreamingMode  # not in the child process

        self.target().configure(CHANNELS, StreamingMode.CONTINUOUS, BUFFER_SIZE, rate)


class BufferWorker(_ReaderWorker):
    """Drives a DataInStreamBuffer module through its qudi interface."""

    def __init__(self, module_manager, module: str, seed, stop, *, overwrite, **kwargs):
        super().__init__(module, RampLedger(module, "buffer", overwrite), seed, stop, **kwargs)
        self._manager = module_manager
        self._module = module
        self._buffer = None

    def setup(self) -> None:
        self._buffer = self._manager[self._module].instance
        self.start_reader()
        self._begin_run()

    def unparked(self) -> None:  # reactivated underneath: a new reader, not yet started
        self.ledger.reactivations += 1
        self.setup()

    def teardown(self) -> None:
        if self._buffer is not None and self._buffer.module_state() != "deactivated":
            self.stop_reader()

    def target(self):
        return self._buffer

    def current_rate(self) -> float:
        return float(self._buffer.sample_rate)

    def start_reader(self) -> None:
        self._buffer.start_stream()

    def stop_reader(self) -> None:
        self._buffer.stop_stream()

    def lost(self) -> int:
        return self._buffer.lost_samples

    def position(self) -> None:
        return None  # the buffer does not say

    def read_into(self, out, count) -> None:
        self._buffer.read_data_into_buffer(out.reshape(-1), count, timeout=READ_TIMEOUT_S)

    def read_available_into(self, out) -> int:
        return self._buffer.read_available_data_into_buffer(out.reshape(-1))


class CoreWorker(_ReaderWorker):
    """A reader of the streamer's hub itself (the stream core's API), joined as a member."""

    def __init__(self, streamer, name: str, seed, stop, *, overwrite, **kwargs):
        super().__init__(name, RampLedger(name, "core", overwrite), seed, stop, **kwargs)
        self._streamer = streamer
        self._member = name
        self._hub = self._reader = None
        self._actions.append("rejoin")
        self._weights.append(2)

    def setup(self) -> None:
        from qudi.util.instream.sharing import module_hub

        self._hub = module_hub(self._streamer, self._member, 50.0)
        self._reader = self._hub.open_reader(self._member, allow_overwrite=self.ledger.overwrite)
        self.start_reader()
        self._begin_run()

    def teardown(self) -> None:
        from qudi.util.instream.sharing import hubs

        hub, reader, self._hub, self._reader = self._hub, self._reader, None, None
        if reader is not None:
            try:
                reader.close()
            finally:
                hubs.leave(hub, self._member)

    def _rejoin(self) -> None:
        """Leave the hub for good and join it again (the hub may close and reopen)."""
        self.teardown()
        self.ledger.reactivations += 1
        self.setup()

    def target(self):
        return self._hub

    def current_rate(self) -> float:
        return float(self._hub.ring.info.sample_rate)

    def start_reader(self) -> None:
        self._reader.start()

    def stop_reader(self) -> None:
        self._reader.stop()

    def lost(self) -> int:
        return self._reader.lost

    def position(self) -> int:
        return self._reader.position

    def read_into(self, out, count) -> None:
        self._reader.read_into(out, count, timeout=READ_TIMEOUT_S)

    def read_available_into(self, out) -> int:
        return self._reader.read_available_into(out)


class LogicDriver(Worker):
    """Starts and stops a TimeSeriesReaderLogic; its raw data is checked as the logic emits it.

    A logic stops itself on any read error (logged); within one of its runs the ramp it
    emits (``sigNewRawData``) must have no gap at all.
    """

    def __init__(self, module_manager, module: str, seed, stop):
        super().__init__(module, RampLedger(module, "logic", False), seed, stop)
        self._manager = module_manager
        self._module = module
        self._logic = None

    def on_raw_data(self, data, _timestamps) -> None:
        """Runs in the logic's thread (direct connection), inside its frame."""
        self.ledger.check(np.asarray(data)[:, 0])

    def setup(self) -> None:
        self._logic = self._manager[self._module].instance

    def unparked(self) -> None:
        self.ledger.reactivations += 1
        self.setup()

    def step(self) -> None:
        logic = self._logic
        if logic.module_state() == "locked":
            chance = self.rng.random()
            if chance < 0.3:
                logic.stop_reading()
                self.ledger.stops += 1
            elif chance < 0.4:
                self.stall(logic)
        else:
            # idle: no frame can emit until start_reading (frames emit under the logic's lock,
            # and only while it is locked), so the ledger's new run cannot mix with the last
            self.ledger.new_run()
            logic.start_reading()
        self.pause(self.rng.uniform(0.2, 1.5))

    def stall(self, logic) -> None:
        """Keep the logic busy longer than the ring holds, as a long call into it would (its
        frames wait for its lock): its next frame meets an overrun and the logic stops."""
        with logic._lock:
            self.ledger.stalls += 1
            self.pause(self.rng.uniform(1.2, 2.0))

    def teardown(self) -> None:
        logic = self._logic
        if logic is not None and logic.module_state() == "locked":
            logic.stop_reading()


# ------------------------------------------------------------- the consumer in another process
COUNTERS = (
    "samples",
    "reads",
    "lost",
    "overruns",
    "faults",
    "stops",
    "timeouts",
    "failures",
    "runs",
    "stage",  # how far the child got: 1 connected, 2 joined the stream, 3 reading
)


def remote_consumer(port: int, consumer: str, counters, seed: int, workdir: str) -> None:
    """A child process: joins the stream over rpyc (StreamShare + RemoteHub), reads and checks
    the ramp until killed. Reports through ``counters`` (shared memory without a lock: SIGKILL
    may come at any time); its output goes to ``<consumer>.log``, its first failures to
    ``<consumer>_failures.txt`` in ``workdir``."""
    import rpyc

    log = os.open(os.path.join(workdir, f"{consumer}.log"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    failure_file = os.path.join(workdir, f"{consumer}_failures.txt")

    from qudi.util.instream.sharing import RemoteHub

    index = {name: i for i, name in enumerate(COUNTERS)}
    ledger = RampLedger(consumer, "remote", False)
    connection = rpyc.connect(
        "127.0.0.1", port, config={"allow_all_attrs": True, "allow_pickle": False}
    )
    counters[index["stage"]] = 1
    remote = RemoteHub(connection.root.share(consumer))
    reader = remote.open_reader(consumer)
    counters[index["stage"]] = 2
    rng = random.Random(seed)
    out = np.empty((MAX_CHUNK, len(CHANNELS)))
    reported = 0

    def begin_run() -> tuple[int, int, int]:
        with contextlib.suppress(StreamStoppedError):
            reader.start()  # follows a replaced ring
        ledger.new_run()
        return reader.position, ledger.samples, ledger.lost

    run = begin_run()
    counters[index["stage"]] = 3
    while True:
        count = rng.randint(1, MAX_CHUNK)
        try:
            lost = reader.lost
            reader.read_into(out[:count], timeout=READ_TIMEOUT_S)
            if reader.lost != lost:
                ledger.fail(f"{consumer}: lost {reader.lost - lost} without an overrun error")
            ledger.check(out[:count, 0], reader.position)
            written = reader.position - run[0]
            if written != ledger.samples - run[1] + ledger.lost - run[2]:
                ledger.fail(f"{consumer}: read + lost != {written} written since its start")
        except StreamOverrunError as overrun:
            ledger.overruns += 1
            ledger.reported_loss(overrun.lost)
        except StreamFaultError:
            ledger.faults += 1
            run = begin_run()
        except StreamStoppedError:
            ledger.stops += 1
            run = begin_run()
        except StreamTimeoutError:
            ledger.timeouts += 1
        for name in ("samples", "reads", "lost", "overruns", "faults", "stops", "timeouts"):
            counters[index[name]] = getattr(ledger, name)
        counters[index["failures"]] = ledger.failure_count
        counters[index["runs"]] = ledger.runs
        if ledger.failure_count > reported:
            reported = ledger.failure_count
            with open(failure_file, "w") as failures:
                failures.write("\n".join(ledger.failures))
