"""Every camera module's docstring starts with an example config that is valid and true:
qudi accepts it, and it names only options and connectors the class has."""

from __future__ import annotations

import importlib
import io
import re

import pytest
from qudi.core.config.validator import validate_config
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from ruamel.yaml import YAML

MODULES = [
    "qudi.hardware.instream.camera_dummy",
    "qudi.hardware.instream.camera_buffer",
    "qudi.hardware.instream.camera_roi",
    "qudi.hardware.instream.camera_interfuse",
    "qudi.logic.instream.camera_viewer_logic",
    "qudi.logic.instream.camera_recorder_logic",
    "qudi.gui.instream.camera_viewer_gui",
]


def _declared(cls, kind) -> set[str]:
    return {v.name for base in cls.__mro__ for v in vars(base).values() if isinstance(v, kind)}


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_example_config_is_valid(module_name):
    module = importlib.import_module(module_name)
    example = re.search(r"::\n\n((?:    .*\n|\n)+)", module.__doc__).group(1)
    base = module_name.split(".")[1]
    config = {base: YAML(typ="safe").load(io.StringIO(example))}
    validate_config(config)
    for name, entry in config[base].items():
        path, class_name = entry["module.Class"].rsplit(".", 1)
        assert f"qudi.{base}.{path}" == module_name
        cls = getattr(module, class_name)
        unknown = set(entry.get("options") or {}) - _declared(cls, ConfigOption)
        assert not unknown, f"{name}: {class_name} has no options {unknown}"
        unknown = set(entry.get("connect") or {}) - _declared(cls, Connector)
        assert not unknown, f"{name}: {class_name} has no connectors {unknown}"
