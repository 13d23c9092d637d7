"""NIXSeriesInStreamer: photon counting on PFI lines and analog inputs of an NI X-series card.

Example config (copy into the ``hardware:`` section)::

    ni_instreamer:
        module.Class: 'instream.ni_daq.NIXSeriesInStreamer'
        options:
            device_name: 'Dev1'
            digital_sources: ['PFI8', 'PFI9']      # optional: PFI lines counted as photon counters
            analog_sources: ['ai0', 'ai1']          # optional: analog inputs, in V
            external_sample_clock_source: null      # optional: e.g. 'PFI11' to clock from outside
            external_sample_clock_frequency: null   # Hz, required with an external clock
            adc_voltage_range: [-10, 10]            # optional: V, range of every analog input
            analog_channel_settings:                # optional: per analog input
                ai1: {range: [-1, 1], terminal: 'DIFF'}   # terminal: RSE, NRSE, DIFF, PSEUDO_DIFF
            max_channel_samples_buffer: 33554432    # optional: largest buffer, samples per channel
            read_write_timeout: 10                  # optional: s, default limit of blocking reads

Every channel is sampled on the edges of one sample clock, so sample ``i`` of every channel is
taken at the same moment: the analog task's own clock if analog inputs stream, otherwise a clock
generated on a spare counter, or the external clock. Each PFI line is counted by a counter
latched on that clock; the module turns the counts of each clock period into counts per second
(unit ``c/s``) with the rate the driver actually set, and streams analog inputs in volts.

The tasks that are clocked start before the task that makes the clock, so none misses an edge.
The driver's buffer never overwrites unread samples: a stream that is not read in time stops
with an error instead of returning stale data. After :meth:`stop_stream` the card's unread
samples are discarded (a DAQmx read of a stopped task would start it again).

Needs the NI-DAQmx driver and the ``nidaqmx`` Python package; without the driver the module
imports, and activation says how to install it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from qudi.core.configoption import ConfigOption
from qudi.util.constraints import ScalarConstraint

from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    SampleTiming,
    StreamingMode,
    check_read_buffers,
)
from qudi.util.instream.arrays import as_channel_names, check_count
from qudi.util.instream.errors import (
    StreamFaultError,
    StreamStoppedError,
    StreamTimeoutError,
)

try:  # the module must import without nidaqmx, so activation can say what is missing
    import nidaqmx
    import nidaqmx.constants as daq
    import nidaqmx.errors
    import nidaqmx.system
    from nidaqmx.stream_readers import AnalogMultiChannelReader, CounterReader
except ImportError:  # pragma: no cover - nidaqmx is a dependency of this package
    nidaqmx = None

__all__ = ["NIXSeriesInStreamer"]

DRIVER_HELP = (
    "Install the NI-DAQmx driver from https://www.ni.com/en/support/downloads/drivers/download."
    "ni-daq-mx.html (Linux: the ni-daqmx package of NI's Linux device drivers), or run "
    "'python -m nidaqmx installdriver' with this Python, then restart qudi."
)
TERMINALS = ("DEFAULT", "RSE", "NRSE", "DIFF", "PSEUDO_DIFF")
OVERFLOW = -200279  # the acquisition stopped: unread samples would have been overwritten
READ_TIMEOUT = -200284
RESOURCE_RESERVED = -50103
_CHUNK_SAMPLES = 65_536  # samples per channel moved per driver read (bounds the scratch memory)
_WAIT_STEP_S = 0.05  # blocking reads re-check for data and for a stop at least this often


def _options_error(key: str, value: object, valid: str) -> ValueError:
    return ValueError(f"option '{key}' is {value!r}: {valid}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _short_name(name: str) -> str:
    """'PFI8', '/Dev1/PFI8' and 'Dev1/PFI8' all name 'PFI8'."""
    return name.strip().strip("/").rsplit("/", 1)[-1]


def _daq_reason(exc: BaseException) -> str:
    """The first line of a DAQmx message with its error code, for messages of our own."""
    code = getattr(exc, "error_code", None)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{first_line} (DAQmx error {code})" if code is not None else first_line


@dataclass(frozen=True)
class _AnalogInput:
    """How one analog input is measured."""

    low: float
    high: float
    terminal: str


@dataclass(frozen=True)
class _Settings:
    """One accepted configuration of the stream."""

    channels: tuple[str, ...]
    mode: StreamingMode
    buffer_size: int
    rate: float


@dataclass(frozen=True)
class _Device:
    """What the card offers, read from the driver once at activation."""

    name: str
    product_type: str
    analog_inputs: tuple[str, ...]  # 'ai0', ...
    counters: tuple[str, ...]  # 'ctr0', ...
    terminals: tuple[str, ...]  # 'PFI0', 'ai/SampleClock', ...
    ai_max_single_rate: float
    ai_max_multi_rate: float
    ai_min_rate: float
    ai_simultaneous: bool
    ai_voltage_ranges: tuple[tuple[float, float], ...]
    counter_timebase: float  # Hz, fastest counter timebase
    counter_bits: int

    def max_rate(self, analog_inputs: int) -> float:
        """Fastest sample clock with this many analog inputs (per channel, Hz)."""
        if analog_inputs == 0:  # the clock is a counter output: half its fastest timebase
            return self.counter_timebase / 2
        if analog_inputs == 1:
            return self.ai_max_single_rate
        if self.ai_simultaneous:  # every input has its own converter
            return min(self.ai_max_single_rate, self.ai_max_multi_rate)
        return min(self.ai_max_single_rate, self.ai_max_multi_rate / analog_inputs)

    def min_rate(self, analog_inputs: int) -> float:
        """Slowest sample clock (Hz): the analog timing engine's, or a full counter period."""
        if analog_inputs:
            return self.ai_min_rate
        return self.counter_timebase / 2**self.counter_bits


