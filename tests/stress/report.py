"""The soak's summary as text: what moved, what was lost (and whether it was accounted for),
what was done to the stream, and the process's resources at start, after warm-up and at the end."""

from __future__ import annotations


def format_summary(summary: dict) -> str:
    lines = [
        f"soak: {summary['seconds']:.0f} s of chaos in {summary['phases']} phases "
        f"(seed {summary['seed']}), stream {summary['rate']:.0f} S/s x {summary['channels']} ch; "
        f"CPU: qudi process {summary['cpu_percent']:.0f} %, the killed reader processes "
        f"{summary.get('children_cpu_percent', 0):.0f} % of one core",
        f"{'consumer kind':<14}{'samples read':>16}{'lost':>14}{'overruns':>10}"
        f"{'faults seen':>12}{'runs':>8}{'stalls':>8}{'unaccounted':>13}",
    ]
    for kind, row in summary["kinds"].items():
        lines.append(
            f"{kind:<14}{row['samples']:>16,}{row['lost']:>14,}{row['overruns']:>10}"
            f"{row['faults']:>12}{row['runs']:>8}{row.get('stalls', 0):>8}"
            f"{row['failure_count']:>13}"
        )
    events = summary["events"]
    lines.append(
        "events: "
        + ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in events.items())
    )
    lines.append(
        f"{'resources':<14}{'OS threads':>11}{'py threads':>11}{'instream-*':>11}{'fds':>6}"
        f"{'streams':>8}{'shm maps':>9}{'RSS MB':>8}{'py objects':>11}"
    )
    for when in ("start", "baseline", "end"):
        res = summary["resources"].get(when)
        if res:
            lines.append(
                f"{when:<14}{res['threads_os']:>11}{res['threads_py']:>11}"
                f"{len(res['threads_instream']):>11}{res['fds']:>6}{len(res['streams']):>8}"
                f"{res['shm_maps']:>9}{res['rss_mb']:>8.1f}{res.get('python_objects', 0):>11}"
            )
    lines.append(f"RSS after each phase (MB): {summary.get('rss_after_phases')}")
    lines.append(f"losses accounted for: {'all' if summary['all_accounted'] else 'NOT ALL'}")
    return "\n".join(lines)
