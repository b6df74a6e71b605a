"""One step: a steady rate's measured window, and which limits of the service level it broke."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import Field

from harness.capacity.config import API_P99, BACKLOG, ERROR_RATIO, Model, ServiceLevel
from harness.capacity.cpu import OTHER

Verdict = Literal["held", "broke", "generator-bound"]


class Breach(Model):
    limit: str  # API_P99, ERROR_RATIO or BACKLOG
    value: float
    allowed: float
    text: str


class Step(Model):
    """One steady rate, judged on its measured window."""

    pipeline: str
    rate: float  # offered (planned), requests/s
    seconds: float  # the measured window
    sent: int
    acknowledged: int
    failed: int
    unknown: int
    missed: int
    achieved_rate: float  # requests started per second in the window
    error_ratio: float | None
    api_p50_seconds: float | None  # from the intended start (no coordinated omission)
    api_p99_seconds: float | None
    service_p99_seconds: float | None  # from the actual start: without the generator's lag
    lag_p99_seconds: float | None
    lag_max_seconds: float | None
    backlog_start: int | None = None
    backlog_end: int | None = None
    backlog_growth_per_second: float | None = None  # least-squares slope over the window
    delivered_per_second: float | None = None  # unique first deliveries at the sink
    drained_before: bool = True  # the previous step's backlog was gone when this one started
    # per component (1.0 = one core), then cpu.NOT_THE_PIPELINE: "loadgen" (Locust and its workers),
    # "harness" (this process alone), "other" (the rest of the machine) and "steal" (the hypervisor's)
    cpu_cores: dict[str, float] = Field(default_factory=dict)
    cpu_seconds_per_1000: dict[str, float] = Field(default_factory=dict)  # per 1,000 acknowledged
    breaches: list[Breach] = Field(default_factory=list)  # from the intended start
    breaches_without_lag: list[Breach] = Field(default_factory=list)  # the generator's lag taken out
    generator_reasons: list[str] = Field(default_factory=list)
    played: int = 1  # times played: a disturbed step is played again (capacity.yaml's `disturbed`)
    replay: bool = False  # a rate played again to confirm it held (capacity.yaml's `confirm`)
    disturbed: bool = False  # still disturbed at its last play: its verdict says so
    disturbance: list[str] = Field(default_factory=list)  # what disturbed that play (capacity.yaml's `disturbed`)

    def verdict(self, limits: Iterable[str]) -> Verdict:
        wanted = set(limits)
        if self.generator_reasons:
            # A breach that survives without the generator's lag is the pipeline's, whatever the generator did.
            return "broke" if any(b.limit in wanted for b in self.breaches_without_lag) else "generator-bound"
        return "broke" if any(b.limit in wanted for b in self.breaches) else "held"

    def why(self, limits: Iterable[str]) -> list[str]:
        wanted = set(limits)
        source = self.breaches_without_lag if self.generator_reasons else self.breaches
        reasons = [b.text for b in source if b.limit in wanted]
        if self.generator_reasons:
            reasons += [f"generator: {r}" for r in self.generator_reasons]
        if self.disturbed:
            # a file written before `disturbance` was recorded: other processes were all it looked at
            what = "; ".join(self.disturbance) or f"other processes took {self.cpu_cores.get(OTHER, 0.0):.2f} cores"
            reasons.append(f"the machine was busy: {what} ({self.played} plays)")
        return reasons


def judge(
    level: ServiceLevel, pipeline: str, rate: float, *, api_p99: float | None, error_ratio: float | None,
    backlog_growth: float | None,
) -> list[Breach]:  # fmt: skip
    """Which limits of the service level a window broke."""
    out = []
    if api_p99 is not None and api_p99 > level.api_p99_seconds:
        out.append(Breach(limit=API_P99, value=api_p99, allowed=level.api_p99_seconds,
                          text=f"API p99 {api_p99 * 1000:.0f} ms > {level.api_p99_seconds * 1000:g} ms"))  # fmt: skip
    if error_ratio is not None and error_ratio > level.error_ratio:
        out.append(Breach(limit=ERROR_RATIO, value=error_ratio, allowed=level.error_ratio,
                          text=f"errors {error_ratio:.2%} > {level.error_ratio:.2%}"))  # fmt: skip
    if pipeline == "async" and backlog_growth is not None:
        allowed = level.backlog_growth_ratio * rate
        if backlog_growth > allowed:
            out.append(Breach(limit=BACKLOG, value=backlog_growth, allowed=allowed,
                              text=f"consumer falls behind: backlog +{backlog_growth:.0f}/s > {allowed:.0f}/s "
                                   f"({level.backlog_growth_ratio:.0%} of the rate)"))  # fmt: skip
    return out


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t, value) points; None with fewer than two distinct times."""
    if len(points) < 2:
        return None
    ts = [t for t, _ in points]
    mt, mv = statistics.fmean(ts), statistics.fmean(v for _, v in points)
    den = sum((t - mt) ** 2 for t in ts)
    if den == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in points) / den
