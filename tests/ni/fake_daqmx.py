"""A simulated NI X-series card behind nidaqmx's interpreter seam, driven by a virtual clock.

nidaqmx routes every driver call through an interpreter object that
``nidaqmx.utils._select_interpreter`` returns. :class:`FakeDaqmx` builds one from
``create_autospec(BaseInterpreter, instance=True)``: calls are checked against the real
signatures, the calls this fake implements behave like a card, and every other call fails the
test. So nidaqmx's public layer (Task, channels, Timing, InStream, stream readers, errors) runs
for real on top of it.

The card: clocks tick only when the test calls :meth:`FakeDaqmx.advance`. Every sample clock
edge ``e`` (counted from the clock's start, first edge at the start) gives analog input ``aiN``
the value ``e + N / 8`` volts, and PFI line ``L`` ``e + L`` photons in the period that ends at
that edge — ramps, so a test can prove samples are aligned, complete and not repeated. A counter
counting a timebase terminal (``100kHzTimebase``) counts its ticks: ``100 kHz / rate`` per period.

As on a 63xx, a counter output drives its default pin (``ctrN`` -> ``PFI{12+N}``) unless its
``co_pulse_term`` is set (``""``: internal only); a running task that counts or clocks on a pin
a running counter output drives fails at its start (-89137), and :meth:`FakeDaqmx.driven_pins`
says which pins are driven.

:meth:`FakeDaqmx.unplug` pulls the USB cable: reads of a running task fail with -50405, every
other call on the card (channels, start, stop, clear, device queries) with -201003; a clear
still releases the task, as nidaqmx's ``Task.close`` does. :meth:`FakeDaqmx.plug_in` undoes it.

Unscaled reads (``read_binary_i16``, nidaqmx's ``AnalogUnscaledReader``): each analog input
reports a calibration polynomial of 4 terms (``ai_dev_scaling_coeff``), different per input and
per range as on a real card: a gain of about ``1.04 * range / 65536`` V per code, an offset of
a few mV, tiny 2nd and 3rd order terms. An input's code is the int16 whose polynomial value is
nearest its voltage (clipped to -32768..32767 as a saturated ADC), so the scaled read and the
scaled codes agree to within a code. The ramps run far beyond any range: a test of raw reads
gives the card an ``analog_signal`` within it.

Digital input lines as on a 6363: port0 has 32 lines, port1 and port2 8 each; only port0's
lines can be sample-clocked (``di_samp_clk_supported``), and a task that clocks another port's
line fails at verify (-200077). Line ``L`` reads ``(e >> (L % 16)) & 1`` at clock edge ``e``
(a binary counter: line0 toggles at every edge), or ``card.digital_signal(edges, L)``. A read of
a line channel with ``read_digital_u32`` gives its state at the line's bit in the port
(``1 << L``), as NI's "Digital Data (Integer Format)" describes (the full integer with unused
bits zeroed); ``card.line_value_as_bit = False`` gives 1 instead, so a test shows the streamer
does not depend on the bit position.

Terminal configurations as on a 63xx: multiplexed cards take RSE, NRSE and DIFF on ai0-7 and
ai16-23 and only RSE, NRSE on ai8-15 and ai24-31 (DEFAULT means DIFF where DIFF exists, else
RSE); simultaneous cards (6366, 6368) are DIFF only. Another configuration fails (-200077).
"""

from __future__ import annotations

import inspect
import math
import threading
import warnings
from dataclasses import dataclass, field
from unittest import mock

import numpy as np
from nidaqmx._base_interpreter import BaseInterpreter
from nidaqmx.constants import (
    AcquisitionType,
    FillMode,
    OverwriteMode,
    TaskMode,
    TerminalConfiguration,
)
from nidaqmx.errors import DaqError, DaqReadError, DaqWarning

OVERFLOW = -200279
TIMEOUT = -200284
RESERVED = -50103
DUPLICATE_TASK = -200089
INVALID_TASK = -200088
NOT_SUPPORTED_VALUE = -200077
RATE_WARNING = 200011  # an AI rate above the card's limit: the driver warns and acquires
STOPPED_EARLY = 200010  # a FINITE task stopped before it acquired all its samples
FIFO_OVERFLOW_2, FIFO_OVERFLOW, COUNTER_OVERFLOW = -200361, -200010, -200141
ADC_OVERRUN, TRANSFER_ABORTED, DEVICE_GONE = -200019, -50405, -201003

