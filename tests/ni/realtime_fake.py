"""A pytest plugin that puts the fake card behind nidaqmx for a whole run, its clock running
in real time: ``test_ni_hardware_on_fake.py`` runs the hardware checks with it, so they are
known to work before anyone takes them to a card.

Loaded with ``-p realtime_fake`` (``tests/ni`` on ``sys.path``) before the hardware tests are
imported, since they look for a device at import.
"""

from __future__ import annotations

import threading
import time

import nidaqmx.utils
from fake_daqmx import FakeDaqmx, SimulatedCard

FAKE = FakeDaqmx(SimulatedCard())
nidaqmx.utils._select_interpreter = FAKE.select_interpreter
_STOP = threading.Event()


def _tick() -> None:
    last = time.monotonic()
    while not _STOP.wait(0.002):
        now = time.monotonic()
        FAKE.advance(now - last)
        last = now


_CLOCK = threading.Thread(target=_tick, name="fake-card-clock", daemon=True)
_CLOCK.start()


def pytest_unconfigure(config) -> None:
    _STOP.set()
    _CLOCK.join(5)
    assert not FAKE.open_tasks(), [t.name for t in FAKE.open_tasks()]
