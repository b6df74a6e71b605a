"""95 % intervals: bootstrap over repetitions of a cell, or over time blocks within one cell.

With N >= 2 repetitions a metric's interval is the percentile bootstrap of its mean over the
repetitions. With one repetition it comes from the cell itself: the load is cut into blocks of
BLOCK_SECONDS, blocks are drawn with replacement (keeping each request's own time, so the surge
and fault windows keep their meaning), and the metric is computed again on each draw. Blocks keep
the correlation between neighbouring seconds that resampling single requests would hide.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from facts import quantiles

CONFIDENCE = 0.95
BLOCK_SECONDS = 5.0
RESAMPLES = 200  # per cell: the percentiles of 200 draws are stable to a few per cent
REPETITION_RESAMPLES = 2000
SEED = 20261130  # the same run gives the same intervals


@dataclass(frozen=True, slots=True)
class Request:
    """One request on the load's time axis, with what became of it."""

    t: float  # intended start, seconds since the load's epoch
    api: float | None  # API latency from the intended start (None: no answer recorded)
    ok: bool  # acknowledged
    e2e: float | None  # reaction created -> first delivery (None: not delivered)
    ack_to_delivery: float | None  # the 2xx -> first delivery (acknowledged and delivered only)


Metrics = Callable[[Sequence[Request]], dict[str, float | None]]


def request_metrics(requests: Sequence[Request]) -> dict[str, float | None]:
    """The metrics a block bootstrap can recompute: ratios and latency quantiles of the requests."""
    n = len(requests)
    ok = sum(1 for r in requests if r.ok)
    out: dict[str, float | None] = {
        "error_ratio": (n - ok) / n if n else None,
        "ack_ratio": ok / n if n else None,
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


def repetition_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """Percentile bootstrap of the mean of per-repetition values (None for fewer than two)."""
    if len(values) < 2:
        return None
    rnd = random.Random(SEED)
    means = [sum(rnd.choices(values, k=len(values))) / len(values) for _ in range(REPETITION_RESAMPLES)]
    return _percentiles(means)
