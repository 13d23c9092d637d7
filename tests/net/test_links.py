"""The CURVE stream across real links: namespaces, veth pairs, tc, real processes and sockets.

The publisher runs in one network namespace, each subscriber in another, joined by veth links
rate-limited with tbf (100 Mbit/s). Delay, jitter and loss need the kernel's netem qdisc; on a
kernel without it (such as this project's CI machine) those are skipped with the reason; delay
and jitter are then put on by a userspace relay (tests/net/relay.py) and loss by an nftables
random-drop rule (:meth:`netns.Star.drop`), both labelled as not netem. The faults below are
done on real links:

* the link down for 2 s, then up;
* the publisher process killed and started again on the same port;
* a subscriber process killed and started again;
* a subscriber process stopped (SIGSTOP) for 2 s while others read on.

What must hold, checked from the samples themselves (each value is its publisher index):
every gap a subscriber reports is exactly where its data jumps (same first index, same
count), keeping-up subscribers lose nothing, reconnection needs nothing from the user, and
memory stays bounded on both sides.
"""

from __future__ import annotations

import signal
import time

import pytest
from netns import RELAY, nftables_missing

pytestmark = pytest.mark.timeout(120)
PORT = 5555
RATE = 100_000.0  # samples/s of 2 float64 channels: 1.6 MB/s, well inside 100 Mbit/s
START_S = 30.0  # a loaded 2-core machine needs a while to start a Python process


def publisher(star, keys, *extra):
    peer = star.run(
        star.center, "publish", "--port", str(PORT), "--keys", str(keys), "--rate", str(RATE),
        *extra,
    )  # fmt: skip
    assert peer.line(START_S)["ready"]
    return peer


def subscriber(star, keys, k, *extra, port=PORT):
    peer = star.run(
        star.leaves[k - 1], "subscribe", "--name", f"sub{k}", "--keys", str(keys),
        "--endpoint", f"tcp://{star.center_address(k)}:{port}", *extra,
    )  # fmt: skip
    assert peer.line(START_S)["ready"]
    return peer


def assert_gaps_exact(result, rejected=0):
    """What the receiver logged as gaps is exactly where the data jumps."""
    assert result["rejected"] == rejected
    assert [tuple(j) for j in result["jumps"]] == [tuple(g) for g in result["gaps"]]


def assert_bounded(result, limit=96 << 20):
    """Resident memory grew by less than ``limit`` after the first second."""
    assert result["rss_start"] > 0
    assert result["rss_peak"] - result["rss_start"] < limit, result


def stream_across(star, key_folder, port=PORT):
    """Three seconds of the stream to subscriber 1 (to ``port`` on its link): it must arrive
    complete."""
    pub = publisher(star, key_folder)
    sub = subscriber(star, key_folder, 1, "--seconds", "3", port=port)
    result = sub.line(START_S + 10)
    stats = pub.finish()
    assert result["samples"] > RATE  # more than a second of it arrived
    assert result["jumps"] == [] and result["gaps"] == [] and result["lost"] == 0
    assert result["restarts"] == 0 and result["rejected"] == 0
    assert stats["lost"] == 0 and stats["refused"] == 0
    assert_bounded(result)
    return result, stats


def test_a_curve_stream_crosses_a_rate_limited_link_complete(star_factory, key_folder):
    star = star_factory(1)
    star.shape(1, rate="100mbit")
    stream_across(star, key_folder)


@pytest.mark.parametrize("netem", ["delay 1ms 0.5ms loss 0.1%", "delay 5ms 1ms loss 1%"])
def test_a_curve_stream_crosses_a_link_with_delay_jitter_and_loss_complete(
    star_factory, key_folder, netem_reason, netem
):
    if netem_reason:
        pytest.skip(netem_reason)
    star = star_factory(1)
    star.shape(1, rate="100mbit", netem=netem)  # TCP retransmits what netem drops
    stream_across(star, key_folder)


def delay_relay(star, delay_ms="5", jitter_ms="1", listen_port=6000):
    """A userspace delay relay (not netem) in the publisher's namespace: subscriber 1 connects to
    ``listen_port`` on its link, the relay forwards to the publisher on loopback."""
    relay = star.run(
        star.center, "--listen", f"{star.center_address(1)}:{listen_port}",
        "--target", f"127.0.0.1:{PORT}", "--delay-ms", delay_ms, "--jitter-ms", jitter_ms,
        script=RELAY,
    )  # fmt: skip
    assert relay.line(START_S)["relay"] == "userspace delay, not netem"
    return listen_port


def test_a_curve_stream_crosses_a_userspace_delay_relay_complete(star_factory, key_folder):
    """Not netem: a relay process (tests/net/relay.py) in the publisher's namespace holds every
    chunk of the TCP stream 5 ms (+ up to 1 ms) each way, on a kernel that has no netem."""
    star = star_factory(1)
    star.shape(1, rate="100mbit")
    stream_across(star, key_folder, port=delay_relay(star))


