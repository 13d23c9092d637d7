"""The DAQmx side of the NI streamer: what a card offers, and the tasks of one configuration.

Pure nidaqmx, public API only: :func:`read_device` asks the driver what a card offers
(:class:`Device`); :class:`Tasks` builds, starts, reads and closes the tasks that stream one
configuration (an analog task, a counter task per counted terminal, a digital-input task for
clocked digital lines and, without analog inputs, a counter-output task that makes the clock or
the digital-input task on an external one), with every sample of every task aligned. The qudi
module around it is ``ni_daq.NIXSeriesInStreamer``.

Digital lines are read one channel per line (``LineGrouping.CHAN_PER_LINE``) with nidaqmx's
``DigitalMultiChannelReader.read_many_sample_port_uint32`` (DAQmxReadDigitalU32; nidaqmx has no
many-sample line reader, ni/nidaqmx-python#584): DAQmx puts a line's state at its bit in the
port word (NI-DAQmx "Digital Data (Integer Format)"); it is delivered as 0 or 1, whatever bit.

Counting channels are delivered as rates: the counts of each sample clock period times the rate
the driver set, in counts per second. With ``raw`` the analog inputs are read unscaled (int16
codes, DAQmx's unscaled reader) and :attr:`Tasks.scaling` holds each input's polynomial to volts
as the driver reports it (``ai_dev_scaling_coeff``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from qudi.interface.instream_interface import StreamingMode, StreamRequest
from qudi.util.instream.arrays import option_error

try:  # the module must import without nidaqmx, so activation can say what is missing
    import nidaqmx
    import nidaqmx.constants as daq
    import nidaqmx.errors
    import nidaqmx.system
    from nidaqmx.stream_readers import (
        AnalogMultiChannelReader,
        AnalogUnscaledReader,
        CounterReader,
        DigitalMultiChannelReader,
    )
except ImportError:  # pragma: no cover - nidaqmx is a dependency of this package
    nidaqmx = None

__all__ = [
    "COUNTER_RATE_LIMIT",
    "DEVICE_GONE",
    "DRIVER_HELP",
    "OVERFLOW",
    "READ_TIMEOUT",
    "RESOURCE_RESERVED",
    "AnalogInput",
    "Device",
    "Tasks",
    "daq_reason",
    "device_gone",
    "read_device",
    "short_name",
    "supported_terminals",
]

DRIVER_HELP = (
    "Install the NI-DAQmx driver from https://www.ni.com/en/support/downloads/drivers/download."
    "ni-daq-mx.html (Linux: the ni-daqmx package of NI's Linux device drivers), or run "
    "'python -m nidaqmx installdriver' with this Python, then restart qudi."
)
OVERFLOW = -200279  # the acquisition stopped: unread samples would have been overwritten
READ_TIMEOUT = -200284
RESOURCE_RESERVED = -50103
DEVICE_GONE = (-201003, -50405)  # DEV_CANNOT_BE_ACCESSED, PAL_TRANSFER_ABORTED (USB unplug)
CHUNK_SAMPLES = 65_536  # samples per channel moved per driver read (bounds the scratch memory)
# Counters alone: the fastest clock the streamer offers. The card could make 25 MHz, but every
# counter moves 4 bytes per sample over the bus; this cap is our choice, not a measured limit
# (an overflow still stops the stream with a message).
COUNTER_RATE_LIMIT = 10e6
# timebase terminals a counter output can divide down, fastest first
TIMEBASE_TERMINALS = (("100MHzTimebase", 100e6), ("20MHzTimebase", 20e6))


def short_name(name: str) -> str:
    """'PFI8', '/Dev1/PFI8' and 'Dev1/PFI8' all name 'PFI8'."""
    return name.strip().strip("/").rsplit("/", 1)[-1]


def device_gone(device: str, code: int | None) -> str:
    """What to say when card ``device`` no longer answers (DAQmx error ``code``)."""
    return (
        f"NI card {device} is gone (unplugged, switched off or reset): reconnect it, then start "
        f"the stream again (DAQmx error {code})"
    )


def daq_reason(exc: BaseException) -> str:
    """The first line of a DAQmx message with its error code, for messages of our own."""
    code = getattr(exc, "error_code", None)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{first_line} (DAQmx error {code})" if code is not None else first_line


@dataclass(frozen=True)
class AnalogInput:
    """How one analog input is measured."""

    low: float
    high: float
    terminal: str


@dataclass(frozen=True)
class Device:
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
    counter_timebase: float  # Hz, fastest counter input timebase
    counter_bits: int
    clock_timebase: tuple[str, float] = ("100MHzTimebase", 100e6)  # counter output's, for clocks
    di_lines: tuple[str, ...] = ()  # 'port0/line0', ... every digital input line
    di_clocked: tuple[str, ...] = ()  # the lines a sample clock can time (port0 on X-series)

    def max_rate(self, analog_inputs: int) -> float:
        """Fastest sample clock with this many analog inputs (per channel, Hz)."""
        if analog_inputs == 0:  # a counter output: 2 ticks high and 2 low at the least
            return min(self.clock_timebase[1] / 4, COUNTER_RATE_LIMIT)
        if analog_inputs == 1:
            return self.ai_max_single_rate
        if self.ai_simultaneous:  # every input has its own converter
            return min(self.ai_max_single_rate, self.ai_max_multi_rate)
        return min(self.ai_max_single_rate, self.ai_max_multi_rate / analog_inputs)

    def min_rate(self, analog_inputs: int) -> float:
        """Slowest sample clock (Hz): the analog timing engine's, or a full counter period."""
        if analog_inputs:
            return self.ai_min_rate
        return self.clock_timebase[1] / 2**self.counter_bits

    def clock_ticks(self, rate: float) -> tuple[int, int]:
        """Timebase ticks (high, low) of the counter clock nearest ``rate``: exact timing,
        with nothing to read back from the driver."""
        total = max(4, round(self.clock_timebase[1] / rate))
        return total // 2, total - total // 2


