"""cfg/instream_lsl.cfg in a real, separate qudi process, both ways, with plain pylsl on the
other side; qudi quits cleanly with its LSL modules active."""

from __future__ import annotations

import time

import numpy as np
from qudi_process import connect, free_port, headless_config, qudi_process, quit_qudi

from tests.lsl.conftest import TAG, pylsl, wait_until


def test_the_example_config_streams_both_ways_and_quits(tmp_path, plain_outlet):
    port = free_port()
    config = headless_config(
        "instream_lsl.cfg",
        **{
            "namespace_server_port: 18861": f"namespace_server_port: {port}",
            "stream_name: 'qudi dummy'": f"stream_name: 'qudi dummy {TAG}'",
            "stream_name: 'pylsl sine'": f"stream_name: 'pylsl sine {TAG}'",
        },
    )
    source = plain_outlet(f"pylsl sine {TAG}", channels=2, rate=250.0)
    with qudi_process(config, tmp_path, "lsl") as process:
        connection = connect(port, process)
        manager = connection.root.get_namespace_dict()["qudi"].module_manager
        manager.activate_module("lsl_outlet")  # LSLAPICFG (this host only) is inherited
        [info] = pylsl.resolve_byprop("name", f"qudi dummy {TAG}", 1, 20.0)
        inlet = pylsl.StreamInlet(info)
        assert (
            inlet.info(10.0).desc().child("channels").child("channel").child_value("label") == "APD"
        )
        manager.activate_module("lsl_time_series_logic")  # and LslInStreamer under it
        logic = connection.root.get_namespace_dict()["lsl_time_series_logic"]
        logic.start_reading()
        assert source.wait_for_consumers(20.0)
        deadline = time.monotonic() + 30  # a loaded machine may take seconds to connect
        while True:
            source.push(25)
            _, stamps = inlet.pull_chunk(timeout=0.1, max_samples=1000)
            if len(stamps) or time.monotonic() > deadline:
                break
        assert len(stamps), "nothing came from qudi's outlet in 30 s"
        streamer = connection.root.get_namespace_dict()["lsl_in"]
        wait_until(lambda: streamer.stream_info["nominal_srate"] == 250.0, 30, "the inlet")

        def logic_has_ramp():
            source.push(25)
            x, raw = logic.trace_data
            ramp = np.array(raw["ramp"])
            return len(ramp) and ramp.max() > 100

        wait_until(logic_has_ramp, 30, "the plain outlet's ramp in qudi's logic")
        assert int(streamer.lost_samples) == 0
        del inlet
        quit_qudi(connection)
        start = time.monotonic()
        assert process.wait(60) == 0
        assert time.monotonic() - start < 60