# attribute ids nidaqmx passes to the interpreter (from nidaqmx's generated property code)
DEVICE_STRINGS = {
    0x631: "product_type",
    0x231E: "ai",
    0x2324: "ci",
    0x2325: "co",
    0x2A40: "terms",
    0x2320: "di",
}
DEVICE_DOUBLES = {
    0x298C: "ai_max_single_rate",
    0x298D: "ai_max_multi_rate",
    0x298E: "ai_min_rate",
    0x29A0: "counter_timebase",
    0x29A2: "counter_timebase",  # co_max_timebase: the same 100 MHz on X-series
}
TASK_NAME, NUM_CHANS, AVAIL, OVERWRITE = 0x1276, 0x217B, 0x1223, 0x1211
INPUT_BUF_SIZE, SAMP_CLK_RATE, COUNT_EDGES_TERM, CO_PULSE_FREQ = 0x186C, 0x1344, 0x18C7, 0x1178
CO_PULSE_TERM = 0x18E1
AI_TERM_CFG, PHYS_TERM_CFGS, AI_DEV_SCALING_COEFF = 0x1097, 0x2342, 0x1930
TERM_BITS = {"RSE": 1, "NRSE": 2, "DIFF": 4, "PSEUDO_DIFF": 8}  # nidaqmx's _TermCfg bitfield
ROUTE_IN_USE = -89137  # a terminal both driven by a counter output and used as an input
SIMULTANEOUS, COUNTER_BITS, AI_RANGES, DEVICE_NAMES = 0x298F, 0x299F, 0x2990, 0x193B
DI_SAMP_CLK_SUPPORTED = 0x29A5  # a physical line's: can a sample clock time it
# terminals a counter may count, or make a pulse train from
TIMEBASES = {"100kHzTimebase": 100e3, "20MHzTimebase": 20e6, "100MHzTimebase": 100e6}


@dataclass
class SimulatedCard:
    """What the fake card offers; the defaults resemble a PCIe-6363."""

    name: str = "Dev1"
    product_type: str = "PCIe-6363"
    analog_inputs: int = 32
    counters: int = 4
    pfi_lines: int = 16
    ai_max_single_rate: float = 2e6
    ai_max_multi_rate: float = 1e6
    ai_min_rate: float = 0.0232831
    simultaneous: bool = False
    counter_timebase: float = 100e6
    counter_bits: int = 32
    ai_ranges: tuple[float, ...] = (-10.0, 10.0, -5.0, 5.0, -2.0, 2.0, -1.0, 1.0, -0.2, 0.2)
    external_clocks: dict[str, float] = field(default_factory=dict)  # 'PFI11': Hz
    # (edges, input number) -> volts; None: the ramps e + N / 8
    analog_signal: object = None
    di_ports: tuple[int, ...] = (32, 8, 8)  # lines per port
    clocked_ports: tuple[int, ...] = (0,)  # ports whose lines a sample clock can time
    # (edges, line number) -> 0/1; None: (e >> (line % 16)) & 1
    digital_signal: object = None
    line_value_as_bit: bool = True  # a line reads 1 << line (True) or 1 (False) when high

    def line_states(self, edges: np.ndarray, line: int) -> np.ndarray:
        """What line ``line`` of a port reads at these sample clock edges (0 or 1)."""
        if self.digital_signal is None:
            return (np.asarray(edges, np.int64) >> (line % 16)) & 1
        return np.asarray(self.digital_signal(edges, line), np.int64) & 1

    def volts(self, edges: np.ndarray, ai: int) -> np.ndarray:
        """What analog input ``ai`` reads at these sample clock edges."""
        if self.analog_signal is None:
            return edges + ai / 8
        return np.asarray(self.analog_signal(edges, ai), np.float64)

    @staticmethod
    def scaling(ai: int, low: float, high: float) -> tuple[float, float, float, float]:
        """The calibration polynomial (c0..c3, code to volts) of input ``ai`` on range
        ``(low, high)``: like a 63xx's, a little different on every input."""
        span = high - low
        gain = 1.04 * span / 65536 * (1 + 2e-4 * ((ai * 7) % 11 - 5))
        offset = span * 1e-4 * ((ai * 5) % 9 - 4)
        square = -1e-13 * (1 + ai % 3) * span / 20  # ~0.1 mV at full scale
        return (offset, gain, square, 2.5e-18 * span / 20)

    def terminal_configurations(self, ai: str) -> tuple[str, ...]:
        """What analog input ``ai`` ('ai8') supports, as on a 63xx."""
        if self.simultaneous:
            return ("DIFF",)
        if int(ai[2:]) % 16 < 8:  # ai0-7, ai16-23 pair with ai8-15, ai24-31
            return ("RSE", "NRSE", "DIFF")
        return ("RSE", "NRSE")

    def strings(self, what: str) -> str:
        dev = self.name
        if what == "product_type":
            return self.product_type
        if what == "ai":
            return ", ".join(f"{dev}/ai{i}" for i in range(self.analog_inputs))
        if what in ("ci", "co"):
            return ", ".join(f"{dev}/ctr{i}" for i in range(self.counters))
        if what == "di":  # port0 is the hardware-timed port of X-series cards
            return ", ".join(
                f"{dev}/port{p}/line{i}" for p, n in enumerate(self.di_ports) for i in range(n)
            )
        terminals = [f"PFI{i}" for i in range(self.pfi_lines)]
        terminals += ["ai/SampleClock", *TIMEBASES]
        terminals += [f"Ctr{i}InternalOutput" for i in range(self.counters)]
        return ", ".join(f"/{dev}/{t}" for t in terminals)


