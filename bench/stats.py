"""Small statistics over measured samples (percentiles with linear
interpolation, as numpy's default), written out to keep the bench's
dependencies to matplotlib alone."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    """p50/p90/p99/max of durations given in seconds, in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
    }


def rate(count: int, start: float, end: float) -> float:
    """Events per second over [start, end]; NaN for an empty span."""
    span = end - start
    return count / span if span > 0 and count else float("nan")


def middle_rate(times: Sequence[float], low: float = 0.1, high: float = 0.9) -> float:
    """Events per second between the `low` and `high` quantiles of their
    times: the steady part of a run, without its ramp-up and tail."""
    ordered = sorted(times)
    if len(ordered) < 10:
        return float("nan")
    i, j = int(len(ordered) * low), int(len(ordered) * high) - 1
    return rate(j - i, ordered[i], ordered[j])
