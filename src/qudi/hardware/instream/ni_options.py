"""The NI streamer's config options, checked against the card: what it may stream, how fast.

:func:`checked_options` turns the options of ``ni_daq.NIXSeriesInStreamer`` into
:class:`CardOptions`, asking the driver what the card offers; every refusal names the option,
the value and what the card would take. :class:`CardOptions` then knows the stream's
constraints and checks each configuration's rate and counters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from qudi.util.constraints import ScalarConstraint

from qudi.hardware.instream.ni_tasks import (
    AnalogInput,
    Device,
    read_device,
    short_name,
    supported_terminals,
)
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    SampleTiming,
    StreamingMode,
)
from qudi.util.instream.arrays import option_error

__all__ = ["TERMINALS", "CardOptions", "checked_options"]

TERMINALS = ("DEFAULT", "RSE", "NRSE", "DIFF", "PSEUDO_DIFF")
COUNT_UNIT = "c/s"  # counting channels carry counts per second, whatever the sample rate
RAW_UNIT = "code"  # raw_analog: analog inputs carry the ADC's int16 codes
LINE_UNIT = ""  # digital lines carry 0 and 1
_LINES = re.compile(
    r"(?:(?P<device>[^/\s]+)/)?port(?P<port>\d+)/line(?P<first>\d+)(?::(?P<last>\d+))?",
    re.IGNORECASE,
)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _is_positive(value: object) -> bool:
    """A finite number above 0 (NaN, inf and ints too large for a float are not)."""
    if not _is_number(value):
        return False
    try:
        return 0 < float(value) < math.inf
    except OverflowError:
        return False


@dataclass(frozen=True)
class CardOptions:
    """The accepted options: the card, its channels and clock, and the stream's limits."""

    device: Device
    digital: tuple[str, ...]  # counted terminals, by channel name
    analog: dict[str, AnalogInput]  # analog inputs, by channel name
    external_clock: tuple[str, float] | None  # terminal and frequency (Hz), or None
    timeout: float  # s, default limit of blocking reads and of each driver read
    buffer_limit: int  # largest buffer, samples per channel
    clock_terminal: str | None = None  # PFI line the counter clock is exported to, or None
    raw: bool = False  # raw_analog: int16 codes, scaled by each channel's polynomial
    lines: tuple[str, ...] = ()  # clocked digital input lines ('port0/line0'), by channel name

    def sample_clock(self) -> dict:
        """What ticks the samples, as a stream declares it (``ClockedSource`` in
        ``qudi.util.instream.contracts``): the external clock's terminal and frequency, or the
        card's own timebase. Streams that name the same external clock have no drift between
        them, so an aligned reader lines them up without a fit of the drift."""
        if self.external_clock is None:
            return {"kind": "internal"}
        terminal, frequency = self.external_clock
        source = f"/{self.device.name}/{terminal}"
        return {"kind": "external", "source": source, "tick_rate": float(frequency)}

    def constraints(self) -> DataInStreamConstraints:
        """What the module offers: every source as a channel, counters in c/s, inputs in V.

        Returns
        -------
        DataInStreamConstraints
            Channels in option order (digital sources first, digital lines last), float64
            samples (int16 codes with ``raw_analog``), CONSTANT timing.
        """
        units = {name: COUNT_UNIT for name in self.digital}
        units.update({name: RAW_UNIT if self.raw else "V" for name in self.analog})
        units.update({name: LINE_UNIT for name in self.lines})
        if self.external_clock is not None:
            frequency = self.external_clock[1]
            rate = ScalarConstraint(default=frequency, bounds=(frequency, frequency))
        else:
            analog = int(len(self.analog) > 0)
            low, high = self.device.min_rate(analog), self.device.max_rate(analog)
            rate = ScalarConstraint(default=min(max(50.0, low), high), bounds=(low, high))
        return DataInStreamConstraints(
            channel_units=units,
            sample_timing=SampleTiming.CONSTANT,
            streaming_modes=[StreamingMode.CONTINUOUS, StreamingMode.FINITE],
            data_type=np.int16 if self.raw else np.float64,
            channel_buffer_size=ScalarConstraint(
                default=min(1024**2, self.buffer_limit),
                bounds=(2, self.buffer_limit),
                increment=1,
                enforce_int=True,
            ),
            sample_rate=rate,
        )

    def checked_rate(self, rate: object, channels: tuple[str, ...]) -> float:
        """The sample rate for streaming ``channels``: within the card's range for that many
        analog inputs, or the external clock's frequency.

        Parameters
        ----------
        rate : object
            The requested ``sample_rate`` in Hz.
        channels : tuple of str
            The channels to stream (known to be valid).

        Returns
        -------
        float
            The rate to ask the driver for.

        Raises
        ------
        TypeError
            If ``rate`` is no number.
        ValueError
            If the card cannot run at ``rate`` with these channels.
        """
        if not _is_number(rate):
            raise TypeError(f"sample_rate must be a number, got {rate!r}")
        try:
            value = float(rate)
        except OverflowError:
            value = math.inf  # an int too large for a float: outside every range
        if self.external_clock is not None:
            frequency = self.external_clock[1]
            if not np.isclose(value, frequency, rtol=1e-9, atol=0):
                raise ValueError(
                    f"sample_rate={rate} Hz: the external sample clock runs at {frequency} Hz "
                    "(option external_sample_clock_frequency)"
                )
            return float(frequency)
        analog_inputs = sum(ch in self.analog for ch in channels)
        low = self.device.min_rate(analog_inputs)
        high = self.device.max_rate(analog_inputs)
        if not low <= value <= high:
            raise ValueError(
                f"sample_rate={rate} Hz is outside {low} to {high} Hz, the range of "
                f"{self.device.name} with {analog_inputs} analog inputs"
            )
        return value

    def check_counters(self, channels: tuple[str, ...]) -> None:
        """Refuse ``channels`` if the card has too few counters for them and their clock.

        Raises
        ------
        ValueError
            If the channels need more counters than the card has.
        """
        counters = sum(ch in self.digital for ch in channels)
        if not any(ch in self.analog for ch in channels) and self.external_clock is None:
            counters += 1  # the clock
        if counters > len(self.device.counters):
            raise ValueError(
                f"{list(channels)} need {counters} counters (one per PFI line, one more for the "
                f"clock without analog inputs); {self.device.name} has "
                f"{list(self.device.counters)}"
            )


