"""The lines ``offset(t) = a + d * t`` that pass through every probe's interval: a convex polygon.

A clock probe says the true offset at time ``x`` lies in ``[low, high]``. With the offset a
straight line over the probes' span and its slope (the drift) within ``[-max_drift,
max_drift]``, the lines consistent with every probe are the points ``(a, d)`` of the
intersection of two half-planes per probe and the drift band: a convex polygon, found here by
clipping (Sutherland-Hodgman, tightest intervals first so the polygon stays small). At any
time ``t`` the true offset lies between the lowest and the highest of those lines there, which
a vertex attains, so a query is a few multiplications once the polygon is known (it is asked
per received message: two linear programs per question, as ``scipy.optimize.linprog`` would
solve them, cost far more; tests/core/test_clock_drift.py checks that both agree).

Times are relative to a reference of the caller's (the newest probe's time: well
conditioned) and offsets relative to a base of the caller's (the newest probe's offset).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["Vertex", "clip", "feasible_lines", "range_at"]

#: A line ``(a, d)``: its value at relative time 0 and its slope.
Vertex = tuple[float, float]


def clip(polygon: Sequence[Vertex], x: float, bound: float, sign: float) -> list[Vertex]:
    """The part of the convex ``polygon`` whose lines satisfy
    ``sign * (a + d * x) <= sign * bound`` (``sign`` 1 for an upper bound, -1 for a lower)."""
    out: list[Vertex] = []
    count = len(polygon)
    if count == 0:
        return out
    values = [sign * (a + d * x - bound) for a, d in polygon]
    for i in range(count):
        p, gp = polygon[i], values[i]
        j = i + 1 if i + 1 < count else 0
        q, gq = polygon[j], values[j]
        inside = gp <= 0.0
        if inside:
            out.append(p)
        if inside != (gq <= 0.0):  # the edge crosses the boundary line: a new vertex there
            t = gp / (gp - gq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def feasible_lines(
    intervals: Iterable[tuple[float, float, float]], max_drift: float
) -> list[Vertex]:
    """The polygon of lines ``(a, d)`` with ``|d| <= max_drift`` through every interval
    ``(x, low, high)``; an empty list when no line passes through them all (the intervals are
    inconsistent: a clock step, or a drift that changed).

    Needs one interval at ``x == 0`` first (the reference probe): it bounds ``a``."""
    ordered = sorted(intervals, key=lambda interval: interval[2] - interval[1])
    first = next((i for i in ordered if i[0] == 0.0), None)
    if first is None:
        raise ValueError("feasible_lines needs an interval at the reference time x == 0")
    _, low, high = first
    if low > high:
        return []
    polygon: list[Vertex] = [
        (low, -max_drift),
        (high, -max_drift),
        (high, max_drift),
        (low, max_drift),
    ]
    for x, low, high in ordered:
        polygon = clip(polygon, x, high, 1.0)
        polygon = clip(polygon, x, low, -1.0)
        if not polygon:
            return []
    return polygon


def range_at(polygon: Sequence[Vertex], t: float) -> tuple[float, float]:
    """The lowest and the highest value of the polygon's lines at relative time ``t``."""
    values = [a + d * t for a, d in polygon]
    return min(values), max(values)
