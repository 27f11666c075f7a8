"""Summary statistics of latency samples: percentiles, mean ± std and throughput."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics.

    Matches ``numpy.percentile(samples, q)`` (its default ``'linear'`` method).
    """
    if not samples:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    xs = sorted(float(x) for x in samples)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    frac = pos - lo
    return xs[lo] + (xs[hi] - xs[lo]) * frac


def summarize(latencies_s: Sequence[float], batch: int, wall_s: float | None = None) -> dict[str, float]:
    """Latency statistics in milliseconds and throughput in images per second.

    ``latencies_s`` are per-request times in seconds, each for ``batch`` images. Throughput is
    ``batch * n / wall_s`` when the wall time of the whole run is given (concurrent requests
    overlap), else ``batch / mean latency``.
    """
    n = len(latencies_s)
    if n == 0:
        raise ValueError("no timed iterations to summarize")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    ms = [t * 1e3 for t in latencies_s]
    mean = sum(ms) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in ms) / (n - 1)) if n > 1 else 0.0
    if wall_s is None:
        wall_s = sum(latencies_s)
    return {
        "n": n,
        "median_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": min(ms),
        "max_ms": max(ms),
        "throughput_ips": batch * n / wall_s if wall_s > 0 else float("inf"),
        "wall_s": wall_s,
    }