def checked_options(options: Mapping[str, object]) -> CardOptions:
    """Check the NI streamer's options and the card they name.

    Parameters
    ----------
    options : mapping of str to object
        Every option of ``NIXSeriesInStreamer`` by its config name (``device_name``,
        ``digital_sources``, ...), defaults filled in.

    Returns
    -------
    CardOptions
        The accepted options.

    Raises
    ------
    ValueError
        If an option is refused; the message names the option, its value and what is valid.
    RuntimeError
        Without nidaqmx or the NI-DAQmx driver (see :func:`ni_tasks.read_device`).
    """
    timeout, buffer_limit = _checked_limits(
        options["read_write_timeout"], options["max_channel_samples_buffer"]
    )
    device = read_device(_checked_device_name(options["device_name"]))
    digital = _checked_digital(options["digital_sources"], device)
    lines = checked_lines(options.get("digital_lines"), device)
    analog = _checked_analog(options, device)
    external_clock = _checked_external_clock(
        options["external_sample_clock_source"],
        options["external_sample_clock_frequency"],
        digital,
        len(analog),
        device,
    )
    clock_terminal = _checked_clock_terminal(options, digital, external_clock, device)
    if len(digital) > len(device.counters) - (0 if analog else 1):
        raise option_error(
            "digital_sources",
            options["digital_sources"],
            f"{device.name} has {len(device.counters)} counters {list(device.counters)}; "
            "each PFI line needs one, and a clock needs one more without analog sources",
        )
    raw = _checked_raw(options.get("raw_analog", False), digital)
    if raw and lines:
        raise option_error(
            "raw_analog",
            options["raw_analog"],
            f"streams the int16 codes of analog inputs only, each with its polynomial to volts; "
            f"digital_lines {list(lines)} have none: leave digital_lines empty, or raw_analog "
            "false",
        )
    return CardOptions(
        device, digital, analog, external_clock, timeout, buffer_limit, clock_terminal, raw, lines
    )


def checked_lines(value: object, device: Device) -> tuple[str, ...]:
    """The ``digital_lines`` option as line names ``'port0/line0'``, ... in the order given.

    Takes a string or a list of strings in DAQmx's spelling, with or without the device:
    ``'Dev1/port0/line0:3'``, ``'port0/line5'``, ``'port0/line0:1, port0/line7'``. A range
    includes both ends. Only lines a sample clock can time are taken (on X-series port0; the
    driver says per line).

    Raises
    ------
    ValueError
        Naming ``digital_lines``, the value and the card's valid (clocked) lines.
    """
    if value is None or value == "" or value == []:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise option_error(
            "digital_lines", value, "use a string such as 'port0/line0:3' or a list of them"
        )
    names: list[str] = []
    for part in (p.strip().strip("/") for item in items for p in item.split(",")):
        match = _LINES.fullmatch(part)
        if match is None or (match["device"] and match["device"] != device.name):
            raise option_error(
                "digital_lines",
                value,
                f"{part!r} names no lines of {device.name}: use 'port0/line0:3' or "
                f"'{device.name}/port0/line5'; lines that can be clocked: "
                f"{_ranges(device.di_clocked)}",
            )
        first, last = int(match["first"]), int(match["last"] or match["first"])
        step = 1 if last >= first else -1
        names += [f"port{int(match['port'])}/line{n}" for n in range(first, last + step, step)]
    unknown = [n for n in names if n not in device.di_lines]
    unclocked = [n for n in names if n in device.di_lines and n not in device.di_clocked]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if unknown or unclocked or doubled:
        problems = [
            f"{device.name} has no {unknown}" if unknown else "",
            f"{unclocked} cannot be sample-clocked (X-series buffer digital input on port0 only)"
            if unclocked
            else "",
            f"{doubled} named twice" if doubled else "",
        ]
        raise option_error(
            "digital_lines",
            value,
            "; ".join(p for p in problems if p)
            + f"; lines of {device.name} that can be clocked: {_ranges(device.di_clocked)}",
        )
    return tuple(names)