@dataclass
class FakeTask:
    """One DAQmx task as the fake card sees it."""

    handle: int
    name: str
    kind: str = ""  # 'ai', 'ci', 'co' or 'di'
    channels: list[dict] = field(default_factory=list)
    rate: float | None = None  # coerced sample clock rate (ai, co) or the rate given (ci)
    source: str = ""
    mode: int | None = None
    samples: int = 0  # FINITE: samples per channel; CONTINUOUS: buffer size hint
    buffer_size: int | None = None
    overwrite: int | None = None
    state: str = "created"  # created, verified, running, stopped, closed
    started_at: float | None = None
    stopped_at: float | None = None
    first_edge: int = 0  # edges of its clock that happened before it started
    read: int = 0  # samples per channel read since the start
    overflowed: bool = False
    frozen: int | None = None  # samples acquired when it stopped
    fail_next_read: int | None = None


class FakeDaqmx:
    """The fake interpreter's behaviour and the card's state; ``interpreter`` is the seam object.

    ``start_latency`` (s) passes on the virtual clock during each start, as on a real card: a
    task started after its clock misses the edges of that time.
    """

    IMPLEMENTED = (
        "create_task",
        "clear_task",
        "get_task_attribute_string",
        "create_ai_voltage_chan",
        "create_ci_count_edges_chan",
        "create_di_chan",
        "create_co_pulse_chan_freq",
        "create_co_pulse_chan_ticks",
        "internal_get_last_created_chan",
        "set_chan_attribute_string",
        "get_chan_attribute_string",
        "get_chan_attribute_double",
        "get_chan_attribute_int32",
        "get_physical_chan_attribute_int32",
        "get_physical_chan_attribute_bool",
        "read_digital_u32",
        "cfg_samp_clk_timing",
        "cfg_implicit_timing",
        "get_timing_attribute_double",
        "set_buffer_attribute_uint32",
        "set_read_attribute_int32",
        "get_read_attribute_uint32",
        "task_control",
        "start_task",
        "stop_task",
        "read_analog_f64",
        "read_binary_i16",
        "get_chan_attribute_double_array",
        "read_counter_u32_ex",
        "get_device_attribute_string",
        "get_device_attribute_double",
        "get_device_attribute_bool",
        "get_device_attribute_uint32",
        "get_device_attribute_double_array",
        "get_system_info_attribute_string",
    )

    def __init__(self, card: SimulatedCard | None = None, start_latency: float = 1e-5):
        self.card = card or SimulatedCard()
        self.start_latency = start_latency
        self.now = 0.0
        self.tasks: dict[int, FakeTask] = {}
        self.starts: list[str] = []  # task names in the order they were started
        self.reserved: set[str] = set()  # resources another program holds: 'ctr0', 'ai'
        self.unplugged = False
        self._next_handle = 1
        self._last_channel: str | None = None
        self._lock = threading.RLock()
        self.interpreter = mock.create_autospec(BaseInterpreter, instance=True)
        for name, _ in inspect.getmembers(BaseInterpreter, inspect.isfunction):
            method = getattr(self.interpreter, name)
            if name in self.IMPLEMENTED:
                method.side_effect = self._locked(getattr(self, name))
            else:
                method.side_effect = _unexpected(name)

    def select_interpreter(self, grpc_options=None, interpreter=None):
        """Stands in for ``nidaqmx.utils._select_interpreter``."""
        assert grpc_options is None and interpreter is None
        return self.interpreter

    def _locked(self, function):
        def call(*args, **kwargs):
            with self._lock:
                return function(*args, **kwargs)

        return call

    # ---------------------------------------------------------------------- test controls
    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on the card (any thread)."""
        with self._lock:
            self.now += seconds
            for task in self.tasks.values():
                if task.state == "running":
                    self._acquired(task)  # a buffer that fills up overflows now

    def open_tasks(self) -> list[FakeTask]:
        with self._lock:
            return [t for t in self.tasks.values() if t.state != "closed"]

    def task(self, kind: str) -> FakeTask:
        """The one open task of this kind."""
        (found,) = [t for t in self.open_tasks() if t.kind == kind]
        return found

    def unplug(self) -> None:
        with self._lock:
            self.unplugged = True

    def plug_in(self) -> None:
        with self._lock:
            self.unplugged = False

    def _reachable(self, name: str = "") -> None:
        if self.unplugged:
            raise DaqError(_MESSAGES[DEVICE_GONE], DEVICE_GONE, name)

    def fail_next_read(self, what: str, code: int) -> None:
        """The next read of the open task named ``..._<what>`` ('PFI9', 'ai') fails."""
        with self._lock:
            (task,) = [t for t in self.open_tasks() if t.name.endswith(f"_{what}")]
            task.fail_next_read = code

    # ------------------------------------------------------------------------------ tasks
    def create_task(self, session_name):
        if any(t.name == session_name for t in self.open_tasks()):
            raise DaqError(f"Task name {session_name!r} is already in use.", DUPLICATE_TASK)
        handle = self._next_handle
        self._next_handle += 1
        self.tasks[handle] = FakeTask(handle, session_name or f"_unnamedTask<{handle}>")
        return handle, True

    def clear_task(self, task):
        fake = self._task(task)
        try:
            self.stop_task(task)
        finally:  # the handle is gone even if the card cannot be reached
            fake.state = "closed"

    def get_task_attribute_string(self, task, attribute):
        assert attribute == TASK_NAME, hex(attribute)
        return self._task(task).name

    def _task(self, handle) -> FakeTask:
        task = self.tasks.get(handle)
        if task is None or task.state == "closed":
            raise DaqError("Task specified is invalid or does not exist.", INVALID_TASK)
        return task

    def _add_channel(self, task, kind, physical, name, **settings):
        fake = self._task(task)
        self._reachable(fake.name)
        assert fake.kind in ("", kind), f"{kind} channel added to a {fake.kind} task"
        assert fake.state == "created", "channels are added before the task is verified"
        device, _, resource = physical.partition("/")
        if device != self.card.name or resource not in self.card.strings(kind).replace(
            f"{device}/", ""
        ).split(", "):
            raise DaqError(f"Physical channel {physical!r} does not exist.", -200170)
        fake.kind = kind
        fake.channels.append({"physical": resource, "name": name or physical, **settings})
        self._last_channel = name or physical

    def create_ai_voltage_chan(
        self,
        task,
        physical_channel,
        name_to_assign_to_channel,
        terminal_config,
        min_val,
        max_val,
        units,
        custom_scale_name,
    ):
        supported = self.card.terminal_configurations(physical_channel.rsplit("/", 1)[-1])
        if terminal_config == TerminalConfiguration.DEFAULT.value:
            in_force = "DIFF" if "DIFF" in supported else "RSE"
        else:
            in_force = TerminalConfiguration(terminal_config).name
            if in_force not in supported:
                raise DaqError(
                    "Requested value is not a supported value for this property.\n"
                    f"Property: AI.TermCfg\nRequested Value: {in_force}\nChannel: "
                    f"{physical_channel}",
                    NOT_SUPPORTED_VALUE,
                )
        self._add_channel(
            task,
            "ai",
            physical_channel,
            name_to_assign_to_channel,
            terminal=terminal_config,
            in_force=TerminalConfiguration[in_force].value,
            range=(min_val, max_val),
        )

    def get_chan_attribute_int32(self, task, channel, attribute):
        assert attribute == AI_TERM_CFG, hex(attribute)
        (entry,) = [c for c in self._task(task).channels if c["name"] == channel]
        return entry["in_force"]

    def get_physical_chan_attribute_int32(self, physical_channel, attribute):
        assert attribute == PHYS_TERM_CFGS, hex(attribute)
        device, _, name = physical_channel.partition("/")
        card = self._device(device)
        if name not in card.strings("ai").replace(f"{device}/", "").split(", "):
            raise DaqError(f"Physical channel {physical_channel!r} does not exist.", -200170)
        return sum(TERM_BITS[t] for t in card.terminal_configurations(name))

    def create_ci_count_edges_chan(
        self, task, counter, name_to_assign_to_channel, edge, initial_count, count_direction
    ):
        assert initial_count == 0
        self._add_channel(task, "ci", counter, name_to_assign_to_channel, term=None)

    def create_di_chan(self, task, lines, name_to_assign_to_lines, line_grouping):
        assert "," not in lines and ":" not in lines, "the fake takes one line per call"
        self._add_channel(task, "di", lines, name_to_assign_to_lines, grouping=line_grouping)

    def get_physical_chan_attribute_bool(self, physical_channel, attribute):
        assert attribute == DI_SAMP_CLK_SUPPORTED, hex(attribute)
        device, _, name = physical_channel.partition("/")
        card = self._device(device)
        if name not in card.strings("di").replace(f"{device}/", "").split(", "):
            raise DaqError(f"Physical channel {physical_channel!r} does not exist.", -200170)
        return int(name.split("/")[0][4:]) in card.clocked_ports

    def create_co_pulse_chan_freq(
        self,
        task,
        counter,
        name_to_assign_to_channel,
        units,
        idle_state,
        initial_delay,
        freq,
        duty_cycle,
    ):
        self._add_channel(task, "co", counter, name_to_assign_to_channel, freq=freq)
        self._drive_default_pin(task)
        self._task(task).rate = self._coerced(freq)  # what the card makes
        # what co_pulse_freq reads: NI does not say when the getter shows the coerced value,
        # so the fake shows the requested one, as the real getter may

    def create_co_pulse_chan_ticks(
        self,
        task,
        counter,
        source_terminal,
        name_to_assign_to_channel,
        idle_state,
        initial_delay,
        low_ticks,
        high_ticks,
    ):
        assert low_ticks >= 2 and high_ticks >= 2, "a pulse needs 2 ticks high and 2 low"
        assert max(low_ticks, high_ticks) < 2**self.card.counter_bits
        timebase = source_terminal.rsplit("/", 1)[-1]
        assert source_terminal == f"/{self.card.name}/{timebase}" and timebase in TIMEBASES
        self._add_channel(task, "co", counter, name_to_assign_to_channel, freq=None)
        self._drive_default_pin(task)
        self._task(task).rate = TIMEBASES[timebase] / (low_ticks + high_ticks)

    def _drive_default_pin(self, task) -> None:
        """A new counter output drives its counter's default pin, as on a 63xx."""
        entry = self._task(task).channels[-1]
        entry["term"] = f"/{self.card.name}/PFI{12 + int(entry['physical'][3:])}"

    def internal_get_last_created_chan(self):
        return self._last_channel

    def set_chan_attribute_string(self, task, channel, attribute, value):
        assert attribute in (COUNT_EDGES_TERM, CO_PULSE_TERM), hex(attribute)
        fake = self._task(task)
        assert fake.kind == ("ci" if attribute == COUNT_EDGES_TERM else "co"), hex(attribute)
        (entry,) = [c for c in fake.channels if c["name"] == channel]
        entry["term"] = value

    def get_chan_attribute_string(self, task, channel, attribute):
        assert attribute == CO_PULSE_TERM, hex(attribute)
        (entry,) = [c for c in self._task(task).channels if c["name"] == channel]
        return entry["term"]

    def driven_pins(self) -> set[str]:
        """The terminals running counter outputs drive now ('PFI15')."""
        with self._lock:
            return {
                c["term"].rsplit("/", 1)[1]
                for t in self.open_tasks()
                if t.kind == "co" and t.state == "running"
                for c in t.channels
                if c["term"]
            }

    def _check_routes(self, fake: FakeTask) -> None:
        """At start: an input on a pin a counter output drives cannot be routed."""
        inputs = {c["term"] for c in fake.channels if fake.kind == "ci"} | {fake.source}
        outputs = {c["term"] for c in fake.channels if fake.kind == "co"}
        for other in self.open_tasks():
            if other.state != "running" or other is fake:
                continue
            if other.kind == "co":
                outputs |= {c["term"] for c in other.channels}
            elif other.kind == "ci":
                inputs |= {c["term"] for c in other.channels}
            inputs.add(other.source)
        clash = (inputs & outputs) - {"", None}
        if clash:
            raise DaqError(
                f"Specified route cannot be satisfied: {sorted(clash)} is driven by a counter "
                "output and used as an input.",
                ROUTE_IN_USE,
                fake.name,
            )

    def get_chan_attribute_double(self, task, channel, attribute):
        assert attribute == CO_PULSE_FREQ, hex(attribute)
        (entry,) = [c for c in self._task(task).channels if c["name"] == channel]
        assert entry["freq"] is not None, "a ticks channel has no frequency to read"
        return entry["freq"]

    def get_chan_attribute_double_array(self, task, channel, attribute):
        assert attribute == AI_DEV_SCALING_COEFF, hex(attribute)
        (entry,) = [c for c in self._task(task).channels if c["name"] == channel]
        return list(self.card.scaling(int(entry["physical"][2:]), *entry["range"]))

    def cfg_samp_clk_timing(self, task, rate, source, active_edge, sample_mode, samps_per_chan):
        fake = self._task(task)
        fake.source, fake.mode, fake.samples = source, sample_mode, samps_per_chan
        # a task on its own clock gets the nearest rate the timebase can divide down to
        fake.rate = self._coerced(rate) if source == "" else rate

    def cfg_implicit_timing(self, task, sample_mode, samps_per_chan):
        fake = self._task(task)
        assert fake.kind == "co"
        fake.mode, fake.samples = sample_mode, samps_per_chan

    def get_timing_attribute_double(self, task, attribute):
        assert attribute == SAMP_CLK_RATE, hex(attribute)
        return self._task(task).rate

    def set_buffer_attribute_uint32(self, task, attribute, value):
        assert attribute == INPUT_BUF_SIZE, hex(attribute)
        self._task(task).buffer_size = value

    def set_read_attribute_int32(self, task, attribute, value):
        assert attribute == OVERWRITE, hex(attribute)
        self._task(task).overwrite = value

    def get_read_attribute_uint32(self, task, attribute):
        fake = self._task(task)
        if attribute == NUM_CHANS:
            return len(fake.channels)
        assert attribute == AVAIL, hex(attribute)
        self._reachable(fake.name)
        return self._acquired(fake) - fake.read

    def task_control(self, task, action):
        fake = self._task(task)
        self._reachable(fake.name)
        if action == TaskMode.TASK_VERIFY.value:
            self._verify(fake)
        elif action == TaskMode.TASK_RESERVE.value:
            self._verify(fake)
            self._reserve(fake)
            fake.state = "reserved"
        else:
            assert action == TaskMode.TASK_UNRESERVE.value, f"unexpected task_control({action})"
            if fake.state == "reserved":
                fake.state = "verified"

    def _verify(self, fake: FakeTask) -> None:
        if fake.kind in ("ai", "ci", "di"):
            assert fake.mode is not None, "an input task needs sample clock timing"
        unclocked = [
            c["physical"]
            for c in fake.channels
            if fake.kind == "di"
            and int(c["physical"].split("/")[0][4:]) not in self.card.clocked_ports
        ]
        if unclocked:  # as on X-series: only port0 has a buffer for clocked input
            raise DaqError(
                "Requested value is not a supported value for this property.\n"
                f"Property: SampTimingType\nRequested Value: Sample Clock\nChannel: {unclocked}",
                NOT_SUPPORTED_VALUE,
                fake.name,
            )
        if fake.kind == "ai":  # with an external clock: the maximum rate it expects
            count = len(fake.channels)
            limit = self.card.ai_max_single_rate if count == 1 else self.card.ai_max_multi_rate
            limit = limit if count == 1 or self.card.simultaneous else limit / count
            if fake.rate > limit * (1 + 1e-12):  # the driver only warns, and acquires
                warnings.warn(DaqWarning(_MESSAGES[RATE_WARNING], RATE_WARNING), stacklevel=2)
        if fake.kind == "ci":  # its clock source is routed only at reserve or start
            assert all(c["term"] for c in fake.channels), "counter without input terminal"
        fake.state = "verified" if fake.state == "created" else fake.state

    def _reserve(self, fake: FakeTask) -> None:
        """Reserve and route, as at TASK_RESERVE or a start: TASK_VERIFY does neither."""
        for resource in self._resources(fake):
            held = [
                t for t in self.open_tasks() if t.state in ("running", "reserved") and t is not fake
            ]
            if resource in self.reserved or any(resource in self._resources(t) for t in held):
                raise DaqError(
                    f"The specified resource is reserved ({resource}).", RESERVED, fake.name
                )
        if fake.kind == "ci":
            self._clock(fake.source)  # an unknown clock fails here (-89125), as in the driver
        self._check_routes(fake)

    def start_task(self, task):
        fake = self._task(task)
        assert fake.state != "running", f"{fake.name} started twice"
        self._reachable(fake.name)
        self._verify(fake)
        self._reserve(fake)
        if fake.kind in ("ai", "ci"):
            assert fake.overwrite == OverwriteMode.DO_NOT_OVERWRITE_UNREAD_SAMPLES.value
        if fake.kind in ("ai", "ci", "di"):
            assert fake.buffer_size is not None, "input buffer size left to the driver"
        fake.state, fake.started_at, fake.stopped_at = "running", self.now, None
        fake.read, fake.overflowed, fake.frozen = 0, False, None
        if self._owns_clock(fake):
            fake.first_edge = 0
        else:  # a clock that is not running yet makes its edges for this task from 0
            fake.first_edge = self._edges(fake.source)
        self.starts.append(fake.name)
        self.now += self.start_latency

    @staticmethod
    def _resources(fake: FakeTask) -> set[str]:
        """What a running task holds: 'ai' for the analog inputs, 'ctrN' for a counter, 'di'
        for the hardware-timed digital inputs."""
        return {c["physical"] if fake.kind in ("ci", "co") else fake.kind for c in fake.channels}

    def stop_task(self, task):
        fake = self._task(task)
        if fake.state == "running" and self.unplugged:
            fake.state = "stopped"  # nothing runs on a card that is gone
            raise DaqError(_MESSAGES[DEVICE_GONE], DEVICE_GONE, fake.name)
        if fake.state == "running":
            for other in self.open_tasks():  # tasks on this task's clock get no more edges
                if (
                    other.state == "running"
                    and other.frozen is None
                    and self._driven_by(other, fake)
                ):
                    other.frozen = self._acquired(other)
            fake.frozen = self._acquired(fake)
            fake.state, fake.stopped_at = "stopped", self.now
            if fake.mode == AcquisitionType.FINITE.value and fake.frozen < fake.samples:
                warnings.warn(DaqWarning(_MESSAGES[STOPPED_EARLY], STOPPED_EARLY), stacklevel=2)

    # ------------------------------------------------------------------------------ reads
    def read_analog_f64(self, task, num_samps_per_chan, timeout, fill_mode, read_array):
        fake = self._task(task)
        assert fake.kind == "ai"
        count = self._take(fake, num_samps_per_chan, fill_mode, read_array, np.float64)
        edges = fake.first_edge + fake.read - count + np.arange(count)
        block = read_array.reshape(len(fake.channels), num_samps_per_chan)
        for row, channel in zip(block, fake.channels, strict=True):
            row[:count] = self.card.volts(edges, int(channel["physical"][2:]))
        return read_array, count

    def read_binary_i16(self, task, num_samps_per_chan, timeout, fill_mode, read_array):
        fake = self._task(task)
        assert fake.kind == "ai"
        count = self._take(fake, num_samps_per_chan, fill_mode, read_array, np.int16)
        edges = fake.first_edge + fake.read - count + np.arange(count)
        block = read_array.reshape(len(fake.channels), num_samps_per_chan)
        for row, channel in zip(block, fake.channels, strict=True):
            ai = int(channel["physical"][2:])
            terms = self.card.scaling(ai, *channel["range"])
            row[:count] = _codes(self.card.volts(edges, ai), terms)
        return read_array, count

    def read_counter_u32_ex(self, task, num_samps_per_chan, timeout, fill_mode, read_array):
        fake = self._task(task)
        assert fake.kind == "ci" and len(fake.channels) == 1
        count = self._take(fake, num_samps_per_chan, fill_mode, read_array, np.uint32)
        terminal = fake.channels[0]["term"]
        first = fake.first_edge
        edges = first + fake.read - count + np.arange(count, dtype=np.int64)
        if terminal.endswith("Timebase"):  # '100kHzTimebase': ticks at its frequency
            # the period is the clock's, whatever rate the counter task was told
            ticks_per_period = TIMEBASES[terminal.rsplit("/", 1)[1]] / self._clock_rate(fake)
            since_start = np.floor((edges - first + 1) * ticks_per_period + 1e-9).astype(np.int64)
        else:  # photons since the counter started, latched at each edge
            line = int(terminal.rsplit("PFI", 1)[1])
            since_start = _photons_until(edges, line) - _photons_until(first - 1, line)
        read_array[:count] = (since_start % 2**32).astype(np.uint32)  # a 32-bit counter wraps
        return read_array, count

    def read_digital_u32(self, task, num_samps_per_chan, timeout, fill_mode, read_array):
        fake = self._task(task)
        assert fake.kind == "di"
        count = self._take(fake, num_samps_per_chan, fill_mode, read_array, np.uint32)
        edges = fake.first_edge + fake.read - count + np.arange(count, dtype=np.int64)
        block = read_array.reshape(len(fake.channels), num_samps_per_chan)
        for row, channel in zip(block, fake.channels, strict=True):
            line = int(channel["physical"].rsplit("line", 1)[1])
            high = self.card.line_states(edges, line)
            row[:count] = high << line if self.card.line_value_as_bit else high
        return read_array, count

    def _take(self, fake, count, fill_mode, array, dtype) -> int:
        assert fill_mode == FillMode.GROUP_BY_CHANNEL.value
        assert array.dtype == dtype and array.flags.c_contiguous
        assert array.size == count * len(fake.channels), "array does not fit the request"
        if self.unplugged:
            raise DaqReadError(_MESSAGES[TRANSFER_ABORTED], TRANSFER_ABORTED, 0, fake.name)
        if fake.fail_next_read is not None:
            code, fake.fail_next_read = fake.fail_next_read, None
            raise DaqReadError(_MESSAGES.get(code, "Simulated failure."), code, 0, fake.name)
        available = self._acquired(fake) - fake.read
        if fake.overflowed:
            raise DaqReadError(_MESSAGES[OVERFLOW], OVERFLOW, 0, fake.name)
        taken = min(count, available)
        fake.read += taken
        if taken < count:  # virtual time does not pass while a read waits: it times out
            raise DaqReadError(_MESSAGES[TIMEOUT], TIMEOUT, taken, fake.name)
        return taken

    # ----------------------------------------------------------------------------- clocks
    def _coerced(self, rate: float) -> float:
        divisor = max(1, round(self.card.counter_timebase / rate))
        return self.card.counter_timebase / divisor

    def _clock_rate(self, fake: FakeTask) -> float:
        """The real rate of the clock a task is on."""
        clock = self._clock(fake.source)
        while not isinstance(clock, float) and not self._owns_clock(clock):
            clock = self._clock(clock.source)  # an analog task on an external clock
        return clock if isinstance(clock, float) else clock.rate

    def _owns_clock(self, fake: FakeTask) -> bool:
        return fake.kind == "co" or (fake.kind in ("ai", "di") and fake.source == "")

    def _clock(self, source: str):
        """The task (or external clock's rate) that makes the edges of terminal ``source``."""
        prefix = f"/{self.card.name}/"
        assert source.startswith(prefix), f"sample clock {source!r} is not on {self.card.name}"
        terminal = source[len(prefix) :]
        if terminal in self.card.external_clocks:
            return self.card.external_clocks[terminal]
        if terminal in ("ai/SampleClock", "di/SampleClock"):  # that task's clock, whatever
            kind, counter = terminal[:2], None  # drives it
        elif terminal.endswith("InternalOutput"):
            kind, counter = "co", terminal[: -len("InternalOutput")].lower()
        else:
            raise DaqError(f"Sample clock source {source!r} makes no clock.", -89125)
        makers = [
            task
            for task in self.open_tasks()
            if task.kind == kind and (counter is None or task.channels[0]["physical"] == counter)
        ]
        for task in sorted(makers, key=lambda t: t.state != "running"):  # the running one
            return task
        raise DaqError(f"Nothing drives {source!r}.", -89125)

    def _driven_by(self, task: FakeTask, clock: FakeTask) -> bool:
        if task is clock or self._owns_clock(task):
            return False
        try:
            return self._clock(task.source) is clock
        except DaqError:
            return False

    def _edges(self, source: str) -> int:
        """Edges on terminal ``source`` so far (none once the task making them is closed)."""
        try:
            clock = self._clock(source)
        except DaqError:
            return 0
        if isinstance(clock, float):  # an external clock runs all the time
            return math.floor(self.now * clock + 1e-9) + 1
        return self._clock_edges(clock) if clock.state == "running" else 0

    def _clock_edges(self, fake: FakeTask) -> int:
        """Edges of the task's sample clock since the task started (first edge at its start)."""
        if fake.started_at is None:
            return 0
        if self._owns_clock(fake):
            until = self.now if fake.stopped_at is None else fake.stopped_at
            edges = math.floor((until - fake.started_at) * fake.rate + 1e-9) + 1
        elif fake.frozen is not None:
            return fake.frozen
        else:
            edges = max(0, self._edges(fake.source) - fake.first_edge)
        if fake.mode == AcquisitionType.FINITE.value:
            edges = min(edges, fake.samples)
        return edges

    def _acquired(self, fake: FakeTask) -> int:
        """Samples per channel the task has taken into its buffer since it started.

        With a full buffer (overwrite is off) the acquisition stops, as on the card.
        """
        acquired = self._clock_edges(fake)
        if fake.overwrite == OverwriteMode.OVERWRITE_UNREAD_SAMPLES.value:
            return acquired  # the oldest samples give way: never an overflow
        if fake.kind != "co" and (fake.overflowed or acquired - fake.read > fake.buffer_size):
            fake.overflowed = True
            return fake.read + fake.buffer_size
        return acquired

    # ----------------------------------------------------------------------------- device
    def _device(self, device_name):
        self._reachable()
        if device_name != self.card.name:
            raise DaqError(f"Device {device_name!r} is not present.", -200220)
        return self.card

    def get_device_attribute_string(self, device_name, attribute):
        return self._device(device_name).strings(DEVICE_STRINGS[attribute])

    def get_device_attribute_double(self, device_name, attribute):
        return getattr(self._device(device_name), DEVICE_DOUBLES[attribute])

    def get_device_attribute_bool(self, device_name, attribute):
        assert attribute == SIMULTANEOUS, hex(attribute)
        return self._device(device_name).simultaneous

    def get_device_attribute_uint32(self, device_name, attribute):
        assert attribute == COUNTER_BITS, hex(attribute)
        return self._device(device_name).counter_bits

    def get_device_attribute_double_array(self, device_name, attribute):
        assert attribute == AI_RANGES, hex(attribute)
        return list(self._device(device_name).ai_ranges)

    def get_system_info_attribute_string(self, attribute):
        assert attribute == DEVICE_NAMES, hex(attribute)
        return self.card.name