def read_device(name: str) -> Device:
    """Ask the driver what the card ``name`` offers.

    Parameters
    ----------
    name : str
        The card's name in NI MAX, e.g. ``'Dev1'``.

    Returns
    -------
    Device
        What the card offers.

    Raises
    ------
    RuntimeError
        Without nidaqmx or without the NI-DAQmx driver, saying how to install them, or if the
        card no longer answers (unplugged).
    ValueError
        If there is no such card (naming option ``device_name`` and the cards present).
    """
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
        if getattr(exc, "error_code", None) in DEVICE_GONE:
            raise RuntimeError(device_gone(name, exc.error_code)) from exc
        present = device_names()
        raise option_error(
            "device_name", name, f"no such NI device ({daq_reason(exc)}); present: {present}"
        ) from exc
    ranges = list(device.ai_voltage_rngs)
    terminals = tuple(t.strip("/").split("/", 1)[-1] for t in device.terminals)
    co_timebase = float(device.co_max_timebase)
    timebases = [(t, f) for t, f in TIMEBASE_TERMINALS if t in terminals and f <= co_timebase]
    return Device(
        name=name,
        product_type=product_type,
        analog_inputs=tuple(short_name(c) for c in device.ai_physical_chans.channel_names),
        counters=tuple(short_name(c) for c in device.ci_physical_chans.channel_names),
        terminals=terminals,
        ai_max_single_rate=float(device.ai_max_single_chan_rate),
        ai_max_multi_rate=float(device.ai_max_multi_chan_rate),
        ai_min_rate=float(device.ai_min_rate),
        ai_simultaneous=bool(device.ai_simultaneous_sampling_supported),
        ai_voltage_ranges=tuple(zip(ranges[::2], ranges[1::2], strict=True)),
        counter_timebase=float(device.ci_max_timebase),
        counter_bits=int(device.ci_max_size),
        clock_timebase=timebases[0] if timebases else TIMEBASE_TERMINALS[0],
        **_digital_lines(name, device),
    )


def _digital_lines(name: str, device) -> dict[str, tuple[str, ...]]:
    """The card's digital input lines, and those a sample clock can time: each line asked
    (``di_samp_clk_supported``); a driver that cannot tell gets the X-series rule, port0."""
    try:
        lines = tuple(_line_name(c) for c in device.di_lines.channel_names)
    except nidaqmx.errors.Error:  # a card without digital inputs may not answer at all
        lines = ()
    clocked = []
    for line in lines:
        try:
            supported = nidaqmx.system.PhysicalChannel(f"{name}/{line}").di_samp_clk_supported
        except nidaqmx.errors.Error:
            supported = line.startswith("port0/")
        if supported:
            clocked.append(line)
    return {"di_lines": lines, "di_clocked": tuple(clocked)}