def _ranges(lines: tuple[str, ...]) -> str:
    """'port0/line0:31, port1/line0:7' for a list of lines, for messages."""
    ports: dict[str, list[int]] = {}
    for line in lines:
        port, _, number = line.partition("/line")
        ports.setdefault(port, []).append(int(number))
    parts = []
    for port, numbers in ports.items():
        runs: list[list[int]] = []
        for n in sorted(numbers):
            if runs and n == runs[-1][1] + 1:
                runs[-1][1] = n
            else:
                runs.append([n, n])
        parts += [f"{port}/line{a}" + (f":{b}" if b != a else "") for a, b in runs]
    return ", ".join(parts) if parts else "none"


def _checked_raw(value: object, digital: tuple[str, ...]) -> bool:
    """``raw_analog``: stream the ADC's int16 codes; every sample of a stream has one dtype,
    so counters (rates, float64) cannot stream beside them."""
    if not isinstance(value, (bool, np.bool_)):
        raise option_error("raw_analog", value, "must be true or false")
    if not value:
        return False
    if digital:
        raise option_error(
            "raw_analog",
            value,
            f"streams int16 codes of analog inputs only; digital_sources {list(digital)} are "
            "counted in c/s (float64): leave digital_sources empty, or raw_analog false",
        )
    return True  # without digital sources there are analog ones (checked before)


def _pfi_lines(device: Device) -> list[str]:
    return [t for t in device.terminals if re.fullmatch(r"PFI\d+", t)]


def _checked_clock_terminal(
    options: Mapping[str, object],
    digital: tuple[str, ...],
    external_clock: tuple[str, float] | None,
    device: Device,
) -> str | None:
    """The PFI line the counter clock is exported to (None: it stays inside the card).

    Without it the counter that makes the clock of counters alone drives no pin; with it, no
    source may be on that pin.
    """
    value = options.get("clock_output_terminal")
    if value is None:
        return None
    lines = _pfi_lines(device)
    name = short_name(value).upper() if isinstance(value, str) else None
    if name not in lines:
        raise option_error(
            "clock_output_terminal",
            value,
            f"use a PFI line of {device.name} ({lines}) or null to keep the clock inside",
        )
    if name in digital:
        raise option_error(
            "digital_sources",
            options["digital_sources"],
            f"{name} carries the counter clock (option clock_output_terminal)",
        )
    if external_clock is not None and external_clock[0] == name:
        raise option_error(
            "external_sample_clock_source",
            options["external_sample_clock_source"],
            f"{name} carries the counter clock (option clock_output_terminal)",
        )
    return name


def _checked_device_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or "/" in name.strip("/"):
        raise option_error("device_name", name, "use the card's name in NI MAX, e.g. 'Dev1'")
    return name.strip("/")


def _checked_limits(timeout: object, limit: object) -> tuple[float, int]:
    if not _is_positive(timeout):
        raise option_error("read_write_timeout", timeout, "use a number of seconds above 0")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 2 <= limit <= 2**31:
        raise option_error(
            "max_channel_samples_buffer", limit, "use an integer number of samples, 2 to 2**31"
        )
    return float(timeout), limit


def _checked_digital(sources: object, device: Device) -> tuple[str, ...]:
    """PFI lines (any spelling: 'pfi8', '/Dev1/PFI8'), or any other terminal of the card
    (such as '100kHzTimebase', counted without wiring)."""
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise option_error("digital_sources", sources, "use a list of PFI lines, e.g. ['PFI8']")
    names = tuple(
        short_name(s).upper() if re.fullmatch(r"pfi\d+", short_name(s).lower()) else short_name(s)
        for s in sources
    )
    unknown = [s for s, n in zip(sources, names, strict=True) if n not in device.terminals]
    if unknown or len(set(names)) != len(names):
        lines = [t for t in device.terminals if re.fullmatch(r"PFI\d+", t)]
        raise option_error(
            "digital_sources",
            sources,
            f"name each PFI line (or other terminal) of {device.name} at most once; "
            f"unknown: {unknown}; PFI lines: {lines}",
        )
    return names