def _photons_until(edge, line: int):
    """Photons on PFI ``line`` up to clock edge ``edge``: ``e + line`` in the period ending at
    edge ``e``, for ``e`` from 0 (exact integers)."""
    edge = np.asarray(edge, dtype=np.int64)
    return edge * (edge + 1) // 2 + (edge + 1) * line


def _codes(volts: np.ndarray, terms) -> np.ndarray:
    """The int16 codes whose polynomial values are nearest ``volts`` (Newton from the linear
    guess; the polynomial is monotonic over the codes), saturated at the int16 limits."""
    c0, c1, c2, c3 = terms
    x = (volts - c0) / c1
    for _ in range(4):
        x -= (c0 + x * (c1 + x * (c2 + x * c3)) - volts) / (c1 + x * (2 * c2 + 3 * c3 * x))
        x = np.clip(x, -40000, 40000)  # beyond the range: saturated below
    nearest = np.round(x)
    # the rounded code may be one off where the polynomial bends: take the nearer neighbour
    candidates = np.stack([nearest - 1, nearest, nearest + 1])
    values = c0 + candidates * (c1 + candidates * (c2 + candidates * c3))
    best = candidates[np.argmin(np.abs(values - volts), axis=0), np.arange(len(volts))]
    return np.clip(best, -32768, 32767).astype(np.int16)


