"""The NI config we ship and the module's docstring example activate on the fake card."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from qudi.core.config.validator import validate_config
from qudi.util.yaml import yaml_load

from qudi.hardware.instream import ni_daq
from qudi.interface.instream_interface import StreamingMode

ROOT = Path(__file__).resolve().parents[2]


def _docstring_example() -> dict:
    from ruamel.yaml import YAML

    text = re.search(r"::\n\n((?:    .*\n|\n)+)", ni_daq.__doc__).group(1)
    return YAML(typ="safe").load(text)


def test_docstring_example_is_valid_and_activates(make_streamer, card):
    example = _docstring_example()
    validate_config({"hardware": example})
    (entry,) = example.values()
    assert entry["module.Class"] == "instream.ni_daq.NIXSeriesInStreamer"
    streamer = make_streamer(**entry["options"])
    lines = [f"port0/line{n}" for n in range(4)]
    assert streamer.active_channels == ["PFI8", "PFI9", "ai0", "ai1", *lines]
    assert streamer.stream_extra == {"digital_channels": lines}


def test_shipped_config_activates_and_streams(make_streamer, fake):
    config = yaml_load(str(ROOT / "cfg" / "instream_ni.cfg"))
    options = config["hardware"]["ni_instreamer"]["options"]
    for buffer in ("stream_buffer1", "stream_buffer2"):
        assert config["hardware"][buffer]["connect"] == {"streamer": "ni_instreamer"}
    streamer = make_streamer(**options)
    (ai,) = [t for t in fake.open_tasks() if t.kind == "ai"]
    assert [c["range"] for c in ai.channels] == [(-10.0, 10.0), (-1.0, 1.0)]
    streamer.configure(streamer.active_channels, StreamingMode.CONTINUOUS, 10_000, 1000.0)
    streamer.start_stream()
    fake.advance(0.1)
    data = np.empty((streamer.available_samples, 4))
    streamer.read_available_data_into_buffer(data)
    assert len(data) == 100
    np.testing.assert_array_equal(data[:, 2], np.arange(1, 101))
