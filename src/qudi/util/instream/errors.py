"""Exceptions of the stream core.

Every error says what happened in words a scientist understands and carries the numbers
(samples lost, reader names) as attributes so code can react to it.
"""

from __future__ import annotations

from collections.abc import Iterable


def format_count(count: int) -> str:
    """Group digits with thin spaces, as in "1 048 576", so large sample counts read at a glance."""
    return f"{count:,}".replace(",", " ")


def format_bytes(count: int) -> str:
    """A byte count for people: "61.0 MiB", "16.0 EiB"."""
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024:
            return f"{count} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} EiB"


class StreamError(RuntimeError):
    """Base class of every error raised by the stream core."""


class StreamOverrunError(StreamError):
    """A reader that does not allow overwriting fell behind the writer and lost samples.

    The reader has already moved past the gap: its next read continues with the oldest sample
    still in the ring, so a caller can log the loss and go on reading.
    """

    def __init__(self, reader_name: str, lost: int, gap_start: int, resume_position: int):
        self.reader_name = reader_name
        self.lost = lost
        self.gap_start = gap_start
        self.resume_position = resume_position
        super().__init__(
            f"reader '{reader_name}' fell behind and lost {format_count(lost)} samples "
            f"(overwrite not allowed); samples {gap_start} to {resume_position - 1} are gone and "
            f"reading resumes at sample {resume_position}"
        )


class StreamStoppedError(StreamError):
    """A blocking read cannot be satisfied because the stream (or this reader) is not running."""


class StreamFaultError(StreamError):
    """The data source failed while streaming; the original exception is chained as __cause__."""


class StreamBusyError(StreamError):
    """A configuration change was asked for while readers are running."""

    def __init__(self, running_readers: Iterable[str], change: str):
        self.running_readers = tuple(running_readers)
        names = ", ".join(f"'{name}'" for name in self.running_readers)
        super().__init__(f"cannot {change} while readers are running: {names}; stop them first")


class StreamTimeoutError(StreamError, TimeoutError):
    """A blocking read did not get its samples within its timeout; nothing was consumed."""


class StreamFormatError(StreamError, ValueError):
    """A shared-memory block is not a stream ring of a layout this version understands."""


class StreamNotFoundError(StreamError, FileNotFoundError):
    """No stream of the given name exists on this host."""


class StreamCapacityError(StreamError, ValueError):
    """A ring of the asked-for capacity does not fit in this machine's (shared) memory.

    Parameters
    ----------
    message
        What did not fit, and where.
    capacity
        The ring's capacity in samples; None where only a block's size is known (a shared
        block that the block layer could not reserve).
    nbytes
        The bytes it needed.
    """

    def __init__(self, message: str, capacity: int | None, nbytes: int):
        self.capacity = capacity
        self.nbytes = nbytes
        super().__init__(message)
