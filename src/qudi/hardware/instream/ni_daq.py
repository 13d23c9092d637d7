"""NIXSeriesInStreamer: photon counting on PFI lines, analog inputs and clocked digital lines
of an NI X-series card.

Example config (copy into the ``hardware:`` section)::

    ni_instreamer:
        module.Class: 'instream.ni_daq.NIXSeriesInStreamer'
        options:
            device_name: 'Dev1'
            digital_sources: ['PFI8', 'PFI9']      # optional: PFI lines counted as photon counters
            analog_sources: ['ai0', 'ai1']          # optional: analog inputs, in V
            digital_lines: 'port0/line0:3'          # optional: clocked digital inputs, 0 or 1
            external_sample_clock_source: null      # optional: e.g. 'PFI11' to clock from outside
            external_sample_clock_frequency: null   # Hz, required with an external clock
            adc_voltage_range: [-10, 10]            # optional: V, range of every analog input
            analog_channel_settings:                # optional: per analog input
                ai1: {range: [-1, 1], terminal: 'DIFF'}   # terminal: RSE, NRSE, DIFF, PSEUDO_DIFF
            max_channel_samples_buffer: 33554432    # optional: largest buffer, samples per channel
            read_write_timeout: 10                  # optional: s, default limit of blocking reads
            clock_output_terminal: null             # optional: PFI line to export the counter clock
            raw_analog: false                       # optional: stream int16 ADC codes (see below)

Every channel is sampled on the edges of one sample clock: the analog task's own clock if
analog inputs stream, otherwise a clock generated on a spare counter (internal, driving no pin
unless ``clock_output_terminal`` names one), or the external clock. Each PFI line is counted by
a counter latched on that clock's edges. Sample ``i`` of the analog inputs is taken at the same
moment on simultaneous-sampling cards (6366, 6368, 6374, 6376); a multiplexed card (6363, 6343,
6323) converts its inputs one after another, input ``k`` of the task about ``k / convert rate``
after the edge at which the counters latch. The module turns the counts of each clock period
into counts per second (unit ``c/s``) with the rate the driver actually set, and streams
analog inputs in volts. Counting channels are rates whatever the sample rate: a 100 kHz source
reads 100 000 c/s at 1 kS/s and at 10 kS/s (a consumer that wants counts per sample
multiplies by 1 / rate).

With ``raw_analog: true`` (analog inputs only) the analog inputs stream the ADC's unscaled
int16 codes (unit ``code``, a quarter of float64's bytes) and :attr:`scaling_coefficients`
gives each input's polynomial to volts as DAQmx reports it for the range in force; the stream's
description carries them (``stream_extra``), so a recording keeps them next to the codes and
consumers scale once with ``qudi.util.instream.raw_scaling``.

An analog input's terminal ``DEFAULT`` is what the card chooses: on a multiplexed 63xx that is
DIFF for ai0-7 and ai16-23 (a single-ended signal wired against AI GND is then measured
against the floating ai8-15) and RSE for the others; the configuration in force is logged.

Digital lines (``digital_lines``: a string or list in DAQmx's spelling, ``'port0/line0:3'``,
``'Dev1/port0/line5'``) are read on the same sample clock as the other channels, one channel
per line named after it (``port0/line0``, unit ``""``, values 0 and 1 in the stream's dtype),
and declared in the stream's description (``stream_extra["digital_channels"]``). An X-series
card buffers digital input on port0 only: a line that cannot be clocked is refused, naming the
lines that can. Without analog inputs a spare counter makes their clock (as for counters
alone); on an external clock the digital task takes it and clocks the counters in turn.

The tasks that are clocked start before the task that makes the clock, so none misses an edge.
The driver's buffer never overwrites unread samples: a stream that is not read in time stops
with an error instead of returning stale data. After :meth:`stop_stream` the card's unread
samples are discarded (a DAQmx read of a stopped task would start it again).

Needs the NI-DAQmx driver and the ``nidaqmx`` Python package; without the driver the module
imports, and activation says how to install it. The DAQmx tasks are ``ni_tasks``; the options
are checked in ``ni_options``; ``ni_errors`` says what a DAQmx error means for the user.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable

import numpy as np
from qudi.core.configoption import ConfigOption

from qudi.hardware.instream.ni_errors import start_failure, streaming_failure
from qudi.hardware.instream.ni_options import CardOptions, checked_options
from qudi.hardware.instream.ni_tasks import Tasks, daq_reason
from qudi.hardware.instream.stream_sharing import SharedStreamer
from qudi.interface.instream_interface import (
    DataInStreamConstraints,
    DataInStreamInterface,
    StreamingMode,
    StreamRequest,
    check_read_buffers,
    check_stream_request,
)
from qudi.util.instream.arrays import check_count, check_timeout
from qudi.util.instream.errors import (
    StreamFaultError,
    StreamStoppedError,
    StreamTimeoutError,
)
from qudi.util.instream.raw_scaling import scaling_extra

try:  # the module must import without nidaqmx, so activation can say what is missing
    import nidaqmx.errors
except ImportError:  # pragma: no cover - nidaqmx is a dependency of this package
    nidaqmx = None

__all__ = ["NIXSeriesInStreamer"]

_WAIT_STEP_S = 0.05  # blocking reads re-check for data and for a stop at least this often
_INSTANCES = itertools.count(1)  # DAQmx task names are unique per process: number each module


class NIXSeriesInStreamer(SharedStreamer, DataInStreamInterface):
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
    _clock_output_terminal = ConfigOption("clock_output_terminal", default=None)
    _raw_analog = ConfigOption("raw_analog", default=False)
    _digital_lines = ConfigOption("digital_lines", default=[])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._card: CardOptions | None = None
        self._constraints: DataInStreamConstraints | None = None
        self._settings: StreamRequest | None = None
        self._tasks: Tasks | None = None
        self._newest: np.ndarray | None = None
        self._scaling: dict[str, tuple[float, ...]] = {}  # of the last tasks built (raw_analog)
        self._lock = threading.Lock()  # reads against start, stop, configure and close
        self._stopped = threading.Event()  # wakes blocking reads when the stream stops
        # a second module of the same name in this process (a notebook) must not collide
        self._task_prefix = f"{self.module_name}#{next(_INSTANCES)}"

    # --------------------------------------------------------------------------- lifetime
    def on_activate(self) -> None:
        self.check_publish_address()
        self._card = checked_options(
            {
                "device_name": self._device_name,
                "digital_sources": self._digital_sources,
                "analog_sources": self._analog_sources,
                "external_sample_clock_source": self._external_sample_clock_source,
                "external_sample_clock_frequency": self._external_sample_clock_frequency,
                "adc_voltage_range": self._adc_voltage_range,
                "analog_channel_settings": self._analog_channel_settings,
                "max_channel_samples_buffer": self._max_channel_samples_buffer,
                "read_write_timeout": self._read_write_timeout,
                "clock_output_terminal": self._clock_output_terminal,
                "raw_analog": self._raw_analog,
                "digital_lines": self._digital_lines,
            }
        )
        self._constraints = self._card.constraints()
        channels = list(self._constraints.channel_units)
        self._stopped.set()
        # build the tasks once: the driver checks the settings now, not at the first start
        # (TASK_VERIFY reserves nothing: an analog input another program holds shows at start)
        try:
            self.configure(
                channels,
                StreamingMode.CONTINUOUS,
                self._constraints.channel_buffer_size.default,
                self._constraints.sample_rate.default,
            )
        except Exception:
            self._close_tasks_logged()
            raise

    def on_deactivate(self) -> None:
        with self._lock:
            self._stopped.set()
            self._close_tasks_logged()

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
        return self._card.device.name

    @property
    def sample_clock(self) -> dict:
        """What ticks the samples (the external clock or the card's own), for alignment."""
        return self._card.sample_clock()

    @property
    def scaling_coefficients(self) -> dict[str, list[float]]:
        """With ``raw_analog``: each input's polynomial ``[c0, c1, ...]`` (code to V), or {}."""
        tasks = self._tasks
        scaling = tasks.scaling if tasks is not None else self._scaling
        return {name: list(terms) for name, terms in scaling.items()}

    @property
    def stream_extra(self) -> dict:
        """A description's ``extra``: with ``raw_analog`` the polynomials (``raw_scaling``);
        the active digital lines as ``digital_channels``."""
        coefficients = self.scaling_coefficients
        extra = scaling_extra(coefficients) if coefficients else {}
        settings, card = self._settings, self._card
        lines = [] if settings is None else [ch for ch in settings.channels if ch in card.lines]
        if lines:
            extra["digital_channels"] = lines
        return extra

    def configure(
        self,
        active_channels: Iterable[str],
        streaming_mode: StreamingMode | int,
        channel_buffer_size: int,
        sample_rate: float,
    ) -> None:
        """Check the settings against the card, then build its tasks.

        The driver may coerce the rate: :attr:`sample_rate` tells what it set.

        Raises
        ------
        TypeError, ValueError
            If the card cannot stream these settings, with the reason; the previous settings
            stay in force.
        RuntimeError
            While streaming, or if the card is gone or in use by another program.
        """
        card = self._card
        settings = check_stream_request(
            self._constraints,
            active_channels,
            streaming_mode,
            channel_buffer_size,
            sample_rate,
            rate_check=card.checked_rate,
            buffer_note="(option max_channel_samples_buffer)",
        )
        card.check_counters(settings.channels)
        with self._lock:
            if self.module_state() == "locked":
                raise RuntimeError(
                    f"cannot configure {self.module_name} while it streams; stop it first"
                )
            self._close_tasks_logged()
            self._tasks = self._build_tasks(settings)
            self._settings = settings
            self._scaling = dict(self._tasks.scaling)

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
                self._close_tasks_logged()
                raise self._start_error(exc) from exc
            self._newest = None
            self._stopped.clear()
            self._show_streaming(True)

    def stop_stream(self) -> None:
        """Stop acquiring; the card's unread samples are discarded.

        A card that cannot stop (unplugged: DAQmx -201003) streams no more either: its tasks
        are closed, the reason is logged, and the next start builds them afresh.
        """
        with self._lock:
            self._stopped.set()
            try:
                if self._tasks is not None and self._tasks.running:
                    self._tasks.stop()
            except nidaqmx.errors.Error as exc:
                # a card that cannot stop (unplugged: -201003) streams no more either: close
                # its tasks (rebuilt at the next start) and say why
                self.log.warning(
                    "stopping %s: %s; its tasks were closed",
                    self.module_name,
                    start_failure(exc, self._card.device.name) or daq_reason(exc),
                )
                self._close_tasks_logged()
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

        Parameters
        ----------
        data_buffer : numpy.ndarray
            float64 (int16 with ``raw_analog``), ``[samples, channels]`` or flat,
            C-contiguous (see the interface).
        samples_per_channel : int
            Samples to read, at most what fits and at most the buffer size.
        timestamp_buffer : None
            This stream carries no timestamps.
        timeout : float, optional
            Seconds to wait; None means the option ``read_write_timeout``.

        Raises
        ------
        StreamTimeoutError
            If the samples did not arrive in time; nothing was consumed.
        StreamStoppedError
            If the stream stops, or a FINITE acquisition ends, before that many samples arrived.
        StreamFaultError
            If the card failed; the stream has then stopped.
        TypeError, ValueError
            If an argument is refused; nothing was consumed.
        """
        out = self._checked_buffer(data_buffer, timestamp_buffer)
        count = check_count(samples_per_channel, len(out), "samples_per_channel", "what fits")
        check_count(count, self._settings.buffer_size, "samples_per_channel", "the buffer size")
        timeout = self._card.timeout if timeout is None else check_timeout(timeout)
        if count == 0:
            return  # nothing to wait for
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
        ``max_poll_rate`` times a second. With ``raw_analog`` (int16, no NaN) zeros before
        the first read.
        """
        newest = self._newest
        if newest is None:
            dtype = self._constraints.data_type
            fill = np.nan if np.issubdtype(dtype, np.floating) else 0
            return np.full(len(self._settings.channels), fill, dtype), None
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
        self._close_tasks_logged()  # the first failure is the one to report
        self._show_streaming(False)
        card = self._card
        return StreamFaultError(
            streaming_failure(exc, card.device.name, self._settings.buffer_size, card.timeout)
        )

    def _start_error(self, exc: BaseException) -> Exception:
        if isinstance(exc, RuntimeError):  # from _build_tasks, already said plainly
            return exc
        if isinstance(exc, nidaqmx.errors.Error):
            device = self._card.device.name
            message = start_failure(exc, device)
            return RuntimeError(message or f"could not start NI card {device}: {daq_reason(exc)}")
        return exc

    def _build_tasks(self, settings: StreamRequest) -> Tasks:
        card = self._card
        try:
            tasks = Tasks(
                self._task_prefix,
                card.device,
                settings,
                card.digital,
                card.analog,
                card.external_clock,
                card.timeout,
                card.clock_terminal,
                raw=card.raw,
                lines=card.lines,
            )
        except nidaqmx.errors.Error as exc:
            message = start_failure(exc, card.device.name)
            if message is not None:  # the card, not the settings: gone, in use, miswired
                raise RuntimeError(message) from exc
            raise ValueError(
                f"NI card {self._card.device.name} refused the settings {list(settings.channels)}, "
                f"{settings.mode.name}, {settings.buffer_size} samples, {settings.rate} Hz: "
                f"{daq_reason(exc)}"
            ) from exc
        _log_tasks(self.log, tasks, self._card)
        return tasks

    def _close_tasks(self) -> None:
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            tasks.close()

    def _close_tasks_logged(self) -> None:
        """Close every task; a card that fails even that (unplugged) is logged, not raised:
        nidaqmx drops each task's handle anyway."""
        try:
            self._close_tasks()
        except Exception as exc:
            self.log.warning("closing the NI tasks of %s failed: %s", self.module_name, exc)

    def _checked_buffer(self, data_buffer: np.ndarray, timestamp_buffer: object) -> np.ndarray:
        """The caller's buffer as ``[samples, channels]``; this stream has no timestamps."""
        dtype, channels = np.dtype(self._constraints.data_type), len(self._settings.channels)
        data, _, _ = check_read_buffers(data_buffer, timestamp_buffer, channels, dtype, False)
        return data


def _log_tasks(log, tasks: Tasks, card: CardOptions) -> None:
    """Say what the driver set up, so the log of a first run on a card shows it."""
    if tasks.terminals:
        asked = {name: card.analog[name].terminal for name in tasks.terminals}
        log.info(
            "%s: terminal configuration in force: %s",
            tasks.device.name,
            ", ".join(
                f"{name} {cfg}" + (" (DEFAULT)" if asked[name] == "DEFAULT" else "")
                for name, cfg in tasks.terminals.items()
            ),
        )
    if tasks.clock_counter is not None:
        log.info(
            "%s: the sample clock is made by %s at %s Hz; its output terminal: %s",
            tasks.device.name,
            tasks.clock_counter,
            tasks.rate,
            tasks.clock_output or "none (it stays inside the card)",
        )