def _read_device(name: str) -> _Device:
    """Ask the driver what the card ``name`` offers; clear errors without driver or device."""
    if nidaqmx is None:
        raise RuntimeError(
            "the Python package 'nidaqmx' is missing: 'pip install nidaqmx', then install the "
            f"NI-DAQmx driver. {DRIVER_HELP}"
        )
    try:
        device = nidaqmx.system.Device(name)
        product_type = device.product_type
    except nidaqmx.errors.DaqNotFoundError as exc:
        raise RuntimeError(
            f"the NI-DAQmx driver is not installed on this computer. {DRIVER_HELP}"
        ) from exc
    except nidaqmx.errors.Error as exc:
        present = _device_names()
        raise _options_error(
            "device_name", name, f"no such NI device ({_daq_reason(exc)}); present: {present}"
        ) from exc
    ranges = list(device.ai_voltage_rngs)
    return _Device(
        name=name,
        product_type=product_type,
        analog_inputs=tuple(_short_name(c) for c in device.ai_physical_chans.channel_names),
        counters=tuple(_short_name(c) for c in device.ci_physical_chans.channel_names),
        terminals=tuple(t.strip("/").split("/", 1)[-1] for t in device.terminals),
        ai_max_single_rate=float(device.ai_max_single_chan_rate),
        ai_max_multi_rate=float(device.ai_max_multi_chan_rate),
        ai_min_rate=float(device.ai_min_rate),
        ai_simultaneous=bool(device.ai_simultaneous_sampling_supported),
        ai_voltage_ranges=tuple(zip(ranges[::2], ranges[1::2], strict=True)),
        counter_timebase=float(device.ci_max_timebase),
        counter_bits=int(device.ci_max_size),
    )


def _device_names() -> list[str]:
    try:
        return list(nidaqmx.system.System.local().devices.device_names)
    except nidaqmx.errors.Error:
        return []


