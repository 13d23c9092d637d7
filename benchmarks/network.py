"""Network benchmark: what CURVE costs, and one publisher's fan-out to 8 subscriber processes.

    python benchmarks/network.py            # full run (about two minutes)
    python benchmarks/network.py --quick    # shorter runs

All runs use the processes of the multi-host tests (tests/net/peers.py): a publisher of a
paced ramp and subscribers that check every sample (each value is its index) and compare
where the data jumps with the gaps their receiver reported.

* Plain vs CURVE at 8 channels x 1 MS/s (64 MB/s of float64): on loopback, and across a veth
  link between two network namespaces (root only); and on loopback at 3 MS/s asked, which
  shows the ceiling (what arrives, what is lost). netem delay/loss is used only where the
  kernel has it; where it has not, the link is a plain veth pair and the table says so. The
  cost of CURVE is the extra CPU time of publisher plus subscriber per sample delivered, the
  median of three plain/CURVE pairs. Without netem, one more pair runs across a veth link
  that loses 0.5 % of its TCP packets each way (an nftables random-drop rule, not netem;
  skipped, saying why, without ``nft``), with the packets dropped and retransmitted.
* Fan-out: 8 keeping-up subscriber processes, each in its own namespace, plus one more that is
  stopped (SIGSTOP) for 3 s, at 8 channels x 250 kS/s (16 MB/s to each, CURVE on every link).
  The keeping-up ones must lose nothing; the stalled one's gaps must be exactly where its data
  jumps.

The last line: ``network: curve cost X %, 8 subscribers lost N, stalled subscriber gaps exact``
(``not exact`` if they were not; N is the samples the 8 keeping-up subscribers lost together).
Timings are of a shared 2-core machine: expect noise, compare the ratios of one run; the load
average is printed before and after (above the core count, other work shared the CPU, and
losses of "keeping-up" subscribers then say more about the machine than the transport).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "net"))

from netns import (  # noqa: E402
    Star,
    local_peer,
    namespaces_missing,
    netem_missing,
    nftables_missing,
)

from qudi.util.instream.keys import new_keys  # noqa: E402

PORT = 5561
START_S = 60.0


def make_keys(folder: Path, clients: int) -> None:
    (folder / "allowed").mkdir()
    new_keys("server", folder)
    for k in range(1, clients + 1):
        public, _ = new_keys(f"sub{k}", folder)
        shutil.copy(public, folder / "allowed")


def one_stream(keys: str, seconds: float, channels: int, rate: float, star: Star | None) -> dict:
    """One publisher and one subscriber for ``seconds``; both processes' final reports."""
    common = ["--channels", str(channels), "--rate", str(rate)]
    sub_args = ["--name", "sub1", "--seconds", str(seconds), "--ring-seconds", "1"]
    if star is None:
        pub = local_peer("publish", "--port", str(PORT), "--keys", keys, *common)
        endpoint = f"tcp://127.0.0.1:{PORT}"
    else:
        pub = star.run(star.center, "publish", "--port", str(PORT), "--keys", keys, *common)
        endpoint = f"tcp://{star.center_address(1)}:{PORT}"
    try:
        pub.line(START_S)
        args = ["subscribe", "--endpoint", endpoint, "--keys", keys, *sub_args]
        sub = local_peer(*args) if star is None else star.run(star.leaves[0], *args)
        try:
            sub.line(START_S)
            result = sub.line(seconds + START_S)
        finally:
            sub.kill()
        return {"pub": pub.finish(), "sub": result}
    finally:
        pub.kill()


def cpu_per_sample(run: dict) -> float:
    """CPU seconds of publisher and subscriber per sample the subscriber received (a starved
    run that delivers less does less work: per second would flatter it)."""
    return (run["pub"]["cpu"] + run["sub"]["cpu"]) / max(run["sub"]["samples"], 1)


def load() -> str:
    """The machine's load averages (1, 5, 15 min): numbers above the core count mean the runs
    shared the CPU with others."""
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def compare(
    label: str, keys: Path, seconds: float, star: Star | None, rate: float = 1e6, repeat: int = 1
) -> float:
    """Plain vs CURVE for one path, ``repeat`` pairs one after the other (so both of a pair see
    about the same load); prints a table row each; returns the median of CURVE's cost in %."""
    return statistics.median(_pair(label, keys, seconds, star, rate) for _ in range(repeat))


def _pair(label: str, keys: Path, seconds: float, star: Star | None, rate: float) -> float:
    rows = {}
    for mode, folder in (("plain", ""), ("curve", str(keys))):
        run = one_stream(folder, seconds, 8, rate, star)
        sub = run["sub"]
        got = sub["samples"] / sub["seconds"]
        rows[mode] = cpu_per_sample(run)
        print(
            f"{label:<26} {mode:<6} {got / 1e6:8.3f} MS/s  {got * 64 / 1e6:7.1f} MB/s  "
            f"lost {sub['lost']:>9}  gaps {len(sub['gaps']):>4}  "
            f"cpu pub {run['pub']['cpu'] / run['pub']['seconds']:5.2f} + sub "
            f"{sub['cpu'] / sub['seconds']:5.2f} cores  "
            f"{1e9 * rows[mode]:6.1f} ns/sample"
        )
    return 100.0 * (rows["curve"] / rows["plain"] - 1.0)


