"""Quantiles and per-second series, in seconds, from raw samples (no binning error)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p999": 0.999}


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile: the smallest sample with at least q of all samples at or below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def summary(values: Iterable[float]) -> dict[str, float | None]:
    """p50/p90/p99/p999/max/mean and the sample count."""
    v = sorted(values)
    out: dict[str, float | None] = {name: quantile(v, q) for name, q in QUANTILES.items()}
    out["max"] = v[-1] if v else None
    out["mean"] = sum(v) / len(v) if v else None
    out["count"] = float(len(v))
    return out


def per_second(times: Iterable[float], t0: float, seconds: int) -> list[int]:
    """Counts of events per whole second since `t0`, for `seconds` buckets (late events go last)."""
    counts = [0] * max(1, seconds)
    for t in times:
        i = int(t - t0)
        if i >= 0:
            counts[min(i, len(counts) - 1)] += 1
    return counts


def per_second_quantile(
    samples: Iterable[tuple[float, float]], t0: float, seconds: int, q: float
) -> list[float | None]:
    """The q-quantile of the values whose timestamp falls in each second since `t0`."""
    buckets: list[list[float]] = [[] for _ in range(max(1, seconds))]
    for t, value in samples:
        i = int(t - t0)
        if i >= 0:
            buckets[min(i, len(buckets) - 1)].append(value)
    return [quantile(sorted(b), q) for b in buckets]