def _checked_analog(options: Mapping[str, object], device: Device) -> dict[str, AnalogInput]:
    sources = options["analog_sources"]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise option_error("analog_sources", sources, "use a list of inputs, e.g. ['ai0']")
    names = tuple(short_name(s).lower() for s in sources)
    unknown = [s for s, n in zip(sources, names, strict=True) if n not in device.analog_inputs]
    if unknown or len(set(names)) != len(names):
        raise option_error(
            "analog_sources",
            sources,
            f"name each analog input of {device.name} at most once; unknown: {unknown}; "
            f"valid: {list(device.analog_inputs)}",
        )
    if not names and not options["digital_sources"] and not options.get("digital_lines"):
        raise option_error(
            "analog_sources",
            sources,
            "configure at least one analog or digital source, or digital_lines",
        )
    default_range = _checked_range("adc_voltage_range", options["adc_voltage_range"], device)
    settings = options["analog_channel_settings"]
    if not isinstance(settings, dict):
        raise option_error(
            "analog_channel_settings", settings, "use a mapping such as {ai0: {range: [-5, 5]}}"
        )
    per_channel = {short_name(str(k)).lower(): v for k, v in settings.items()}
    stray = [k for k in per_channel if k not in names]
    if stray:
        raise option_error(
            "analog_channel_settings", settings, f"{stray} are not in analog_sources {names}"
        )
    return {
        name: _checked_input(name, per_channel.get(name) or {}, default_range, device)
        for name in names
    }


def _checked_input(
    name: str, entry: object, default_range: tuple[float, float], device: Device
) -> AnalogInput:
    key = f"analog_channel_settings.{name}"
    if not isinstance(entry, dict) or set(entry) - {"range", "terminal"}:
        raise option_error(key, entry, "use keys 'range' ([low, high] in V), 'terminal'")
    low, high = default_range
    if "range" in entry:
        low, high = _checked_range(f"{key}.range", entry["range"], device)
    terminal = entry.get("terminal", "DEFAULT")
    if not isinstance(terminal, str) or terminal.upper() not in TERMINALS:
        raise option_error(f"{key}.terminal", terminal, f"valid are {list(TERMINALS)}")
    if terminal.upper() != "DEFAULT":
        supported = supported_terminals(device.name, name)
        if terminal.upper() not in supported:
            raise option_error(
                f"{key}.terminal",
                terminal,
                f"{name} of {device.name} ({device.product_type}) supports {list(supported)}, "
                "or DEFAULT (what the card chooses)",
            )
    return AnalogInput(low, high, terminal.upper())


def _checked_range(key: str, value: object, device: Device) -> tuple[float, float]:
    ranges = device.ai_voltage_ranges
    lowest = min((low for low, _ in ranges), default=-np.inf)
    highest = max((high for _, high in ranges), default=np.inf)
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(_is_number(v) for v in value)
        or not lowest <= value[0] < value[1] <= highest
    ):
        raise option_error(
            key, value, f"use [low, high] in V within {device.name}'s {lowest} to {highest} V"
        )
    return float(value[0]), float(value[1])


def _checked_external_clock(
    source: object,
    frequency: object,
    digital: tuple[str, ...],
    analog_inputs: int,
    device: Device,
) -> tuple[str, float] | None:
    if source is None:
        if frequency is not None:
            raise option_error(
                "external_sample_clock_frequency",
                frequency,
                "only meaningful with external_sample_clock_source",
            )
        return None
    terminal = short_name(source) if isinstance(source, str) else None
    pfi = [t for t in device.terminals if re.fullmatch(r"PFI\d+", t)]
    if terminal is not None and terminal.upper() in pfi:
        terminal = terminal.upper()
    if terminal not in device.terminals:
        raise option_error(
            "external_sample_clock_source", source, f"use a terminal of {device.name}: {pfi}"
        )
    if terminal in digital:
        raise option_error(
            "external_sample_clock_source", source, "it is also one of the digital_sources"
        )
    if not _is_positive(frequency):
        raise option_error(
            "external_sample_clock_frequency",
            frequency,
            "give the external clock's frequency in Hz (above 0)",
        )
    # DAQmx takes it as the highest rate to expect: a multiplexed card's convert clock is
    # derived from it, so a faster clock overruns the converter (-200019)
    limit = device.max_rate(analog_inputs)
    if float(frequency) > limit:
        inputs = f"{analog_inputs} analog inputs" if analog_inputs else "counters alone"
        raise option_error(
            "external_sample_clock_frequency",
            frequency,
            f"{device.name} samples {inputs} at up to {limit} Hz; give the clock's highest "
            "frequency, within that",
        )
    return terminal, float(frequency)
