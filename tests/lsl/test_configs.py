"""The LSL modules' docstring example configs and cfg/instream_lsl.cfg say what the code does."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from qudi.core.config.validator import validate_config
from qudi.util.yaml import yaml_load

from tests.qudi.test_configs import _check_against_class, yaml_load_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module_name", ["qudi.hardware.instream.lsl", "qudi.hardware.instream.lsl_outlet"]
)
def test_docstring_example_config_is_valid(module_name):
    module = importlib.import_module(module_name)
    example = re.search(r"::\n\n((?:    .*\n|\n)+)", module.__doc__).group(1)
    config = {"hardware": yaml_load_text(example)}
    validate_config(config)
    for name, entry in config["hardware"].items():
        module_path, class_name = entry["module.Class"].rsplit(".", 1)
        assert f"qudi.hardware.{module_path}" == module_name
        _check_against_class(name, entry, getattr(module, class_name))


def test_the_example_config_goes_both_ways():
    config = yaml_load(str(ROOT / "cfg" / "instream_lsl.cfg"))
    hardware = config["hardware"]
    assert hardware["lsl_outlet"]["module.Class"] == "instream.lsl_outlet.LslOutlet"
    assert hardware["lsl_outlet"]["connect"] == {"streamer": "lsl_out_buffer"}
    assert hardware["lsl_out_buffer"]["connect"] == {"streamer": "instream_dummy"}
    assert hardware["lsl_in"]["module.Class"] == "instream.lsl.LslInStreamer"
    assert hardware["lsl_in_buffer"]["connect"] == {"streamer": "lsl_in"}
    assert config["logic"]["lsl_time_series_logic"]["connect"] == {"streamer": "lsl_in_buffer"}