def _line_name(physical: str) -> str:
    """'Dev1/port0/line3' -> 'port0/line3'."""
    return "/".join(physical.strip().strip("/").split("/")[-2:])


def supported_terminals(device: str, analog_input: str) -> tuple[str, ...]:
    """The terminal configurations the card supports on one analog input ('RSE', 'DIFF', ...).

    On multiplexed 63xx cards ai8-15 (and ai24-31) are the negative inputs of ai0-7 (ai16-23)
    and cannot be DIFF; simultaneous cards (6366, 6368, ...) are DIFF only.
    """
    channel = nidaqmx.system.PhysicalChannel(f"{device}/{analog_input}")
    return tuple(t.name for t in channel.ai_term_cfgs)


def device_names() -> list[str]:
    """The names of the NI devices present (empty if the driver cannot tell)."""
    try:
        return list(nidaqmx.system.System.local().devices.device_names)
    except nidaqmx.errors.Error:
        return []


class Tasks:
    """The DAQmx tasks of one configuration, built, started, read and closed together.

    One analog task (if analog inputs stream), one counter task per PFI line, one digital-input
    task for the digital lines and, without analog inputs, a counter-output task that makes the
    clock (internal clock); on an external clock the digital-input task (on ``port0/line0`` if
    no line streams) makes the edges the counters latch on. Every task this object created is
    closed by :meth:`close`, also when building fails half-way.

    Parameters
    ----------
    owner : str
        Prefix of the task names (the qudi module's name).
    device : Device
        The card.
    settings : StreamRequest
        The checked configuration: channels, mode, buffer size and requested rate.
    digital : tuple of str
        The terminals counted (``'PFI8'``, ...), by channel name.
    analog : dict of str to AnalogInput
        The analog inputs and how each is measured, by channel name.
    external_clock : tuple of (str, float), optional
        The external sample clock's terminal and frequency (Hz), or None for the internal one.
    timeout : float
        Seconds a driver read may take.
    clock_terminal : str, optional
        The PFI line the counter clock is exported to; None keeps it inside the card (a
        counter output otherwise drives its default pin, PFI12 + N for ctrN on 63xx).
    raw : bool, optional
        Read the analog inputs as int16 codes (only without counters: one dtype per stream).
    lines : tuple of str, optional
        The clocked digital input lines (``'port0/line0'``, ...), by channel name.

    Raises
    ------
    nidaqmx.errors.Error
        If the driver refuses the configuration; every task made so far is closed.
    """

    def __init__(
        self,
        owner: str,
        device: Device,
        settings: StreamRequest,
        digital: tuple[str, ...],
        analog: dict[str, AnalogInput],
        external_clock: tuple[str, float] | None,
        timeout: float,
        clock_terminal: str | None = None,
        raw: bool = False,
        lines: tuple[str, ...] = (),
    ):
        self.device = device
        self.raw = raw
        self.settings = settings
        self.timeout = timeout
        self._all: list[nidaqmx.Task] = []
        self.ai_task = None
        self.ai_reader = None
        self.ai_columns: list[int] = []
        self.counters: list[tuple[int, nidaqmx.Task, CounterReader]] = []
        self.di_task = None  # digital lines, read (None: no line streams)
        self.di_reader = None
        self.di_columns: list[int] = []
        self.clock_task = None  # the task whose start starts the clock (None: external clock)
        self.clock_counter: str | None = None  # the counter that makes the clock, if one does
        self.clock_output: str | None = None  # where the driver says that clock goes ('': nowhere)
        self._clock_terminal = clock_terminal
        self.terminals: dict[str, str] = {}  # analog input -> configuration the driver set
        self.scaling: dict[str, tuple[float, ...]] = {}  # analog input -> code-to-volt polynomial
        self.rate = float(settings.rate)
        self.running = False
        try:
            self._build(owner, digital, analog, external_clock, lines)
        except BaseException:
            self.close()
            raise
        self._last_counts = [np.zeros(1, np.uint32) for _ in self.counters]
        self._new_run()
        chunk = min(CHUNK_SAMPLES, settings.buffer_size + 1)
        self._ai_scratch = np.empty(len(self.ai_columns) * chunk, np.int16 if raw else np.float64)
        self._counter_scratch = np.empty(chunk, np.uint32)
        self._di_scratch = np.empty(len(self.di_columns) * chunk, np.uint32)
        self._diff_scratch = np.empty(chunk, np.uint32)
        self._chunk = chunk

    # --------------------------------------------------------------------------- build
    def _new_task(self, name: str):
        task = nidaqmx.Task(name)
        self._all.append(task)
        return task

    def _build(self, owner, digital, analog, external_clock, lines) -> None:
        dev = self.device.name
        s = self.settings
        finite = s.mode == StreamingMode.FINITE
        mode = daq.AcquisitionType.FINITE if finite else daq.AcquisitionType.CONTINUOUS
        samples = s.buffer_size + 1  # plus the reference edge
        ai_names = [ch for ch in s.channels if ch in analog]
        counter_names = [ch for ch in s.channels if ch in digital]
        line_names = [ch for ch in s.channels if ch in lines]
        free_counters = list(self.device.counters)

        clock_source = f"/{dev}/{external_clock[0]}" if external_clock else ""
        if external_clock:
            self.rate = float(external_clock[1])
        if ai_names:
            self.ai_task = self.clock_task = self._analog_task(
                owner, ai_names, analog, clock_source, mode, samples
            )
            # the counters count on the analog task's clock, even when an external clock
            # drives it: they then see exactly its edges, from its start on
            clock_source = f"/{dev}/ai/SampleClock"
            reader = AnalogUnscaledReader if self.raw else AnalogMultiChannelReader
            self.ai_reader = reader(self.ai_task.in_stream)
            self.ai_columns = [s.channels.index(name) for name in ai_names]
        elif external_clock:  # counters or lines: the digital task makes the edges
            self.clock_task = self._digital_task(owner, line_names, clock_source, mode, samples)
            clock_source = f"/{dev}/di/SampleClock"
            line_names = []  # read from the clock task
        else:
            # the last free counter, PFI lines take the first
            self.clock_counter, task = self._free_counter(
                free_counters[::-1], lambda counter: self._clock_task(owner, counter, mode, samples)
            )
            free_counters.remove(self.clock_counter)
            self.clock_task = task
            clock_source = f"/{dev}/{self.clock_counter.capitalize()}InternalOutput"
        if line_names:
            self._digital_task(owner, line_names, clock_source, mode, samples)
        for name in counter_names:
            counter, task = self._free_counter(
                free_counters,
                lambda counter, name=name: self._counter_task(
                    owner, name, counter, clock_source, mode, samples
                ),
            )
            free_counters.remove(counter)
            self.counters.append((s.channels.index(name), task, CounterReader(task.in_stream)))

    def _analog_task(
        self, owner: str, ai_names: list[str], analog, clock_source: str, mode, samples: int
    ) -> nidaqmx.Task:
        """The analog inputs, on their own sample clock or on ``clock_source``."""
        dev = self.device.name
        task = self._new_task(f"{owner}_ai")
        channels = []
        for name in ai_names:
            config = analog[name]
            channel = task.ai_channels.add_ai_voltage_chan(
                f"{dev}/{name}",
                name_to_assign_to_channel=name,
                terminal_config=daq.TerminalConfiguration[config.terminal],
                min_val=config.low,
                max_val=config.high,
            )
            channels.append(channel)
        task.timing.cfg_samp_clk_timing(
            self.rate, source=clock_source, sample_mode=mode, samps_per_chan=samples
        )
        self._configure_buffer(task, samples)
        task.control(daq.TaskMode.TASK_VERIFY)  # the driver coerces the rate here
        # what DEFAULT became: on 63xx DIFF for ai0-7, ai16-23, RSE for the others
        self.terminals = {n: c.ai_term_cfg.name for n, c in zip(ai_names, channels, strict=True)}
        if self.raw:  # the polynomial of the range in force, per input (calibrated per card)
            self.scaling = {
                n: tuple(float(x) for x in c.ai_dev_scaling_coeff)
                for n, c in zip(ai_names, channels, strict=True)
            }
        if not clock_source:
            self.rate = float(task.timing.samp_clk_rate)
        return task

    def _digital_task(
        self, owner: str, line_names: list[str], clock_source: str, mode, samples: int
    ) -> nidaqmx.Task:
        """The digital lines, one channel each, on ``clock_source``.

        Without analog inputs on an external clock this task is also the clock of the counters
        (started one by one on the external clock, each would take its own first edge): started
        last, it makes the edges they latch on, as the analog task does. With no line to stream
        it takes ``port0/line0``, is never read and may overwrite.
        """
        dev = self.device.name
        task = self._new_task(f"{owner}_di")
        for name in line_names or ["port0/line0"]:
            task.di_channels.add_di_chan(
                f"{dev}/{name}",
                name_to_assign_to_lines=name if line_names else "clock",
                line_grouping=daq.LineGrouping.CHAN_PER_LINE,
            )
        task.timing.cfg_samp_clk_timing(
            self.rate, source=clock_source, sample_mode=mode, samps_per_chan=samples
        )
        if line_names:
            self._configure_buffer(task, samples)
            self.di_task = task
            self.di_reader = DigitalMultiChannelReader(task.in_stream)
            self.di_columns = [self.settings.channels.index(name) for name in line_names]
        else:
            task.in_stream.input_buf_size = samples
            task.in_stream.overwrite = daq.OverwriteMode.OVERWRITE_UNREAD_SAMPLES
        task.control(daq.TaskMode.TASK_VERIFY)
        return task

    def _free_counter(self, candidates: list[str], build) -> tuple[str, nidaqmx.Task]:
        """The first of ``candidates`` nobody holds, with the task ``build(counter)`` made.

        TASK_VERIFY reserves nothing, so a counter another program holds would fail only at
        the start (-50103): each task is reserved once here, and released again, to find out.
        """
        for counter in candidates:
            task = build(counter)
            try:
                task.control(daq.TaskMode.TASK_RESERVE)
            except nidaqmx.errors.DaqError as exc:
                if exc.error_code != RESOURCE_RESERVED or counter == candidates[-1]:
                    raise
                self._all.remove(task)
                task.close()
                continue
            task.control(daq.TaskMode.TASK_UNRESERVE)
            return counter, task
        raise AssertionError("no counter candidates")  # check_counters rules this out

    def _clock_task(self, owner: str, counter: str, mode, samples: int) -> nidaqmx.Task:
        """The pulse train that clocks counters alone, made by ``counter``."""
        dev = self.device.name
        task = self._new_task(f"{owner}_clock")
        # in timebase ticks: the rate is then exact (NI does not say when co_pulse_freq
        # would show the coerced frequency)
        timebase, frequency = self.device.clock_timebase
        high, low = self.device.clock_ticks(self.rate)
        channel = task.co_channels.add_co_pulse_chan_ticks(
            f"{dev}/{counter}", f"/{dev}/{timebase}", high_ticks=high, low_ticks=low
        )
        # without this the pulse train drives the counter's default pin (PFI15 for ctr3
        # on 63xx), fighting whatever is wired there
        pin = self._clock_terminal
        channel.co_pulse_term = f"/{dev}/{pin}" if pin else ""
        task.timing.cfg_implicit_timing(sample_mode=mode, samps_per_chan=samples)
        task.control(daq.TaskMode.TASK_VERIFY)
        self.rate = frequency / (high + low)
        self.clock_output = channel.co_pulse_term
        return task

    def _counter_task(
        self, owner: str, name: str, counter: str, clock_source: str, mode, samples: int
    ) -> nidaqmx.Task:
        """A counter that counts terminal ``name``, latched on ``clock_source``."""
        dev = self.device.name
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
        return task

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

    def _all_inputs(self) -> Iterator[nidaqmx.Task]:
        if self.ai_task is not None:
            yield self.ai_task
        if self.di_task is not None:
            yield self.di_task
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
                if self.raw:
                    self.ai_reader.read_int16(block, with_skipped, timeout=self.timeout)
                else:
                    self.ai_reader.read_many_sample(block, with_skipped, timeout=self.timeout)
                rows[:, self.ai_columns] = block[:, skip:].T
            if self.di_reader is not None:
                block = self._di_scratch[: len(self.di_columns) * with_skipped]
                block = block.reshape(len(self.di_columns), with_skipped)
                self.di_reader.read_many_sample_port_uint32(
                    block, with_skipped, timeout=self.timeout
                )
                rows[:, self.di_columns] = block[:, skip:].T != 0  # a line: 0 or 1
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