class _Tasks:
    """The DAQmx tasks of one configuration, built, started, read and closed together.

    One analog task (if analog inputs stream), one counter task per PFI line and, when only
    counters stream on the internal clock, a counter-output task that makes their clock. Every
    task this object created is closed by :meth:`close`, also when building fails half-way.
    """

    def __init__(
        self,
        owner: str,
        device: _Device,
        settings: _Settings,
        digital: tuple[str, ...],
        analog: dict[str, _AnalogInput],
        external_clock: tuple[str, float] | None,
        timeout: float,
    ):
        self.device = device
        self.settings = settings
        self.timeout = timeout
        self._all: list[nidaqmx.Task] = []
        self.ai_task = None
        self.ai_reader = None
        self.ai_columns: list[int] = []
        self.counters: list[tuple[int, nidaqmx.Task, CounterReader]] = []
        self.clock_task = None  # the task whose start starts the clock (None: external clock)
        self.rate = float(settings.rate)
        self.running = False
        try:
            self._build(owner, digital, analog, external_clock)
        except BaseException:
            self.close()
            raise
        self._last_counts = [np.zeros(1, np.uint32) for _ in self.counters]
        self._new_run()
        chunk = min(_CHUNK_SAMPLES, settings.buffer_size + 1)
        self._ai_scratch = np.empty(len(self.ai_columns) * chunk)
        self._counter_scratch = np.empty(chunk, np.uint32)
        self._diff_scratch = np.empty(chunk, np.uint32)
        self._chunk = chunk

    # --------------------------------------------------------------------------- build
    def _new_task(self, name: str):
        task = nidaqmx.Task(name)
        self._all.append(task)
        return task

    def _build(self, owner, digital, analog, external_clock) -> None:
        dev = self.device.name
        s = self.settings
        finite = s.mode == StreamingMode.FINITE
        mode = daq.AcquisitionType.FINITE if finite else daq.AcquisitionType.CONTINUOUS
        samples = s.buffer_size + 1  # plus the reference edge
        ai_names = [ch for ch in s.channels if ch in analog]
        counter_names = [ch for ch in s.channels if ch in digital]
        free_counters = list(self.device.counters)

        clock_source = f"/{dev}/{external_clock[0]}" if external_clock else ""
        if external_clock:
            self.rate = float(external_clock[1])
        if ai_names:
            task = self.ai_task = self._new_task(f"{owner}_ai")
            for name in ai_names:
                config = analog[name]
                task.ai_channels.add_ai_voltage_chan(
                    f"{dev}/{name}",
                    name_to_assign_to_channel=name,
                    terminal_config=daq.TerminalConfiguration[config.terminal],
                    min_val=config.low,
                    max_val=config.high,
                )
            task.timing.cfg_samp_clk_timing(
                self.rate, source=clock_source, sample_mode=mode, samps_per_chan=samples
            )
            self._configure_buffer(task, samples)
            task.control(daq.TaskMode.TASK_VERIFY)  # the driver coerces the rate here
            if not external_clock:
                self.rate = float(task.timing.samp_clk_rate)
            # the counters count on the analog task's clock, even when an external clock
            # drives it: they then see exactly its edges, from its start on
            self.clock_task = task
            clock_source = f"/{dev}/ai/SampleClock"
            self.ai_reader = AnalogMultiChannelReader(task.in_stream)
            self.ai_columns = [s.channels.index(name) for name in ai_names]
        elif counter_names and not external_clock:
            clock_counter = free_counters.pop()  # the last counter, PFI lines take the first
            task = self.clock_task = self._new_task(f"{owner}_clock")
            channel = task.co_channels.add_co_pulse_chan_freq(
                f"{dev}/{clock_counter}", freq=self.rate, duty_cycle=0.5
            )
            task.timing.cfg_implicit_timing(sample_mode=mode, samps_per_chan=samples)
            task.control(daq.TaskMode.TASK_VERIFY)
            self.rate = float(channel.co_pulse_freq)
            clock_source = f"/{dev}/{clock_counter.capitalize()}InternalOutput"
        for name in counter_names:
            counter = free_counters.pop(0)
            task = self._new_task(f"{owner}_{name}")
            channel = task.ci_channels.add_ci_count_edges_chan(
                f"{dev}/{counter}",
                edge=daq.Edge.RISING,
                initial_count=0,
                count_direction=daq.CountDirection.COUNT_UP,
            )
            channel.ci_count_edges_term = f"/{dev}/{name}"
            task.timing.cfg_samp_clk_timing(
                self.rate, source=clock_source, sample_mode=mode, samps_per_chan=samples
            )
            self._configure_buffer(task, samples)
            task.control(daq.TaskMode.TASK_VERIFY)
            self.counters.append((s.channels.index(name), task, CounterReader(task.in_stream)))

    @staticmethod
    def _configure_buffer(task, samples: int) -> None:
        task.in_stream.input_buf_size = samples
        task.in_stream.overwrite = daq.OverwriteMode.DO_NOT_OVERWRITE_UNREAD_SAMPLES

    # ----------------------------------------------------------------------- run, close
    def _new_run(self) -> None:
        # the first clock edge only latches each counter's starting count: it is read, used as
        # the reference of the first period and dropped, from every task, so all stay aligned
        self.to_skip = 1
        self.delivered = 0
        for last in self._last_counts:
            last[0] = 0

    def start(self) -> None:
        """Start the clocked tasks first and the clock last, so every task sees every edge."""
        self._new_run()
        clocked = [task for task in self._all if task is not self.clock_task]
        for task in clocked + ([self.clock_task] if self.clock_task is not None else []):
            task.start()
        self.running = True

    def stop(self) -> None:
        """Stop every task; raises the first error after trying all of them."""
        self.running = False
        self._for_all(lambda task: task.stop())

    def close(self) -> None:
        """Stop and close every task this object created; raises the first error at the end."""
        self.running = False
        tasks, self._all = self._all, []
        first_error = None
        for task in tasks:
            for action in (task.stop, task.close):
                try:
                    action()
                except Exception as exc:  # keep closing the others
                    first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def _for_all(self, action) -> None:
        first_error = None
        for task in self._all:
            try:
                action(task)
            except Exception as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    # ----------------------------------------------------------------------------- read
    @property
    def remaining(self) -> int | None:
        """FINITE: samples per channel still to deliver; CONTINUOUS: None."""
        if self.settings.mode != StreamingMode.FINITE:
            return None
        return self.settings.buffer_size - self.delivered

    def available(self) -> int:
        """Samples every task holds, so a read of this many keeps all tasks aligned."""
        if not self.running:
            return 0
        held = min(task.in_stream.avail_samp_per_chan for task in self._all_inputs())
        ready = max(0, held - self.to_skip)
        remaining = self.remaining
        return ready if remaining is None else min(ready, remaining)

    def _all_inputs(self):
        if self.ai_task is not None:
            yield self.ai_task
        for _, task, _ in self.counters:
            yield task

    def read_into(self, out: np.ndarray) -> None:
        """Read ``len(out)`` samples (known to be available) into ``out[samples, channels]``."""
        done, total = 0, len(out)
        while done < total:
            skip = self.to_skip
            count = min(self._chunk - skip, total - done)
            with_skipped = count + skip
            rows = out[done : done + count]
            if self.ai_reader is not None:
                block = self._ai_scratch[: len(self.ai_columns) * with_skipped]
                block = block.reshape(len(self.ai_columns), with_skipped)
                self.ai_reader.read_many_sample(block, with_skipped, timeout=self.timeout)
                rows[:, self.ai_columns] = block[:, skip:].T
            for (column, _, reader), last in zip(self.counters, self._last_counts, strict=True):
                raw = self._counter_scratch[:with_skipped]
                reader.read_many_sample_uint32(raw, with_skipped, timeout=self.timeout)
                per_period = self._diff_scratch[:with_skipped]
                # uint32 differences: correct across the counter's wrap-around at 2**32
                np.subtract(raw[:1], last, out=per_period[:1])
                np.subtract(raw[1:], raw[:-1], out=per_period[1:])
                last[0] = raw[-1]
                np.multiply(per_period[skip:], self.rate, out=rows[:, column])
            self.to_skip = 0
            done += count
        self.delivered += total


