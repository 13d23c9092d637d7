"""Run qudi-core in-process: one Qudi application per test session, modules from a config.

We never call ``Qudi.run()`` (it blocks and exits the process); we register the config's
modules and activate them through the real module manager, as qudi itself does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_KEEP_UNTIL_EXIT: list = []
CONFIG = Path(__file__).resolve().parent / "instream_test.cfg"  # qudi needs an absolute path


@pytest.fixture(scope="session")
def qudi_home(tmp_path_factory):
    """Everything qudi writes below ~ (status variables, logs, data) goes to a temp dir."""
    home = tmp_path_factory.mktemp("qudi_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("HOME", str(home))
    yield home
    patch.undo()


@contextlib.contextmanager
def qudi_with_modules(qapp, qudi_home: Path, config: Path):
    """The process's one Qudi application with the modules of ``config`` registered.

    qudi is one application per process, so the first suite of a session to need it creates
    it (and ends it when the session ends); a later suite with a config of its own (such as
    tests/iqo) adds its modules to the same application. Module names must differ between
    the configs.
    """
    from qudi.core.application import Qudi
    from qudi.core.config import Configuration
    from qudi.core.logger import clear_handlers

    app = Qudi.instance()
    if app is not None:
        configuration = Configuration()
        configuration.load(str(config), set_default=False)
        for base in ("hardware", "logic", "gui"):
            for name, module_config in configuration[base].items():
                if name not in app.module_manager:
                    app.module_manager.add_module(name=name, base=base, configuration=module_config)
        yield app
        return

    log_dir = qudi_home / "log"
    log_dir.mkdir()
    app = Qudi(no_gui=False, debug=False, log_dir=str(log_dir), config_file=str(config))
    app._configure_qudi()
    yield app
    app.module_manager.stop_all_modules()
    # no module_manager.clear(): in qudi-core 1.8 removing modules fires weakref callbacks
    # that fail (they deactivate a module that is already gone); Qudi lives until exit anyway
    app.thread_manager.quit_all_threads()
    qapp.processEvents()
    clear_handlers()
    sys.excepthook = sys.__excepthook__  # qudi's hook is a bound method that keeps Qudi alive
    # qudi-core 1.8.0: the weak reference to Qudi that its modules share calls a callback of
    # the wrong signature when Qudi is collected; keep Qudi alive until the process ends
    _KEEP_UNTIL_EXIT.append(app)


@pytest.fixture(scope="session")
def qudi(qapp, qudi_home):
    with qudi_with_modules(qapp, qudi_home, CONFIG) as app:
        yield app


@pytest.fixture
def module_manager(qudi):
    manager = qudi.module_manager
    yield manager
    manager.stop_all_modules()


@pytest.fixture
def activate(module_manager):
    """Activate a module of the test config and return its instance."""

    def activate_module(name: str):
        module_manager.activate_module(name)
        return module_manager[name].instance

    return activate_module


@pytest.fixture(autouse=True)
def fail_on_qudi_errors(caplog, request):
    """qudi logs and swallows exceptions in on_activate and slots: make them test failures.

    Tests that expect logged errors take them with the ``expected_qudi_errors`` fixture.
    """
    yield
    if "expected_qudi_errors" in request.fixturenames:
        return
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, "\n".join(r.getMessage() for r in errors)


@pytest.fixture
def expected_qudi_errors(caplog):
    """The error records qudi logs during the test (the test checks them itself)."""

    def errors() -> list[str]:
        """Each error's message, with the text of the exception it was logged with."""
        return [
            " ".join([r.getMessage(), *([str(r.exc_info[1])] if r.exc_info else [])])
            for r in caplog.get_records("call")
            if r.levelno >= logging.ERROR
        ]

    return errors
