"""FilteredReader: one consumer's cursor seen through its own filter chain.

It reads the input samples its outputs need from the cursor it wraps (a
:class:`~qudi.util.instream.reader.RingReader` or a hub's reader) into a scratch block of its
own, filters them and copies the result into the caller's buffer. A consumer without filters
keeps its plain reader: filters cost nothing to those who use none.

Losses are never filtered across: every input piece is read so that a gap can only come before
it, and the chain's state is reset at a gap (the count is in :attr:`FilteredReader.resets`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from qudi.util.instream.arrays import check_count, check_read_buffers, check_timeout
from qudi.util.instream.errors import (
    StreamOverrunError,
    StreamStoppedError,
    StreamTimeoutError,
    format_count,
)
from qudi.util.instream.filters import ChunkFormat, FilterChain, build_chain
from qudi.util.instream.reader import blocking_read_limit

__all__ = ["FilteredReader", "filtered"]


def filtered(reader: Any, spec: object, key: str = "filters") -> Any:
    """``reader`` itself if ``spec`` has no stage, else a :class:`FilteredReader` on it.

    Raises
    ------
    FilterSpecError
        For a spec refused for this stream (key, value and what would be valid).
    """
    chain = build_chain(spec, ChunkFormat.of_ring(reader.ring), key)
    return FilteredReader(reader, chain) if len(chain) else reader


class FilteredReader:
    """A reader whose samples pass ``chain`` first; reads count output samples.

    Parameters
    ----------
    reader
        The cursor to read (it must have ``ring``: a ring or hub reader).
    chain
        Built for the reader's stream format (:func:`~qudi.util.instream.filters.build_chain`).
    """

    def __init__(self, reader: Any, chain: FilterChain):
        self._inner = reader
        self.chain = chain
        self.format = chain.output
        self.resets = 0  # chain state resets at gaps
        self._scratch = np.empty((0, chain.input.channels), chain.input.dtype)
        self._stamps: np.ndarray | None = None
        self._lost_seen = reader.lost

    # ----------------------------------------------------------------- the cursor's face
    @property
    def inner(self) -> Any:
        return self._inner

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def allow_overwrite(self) -> bool:
        return self._inner.allow_overwrite

    @property
    def ring(self) -> Any:
        return self._inner.ring

    @property
    def running(self) -> bool:
        return self._inner.running

    @property
    def lost(self) -> int:
        """Input samples lost (before filtering)."""
        return self._inner.lost

    @property
    def position(self) -> int:
        """Index of the next input sample to read."""
        return self._inner.position

    @property
    def available(self) -> int:
        """Output samples the input samples available now give."""
        return self.chain.outputs_for(self._inner.available)

    @property
    def fill(self) -> float:
        return self._inner.fill

    def start(self) -> None:
        """Start the inner reader; a new run starts the filters afresh."""
        self._inner.start()
        self._restart()

    def stop(self) -> None:
        self._inner.stop()

    def close(self) -> None:
        self._inner.close()

    # ----------------------------------------------------------------------------- reads
    def read_into(
        self,
        out: np.ndarray,
        n: int | None = None,
        *,
        timeout: float | None = None,
        timestamps: np.ndarray | None = None,
    ) -> int:
        """Block until ``n`` filtered samples are there and copy them into ``out``.

        ``out`` is ``[n, channels]`` (or flat) of the chain's output dtype. Raises as
        :meth:`RingReader.read_into`; a read of more input than a blocking read may wait for
        (15/16 of the ring) is made in parts, and a timeout between parts keeps what came.
        """
        samples, stamps, room = self._buffers(out, timestamps)
        n = room if n is None else check_count(n, room, "n", "the room in the output buffers")
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        done = 0
        while done < n:
            need = self.chain.inputs_for(n - done)
            step = min(need, blocking_read_limit(self.ring.capacity))
            self._wait_for(step, deadline, timeout, done)
            part = None if stamps is None else stamps[done:]
            done += self._read_pieces(samples[done:n], part, done, step)
        return n

    def read_available_into(self, out: np.ndarray, *, timestamps: np.ndarray | None = None) -> int:
        """Filter what is available and fits into ``out``; never blocks."""
        samples, stamps, room = self._buffers(out, timestamps)
        self._check_inner()
        inputs = min(self._inner.available, self.chain.inputs_for(room))
        return self._read_pieces(samples[:room], stamps, 0, inputs) if inputs else 0

    def latest(self, n: int, *, with_timestamps: bool = False) -> Any:
        """The newest ``n`` filtered samples (nothing consumed), filtered afresh from a zero
        state over the input they need and 1024 samples before (an IIR filter's transient
        may show in them)."""
        chain = self.chain.fresh()
        need = chain.inputs_for(n)
        warm = min(need + 1024 * max(1, need // max(n, 1)), self.ring.capacity)
        got = self._inner.latest(warm, with_timestamps=with_timestamps)
        data, stamps = got if with_timestamps else (got, None)
        index = chain.kept_indices(len(data))
        result = chain.process(data)[-n:] if n else chain.process(data)[:0]
        if with_timestamps:
            assert stamps is not None
            return result, stamps[index][-n:] if n else stamps[:0]
        return result

    # -------------------------------------------------------------------------- internals
    def _buffers(self, out: Any, timestamps: Any) -> tuple[np.ndarray, np.ndarray | None, int]:
        fmt = self.format
        return check_read_buffers(
            out, timestamps, (fmt.channels,), fmt.dtype, self.ring.has_timestamps
        )

    def _restart(self, phase: bool = True) -> None:
        self.chain.reset(phase)
        self._lost_seen = self._inner.lost

    def _check_inner(self, done: int = 0) -> None:
        """Raise what the inner reader would raise now (fault, closed, a loss not allowed:
        ``done`` outputs of this read came before it); a read of nothing checks it all and
        consumes nothing."""
        try:
            self._inner.read_available_into(self._scratch[:0])
        except StreamOverrunError as exc:
            self._gap()
            exc.delivered = done  # type: ignore[attr-defined]
            raise

    def _stamp_view(self, n: int) -> np.ndarray | None:
        if not self.ring.has_timestamps:
            return None
        if self._stamps is None or len(self._stamps) < n:
            self._stamps = np.empty(max(n, 1024))
        return self._stamps[:n]

    def _wait_for(
        self, step: int, deadline: float | None, timeout: float | None, done: int
    ) -> None:
        """Wait until ``step`` input samples are available (or raise, nothing consumed)."""
        inner = self._inner
        self._check_inner(done)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ring = self.ring

        def ready() -> bool:
            return ring.closed or inner.available >= step or not inner.running

        ring.wait(ready, remaining)
        self._check_inner(done)
        if inner.available >= step:
            return
        have = self.chain.outputs_for(inner.available)
        if not inner.running:
            raise StreamStoppedError(
                f"reader '{self.name}' stopped with {format_count(have)} filtered samples left; "
                f"{format_count(done)} were read"
            )
        raise StreamTimeoutError(
            f"reader '{self.name}': the input for its filtered samples did not arrive within "
            f"{timeout} s ({format_count(have)} filtered samples available); "
            f"{format_count(done)} were read"
        )

    def _read_pieces(
        self, samples: np.ndarray, stamps: np.ndarray | None, done: int, inputs: int
    ) -> int:
        """Read up to ``inputs`` input samples (available now) piece by piece and filter them
        into ``samples`` (never more outputs than it holds); returns the outputs written.
        A gap resets the chain before the piece after it; one not allowed is raised with
        ``delivered``: the outputs of this read before it (``done`` came in earlier parts)."""
        inner = self._inner
        chain = self.chain
        if len(self._scratch) < inputs:
            self._scratch = np.empty((inputs, chain.input.channels), chain.input.dtype)
        written = 0
        while inputs > 0 and written < len(samples):
            piece = min(inputs, chain.inputs_for(len(samples) - written))
            block = self._scratch[:piece]
            block_stamps = self._stamp_view(piece) if stamps is not None else None
            try:
                got = inner.read_available_into(block, timestamps=block_stamps)
            except StreamOverrunError as exc:
                self._gap()
                exc.delivered = done + written  # type: ignore[attr-defined]
                raise
            if inner.lost != self._lost_seen:  # an allowed loss: it came before this piece
                self._gap()
            if got == 0:
                break
            index = chain.kept_indices(got) if block_stamps is not None else None
            result = chain.process(block[:got])
            count = len(result)
            samples[written : written + count] = result
            if stamps is not None and block_stamps is not None and index is not None:
                stamps[written : written + count] = block_stamps[index]
            written += count
            inputs -= got
        return written

    def _gap(self) -> None:
        self._restart(phase=False)
        self.resets += 1