class NIXSeriesInStreamer(DataInStreamInterface):
    """Streams PFI photon counts and analog inputs of an NI X-series card; see the module
    docstring for its example config."""

    _device_name = ConfigOption("device_name", default="Dev1")
    _digital_sources = ConfigOption("digital_sources", default=[])
    _analog_sources = ConfigOption("analog_sources", default=[])
    _external_sample_clock_source = ConfigOption("external_sample_clock_source", default=None)
    _external_sample_clock_frequency = ConfigOption("external_sample_clock_frequency", default=None)
    _adc_voltage_range = ConfigOption("adc_voltage_range", default=[-10, 10])
    _analog_channel_settings = ConfigOption("analog_channel_settings", default={})
    _max_channel_samples_buffer = ConfigOption("max_channel_samples_buffer", default=2**25)
    _read_write_timeout = ConfigOption("read_write_timeout", default=10)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._device: _Device | None = None
        self._digital: tuple[str, ...] = ()
        self._analog: dict[str, _AnalogInput] = {}
        self._external_clock: tuple[str, float] | None = None
        self._constraints: DataInStreamConstraints | None = None
        self._settings: _Settings | None = None
        self._tasks: _Tasks | None = None
        self._newest: np.ndarray | None = None
        self._timeout = 10.0
        self._lock = threading.Lock()  # reads against start, stop, configure and close
        self._stopped = threading.Event()  # wakes blocking reads when the stream stops

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        timeout, buffer_limit = self._checked_limits()
        self.publish_address  # noqa: B018 (checks the option now, not when a host joins)
        device = _read_device(self._checked_device_name())
        self._digital = self._checked_digital(device)
        self._analog = self._checked_analog(device)
        self._external_clock = self._checked_external_clock(device)
        if len(self._digital) > len(device.counters) - (0 if self._analog else 1):
            raise _options_error(
                "digital_sources",
                self._digital_sources,
                f"{device.name} has {len(device.counters)} counters {list(device.counters)}; "
                "each PFI line needs one, and a clock needs one more without analog sources",
            )
        self._device = device
        self._timeout = timeout
        self._constraints = self._make_constraints(buffer_limit)
        channels = list(self._constraints.channel_units)
        self._stopped.set()
        try:  # build the tasks once: the driver checks everything now, not at the first start
            self.configure(
                channels,
                StreamingMode.CONTINUOUS,
                self._constraints.channel_buffer_size.default,
                self._constraints.sample_rate.default,
            )
        except Exception:
            self._close_tasks()
            raise

    def on_deactivate(self) -> None:
        with self._lock:
            self._stopped.set()
            self._close_tasks()

    # --------------------------------------------------------------------------- settings
    @property
    def constraints(self) -> DataInStreamConstraints:
        return self._constraints

    @property
    def available_samples(self) -> int:
        with self._lock:
            return self._available()

    @property
    def sample_rate(self) -> float:
        """The sample rate the driver set (or the external clock's configured frequency)."""
        tasks = self._tasks
        return tasks.rate if tasks is not None else self._settings.rate

    @property
    def channel_buffer_size(self) -> int:
        return self._settings.buffer_size

    @property
    def streaming_mode(self) -> StreamingMode:
        return self._settings.mode

    @property
    def active_channels(self) -> list[str]:
        return list(self._settings.channels)

    @property
    def device_name(self) -> str:
        return self._device.name

    def configure(
        self,
        active_channels: Iterable[str],
        streaming_mode: StreamingMode | int,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Check the settings against the card, then build its tasks (the driver may coerce
        the rate: :attr:`sample_rate` tells what it set). Raises ``ValueError`` with the reason,
        ``RuntimeError`` while streaming; a refused change leaves the previous settings."""
        channels = as_channel_names(active_channels)
        valid = list(self._constraints.channel_units)
        unknown = [ch for ch in channels if ch not in valid]
        if not channels or unknown or len(set(channels)) != len(channels):
            raise ValueError(
                f"active_channels {list(channels)} must name each of {valid} at most once "
                f"(at least one); unknown: {unknown}"
            )
        mode = StreamingMode.coerce(streaming_mode, "streaming_mode")
        if mode not in self._constraints.streaming_modes:
            raise ValueError(f"streaming_mode {mode.name} is not supported")
        size = self._constraints.channel_buffer_size
        if isinstance(channel_buffer_size, bool) or not isinstance(
            channel_buffer_size, (int, np.integer)
        ):
            raise TypeError(f"channel_buffer_size must be an integer, got {channel_buffer_size!r}")
        if not size.bounds[0] <= channel_buffer_size <= size.bounds[1]:
            raise ValueError(
                f"channel_buffer_size={channel_buffer_size} is outside {size.bounds[0]} to "
                f"{size.bounds[1]} samples (max_channel_samples_buffer)"
            )
        analog_inputs = sum(ch in self._analog for ch in channels)
        counters = sum(ch in self._digital for ch in channels)
        if not analog_inputs and self._external_clock is None:
            counters += 1  # the clock
        if counters > len(self._device.counters):
            raise ValueError(
                f"{list(channels)} need {counters} counters (one per PFI line, one more for the "
                f"clock without analog inputs); {self._device.name} has "
                f"{list(self._device.counters)}"
            )
        rate = self._checked_rate(sample_rate, analog_inputs)
        settings = _Settings(channels, mode, int(channel_buffer_size), rate)
        with self._lock:
            if self.module_state() == "locked":
                raise RuntimeError(
                    f"cannot configure {self.module_name} while it streams; stop it first"
                )
            self._close_tasks()
            self._tasks = self._build_tasks(settings)
            self._settings = settings

    # ----------------------------------------------------------------------- acquisition
    def start_stream(self) -> None:
        """Start acquiring (harmless while streaming); every task is closed if starting fails."""
        with self._lock:
            if self.module_state() == "locked":
                return
            try:
                if self._tasks is None:  # closed by an earlier failure: build afresh
                    self._tasks = self._build_tasks(self._settings)
                self._tasks.start()
            except Exception as exc:
                self._close_tasks()
                raise self._start_error(exc) from exc
            self._newest = None
            self._stopped.clear()
            self._show_streaming(True)

    def stop_stream(self) -> None:
        """Stop acquiring; the card's unread samples are discarded."""
        with self._lock:
            self._stopped.set()
            try:
                if self._tasks is not None and self._tasks.running:
                    self._tasks.stop()
            except Exception:
                self._close_tasks()  # a task that cannot stop is closed, and rebuilt at start
                raise
            finally:
                self._show_streaming(False)

    def read_data_into_buffer(
        self,
        data_buffer: np.ndarray,
        samples_per_channel: int,
        timestamp_buffer: np.ndarray | None = None,
        timeout: float | None = None,
    ) -> None:
        """Wait until ``samples_per_channel`` samples arrived, then read them all at once.

        ``timeout`` (s) defaults to the option ``read_write_timeout``. Raises
        :class:`StreamTimeoutError` (nothing consumed), :class:`StreamStoppedError` when the
        stream stops or a FINITE acquisition ends before that many samples arrived, and
        :class:`StreamFaultError` when the card failed (then the stream has stopped).
        """
        out = self._checked_buffer(data_buffer, timestamp_buffer)
        count = check_count(samples_per_channel, len(out), "samples_per_channel", "what fits")
        check_count(count, self._settings.buffer_size, "samples_per_channel", "the buffer size")
        timeout = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                tasks = self._tasks
                if tasks is None or not tasks.running:
                    raise StreamStoppedError(f"{self.module_name} is not streaming")
                remaining = tasks.remaining
                if remaining is not None and count > remaining:
                    raise StreamStoppedError(
                        f"the FINITE acquisition has only {remaining} samples left, "
                        f"{count} were asked for"
                    )
                available = self._available()
                if available >= count:
                    self._read(out[:count])
                    return
                missing_s = (count - available) / tasks.rate
            left = deadline - time.monotonic()
            if left <= 0:
                raise StreamTimeoutError(
                    f"{count} samples did not arrive within {timeout} s ({available} available); "
                    "nothing was consumed"
                )
            self._stopped.wait(min(missing_s, _WAIT_STEP_S, left))

    def read_available_data_into_buffer(
        self, data_buffer: np.ndarray, timestamp_buffer: np.ndarray | None = None
    ) -> int:
        """Read what the card holds now, never more than fits; 0 when not streaming."""
        out = self._checked_buffer(data_buffer, timestamp_buffer)
        with self._lock:
            count = min(self._available(), len(out))
            if count:
                self._read(out[:count])
            return count

    def read_single_point(self) -> tuple[np.ndarray, None]:
        """The newest sample this module has read from the card, NaN before the first read.

        DAQmx cannot show a sample without consuming every older one, so this never reads
        the card; with a ``DataInStreamBuffer`` in between reads happen up to
        ``max_poll_rate`` times a second.
        """
        newest = self._newest
        if newest is None:
            return np.full(len(self._settings.channels), np.nan), None
        return newest.copy(), None

    # -------------------------------------------------------------------------- internals
    def _available(self) -> int:
        """Samples ready to read (lock held); a card failure stops the stream and raises."""
        tasks = self._tasks
        if tasks is None:
            return 0
        try:
            return tasks.available()
        except nidaqmx.errors.Error as exc:
            raise self._fail(exc) from exc

    def _read(self, out: np.ndarray) -> None:
        """Read ``len(out)`` available samples (lock held); FINITE ends after the last one."""
        tasks = self._tasks
        try:
            tasks.read_into(out)
        except nidaqmx.errors.Error as exc:
            raise self._fail(exc) from exc
        self._newest = out[-1].copy()
        if tasks.remaining == 0:  # FINITE acquisition delivered: the stream is over
            self._stopped.set()
            try:
                tasks.stop()
            except nidaqmx.errors.Error as exc:
                raise self._fail(exc) from exc
            finally:
                self._show_streaming(False)

    def _fail(self, exc: BaseException) -> StreamFaultError:
        """The card failed while streaming: close every task, unlock, describe what happened."""
        self._stopped.set()
        try:
            self._close_tasks()
        except Exception as close_exc:  # the first failure is the one to report
            self.log.warning("closing the NI tasks after a failure failed too: %s", close_exc)
        self._show_streaming(False)
        code = getattr(exc, "error_code", None)
        device = self._device.name
        if code == OVERFLOW:
            message = (
                f"the buffer of NI card {device} ({self._settings.buffer_size} samples per "
                "channel) overflowed: the stream was not read fast enough, so the acquisition "
                "stopped and samples were lost; start the stream again (a larger "
                "channel_buffer_size or more frequent reads prevent this)"
            )
        elif code == READ_TIMEOUT:
            message = (
                f"a read of NI card {device} timed out after {self._timeout} s although the "
                "samples were reported available; the stream was stopped"
            )
        else:
            message = f"NI card {device} failed while streaming: {_daq_reason(exc)}"
        return StreamFaultError(f"{message} (DAQmx error {code})" if code else message)

    def _start_error(self, exc: BaseException) -> Exception:
        code = getattr(exc, "error_code", None)
        if code == RESOURCE_RESERVED:
            return RuntimeError(
                f"NI card {self._device.name} is in use by another task or program (a counter "
                "or the analog inputs are reserved): close it there and start again "
                f"(DAQmx error {code})"
            )
        if isinstance(exc, nidaqmx.errors.Error):
            return RuntimeError(f"could not start NI card {self._device.name}: {_daq_reason(exc)}")
        return exc

    def _build_tasks(self, settings: _Settings) -> _Tasks:
        try:
            return _Tasks(
                self.module_name,
                self._device,
                settings,
                self._digital,
                self._analog,
                self._external_clock,
                self._timeout,
            )
        except nidaqmx.errors.Error as exc:
            raise ValueError(
                f"NI card {self._device.name} refused the settings {list(settings.channels)}, "
                f"{settings.mode.name}, {settings.buffer_size} samples, {settings.rate} Hz: "
                f"{_daq_reason(exc)}"
            ) from exc

    def _close_tasks(self) -> None:
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            tasks.close()

    def _checked_buffer(self, data_buffer: np.ndarray, timestamp_buffer: object) -> np.ndarray:
        """The caller's buffer as ``[samples, channels]``; this stream has no timestamps."""
        data, _, _ = check_read_buffers(
            data_buffer, timestamp_buffer, len(self._settings.channels), np.dtype(np.float64), False
        )
        return data

    def _checked_rate(self, rate: object, analog_inputs: int) -> float:
        if not _is_number(rate):
            raise TypeError(f"sample_rate must be a number, got {rate!r}")
        if self._external_clock is not None:
            frequency = self._external_clock[1]
            if not np.isclose(rate, frequency, rtol=1e-9, atol=0):
                raise ValueError(
                    f"sample_rate={rate} Hz: the external sample clock runs at {frequency} Hz "
                    "(option external_sample_clock_frequency)"
                )
            return float(frequency)
        low = self._device.min_rate(analog_inputs)
        high = self._device.max_rate(analog_inputs)
        if not low <= rate <= high:
            raise ValueError(
                f"sample_rate={rate} Hz is outside {low} to {high} Hz, the range of "
                f"{self._device.name} with {analog_inputs} analog inputs"
            )
        return float(rate)

    def _make_constraints(self, buffer_limit: int) -> DataInStreamConstraints:
        units = {name: "c/s" for name in self._digital}
        units.update({name: "V" for name in self._analog})
        if self._external_clock is not None:
            frequency = self._external_clock[1]
            rate = ScalarConstraint(default=frequency, bounds=(frequency, frequency))
        else:
            analog = len(self._analog) > 0
            low = self._device.min_rate(int(analog))
            high = self._device.max_rate(int(analog))
            rate = ScalarConstraint(default=min(max(50.0, low), high), bounds=(low, high))
        return DataInStreamConstraints(
            channel_units=units,
            sample_timing=SampleTiming.CONSTANT,
            streaming_modes=[StreamingMode.CONTINUOUS, StreamingMode.FINITE],
            data_type=np.float64,
            channel_buffer_size=ScalarConstraint(
                default=min(1024**2, buffer_limit),
                bounds=(2, buffer_limit),
                increment=1,
                enforce_int=True,
            ),
            sample_rate=rate,
        )

    # ------------------------------------------------------------------- option checks
    def _checked_device_name(self) -> str:
        name = self._device_name
        if not isinstance(name, str) or not name.strip() or "/" in name.strip("/"):
            raise _options_error("device_name", name, "use the card's name in NI MAX, e.g. 'Dev1'")
        return name.strip("/")

    def _checked_limits(self) -> tuple[float, int]:
        timeout = self._read_write_timeout
        if not _is_number(timeout) or not timeout > 0:
            raise _options_error("read_write_timeout", timeout, "use a number of seconds above 0")
        limit = self._max_channel_samples_buffer
        if isinstance(limit, bool) or not isinstance(limit, int) or not 2 <= limit <= 2**31:
            raise _options_error(
                "max_channel_samples_buffer", limit, "use an integer number of samples, 2 to 2**31"
            )
        return float(timeout), limit

    def _checked_digital(self, device: _Device) -> tuple[str, ...]:
        """PFI lines (any spelling: 'pfi8', '/Dev1/PFI8'), or any other terminal of the card
        (such as '100kHzTimebase', counted without wiring)."""
        sources = self._digital_sources
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise _options_error(
                "digital_sources", sources, "use a list of PFI lines, e.g. ['PFI8']"
            )
        names = tuple(
            _short_name(s).upper()
            if re.fullmatch(r"pfi\d+", _short_name(s).lower())
            else _short_name(s)
            for s in sources
        )
        unknown = [s for s, n in zip(sources, names, strict=True) if n not in device.terminals]
        if unknown or len(set(names)) != len(names):
            lines = [t for t in device.terminals if re.fullmatch(r"PFI\d+", t)]
            raise _options_error(
                "digital_sources",
                sources,
                f"name each PFI line (or other terminal) of {device.name} at most once; "
                f"unknown: {unknown}; PFI lines: {lines}",
            )
        return names

    def _checked_analog(self, device: _Device) -> dict[str, _AnalogInput]:
        sources = self._analog_sources
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise _options_error("analog_sources", sources, "use a list of inputs, e.g. ['ai0']")
        names = tuple(_short_name(s).lower() for s in sources)
        unknown = [s for s, n in zip(sources, names, strict=True) if n not in device.analog_inputs]
        if unknown or len(set(names)) != len(names):
            raise _options_error(
                "analog_sources",
                sources,
                f"name each analog input of {device.name} at most once; unknown: {unknown}; "
                f"valid: {list(device.analog_inputs)}",
            )
        if not names and not self._digital_sources:
            raise _options_error(
                "analog_sources", sources, "configure at least one analog or digital source"
            )
        default_range = self._checked_range("adc_voltage_range", self._adc_voltage_range, device)
        settings = self._analog_channel_settings
        if not isinstance(settings, dict):
            raise _options_error(
                "analog_channel_settings", settings, "use a mapping such as {ai0: {range: [-5, 5]}}"
            )
        per_channel = {_short_name(str(k)).lower(): v for k, v in settings.items()}
        stray = [k for k in per_channel if k not in names]
        if stray:
            raise _options_error(
                "analog_channel_settings", settings, f"{stray} are not in analog_sources {names}"
            )
        inputs = {}
        for name in names:
            entry = per_channel.get(name) or {}
            key = f"analog_channel_settings.{name}"
            if not isinstance(entry, dict) or set(entry) - {"range", "terminal"}:
                raise _options_error(key, entry, "use keys 'range' ([low, high] in V), 'terminal'")
            low, high = (
                self._checked_range(f"{key}.range", entry["range"], device)
                if "range" in entry
                else default_range
            )
            terminal = entry.get("terminal", "DEFAULT")
            if not isinstance(terminal, str) or terminal.upper() not in TERMINALS:
                raise _options_error(f"{key}.terminal", terminal, f"valid are {list(TERMINALS)}")
            inputs[name] = _AnalogInput(low, high, terminal.upper())
        return inputs

    @staticmethod
    def _checked_range(key: str, value: object, device: _Device) -> tuple[float, float]:
        ranges = device.ai_voltage_ranges
        lowest = min((low for low, _ in ranges), default=-np.inf)
        highest = max((high for _, high in ranges), default=np.inf)
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(_is_number(v) for v in value)
            or not lowest <= value[0] < value[1] <= highest
        ):
            raise _options_error(
                key, value, f"use [low, high] in V within {device.name}'s {lowest} to {highest} V"
            )
        return float(value[0]), float(value[1])

    def _checked_external_clock(self, device: _Device) -> tuple[str, float] | None:
        source = self._external_sample_clock_source
        frequency = self._external_sample_clock_frequency
        if source is None:
            if frequency is not None:
                raise _options_error(
                    "external_sample_clock_frequency",
                    frequency,
                    "only meaningful with external_sample_clock_source",
                )
            return None
        terminal = _short_name(source) if isinstance(source, str) else None
        pfi = [t for t in device.terminals if re.fullmatch(r"PFI\d+", t)]
        if terminal is not None and terminal.upper() in pfi:
            terminal = terminal.upper()
        if terminal not in device.terminals:
            raise _options_error(
                "external_sample_clock_source", source, f"use a terminal of {device.name}: {pfi}"
            )
        if terminal in self._digital:
            raise _options_error(
                "external_sample_clock_source", source, "it is also one of the digital_sources"
            )
        if not _is_number(frequency) or not frequency > 0:
            raise _options_error(
                "external_sample_clock_frequency",
                frequency,
                "give the external clock's frequency in Hz (above 0)",
            )
        return terminal, float(frequency)