@pytest.mark.parametrize(
    ("percent", "relayed"), [(0.5, False), (1.0, True)], ids=["0.5%", "1%+relay-5ms"]
)
def test_a_curve_stream_crosses_a_lossy_link_complete_in_order(
    star_factory, key_folder, percent, relayed
):
    """Not netem: an nftables rule drops ``percent`` % of the link's TCP packets at random, each
    way (with, for 1 %, the userspace relay's 5 ms + 1 ms jitter each way on top). TCP
    retransmits, so the keeping-up subscriber reads every sample exactly once, in order."""
    missing = nftables_missing()
    if missing:
        pytest.skip(f"no random packet drop on a link: {missing}")
    star = star_factory(1)
    star.shape(1, rate="100mbit")
    star.drop(1, percent)
    port = delay_relay(star) if relayed else PORT
    before = star.retransmitted(star.center)
    result, stats = stream_across(star, key_folder, port=port)
    dropped = star.dropped(1)
    # packets of the stream were really lost and resent, else the test proves nothing (about
    # 20 of ~4000 segments at 0.5 %; fewer ACKs the other way, so that count is not asserted)
    assert dropped["to_subscriber"] > 0, dropped
    assert star.retransmitted(star.center) > before, dropped
    # stream_across checked the ramp: no jump, no step back (every sample once, in order)
    assert_bounded(stats)  # the publisher's memory, retransmits and all


def test_a_link_down_for_2_s_then_up_needs_no_user_action_and_gaps_are_exact(
    star_factory, key_folder
):
    star = star_factory(1)
    star.shape(1, rate="100mbit")
    pub = publisher(star, key_folder)
    sub = subscriber(star, key_folder, 1)
    time.sleep(1.0)  # the stream flows (nothing to wait on across processes)
    star.set_link(1, up=False)
    time.sleep(2.0)  # the fault itself: 2 s without a link
    star.set_link(1, up=True)
    time.sleep(3.0)  # the link is back: the subscriber must catch up by itself
    result = sub.finish()
    stats = pub.finish()
    assert_gaps_exact(result)
    assert result["samples"] + sum(g[1] for g in result["gaps"]) >= 4 * RATE
    assert result["restarts"] == 0
    assert result["lost"] == sum(g[1] for g in result["gaps"])  # no local overrun
    assert stats["lost"] == 0
    assert_bounded(result)


def test_a_restarted_publisher_and_a_restarted_subscriber_are_followed(star_factory, key_folder):
    star = star_factory(2)
    pub = publisher(star, key_folder)
    steady = subscriber(star, key_folder, 1, "--silence-timeout", "2")
    time.sleep(1.0)
    pub.signal(signal.SIGKILL)  # the publisher's host crashed
    pub.kill()
    pub = publisher(star, key_folder)  # ... and came back on the same port
    time.sleep(1.5)
    restarted = subscriber(star, key_folder, 2, "--seconds", "1.5")  # a subscriber comes
    first = restarted.line(START_S)
    again = subscriber(star, key_folder, 2, "--seconds", "1")  # ... and comes again
    second = again.line(START_S)
    result = steady.finish()
    pub.finish()
    assert result["restarts"] == 1 and result["resyncs"] >= 1  # followed the new publisher
    # the new publisher's first messages are refused while the old one is not yet silent for
    # silence_timeout (a second stream on an endpoint is followed only then): counted
    assert_gaps_exact(result, rejected=result["rejected"])
    for late in (first, second):
        assert late["samples"] > RATE / 2 and late["rejected"] == 0
        assert late["jumps"] == [] and late["gaps"] == []


def test_fan_out_with_a_stalled_subscriber(star_factory, key_folder):
    """The CI size (4 subscribers, 2 channels at 100 kS/s); benchmarks/network.py runs 8
    subscribers at 8 channels x 250 kS/s."""
    star = star_factory(4)
    for namespace in (star.center, star.leaves[-1]):
        star.small_socket_buffers(namespace)  # the stall overflows them in seconds, not minutes
    pub = publisher(star, key_folder)
    peers = [subscriber(star, key_folder, k, "--ring-seconds", "4") for k in range(1, 5)]
    stalled = peers[-1]
    time.sleep(1.0)
    stalled.signal(signal.SIGSTOP)  # the whole process frozen: it reads nothing, receives nothing
    time.sleep(2.5)
    stalled.signal(signal.SIGCONT)
    time.sleep(2.0)
    results = [peer.finish() for peer in peers]
    stats = pub.finish()
    for result in results[:-1]:  # the keeping-up ones
        assert result["jumps"] == [] and result["gaps"] == [] and result["lost"] == 0
        assert result["samples"] > 4 * RATE
        assert_bounded(result)
    assert results[-1]["gaps"], "the stalled subscriber lost nothing: the test proves nothing"
    assert_gaps_exact(results[-1])
    assert stats["lost"] == 0
    assert_bounded(stats)