def lossy_link(keys: Path, seconds: float) -> None:
    """One plain/CURVE pair across a veth link dropping 0.5 % of TCP packets each way."""
    missing = nftables_missing()
    if missing:
        print(f"  lossy link: not run: {missing}")
        return
    with Star(1) as star:
        star.drop(1, 0.5)
        cost = compare("veth, nft 0.5% drop", keys, seconds, star)
        dropped, resent = star.dropped(1), star.retransmitted(star.center)
    print(
        f"  lossy link (nftables random drop, not netem): curve cost {cost:.0f} %, dropped "
        f"{dropped['to_subscriber']} packets to the subscriber and {dropped['to_publisher']} "
        f"back, {resent} segments retransmitted"
    )


def fan_out(keys: Path, seconds: float, stall_s: float) -> tuple[int, bool, list[dict], dict]:
    """8 keeping-up subscribers and a stalled one at 8 x 250 kS/s, CURVE, one netns each."""
    with Star(9) as star:
        for namespace in (star.center, star.leaves[-1]):
            star.small_socket_buffers(namespace)  # the stall overflows them within seconds
        pub = star.run(
            star.center, "publish", "--port", str(PORT), "--keys", str(keys),
            "--channels", "8", "--rate", "250000",
        )  # fmt: skip
        pub.line(START_S)
        subs = [
            star.run(
                star.leaves[k - 1],
                "subscribe",
                "--name",
                f"sub{k}",
                "--keys",
                str(keys),
                "--endpoint",
                f"tcp://{star.center_address(k)}:{PORT}",
                # the stalled one's ring holds more than its stall, so its gap pushes out no
                # sample it has not read (that would be an overrun, merged into the jump)
                "--ring-seconds",
                "8" if k == 9 else "2",
            )
            for k in range(1, 10)
        ]
        for sub in subs:
            sub.line(START_S)
        time.sleep(1.0)
        subs[-1].signal(signal.SIGSTOP)
        time.sleep(stall_s)
        subs[-1].signal(signal.SIGCONT)
        time.sleep(max(1.0, seconds - 1.0 - stall_s))
        results = [sub.finish(60) for sub in subs]
        stats = pub.finish(60)
    lost = sum(r["lost"] for r in results[:-1])
    stalled = results[-1]
    exact = [tuple(j) for j in stalled["jumps"]] == [tuple(g) for g in stalled["gaps"]]
    return lost, exact, results, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else 6.0
    with tempfile.TemporaryDirectory() as scratch:
        keys = Path(scratch)
        make_keys(keys, 9)
        print(f"load average before: {load()} ({os.cpu_count()} cores)")
        print("8 channels x 1 MS/s float64 (64 MB/s), one publisher and one subscriber process")
        cost = compare("loopback", keys, seconds, None, repeat=3)
        compare("loopback, asked 8 x 3 MS/s", keys, seconds, None, rate=3e6)  # the ceiling
        missing = namespaces_missing()
        if missing is None:
            reason = netem_missing()
            with Star(1) as star:
                label = "veth link (no netem)" if reason else "veth + netem 2ms/0.1%"
                if reason is None:
                    star.shape(1, rate="10gbit", netem="delay 2ms 0.5ms loss 0.1%")
                link_cost = compare(label, keys, seconds, star, repeat=3)
            if reason:
                print(f"  netem: not used: {reason}")
                lossy_link(keys, seconds)
            print(f"curve cost (median of 3): loopback {cost:.0f} %, {label} {link_cost:.0f} %")
        else:
            print(f"curve cost: loopback {cost:.0f} % (no namespaces: {missing})")
            print(f"network: curve cost {cost:.0f} %, 8 subscribers lost n/a, stalled subscriber "
                  "gaps n/a")  # fmt: skip
            return 0
        print()
        print("fan-out: 8 keeping-up subscribers + 1 stalled (SIGSTOP 3 s), 8 ch x 250 kS/s, CURVE")
        lost, exact, results, stats = fan_out(keys, seconds + 4.0, 3.0)
        for k, result in enumerate(results, start=1):
            role = "stalled" if k == len(results) else "keeping up"
            print(
                f"  sub{k} {role:<10} received {result['samples']:>10}  lost {result['lost']:>9}  "
                f"gaps {len(result['gaps']):>3}  jumps {len(result['jumps']):>3}  "
                f"rss +{(result['rss_peak'] - result['rss_start']) / 2**20:5.1f} MiB  "
                f"cpu {result['cpu'] / result['seconds']:4.2f}"
            )
        print(
            f"  publisher: wrote {stats['written']}, sent {stats['sent']}, own loss "
            f"{stats['lost']}, rss +{(stats['rss_peak'] - stats['rss_start']) / 2**20:.1f} MiB "
            f"(peak {stats['rss_peak'] / 2**20:.0f} MiB), cpu {stats['cpu'] / stats['seconds']:.2f}"
        )
    if not exact:
        stalled = results[-1]
        print(f"  stalled: data jumps {stalled['jumps']}, receiver gaps {stalled['gaps']}")
    print(f"load average after: {load()}")
    print(
        f"network: curve cost {cost:.0f} %, 8 subscribers lost {lost}, stalled subscriber gaps "
        f"{'exact' if exact else 'not exact'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
