"""Did the load generator keep up? Its schedule lag, its workers and its schedule, judged against
limits that are data (harness/limits/generator.yaml).

A load generator that falls behind its schedule measures itself: the latency it reports includes
its own lag, and the rate it offers is not the one planned. Such a cell is generator-bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facts import quantiles
from harness import yamlpos
from loadtests.settings import MAX_WAKE_INTERVAL_SECONDS

LIMITS_FILE = Path(__file__).resolve().parent / "limits" / "generator.yaml"


class GeneratorLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lag_p99_seconds: float = Field(gt=0)
    max_missed_arrivals: int = Field(ge=0)
    in_flight_seconds: float = Field(gt=0)
    min_in_flight: int = Field(gt=0)
    nice: int = Field(ge=-20, le=19)
    wake_interval_seconds: float = Field(ge=0, le=MAX_WAKE_INTERVAL_SECONDS)

    def in_flight_cap(self, peak_rate: float) -> int:
        """The load generator's cap on unanswered requests for a load peaking at `peak_rate`."""
        return max(self.min_in_flight, math.ceil(peak_rate * self.in_flight_seconds))


def load_limits(path: Path = LIMITS_FILE) -> GeneratorLimits:
    return yamlpos.load_model(path, GeneratorLimits)


def schedule_lags(outcomes: Iterable[Mapping[str, Any]]) -> list[float]:
    """Seconds from each request's intended start to its actual start."""
    return [max(0.0, (o["started_unix_nanos"] - o["intended_unix_nanos"]) / 1e9) for o in outcomes]


def lag_summary(lags: Iterable[float]) -> dict[str, float | None]:
    s = quantiles.summary(lags)
    return {"p50": s["p50"], "p99": s["p99"], "max": s["max"]}


def fell_behind(
    *,
    lag_p99: float | None,
    missed: int,
    workers_expected: int,
    summaries: Sequence[Mapping[str, Any]],
    limits: GeneratorLimits,
) -> list[str]:
    """Why the generator is the bottleneck of this cell (empty: it kept up)."""
    reasons = []
    if lag_p99 is not None and lag_p99 > limits.lag_p99_seconds:
        reasons.append(f"schedule lag p99 {lag_p99 * 1000:.1f} ms > {limits.lag_p99_seconds * 1000:g} ms")
    if missed > limits.max_missed_arrivals:
        reasons.append(f"{missed} arrivals missed at the in-flight cap (limit {limits.max_missed_arrivals})")
    if len(summaries) < workers_expected:
        reasons.append(f"{len(summaries)} worker summaries of {workers_expected} workers")
    unfinished = [str(s.get("worker", "?")) for s in summaries if not s.get("completed_schedule")]
    if unfinished:
        reasons.append(f"worker(s) {', '.join(unfinished)} did not complete their schedule")
    return reasons
