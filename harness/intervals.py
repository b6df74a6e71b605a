"""95 % intervals: Student's t over repetitions of a cell, or a bootstrap over time blocks of one.

With N >= 2 repetitions a metric's interval is Student's t interval of its mean over the
repetitions: mean +- t(N-1) s / sqrt(N). (A percentile bootstrap of so few values covers far less
than it says: about half the time at N = 2, three times in four at N = 3.) It is wide with two
repetitions (t = 12.7) and narrows quickly with more (4.3 at three, 2.8 at five).

With one repetition it comes from the cell itself: the load is cut into blocks of BLOCK_SECONDS,
blocks are drawn with replacement (keeping each request's own time, so the surge and fault windows
keep their meaning), and the metric is computed again on each draw. Blocks keep the correlation
between neighbouring seconds that resampling single requests would hide.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from facts import quantiles

CONFIDENCE = 0.95
BLOCK_SECONDS = 5.0
RESAMPLES = 200  # per cell: the percentiles of 200 draws are stable to a few per cent
SEED = 20261130  # the same run gives the same intervals


@dataclass(frozen=True, slots=True)
class Request:
    """One request on the load's time axis, with what became of it."""

    t: float  # intended start, seconds since the load's epoch
    api: float | None  # API latency from the intended start (None: no answer recorded)
    ok: bool  # acknowledged
    e2e: float | None  # reaction created -> first delivery (None: not delivered)
    ack_to_delivery: float | None  # the 2xx -> first delivery (acknowledged and delivered only)
    delivered: bool = False  # reached the push sink (the ledger's `delivered`)


Metrics = Callable[[Sequence[Request]], dict[str, float | None]]


def request_metrics(requests: Sequence[Request]) -> dict[str, float | None]:
    """The metrics a block bootstrap can recompute: ratios and latency quantiles of the requests (as
    CellResult.metrics defines each). Not the counts: "3 lost" is a fact of the run, not an estimate,
    and resampling time blocks without the seconds they happened in would make it look like 0."""
    n = len(requests)
    ok = sum(1 for r in requests if r.ok)
    delivered = sum(1 for r in requests if r.delivered)
    out: dict[str, float | None] = {
        "error_ratio": (n - ok) / n if n else None,
        "ack_ratio": ok / n if n else None,
        "delivered_ratio": delivered / n if n else None,
    }
    for name, values in (
        ("api", sorted(r.api for r in requests if r.api is not None)),
        ("e2e", sorted(r.e2e for r in requests if r.e2e is not None)),
        ("ack_to_delivery", sorted(r.ack_to_delivery for r in requests if r.ack_to_delivery is not None)),
    ):
        for stat, q in quantiles.QUANTILES.items():
            out[f"{name}.{stat}"] = quantiles.quantile(values, q)
    return out


def _percentiles(values: list[float]) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    values.sort()
    tail = (1 - CONFIDENCE) / 2
    return values[int(tail * (len(values) - 1))], values[round((1 - tail) * (len(values) - 1))]


def block_intervals(
    requests: Sequence[Request], metrics: Metrics, resamples: int = RESAMPLES, block: float = BLOCK_SECONDS
) -> dict[str, tuple[float, float]]:
    """metric -> (low, high) from `resamples` draws of time blocks; a metric without at least two
    blocks, or undefined on most draws, gets no interval."""
    blocks: dict[int, list[Request]] = {}
    for r in requests:
        blocks.setdefault(int(r.t // block), []).append(r)
    keys = sorted(blocks)
    if len(keys) < 2:
        return {}
    rnd = random.Random(SEED)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        sample = [r for k in rnd.choices(keys, k=len(keys)) for r in blocks[k]]
        for name, value in metrics(sample).items():
            if value is not None:
                draws.setdefault(name, []).append(value)
    out = {}
    for name, values in draws.items():
        if len(values) >= resamples // 2 and (span := _percentiles(values)) is not None:
            out[name] = span
    return out


# Student's t, 0.975 quantile (two-sided 95 %), for 1..30 degrees of freedom: one column of a
# table, not a statistics library for it.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """Student's t 0.975 quantile (beyond 30 degrees of freedom: the normal one, corrected to second order)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def repetition_interval(values: Sequence[float], most: float | None = None) -> tuple[float, float] | None:
    """Student's t 95 % interval of the mean of per-repetition values (None for fewer than two);
    `most`: the largest value the quantity can take (1 for a ratio), where the interval ends."""
    n = len(values)
    if n < 2:
        return None
    mean = statistics.fmean(values)
    half = t975(n - 1) * statistics.stdev(values) / math.sqrt(n)
    # a quantity never negative here (a latency, a ratio, a count) is not below zero in its interval
    low = max(0.0, mean - half) if min(values) >= 0 else mean - half
    return low, mean + half if most is None else min(most, mean + half)
