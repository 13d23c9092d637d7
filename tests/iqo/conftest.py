"""qudi-iqo-modules' real modules wired to ours in the session's in-process qudi.

qudi-iqo-modules 1.0.0 is installed with ``--no-deps`` (scripts/setup.sh): it pins qudi-core
1.7.0 and other exact versions no resolver can combine with ours, but its dummy, logic and GUI
run under qudi-core 1.8 unchanged. The modules are those of ``iqo_test.cfg``, added to the one
qudi application of the test session (see ``tests/qudi/conftest.py``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "qudi"))  # qudi_process, as tests/qudi imports it

import tests.qudi.conftest as qudi_fixtures  # noqa: E402

CONFIG = HERE / "iqo_test.cfg"  # qudi needs an absolute path

qudi_home = qudi_fixtures.qudi_home
module_manager = qudi_fixtures.module_manager
fail_on_qudi_errors = qudi_fixtures.fail_on_qudi_errors
expected_qudi_errors = qudi_fixtures.expected_qudi_errors


@pytest.fixture(scope="session")
def qudi(qapp, qudi_home):
    if importlib.util.find_spec("qudi.interface.data_instream_interface") is None:
        pytest.fail(
            "tests/iqo needs qudi-iqo-modules 1.0.0, which scripts/setup.sh installs "
            "(pip install --no-deps qudi-iqo-modules==1.0.0)"
        )
    with qudi_fixtures.qudi_with_modules(qapp, qudi_home, CONFIG) as app:
        yield app


@pytest.fixture
def activate(module_manager):
    """Activate a module of iqo_test.cfg and return its instance. The saved status variables
    of the config's modules are removed first, so each test starts from the defaults."""
    names = [name for name in module_manager.module_names if name.startswith(("iqo_", "our_"))]

    def activate_module(name: str):
        for other in names:
            if module_manager[other].state in ("not loaded", "deactivated"):
                module_manager.clear_module_app_data(other)
        module_manager.activate_module(name)
        return module_manager[name].instance

    return activate_module
