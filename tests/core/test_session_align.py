"""Offline realignment of a recorded session: the same times the live time model gives."""

from __future__ import annotations

import time

import numpy as np
import pytest

from qudi.util.instream import StreamHub, StreamRing
from qudi.util.instream.alignment import FITTED
from qudi.util.instream.session import open_session
from qudi.util.instream.session_align import align_session, realign_session, realign_stream
from qudi.util.instream.session_recorder import SessionRecorder
from qudi.util.instream.simulated import SimulatedSource
from qudi.util.instream.stream_clock import StreamClock

from .test_recorder import wait_until


def test_realigned_times_are_those_of_the_live_clock(tmp_path):
    path = tmp_path / "aligned.h5"
    fast = SimulatedSource(("ramp",), sample_rate=1000.0)
    slow = SimulatedSource(("wavelength",), sample_rate=20.0, sample_timing="TIMESTAMP")
    before = time.monotonic()
    with (
        StreamHub(fast, name="align_fast", shared=False, max_poll_rate=50) as fast_hub,
        StreamHub(slow, name="align_slow", shared=False, max_poll_rate=50) as slow_hub,
    ):
        readers = {"fast": fast_hub.open_reader("rec"), "slow": slow_hub.open_reader("rec")}
        for reader in readers.values():
            reader.start()
        recorder = SessionRecorder(readers, path, flush_interval=0.2)
        recorder.start()
        wait_until(lambda: recorder.samples_written["slow"] >= 20, timeout=10)
        for reader in readers.values():  # the streams end: the recorder takes every row
            reader.stop()
        assert recorder.wait(5.0)
        live = {
            label: StreamClock(hub.ring) for label, hub in (("fast", fast_hub), ("slow", slow_hub))
        }
        for clock in live.values():
            assert clock.refresh() is not None
        with open_session(path) as session:
            aligned = realign_session(session)
            stamps = session.streams["slow"].read(0, session.streams["slow"].rows)[1]
            lined_up = align_session(session)
            slow_ramp = session.streams["slow"].read(0, session.streams["slow"].rows)[0][:, 0]
    after = time.monotonic()
    assert set(aligned) == {"fast", "slow"}
    fast_times = aligned["fast"]
    np.testing.assert_allclose(
        fast_times.times, live["fast"].time_of(fast_times.sample_indices), rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        aligned["slow"].times, live["slow"].time_of_stamps(stamps), rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        fast_times.uncertainty, live["fast"].uncertainty_of(fast_times.sample_indices), rtol=1e-9
    )
    for stream in aligned.values():  # on the host's clock, inside the recording's span
        assert before - 0.1 < stream.times[0] and stream.times[-1] < after + 0.1
        assert np.all(np.diff(stream.times) > 0) and np.all(stream.uncertainty >= 0)
        assert abs(stream.drift_ppm) < 1e4

    # the slow stream at each fast sample, as the live AlignedReader lines them up
    assert lined_up.primary == "fast" and lined_up.methods == {"slow": FITTED}
    values = lined_up.values["slow"][:, 0]
    known = ~np.isnan(values)
    assert lined_up.missing["slow"] == np.count_nonzero(~known) < len(values)
    assert np.all(np.diff(np.flatnonzero(known)) == 1)  # one span, NaN only before and after
    assert np.all(np.diff(values[known]) >= 0)  # the slow ramp, rising with the fast samples
    # where the fast stream took sample i, the slow one was at (fractional) sample values[i]
    slow_host = aligned["slow"].time.time_of(None, np.interp(values[known], slow_ramp, stamps))
    error = np.abs(slow_host - fast_times.times[known])
    allowed = 5e-3 + fast_times.uncertainty[known] + aligned["slow"].uncertainty.max()
    assert np.all(error <= allowed), f"worst {error.max() * 1e3:.2f} ms"


def test_a_stream_without_a_time_table_is_named(tmp_path):
    path = tmp_path / "private.h5"
    with StreamRing(1024, (1,)) as ring:  # a private ring: no pump, no time table
        with SessionRecorder({"private": ring.reader()}, path) as recorder:
            ring.write(np.zeros((10, 1)))
            wait_until(lambda: recorder.samples_written["private"] == 10)
    with open_session(path) as session:
        assert realign_session(session) == {}
        with pytest.raises(ValueError, match="'private' has no time table"):
            realign_stream(session.streams["private"])
