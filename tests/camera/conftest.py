"""Camera modules in the session's in-process qudi (see ``tests/qudi/conftest.py``).

The modules of ``camera_test.cfg`` and of the demo ``cfg/instream_camera.cfg`` are added to the
one qudi application of the test session; qudi-iqo-modules' camera dummy (installed with
``--no-deps``) is among them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "qudi"))  # qudi_process, as tests/qudi imports it

import tests.qudi.conftest as qudi_fixtures  # noqa: E402

CONFIG = HERE / "camera_test.cfg"  # qudi needs an absolute path
DEMO = HERE.parents[1] / "cfg" / "instream_camera.cfg"

qudi_home = qudi_fixtures.qudi_home
module_manager = qudi_fixtures.module_manager
fail_on_qudi_errors = qudi_fixtures.fail_on_qudi_errors
expected_qudi_errors = qudi_fixtures.expected_qudi_errors


@pytest.fixture(scope="session")
def qudi(qapp, qudi_home):
    with qudi_fixtures.qudi_with_modules(qapp, qudi_home, CONFIG) as app:
        with qudi_fixtures.qudi_with_modules(qapp, qudi_home, DEMO):
            yield app


@pytest.fixture
def activate(module_manager):
    """Activate a module and return its instance (saved status variables of the camera
    modules are removed first, so each test starts from the defaults)."""

    def activate_module(name: str):
        if module_manager[name].state in ("not loaded", "deactivated"):
            module_manager.clear_module_app_data(name)
        module_manager.activate_module(name)
        return module_manager[name].instance

    return activate_module
