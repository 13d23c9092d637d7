"""DAQmx errors of the NI streamer, said the way a scientist at the setup needs to hear them.

:func:`streaming_failure` describes an error that stopped a running stream; :func:`start_failure`
one that kept a stream from starting (or its tasks from being built). Both name what happened,
what to do, and end with the DAQmx code, so a search for the code still finds NI's documents.
Codes from nidaqmx's ``error_codes``.
"""

from __future__ import annotations

from qudi.hardware.instream.ni_tasks import (
    DEVICE_GONE,
    OVERFLOW,
    READ_TIMEOUT,
    RESOURCE_RESERVED,
    daq_reason,
    device_gone,
)

__all__ = ["FIFO_OVERFLOWS", "start_failure", "streaming_failure"]

FIFO_OVERFLOWS = (-200361, -200010)  # INPUT_FIFO_OVERFLOW_2, INPUT_FIFO_OVERFLOW
COUNTER_OVERFLOW = -200141
ADC_OVERRUN = -200019
ROUTE_ERRORS = (-89137, -89125)  # a route in use; a terminal that makes no such signal


def error_code(exc: BaseException) -> int | None:
    return getattr(exc, "error_code", None)


def streaming_failure(exc: BaseException, device: str, buffer_size: int, timeout: float) -> str:
    """What to tell the user when ``exc`` stopped the stream of card ``device``."""
    code = error_code(exc)
    if code in DEVICE_GONE:
        return device_gone(device, code)
    if code == OVERFLOW:
        what = (
            f"the buffer of NI card {device} ({buffer_size} samples per channel) overflowed: "
            "the stream was not read fast enough, so the acquisition stopped and samples were "
            "lost; start the stream again (a larger channel_buffer_size or more frequent reads "
            "prevent this)"
        )
    elif code in FIFO_OVERFLOWS:
        what = (
            f"the card's memory overflowed on NI card {device}: the bus (PCIe or USB) did not "
            "carry the samples to the computer fast enough, and samples were lost; a larger "
            "buffer does not help: lower the sample rate, stream fewer channels or give the "
            "card a bus of its own"
        )
    elif code == COUNTER_OVERFLOW:
        what = (
            f"a counter's samples were overwritten on NI card {device} before the bus carried "
            "them away, and samples were lost; a larger buffer does not help: lower the sample "
            "rate or count fewer PFI lines"
        )
    elif code == ADC_OVERRUN:
        what = (
            f"the analog converter of NI card {device} was clocked faster than it can convert: "
            "the external sample clock runs faster than external_sample_clock_frequency says; "
            "set that option at or above the clock's highest frequency"
        )
    elif code == READ_TIMEOUT:
        what = (
            f"a read of NI card {device} timed out after {timeout} s although the samples "
            "were reported available; the stream was stopped"
        )
    else:
        return f"NI card {device} failed while streaming: {daq_reason(exc)}"
    return f"{what} (DAQmx error {code})"


def start_failure(exc: BaseException, device: str) -> str | None:
    """What to tell the user when ``exc`` kept card ``device`` from starting or from building
    its tasks, or None if it is a refusal of the settings themselves."""
    code = error_code(exc)
    if code in DEVICE_GONE:
        return device_gone(device, code)
    if code == RESOURCE_RESERVED:
        return (
            f"NI card {device} is in use by another task or program (a counter, the analog "
            "inputs or the clocked digital inputs are reserved): close it there and start again "
            f"(DAQmx error {code})"
        )
    if code in ROUTE_ERRORS:
        return (
            f"NI card {device} cannot route a clock or an input as configured (a terminal "
            "used twice, or by another program): check digital_sources, "
            f"external_sample_clock_source and clock_output_terminal; {daq_reason(exc)}"
        )
    return None
