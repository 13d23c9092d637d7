"""Time across hosts: a CURVE publisher in one network namespace, a subscriber in another.

The subscriber times the samples by the publisher's time-table rows, mapped onto its clock by
an offset measured with round-trip probes to the publisher's clock service, and lines them up
with a local 10 Hz stream. Namespaces share the kernel's monotonic clock, so the true offset is
0 and each side's simulated truth holds on the other's clock: every time the subscriber says
is checked against what the publisher's card really did, within the uncertainty it reports.
Through the userspace delay relay (5 ms each way on the stream's connection, not netem) the
samples arrive late, yet their times do not: they come from the publisher's table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from netns import RELAY

pytestmark = pytest.mark.timeout(120)
PORT = 5555
START_S = 30.0
TIME_PEERS = Path(__file__).with_name("time_peers.py")


def relay(star, listen_port=6000):
    peer = star.run(
        star.center, "--listen", f"{star.center_address(1)}:{listen_port}",
        "--target", f"127.0.0.1:{PORT}", "--delay-ms", "5", "--jitter-ms", "1", script=RELAY,
    )  # fmt: skip
    assert peer.line(START_S)["relay"] == "userspace delay, not netem"
    return listen_port


@pytest.mark.parametrize("relayed", [False, True], ids=["link", "relay-5ms"])
def test_a_remote_stream_is_timed_on_the_subscribers_clock_and_lines_up(
    star_factory, key_folder, relayed
):
    star = star_factory(1)
    star.shape(1, rate="100mbit")
    keys = str(key_folder)
    pub = star.run(star.center, "publish", "--port", str(PORT), "--keys", keys, script=TIME_PEERS)
    assert pub.line(START_S)["ready"]
    port = relay(star) if relayed else PORT
    endpoint = f"tcp://{star.center_address(1)}:{port}"
    sub = star.run(
        star.leaves[0], "subscribe", "--endpoint", endpoint, "--keys", keys, "--seconds", "4",
        script=TIME_PEERS,
    )  # fmt: skip
    assert sub.line(START_S)["ready"]
    result = sub.line(START_S + 20)
    truth = pub.finish()
    brief = {k: v for k, v in result.items() if k not in ("chunks", "times")}
    assert result["active"] and result["rejected"] == 0, brief
    offset, bound = result["offset"]
    assert abs(offset) <= bound  # the true offset is 0: the measured one within its bound
    assert 0 < result["host_uncertainty"] < 5e-3

    # every time said of a sample, against when the publisher's card took it
    line = truth["truth"]
    index = np.concatenate([np.array(t["index"]) for t in result["times"]])
    said = np.concatenate([np.array(t["time"]) for t in result["times"]])
    spread = np.concatenate([np.array(t["uncertainty"]) for t in result["times"]])
    true = line["first"] + (index - truth["first_index"]) * line["period"]
    error = np.abs(said - true)
    assert len(index) >= 40
    assert np.mean(error <= spread) >= 0.9, (error.max(), spread.min())
    assert error.max() < 3e-3  # not late by the relay's 5 ms: the times are the publisher's

    # the local wavemeter at each remote sample's time, within the reported uncertainty
    wm = result["wavemeter"]
    covered = chunks = 0
    for chunk in result["chunks"]:
        if not chunk["index"]:
            continue
        taken = line["first"] + (np.array(chunk["index"]) - truth["first_index"]) * line["period"]
        expected = (taken - wm["first"]) / wm["period"]  # the wavemeter's ramp then
        seconds = np.abs(np.array(chunk["wavemeter"]) - expected).max() * wm["period"]
        covered += seconds <= chunk["uncertainty"]
        chunks += 1
    assert chunks >= 8 and covered >= 0.8 * chunks
