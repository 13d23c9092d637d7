"""Every config we ship is valid qudi config, and every module's docstring example is true."""

from __future__ import annotations

import importlib
import io
import re
from pathlib import Path

import pytest
from qudi.core.config.config import Configuration
from qudi.core.config.validator import validate_config
from qudi.core.configoption import ConfigOption
from qudi.core.connector import Connector
from qudi.util.yaml import yaml_load
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "cfg").glob("*.cfg")) + [Path(__file__).with_name("instream_test.cfg")]
MODULES = [
    "qudi.hardware.instream.dummy",
    "qudi.hardware.instream.buffer",
    "qudi.hardware.instream.ni_daq",
    "qudi.hardware.instream.event_dummy",
    "qudi.hardware.instream.sync",
    "qudi.hardware.instream.replay",
    "qudi.hardware.instream.lsl",
    "qudi.hardware.instream.lsl_outlet",
    "qudi.hardware.instream.camera_dummy",
    "qudi.hardware.instream.camera_buffer",
    "qudi.hardware.instream.camera_roi",
    "qudi.hardware.instream.camera_interfuse",
    "qudi.hardware.instream.markers",
    "qudi.logic.instream.time_series_reader_logic",
    "qudi.logic.instream.camera_viewer_logic",
    "qudi.logic.instream.camera_recorder_logic",
    "qudi.gui.instream.time_series_gui",
    "qudi.gui.instream.camera_viewer_gui",
]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid_and_names_classes_that_exist(path):
    config = yaml_load(str(path))
    validate_config(config)
    for base in ("hardware", "logic", "gui"):
        for name, module in (config.get(base) or {}).items():
            if "native_module_name" in module:
                continue  # another qudi's module: see test_remote_client_names_a_shared_module
            module_path, class_name = module["module.Class"].rsplit(".", 1)
            cls = getattr(importlib.import_module(f"qudi.{base}.{module_path}"), class_name)
            _check_against_class(name, module, cls)


def test_remote_client_names_a_shared_module_of_the_server_config():
    server = yaml_load(str(ROOT / "cfg" / "instream_remote_server.cfg"))
    client = yaml_load(str(ROOT / "cfg" / "instream_remote_client.cfg"))
    remote = client["hardware"]["instream_dummy"]
    assert remote["port"] == server["global"]["remote_modules_server"]["port"]
    assert remote["address"] == server["global"]["remote_modules_server"]["address"]
    shared = server["hardware"][remote["native_module_name"]]
    assert shared["allow_remote"] is True
    assert client["global"]["namespace_server_port"] != server["global"]["namespace_server_port"]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_example_config_is_valid(module_name):
    module = importlib.import_module(module_name)
    example = re.search(r"::\n\n((?:    .*\n|\n)+)", module.__doc__).group(1)
    base = module_name.split(".")[1]  # hardware, logic or gui
    config = {base: yaml_load_text(example)}
    validate_config(config)
    for name, entry in config[base].items():
        module_path, class_name = entry["module.Class"].rsplit(".", 1)
        assert f"qudi.{base}.{module_path}" == module_name
        _check_against_class(name, entry, getattr(module, class_name))


def test_dummy_demo_config_is_the_seed_topology():
    config = yaml_load(str(ROOT / "cfg" / "instream_dummy.cfg"))
    dummy = config["hardware"]["instream_dummy"]["options"]
    assert dummy["channel_names"] == ["APD", "analog 1"]
    assert dummy["channel_units"] == ["Hz", "V"]
    assert dummy["channel_signals"] == ["counts", "sine"]
    for buffer in ("stream_buffer1", "stream_buffer2"):
        entry = config["hardware"][buffer]
        assert entry["connect"] == {"streamer": "instream_dummy"}
        assert entry["options"] == {"allow_overwrite": False, "max_poll_rate": 30.0}


def yaml_load_text(text: str):
    return YAML(typ="safe").load(io.StringIO(text))


def _check_against_class(name, entry, cls):
    options = {v.name for v in vars(cls).values() if isinstance(v, ConfigOption)}
    for base in cls.__mro__:
        options |= {v.name for v in vars(base).values() if isinstance(v, ConfigOption)}
    connectors = set()
    for base in cls.__mro__:
        connectors |= {v.name for v in vars(base).values() if isinstance(v, Connector)}
    unknown_options = set(entry.get("options") or {}) - options
    unknown_connectors = set(entry.get("connect") or {}) - connectors
    assert not unknown_options, f"{name}: {cls.__name__} has no options {unknown_options}"
    assert not unknown_connectors, f"{name}: {cls.__name__} has no connectors {unknown_connectors}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_qudi_loads_the_config_as_it_would_at_start_up(path):
    configuration = Configuration()
    configuration.load(str(path), set_default=False)  # raises on an invalid config
    assert configuration.module_names