def _unexpected(name: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"unexpected DAQmx call: {name}{args}")

    return fail


_MESSAGES = {
    OVERFLOW: (
        "The application is not able to keep up with the hardware acquisition. Increasing the "
        "buffer size, reading the data more frequently, or specifying a fixed number of samples "
        "to read instead of reading all available samples might correct the problem."
    ),
    TIMEOUT: "Some or all of the samples requested have not yet been acquired.",
    FIFO_OVERFLOW_2: (
        "The onboard device memory overflowed: the bus could not move the data to the "
        "computer fast enough. Reduce the sample rate or the number of channels."
    ),
    FIFO_OVERFLOW: "Onboard device memory overflow: data were lost before they reached the host.",
    COUNTER_OVERFLOW: "Counter data were overwritten before the bus moved them to the host.",
    ADC_OVERRUN: (
        "The ADC was clocked again before it finished a conversion: the sample clock is "
        "faster than the task was told."
    ),
    TRANSFER_ABORTED: "The transfer was aborted: the device stopped answering.",
    DEVICE_GONE: "The device cannot be accessed: it was removed, powered off or reset.",
    STOPPED_EARLY: (
        "Finite acquisition or generation has been stopped before the requested number of "
        "samples were acquired or generated."
    ),
    RATE_WARNING: (
        "Sample rate is above the maximum the device supports for this number of channels; "
        "the acquisition proceeds, the settling may be insufficient."
    ),
}
