"""LSL tests: real pylsl (liblsl) on this host only, and the session's in-process qudi.

liblsl reads its configuration once per process, when it is first used: this file, imported
before any test runs, points ``LSLAPICFG`` at a config that keeps LSL on this machine
(``ResolveScope = machine``, multicast only to 127.0.0.1) and off IPv6. Stream names carry
this process's id, so that another test run on the same host resolves none of ours.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from qudi.util.instream.lsl_support import LOOPBACK_CONFIG

_CONFIG_DIR = Path(tempfile.mkdtemp(prefix="lsl_api_"))
(_CONFIG_DIR / "lsl_api.cfg").write_text(LOOPBACK_CONFIG + "[log]\nlevel = -2\n")
os.environ["LSLAPICFG"] = str(_CONFIG_DIR / "lsl_api.cfg")

pylsl = pytest.importorskip("pylsl")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "qudi"))  # qudi_process, as tests/qudi imports it

import tests.qudi.conftest as qudi_fixtures  # noqa: E402

TAG = f"t{os.getpid()}"  # in every LSL stream name of this run
TEMPLATE = HERE / "lsl_test.cfg"

qudi_home = qudi_fixtures.qudi_home
module_manager = qudi_fixtures.module_manager
fail_on_qudi_errors = qudi_fixtures.fail_on_qudi_errors
expected_qudi_errors = qudi_fixtures.expected_qudi_errors


def wait_until(condition, timeout: float = 10.0, what: str = "the condition"):
    """Poll ``condition`` until it is truthy; fail after ``timeout`` s. Returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture(scope="session")
def qudi(qapp, qudi_home, tmp_path_factory):
    """The session's qudi with the modules of lsl_test.cfg (stream names tagged with the pid)."""
    config = tmp_path_factory.mktemp("lsl_cfg") / "lsl_test.cfg"
    config.write_text(TEMPLATE.read_text().replace("@TAG@", TAG))
    with qudi_fixtures.qudi_with_modules(qapp, qudi_home, config) as app:
        yield app


@pytest.fixture
def activate(module_manager):
    """Activate a module of lsl_test.cfg (saved status variables cleared) and return it."""
    names = [name for name in module_manager.module_names if name.startswith("lsl_")]

    def activate_module(name: str):
        for other in names:
            if module_manager[other].state in ("not loaded", "deactivated"):
                module_manager.clear_module_app_data(other)
        module_manager.activate_module(name)
        return module_manager[name].instance

    return activate_module


class PlainOutlet:
    """A plain pylsl outlet as any LSL device would run it: ramp values on channel 0, sample
    ``k`` stamped ``t0 + k / rate``, pushed in chunks when asked."""

    def __init__(self, name: str, channels: int = 3, rate: float = 1000.0, source_id=None):
        self.name, self.rate, self.channels = name, rate, channels
        self.source_id = source_id or f"{name}-src"
        self.next = 0
        self.t0 = pylsl.local_clock()
        self.outlet = None
        self.open()

    def open(self):
        info = pylsl.StreamInfo(
            self.name, "Test", self.channels, self.rate, pylsl.cf_float32, self.source_id
        )
        chans = info.desc().append_child("channels")
        for i in range(self.channels):
            chan = chans.append_child("channel")
            chan.append_child_value("label", "ramp" if i == 0 else f"c{i}")
            chan.append_child_value("unit", "samples" if i == 0 else "uV")
        self.outlet = pylsl.StreamOutlet(info)

    def close(self):
        self.outlet = None  # pylsl destroys it: the stream is gone for LSL

    def chunk(self, count: int):
        import numpy as np

        k = np.arange(self.next, self.next + count)
        data = np.empty((count, self.channels), np.float32)
        data[:, 0] = k
        data[:, 1:] = (k[:, None] % 7) * np.arange(1, self.channels)
        return k, data

    def push(self, count: int, skip: int = 0):
        """Push ``count`` samples (after leaving ``skip`` sample numbers out)."""
        import numpy as np

        self.next += skip
        k, data = self.chunk(count)
        times = self.t0 + k / self.rate
        self.outlet.push_chunk(data, list(times)) if count < 64 else self.outlet.push_chunk(
            data, float(times[-1])
        )
        self.next += count
        return np.asarray(times)

    def wait_for_consumers(self, timeout: float = 10.0) -> bool:
        return self.outlet.wait_for_consumers(timeout)


@pytest.fixture
def plain_outlet():
    """Make plain pylsl outlets; all are destroyed at teardown."""
    made = []

    def make(name: str, **kwargs) -> PlainOutlet:
        outlet = PlainOutlet(name, **kwargs)
        made.append(outlet)
        return outlet

    yield make
    for outlet in made:
        outlet.close()
