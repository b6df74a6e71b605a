"""`bench capacity`: each pipeline's highest sustainable rate, why it broke, and the ceilings.

A step offers one steady open-loop rate with the project's own load generator, skips its warm-up
and judges its measured window against the service level of harness/limits/capacity.yaml (data):
API p99, error ratio, and for async the delivery capacity (the Kafka backlog does not grow). The
search doubles from a start rate until a step breaks, then bisects between the last rate that held
and the first that broke, like OpenMessaging Benchmark's max-rate mode but with warm-up excluded,
steps long enough to be stable, and every step kept.

A step whose load generator fell behind (harness/limits/generator.yaml) is *generator-bound*:
it ends the search like a broken step, but the answer then says "generator-bound" and the
pipeline's own limit stays unknown above the last rate that held. A breach that remains once the
generator's lag is taken out (service latency from the actual start, errors, backlog growth) is
the pipeline's, whatever the generator did.

The result (CapacityReport) goes to runs/<id>/capacity.json, and to
<state dir>/capacity-<host>-<runtime>.json: the last capacity of this machine and stack, which
load profiles' capacity-relative rates ("0.3 x sync") are resolved from.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facts import paths, quantiles, topology
from harness import ceilings, generator_cost, generator_health, measured_tracing, sink, yamlpos
from harness.ceilings import Ceiling
from harness.cpu import CpuSnapshot
from harness.loadgen import LoadRun
from harness.measured_tracing import tracing_of
from harness.progress import Progress
from harness.sampling import drain, sample_backlog
from harness.stack import Tracing
from loadtests.profile import Capacities

SCHEMA = 1
LIMITS_FILE = Path(__file__).resolve().parent / "limits" / "capacity.yaml"
API_P99, ERROR_RATIO, BACKLOG = "api.p99", "error_ratio", "delivery.backlog_growth"
ALL_LIMITS = (API_P99, ERROR_RATIO, BACKLOG)
ACCEPTANCE_LIMITS = (API_P99, ERROR_RATIO)
Verdict = Literal["held", "broke", "generator-bound"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- the service level and the search, as data ---------------------------------------------------


class ServiceLevel(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_p99_seconds: float = Field(gt=0)
    error_ratio: float = Field(ge=0, lt=1)
    backlog_growth_ratio: float = Field(ge=0)


class SearchSettings(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_rate: float = Field(gt=0)
    max_rate: float = Field(gt=0)
    warmup_seconds: float = Field(ge=0)
    measure_seconds: float = Field(gt=0)
    resolution: float = Field(gt=0, lt=1)
    min_step: float = Field(gt=0)
    drain_seconds: float = Field(ge=0)
    ceiling_seconds: float = Field(gt=0)
    confirm: int = Field(default=0, ge=0)  # replays of the found capacity; one that breaks sends the search lower


class Searches(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    full: SearchSettings
    quick: SearchSettings


class Disturbed(_Model):
    """A step during which processes outside the stack and the generator took CPU measured the
    machine, not the pipeline: it is played again, and named if it stays disturbed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    other_cores: float = Field(gt=0)  # mean over the step's window; 1.0 = one core
    retries: int = Field(ge=0)


class CapacityConfig(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service_level: ServiceLevel
    search: Searches
    disturbed: Disturbed


class ConfigError(ValueError):
    """A capacity file that cannot be used; names the file and every offending field."""


def load_config(path: Path = LIMITS_FILE) -> CapacityConfig:
    try:
        return yamlpos.load_model(path, CapacityConfig)
    except ValueError as e:
        raise ConfigError(str(e)) from None


# -- one step --------------------------------------------------------------------------------------


class Breach(_Model):
    limit: str  # API_P99, ERROR_RATIO or BACKLOG
    value: float
    allowed: float
    text: str


class Step(_Model):
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
    # per component (1.0 = one core), "loadgen" (Locust and its workers) and "other" (the rest of the machine)
    cpu_cores: dict[str, float] = Field(default_factory=dict)
    cpu_seconds_per_1000: dict[str, float] = Field(default_factory=dict)  # per 1,000 acknowledged
    breaches: list[Breach] = Field(default_factory=list)  # from the intended start
    breaches_without_lag: list[Breach] = Field(default_factory=list)  # the generator's lag taken out
    generator_reasons: list[str] = Field(default_factory=list)
    played: int = 1  # times played: a disturbed step is played again (capacity.yaml's `disturbed`)
    replay: bool = False  # a rate played again to confirm it held (capacity.yaml's `confirm`)
    disturbed: bool = False  # still disturbed at its last play: its verdict says so

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
            reasons.append(
                f"the machine was busy with other processes ({self.cpu_cores.get('other', 0.0):.2f} cores, "
                f"{self.played} plays)"
            )
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


# -- the search ------------------------------------------------------------------------------------


class SearchResult(_Model):
    """The highest rate that held under `limits`, and the lowest that did not, with why."""

    limits: list[str]
    rate: float | None  # None: not even the lowest rate tried held
    broke_at: float | None  # None: the search's max_rate held
    bound: Literal["pipeline", "generator", "search-limit"]
    reasons: list[str]
    busiest: str | None = None  # the component with the most CPU at broke_at
    cpu_cores_at_break: dict[str, float] = Field(default_factory=dict)
    tried: list[float] = Field(default_factory=list)  # rates in the order this search judged them
    confirmed: int = 0  # replays `rate` held beyond its first play
    unconfirmed: list[float] = Field(default_factory=list)  # rates that held, then broke on a replay
    # The search's own rate, when plays of a later search over the same rates broke at or below it
    # (`held_on_every_play`); None: the search's rate stands.
    lowered_from: float | None = None

    def summary(self) -> str:
        held = "nothing held" if self.rate is None else f"{self.rate:.0f}/s"
        if self.confirmed:
            held += f" (held again on {self.confirmed} replay{'s' if self.confirmed > 1 else ''})"
        elif self.lowered_from is not None and self.rate is not None:
            held += " (not replayed)"
        if self.lowered_from is not None:
            held += f" (the search found {self.lowered_from:.0f}/s; later plays broke at or below it)"
        if self.unconfirmed:
            held += f"; {', '.join(f'{r:.0f}' for r in self.unconfirmed)}/s held, then broke on a replay"
        if self.bound == "search-limit":
            return f"{held} (at least: the search stops at {self.broke_at or self.rate:.0f}/s)"
        cpu = ", ".join(f"{n} {c:.2f}" for n, c in sorted(self.cpu_cores_at_break.items(), key=lambda kv: -kv[1]))
        kind = "GENERATOR-BOUND at" if self.bound == "generator" else "broke at"
        return f"{held}; {kind} {self.broke_at:.0f}/s: {'; '.join(self.reasons)}" + (f" [cores: {cpu}]" if cpu else "")


def busiest(cores: Mapping[str, float], exclude: Iterable[str] = ("loadgen", "other")) -> str | None:
    skip = set(exclude)
    stack = {n: c for n, c in cores.items() if n not in skip}
    return max(stack, key=lambda n: stack[n]) if stack else None


def search(
    measure: Callable[[float], Step], limits: Sequence[str], s: SearchSettings,
    replay: Callable[[float], Step] | None = None,
) -> SearchResult:  # fmt: skip
    """Double from `start_rate` until a step does not hold (or `max_rate`), then bisect between the
    last rate that held and the first that did not, until they are `resolution` (relative) or
    `min_step` (absolute) apart. Then the rate found is played `confirm` times more (`replay`, never
    memoized): near the boundary one window can hold by luck, so a rate that breaks on a replay is
    not sustainable, and the search goes on below it. `measure` may be memoized (searches over
    other limits reuse steps); without a `replay` it plays the replays, so it must not be then."""
    tried: list[float] = []
    held_once: dict[float, Step] = {}  # every rate that held when the search played it
    play_again = replay or measure

    def step(rate: float) -> tuple[Step, Verdict]:
        tried.append(rate)
        st = measure(rate)
        v = st.verdict(limits)
        if v == "held":
            held_once[rate] = st
        return st, v

    held: Step | None = None
    broke: Step | None = None
    rate = s.start_rate
    while True:
        st, v = step(rate)
        if v != "held":
            broke = st
            break
        held = st
        if rate >= s.max_rate:
            break
        rate = min(rate * 2, s.max_rate)
    unconfirmed: list[float] = []

    def drop(rate: float) -> Step | None:
        """`rate` held once and broke when played again: the boundary lies below it. The highest
        rate below that held (played again in its turn) is where the search goes on from."""
        unconfirmed.append(rate)
        del held_once[rate]
        below = [r for r in held_once if r < rate]
        return held_once[max(below)] if below else None

    if broke is None:
        assert held is not None
        broke = _replays_break(held, limits, s.confirm, play_again, tried)
        if broke is None:
            return SearchResult(limits=list(limits), rate=held.rate, broke_at=None, bound="search-limit",
                                reasons=[f"held up to the search's max_rate {s.max_rate:g}/s"], tried=tried,
                                confirmed=s.confirm)  # fmt: skip
        held = drop(held.rate)
    while True:
        lo = held.rate if held is not None else 0.0
        hi = broke.rate
        while hi - lo > max(s.resolution * lo, s.min_step):
            mid = float(round((lo + hi) / 2))
            if mid <= lo or mid >= hi:
                break
            st, v = step(mid)
            if v == "held":
                held, lo = st, mid
            else:
                broke, hi = st, mid
        again = _replays_break(held, limits, s.confirm, play_again, tried)
        if held is None or again is None:
            break
        broke, held = again, drop(held.rate)
    return SearchResult(
        limits=list(limits),
        rate=held.rate if held is not None else None,
        broke_at=broke.rate,
        bound="generator" if broke.verdict(limits) == "generator-bound" else "pipeline",
        reasons=broke.why(limits),
        busiest=busiest(broke.cpu_cores),
        cpu_cores_at_break=dict(broke.cpu_cores),
        tried=tried,
        confirmed=s.confirm if held is not None else 0,
        unconfirmed=unconfirmed,
    )


def held_on_every_play(capacity: SearchResult, acceptance: SearchResult, plays: Sequence[Step]) -> SearchResult:
    """Async's capacity after its acceptance search, which plays more of the same rates (replays) on a
    subset of the limits (API p99 and errors). A capacity is a rate whose every play, in either search,
    held every limit. When a play at or below the full search's rate broke (near the boundary one
    window can hold by luck), the capacity becomes the highest rate at or below both the search's and
    the acceptance's whose every play held; where it broke and why are those of the lowest rate above
    it with a play that did not. Without such a play the search's result stands."""
    if capacity.rate is None:
        return capacity
    by_rate: dict[float, list[Step]] = {}
    for st in plays:
        by_rate.setdefault(st.rate, []).append(st)

    def sustained(rate: float) -> bool:
        return all(st.verdict(ALL_LIMITS) == "held" for st in by_rate[rate])

    top = capacity.rate if acceptance.rate is None else min(capacity.rate, acceptance.rate)
    rate = max((r for r in by_rate if r <= top and sustained(r)), default=None)
    against = [r for r in by_rate if (rate is None or r > rate) and r <= capacity.rate and not sustained(r)]
    if not against:
        return capacity
    broke_at = min(against)
    broke = next(st for st in by_rate[broke_at] if st.verdict(ALL_LIMITS) != "held")
    held_then_broke = {
        r for r, sts in by_rate.items() if not sustained(r) and any(st.verdict(ALL_LIMITS) == "held" for st in sts)
    }
    return capacity.model_copy(update={
        "rate": rate,
        "broke_at": broke_at,
        "bound": "generator" if broke.verdict(ALL_LIMITS) == "generator-bound" else "pipeline",
        "reasons": broke.why(ALL_LIMITS),
        "busiest": busiest(broke.cpu_cores),
        "cpu_cores_at_break": dict(broke.cpu_cores),
        "confirmed": sum(1 for st in by_rate[rate] if st.replay) if rate is not None else 0,
        "unconfirmed": sorted({*capacity.unconfirmed, *held_then_broke}),
        "lowered_from": capacity.rate,
    })  # fmt: skip


def _replays_break(
    held: Step | None, limits: Sequence[str], times: int, replay: Callable[[float], Step], tried: list[float]
) -> Step | None:
    """The first of `times` replays of `held`'s rate that did not hold, or None if all held."""
    if held is None:
        return None
    for _ in range(times):
        tried.append(held.rate)
        st = replay(held.rate)
        if st.verdict(limits) != "held":
            return st
    return None


# -- the report --------------------------------------------------------------------------------------


class TracingCost(_Model):
    """The CPU step played with one tracing setting: what tracing costs each component."""

    setting: str  # "off", or the share of traces kept
    cpu_seconds_per_1000: dict[str, float] = Field(default_factory=dict)
    api_p50_seconds: float | None = None
    api_p99_seconds: float | None = None
    held: bool = True

    @classmethod
    def of(cls, setting: str, st: Step) -> TracingCost:
        return cls(setting=setting, cpu_seconds_per_1000=st.cpu_seconds_per_1000, api_p50_seconds=st.api_p50_seconds,
                   api_p99_seconds=st.api_p99_seconds, held=st.verdict(ALL_LIMITS) == "held")  # fmt: skip

    def services(self) -> float | None:
        """CPU seconds per 1,000 of the pipeline's own processes (the generator and the rest left out)."""
        own = [v for n, v in self.cpu_seconds_per_1000.items() if n in topology.SERVICES]
        return sum(own) if own else None


class PipelineCapacity(_Model):
    pipeline: str
    capacity: SearchResult  # every limit: for async this is the delivery (sustainable) capacity
    acceptance: SearchResult | None = None  # async: API p99 and errors only (what the API accepts)
    cpu_rate: float  # the fixed rate CPU per 1,000 reactions was read at
    cpu_seconds_per_1000: dict[str, float] = Field(default_factory=dict)  # per 1,000 acknowledged
    cpu_step_held: bool = True  # False: that step broke its service level (errors inflate the figure)
    steps: list[Step] = Field(default_factory=list)  # every step measured, in order
    tracing_costs: list[TracingCost] = Field(default_factory=list)  # the CPU step under each tracing setting


class Ratio(_Model):
    name: str
    numerator: str
    denominator: str
    value: float | None
    text: str


class GeneratorOnHealthz(_Model):
    """The load generator alone on GET /healthz (the service's cheapest answer), next to wrk there."""

    rate: float  # offered, open loop
    cpu_seconds_per_1000: float | None
    lag_p99_seconds: float | None
    wrk_cpu_seconds_per_1000: float | None
    # Its sleeps per request, what one wakeup cost beside it (harness/wakeup_probe.py), and wrk's sleeps:
    # an open loop wakes for each arrival and each answer, wrk's closed loop hardly ever sleeps.
    wakeups_per_request: float | None = None
    wakeup_cpu_seconds: float | None = None
    wrk_wakeups_per_request: float | None = None
    wake_interval_seconds: float | None = None  # the generator's --wake-interval (None: written before it had one)
    # The control at the same rate: wrk paced to the rate the generator achieved (its cost per request
    # is lowest saturating the server, far above this rate). None: written before it was measured, or
    # the generator had no answer to calibrate it with.
    achieved_per_second: float | None = None
    paced_wrk: Ceiling | None = None

    def times_wrk(self) -> float | None:
        g, w = self.cpu_seconds_per_1000, self.wrk_cpu_seconds_per_1000
        return g / w if g is not None and w else None

    def times_paced_wrk(self) -> float | None:
        if self.paced_wrk is None or self.achieved_per_second is None:
            return None
        return generator_cost.paced_ratio(
            self.cpu_seconds_per_1000, self.achieved_per_second,
            self.paced_wrk.cpu_seconds_per_1000, self.paced_wrk.per_second,
        )  # fmt: skip

    def at_wrk_wakeups_seconds_per_1000(self) -> float | None:
        """CPU per 1,000 requests less the wakeups beyond wrk's (CPU-s per 1,000 = ms per request)."""
        each = self.wakeup_cpu_seconds
        return generator_cost.at_wrk_wakeups(
            self.cpu_seconds_per_1000, self.wakeups_per_request, self.wrk_wakeups_per_request,
            None if each is None else each * 1000,
        )  # fmt: skip


class GeneratorFigures(_Model):
    """The load generator seen through the same steps: how fast it kept up, what it costs."""

    kept_up_max_rate: float | None  # highest step rate where it did not fall behind
    fell_behind_min_rate: float | None  # lowest step rate where it did
    cpu_seconds_per_1000: float | None  # at the fixed CPU rate (async)
    wrk_cpu_seconds_per_1000: float | None  # wrk on the same POST (async)
    # Reports written before the generator could send GET /healthz say so in text.
    healthz: GeneratorOnHealthz | str = "not measured"
    # The same on GET /healthz at the highest capacity this run found (async's acceptance, as a rule):
    # the top of the range its cost and lag are held to, where its fixed per-second work weighs least.
    # None: written before it was measured, a run without ceilings, or no capacity above the CPU steps' rate.
    at_top: GeneratorOnHealthz | None = None


class CapacityReport(_Model):
    schema_version: int = SCHEMA
    run_id: str
    hostname: str
    cpus: int | None
    runtime: str = "native"
    quick: bool
    tracing: str = "1"  # the search's tracing setting (reports older than the setting traced every reaction)
    started_unix: float
    finished_unix: float = 0.0
    service_level: ServiceLevel
    search: SearchSettings
    pipelines: dict[str, PipelineCapacity] = Field(default_factory=dict)
    ceilings: list[Ceiling] = Field(default_factory=list)
    ratios: list[Ratio] = Field(default_factory=list)
    generator: GeneratorFigures | None = None
    # Notification replicas and sync's balancer (harness/replicas.py); 1/none: the single stack.
    replicas: int = 1
    balancer: str = "none"
    scaling_note: str | None = None  # why these figures cannot show scaling, when the machine cannot

    def capacities(self) -> dict[str, float]:
        """The rates capacity-relative profiles may name: `<pipeline>` (every limit) and, for
        async, `async.acceptance`. Only rates that held; a generator-bound one is a lower bound."""
        out: dict[str, float] = {}
        for name, pc in self.pipelines.items():
            if pc.capacity.rate is not None:
                out[name] = pc.capacity.rate
            if pc.acceptance is not None and pc.acceptance.rate is not None:
                out[f"{name}.acceptance"] = pc.acceptance.rate
        return out

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)


def last_file(runtime: str = "native", host: str | None = None) -> Path:
    """The last capacity of this machine and stack kind."""
    return paths.state_dir() / f"capacity-{host or platform.node()}-{runtime}.json"


def load_report(path: Path) -> CapacityReport:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read a capacity result: {e}") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA:
        raise ValueError(f"{path}: not a capacity result of schema {SCHEMA}")
    try:
        return CapacityReport.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"{path}: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from None


def last_capacities(runtime: str = "native") -> Capacities | None:
    """What `make_plan(capacities=...)` resolves "0.3 x sync" from; None when never measured here.
    A stack kind `bench capacity` cannot search (compose) uses the native stack's of this machine."""
    for path in dict.fromkeys((last_file(runtime), last_file("native"))):
        if path.exists():
            return capacities_from(path)
    return None


def capacities_from(path: Path) -> Capacities:
    """The capacities of one capacity.json (ValueError naming the file when it is not one)."""
    report = load_report(path)
    return Capacities(rates=report.capacities(), source=str(path), tracing=report.tracing)


def ratios(report: CapacityReport) -> list[Ratio]:
    """Each capacity over what it is built on (and the HTTP POST over the cheapest endpoint)."""
    ceiling = {c.name: c.per_second for c in report.ceilings}
    # (name, numerator label, numerator, denominator label, ceiling name)
    rows: list[tuple[str, str, float | None, str, str]] = []
    for name, pc in report.pipelines.items():
        rows.append(
            (f"{name}.http", f"{name} capacity", pc.capacity.rate, f"wrk POST ({name})", f"http.wrk.post.{name}")
        )
        if name.startswith("sync"):
            rows.append((f"{name}.grpc", f"{name} capacity", pc.capacity.rate, "gRPC Notify loop", "grpc.notify"))
            rows.append((f"{name}.grpc_bare", f"{name} capacity", pc.capacity.rate, "bare gRPC", "grpc.bare"))
    if (a := report.pipelines.get("async")) is not None:
        acc, dlv = (a.acceptance.rate if a.acceptance else None), a.capacity.rate
        rows += [
            ("async.acceptance.aiokafka", "async acceptance", acc, "aiokafka produce", "kafka.produce.aiokafka"),
            ("async.acceptance.java", "async acceptance", acc, "ProducerPerformance", "kafka.produce.java"),
            ("async.delivery.aiokafka", "async delivery", dlv, "aiokafka consume", "kafka.consume.aiokafka"),
            ("async.delivery.java", "async delivery", dlv, "ConsumerPerformance", "kafka.consume.java"),
        ]
    post = ceiling.get("http.wrk.post.async")
    rows.append(("http.post_vs_healthz", "wrk POST (async)", post, "wrk GET /healthz", "http.wrk.healthz"))
    out = []
    for name, num_label, num, den_label, den_name in rows:
        den = ceiling.get(den_name)
        value = num / den if num is not None and den else None
        text = f"{name}: {num_label} / {den_label} = " + ("-" if value is None else f"{value:.3g}")
        out.append(Ratio(name=name, numerator=num_label, denominator=den_label, value=value, text=text))
    return out


# -- measuring on the real stack ------------------------------------------------------------------------


class StepRunner:
    """Plays steps on a running stack (harness.stack.Stack or anything with its `sup`, `pipeline`
    and `use_pipeline`), memoized per (pipeline, rate)."""

    def __init__(self, stack: Any, out_dir: Path, level: ServiceLevel, s: SearchSettings, disturbed: Disturbed) -> None:
        self.stack, self.out_dir, self.level, self.s, self.disturbed = stack, out_dir, level, s, disturbed
        self.gen_limits = generator_health.load_limits()
        self.steps: dict[tuple[str, float], Step] = {}
        self.order: list[Step] = []
        self._last: Step | None = None

    def measure(self, pipeline: str, rate: float) -> Step:
        key = (pipeline, float(rate))
        if key not in self.steps:
            self.steps[key] = self._searched(self._play_undisturbed(pipeline, float(rate)))
        return self.steps[key]

    def replay(self, pipeline: str, rate: float) -> Step:
        """The rate played again to confirm it (not memoized; the search's first play stays memoized)."""
        st = self._play_undisturbed(pipeline, float(rate), "replay")
        st.replay = True
        return self._searched(st)

    def _searched(self, st: Step) -> Step:
        self.order.append(st)
        self._last = st
        verdict = st.verdict(ALL_LIMITS) + (" (replay)" if st.replay else "")
        why = "; ".join(st.why(ALL_LIMITS)) or "within the service level"
        cores = " ".join(f"{n}={c:.2f}" for n, c in sorted(st.cpu_cores.items()))
        print(f"  {st.pipeline:<14} {st.rate:7.0f}/s  {verdict:<15} {why}  [cores {cores}]", flush=True)
        return st

    def component_pids(self) -> dict[str, int]:
        return {name: r.pid for name, r in self.stack.sup.running.items()}

    def measure_once(self, pipeline: str, rate: float, label: str) -> Step:
        """One more step at `rate`, outside the search (not memoized): e.g. under another tracing setting."""
        st = self._play_undisturbed(pipeline, float(rate), label)
        why = "; ".join(st.why(ALL_LIMITS)) or "within the service level"
        print(f"  {pipeline:<14} {rate:7.0f}/s  {label:<15} {why}", flush=True)
        return st

    def _play_undisturbed(self, pipeline: str, rate: float, label: str = "") -> Step:
        """The step, played again while processes outside the stack took more CPU than allowed."""
        d = self.disturbed
        for play in range(1, d.retries + 2):
            st = self._play(pipeline, rate, "-".join(filter(None, (label, f"play{play}" if play > 1 else ""))))
            st.played = play
            other = st.cpu_cores.get("other", 0.0)
            st.disturbed = other > d.other_cores
            if not st.disturbed:
                break
            if play <= d.retries:
                print(f"  {pipeline:<14} {rate:7.0f}/s  disturbed: other processes took {other:.2f} cores "
                      f"(> {d.other_cores:g}); played again", flush=True)  # fmt: skip
        return st

    def _play(self, pipeline: str, rate: float, label: str = "") -> Step:
        s = self.s
        last = self._last
        # After a step that did not hold, the reaction service starts afresh: an open breaker, spent
        # retry tokens or a producer still flushing would otherwise judge the next step by the last.
        if self.stack.pipeline != pipeline or (last is not None and last.verdict(ALL_LIMITS) != "held"):
            self.stack.use_pipeline(pipeline)
        progress = Progress(f"capacity {pipeline} {rate:.0f}/s", s.warmup_seconds + s.measure_seconds)
        _, left = drain(s.drain_seconds, progress, settle=1.0)
        sink.reset()
        folder = self.out_dir / pipeline / (f"{rate:.0f}" + (f"-{label}" if label else ""))
        folder.mkdir(parents=True, exist_ok=True)
        duration = s.warmup_seconds + s.measure_seconds
        profile = folder / "profile.yaml"
        profile.write_text(yaml.safe_dump({
            "name": f"capacity-{pipeline}-{rate:.0f}", "kind": "steady", "rate": rate, "duration": duration,
            "description": "a bench capacity step",
        }))  # fmt: skip
        gen = self.gen_limits
        load = LoadRun(
            str(profile), duration, folder / "loadgen", request_timeout=5.0, nice=gen.nice,
            wake_interval=gen.wake_interval_seconds,
        )  # fmt: skip
        proc = load.start(folder / "locust.log")
        watch_backlog = pipeline == "async"
        try:
            epoch = LoadRun.epoch(timeout=60.0, alive=lambda: proc.poll() is None)
            if epoch is None:  # judged like a generator that fell behind: never the pipeline's limit
                LoadRun.stop(proc)
                return _not_started(pipeline, rate, s.measure_seconds, folder / "locust.log")
            w0, w1 = epoch + s.warmup_seconds, epoch + duration
            _sleep_until(w0)
            pids = {**self.component_pids(), "loadgen": proc.pid}
            cpu0 = CpuSnapshot.take(pids, time.monotonic())
            unique0 = _sink_unique()
            backlog: list[tuple[float, float]] = []
            while time.time() < w1:
                if watch_backlog and (b := sample_backlog()) is not None:
                    backlog.append((time.time(), float(b)))
                _sleep_until(min(w1, time.time() + 1.0))
            cpu1 = CpuSnapshot.take(pids, time.monotonic())
            unique1 = _sink_unique()
            if watch_backlog and (b := sample_backlog()) is not None:
                backlog.append((time.time(), float(b)))
            proc.wait(timeout=load.request_timeout + 30)
        except BaseException:
            LoadRun.stop(proc)
            raise
        LoadRun.stop(proc)
        return self._step(pipeline, rate, load, (w0, w1), cpu0, cpu1, backlog, unique0, unique1, left == 0)

    def _step(
        self, pipeline: str, rate: float, load: LoadRun, window: tuple[float, float], cpu0: CpuSnapshot,
        cpu1: CpuSnapshot, backlog: list[tuple[float, float]], unique0: int | None, unique1: int | None,
        drained: bool,
    ) -> Step:  # fmt: skip
        w0, w1 = window
        seconds = w1 - w0
        lo, hi = int(w0 * 1e9), int(w1 * 1e9)
        outcomes = [o for o in load.outcomes() if lo <= o["intended_unix_nanos"] < hi]
        summaries = load.summaries()
        counts = {k: sum(1 for o in outcomes if o["outcome"] == k) for k in ("ack", "failed", "unknown")}
        sent = len(outcomes)
        api = [(o["ended_unix_nanos"] - o["intended_unix_nanos"]) / 1e9 for o in outcomes]
        service = [(o["ended_unix_nanos"] - o["started_unix_nanos"]) / 1e9 for o in outcomes]
        lags = generator_health.lag_summary(generator_health.schedule_lags(outcomes))
        missed = _missed_in(load.out_dir, w0, w1, summaries)
        err = (counts["failed"] + counts["unknown"]) / sent if sent else None
        growth = slope(backlog) if backlog else None
        api_p99, service_p99 = quantiles.summary(api)["p99"], quantiles.summary(service)["p99"]
        breaches = judge(self.level, pipeline, rate, api_p99=api_p99, error_ratio=err, backlog_growth=growth)
        without_lag = judge(self.level, pipeline, rate, api_p99=service_p99, error_ratio=err, backlog_growth=growth)
        gen = generator_health.fell_behind(
            lag_p99=lags["p99"], missed=0, workers_expected=load.processes, summaries=summaries, limits=self.gen_limits
        )
        if missed > self.gen_limits.max_missed_arrivals and not breaches:
            # The in-flight cap filled while the service answered within its level: the cap, not the pipeline.
            gen.append(f"{missed} arrivals missed at the in-flight cap (limit {self.gen_limits.max_missed_arrivals})")
        if sent == 0:
            gen.append("nothing was sent in the measured window")
        acked = counts["ack"]
        cpu_s = CpuSnapshot.with_other(cpu1.seconds_since(cpu0))
        return Step(
            pipeline=pipeline, rate=rate, seconds=seconds, sent=sent, acknowledged=acked, failed=counts["failed"],
            unknown=counts["unknown"], missed=missed,
            achieved_rate=sum(1 for o in outcomes if o["started_unix_nanos"] < hi) / seconds,
            error_ratio=err, api_p50_seconds=quantiles.summary(api)["p50"], api_p99_seconds=api_p99,
            service_p99_seconds=service_p99, lag_p99_seconds=lags["p99"], lag_max_seconds=lags["max"],
            backlog_start=int(backlog[0][1]) if backlog else None,
            backlog_end=int(backlog[-1][1]) if backlog else None, backlog_growth_per_second=growth,
            delivered_per_second=(unique1 - unique0) / seconds if unique0 is not None and unique1 is not None else None,
            drained_before=drained, cpu_cores=CpuSnapshot.with_other(cpu1.cores_since(cpu0)),
            cpu_seconds_per_1000={n: c / acked * 1000 for n, c in cpu_s.items()} if acked else {},
            breaches=breaches, breaches_without_lag=without_lag, generator_reasons=gen,
        )  # fmt: skip


def _not_started(pipeline: str, rate: float, seconds: float, log: Path) -> Step:
    return Step(
        pipeline=pipeline, rate=rate, seconds=seconds, sent=0, acknowledged=0, failed=0, unknown=0, missed=0,
        achieved_rate=0.0, error_ratio=None, api_p50_seconds=None, api_p99_seconds=None, service_p99_seconds=None,
        lag_p99_seconds=None, lag_max_seconds=None, generator_reasons=[f"the load generator did not start; see {log}"],
    )  # fmt: skip


def _sleep_until(unix: float) -> None:
    while (left := unix - time.time()) > 0:
        time.sleep(min(left, 0.5))


def _sink_unique() -> int | None:
    try:
        return int(sink.stats()["unique"])
    except Exception:  # the sink is read for a figure, never to fail a step
        return None


def _missed_in(out_dir: Path, w0: float, w1: float, summaries: list[dict[str, Any]]) -> int:
    """Missed arrivals whose intended second falls in the window (the per-second series), or the
    run's total when there is no series."""
    rows = []
    for path in sorted(out_dir.glob("series-w*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    if not rows:
        return sum(int(s.get("missed", 0)) for s in summaries)
    return sum(int(r.get("missed", 0)) for r in rows if w0 - 0.5 <= float(r["unix_seconds"]) < w1)


# -- the whole command ----------------------------------------------------------------------------------


def measure_pipeline(runner: StepRunner, pipeline: str) -> PipelineCapacity:
    s = runner.s

    def measure(rate: float) -> Step:
        return runner.measure(pipeline, rate)

    def replay(rate: float) -> Step:
        return runner.replay(pipeline, rate)

    print(f"{pipeline}: searching (service level: every limit)", flush=True)
    capacity = search(measure, ALL_LIMITS, s, replay)
    acceptance = None
    if pipeline == "async":
        print(f"{pipeline}: searching the acceptance capacity (API p99 and errors only)", flush=True)
        acceptance = search(measure, ACCEPTANCE_LIMITS, s, replay)
    steps = [st for st in runner.order if st.pipeline == pipeline]  # every play of its searches
    if acceptance is not None:
        capacity = held_on_every_play(capacity, acceptance, steps)
    first = runner.steps[(pipeline, float(s.start_rate))]
    return PipelineCapacity(
        pipeline=pipeline,
        capacity=capacity,
        acceptance=acceptance,
        cpu_rate=s.start_rate,
        cpu_seconds_per_1000=first.cpu_seconds_per_1000,
        cpu_step_held=first.verdict(ALL_LIMITS) == "held",
        steps=steps,
    )


def measure_tracing_costs(runner: StepRunner, pipeline: str, search: str, overhead: Sequence[str]) -> list[TracingCost]:
    """The CPU step (the search's start rate) under the search's tracing, then under each other setting;
    the services are restarted for each and left with the search's setting."""
    rate = float(runner.s.start_rate)
    costs = [TracingCost.of(search, runner.steps[(pipeline, rate)])]
    others = [o for o in dict.fromkeys(overhead) if o != search]
    for setting in others:
        runner.stack.use_tracing(tracing_of(setting))
        costs.append(TracingCost.of(setting, runner.measure_once(pipeline, rate, f"tracing-{setting}")))
    if others:
        runner.stack.use_tracing(tracing_of(search))
    return costs


def measure_generator_on_healthz(
    rate: float, s: SearchSettings, work: Path, wrk: Ceiling, wrk_bin: Path
) -> GeneratorOnHealthz:
    """The load generator at `rate` on GET /healthz: its CPU per request where the service costs least,
    next to wrk at its max there (`wrk`) and wrk paced to the rate it achieved."""
    warmup = 3.0  # Python's start-up, not charged to the requests
    measured = max(s.ceiling_seconds, 5.0)
    fig = generator_cost.measure_generator(rate, 1, warmup + measured, warmup, work, endpoint="healthz")
    paced = generator_cost.paced_control(fig, measured, "healthz", wrk_bin)
    print(f"  generator on GET /healthz at {rate:.0f}/s: {fig.cpu_ms_per_request} ms CPU per request, "
          f"{fig.wakeups_per_request} wakeups per request at {fig.ms_per_wakeup} ms, lag p99 {fig.lag_p99_ms} ms "
          f"(wrk {_num(wrk.cpu_seconds_per_1000)} ms, {_num(wrk.wakeups_per_request)} wakeups; paced to the rate "
          f"{_num(paced.cpu_seconds_per_1000 if paced else None)} ms, "
          f"{_num(paced.wakeups_per_request if paced else None)} wakeups)",
          flush=True)  # fmt: skip
    return GeneratorOnHealthz(
        achieved_per_second=fig.achieved_per_second,
        paced_wrk=paced,
        rate=rate,
        cpu_seconds_per_1000=fig.cpu_ms_per_request,  # ms per request = CPU-s per 1,000
        lag_p99_seconds=None if fig.lag_p99_ms is None else fig.lag_p99_ms / 1000,
        wrk_cpu_seconds_per_1000=wrk.cpu_seconds_per_1000,
        wakeups_per_request=fig.wakeups_per_request,
        wakeup_cpu_seconds=None if fig.ms_per_wakeup is None else fig.ms_per_wakeup / 1000,
        wrk_wakeups_per_request=wrk.wakeups_per_request,
        wake_interval_seconds=None if fig.wake_interval_ms is None else fig.wake_interval_ms / 1000,
    )


def measure_ceilings(
    stack: Any, pipelines: Sequence[str], s: SearchSettings, wrk_bin: Path, work: Path, generator_rate: float,
    top: float | None = None,
) -> tuple[list[Ceiling], GeneratorOnHealthz, GeneratorOnHealthz | None]:  # fmt: skip
    """Every bare ceiling, each bounded by `s.ceiling_seconds` (the Kafka tools by a record count), and
    the load generator on the cheapest endpoint at `generator_rate` and, when given, at `top`."""
    secs = s.ceiling_seconds
    out: list[Ceiling] = []

    def note(c: Ceiling) -> Ceiling:
        value = "FAILED: " + (c.error or "") if c.per_second is None else f"{c.per_second:,.0f}/s"
        print(f"  ceiling {c.name:<24} {value}  ({c.tool})", flush=True)
        out.append(c)
        return c

    print("ceilings", flush=True)
    healthz = note(ceilings.wrk(wrk_bin, "http.wrk.healthz", topology.HEALTHZ_PATH, secs, post=False))
    generator = measure_generator_on_healthz(generator_rate, s, work, healthz, wrk_bin)
    at_top = None if top is None else measure_generator_on_healthz(top, s, work, healthz, wrk_bin)
    for p in pipelines:  # the POST's cost depends on the pipeline behind it
        if stack.pipeline != p:
            stack.use_pipeline(p)
        drain(s.drain_seconds, Progress(f"ceiling wrk {p}", secs), settle=1.0)
        note(ceilings.wrk(wrk_bin, f"http.wrk.post.{p}", ceilings.POST_PATH, secs, post=True))
    drain(s.drain_seconds, Progress("ceilings", secs), settle=1.0)
    if any(p.startswith("sync") for p in pipelines):
        note(ceilings.grpc_notify(secs))
        note(ceilings.grpc_bare(secs))
    if "async" in pipelines:
        ceilings.ensure_topic()
        records = 50_000 if secs < 5 else 300_000
        note(ceilings.aiokafka_produce(secs))
        note(ceilings.producer_performance(records, ceilings.record_size(), timeout=60 + secs))
        note(ceilings.consumer_performance(records, timeout=30 + secs))
        note(ceilings.aiokafka_consume(secs))
    return out, generator, at_top


def top_rate(report: CapacityReport, start_rate: float) -> float | None:
    """The highest capacity (or async acceptance) the searches found, when above the CPU steps' rate
    `start_rate`: where the generator is measured again, on GET /healthz, next to wrk."""
    top = max(report.capacities().values(), default=None)
    return top if top is not None and top > start_rate else None


def generator_figures(
    report: CapacityReport, healthz: GeneratorOnHealthz | None, at_top: GeneratorOnHealthz | None = None
) -> GeneratorFigures:
    steps = [st for pc in report.pipelines.values() for st in pc.steps]
    kept = [st.rate for st in steps if not st.generator_reasons]
    behind = [st.rate for st in steps if st.generator_reasons]
    gen_cpu = wrk_cpu = None
    if (a := report.pipelines.get("async")) is not None:
        first = next((st for st in a.steps if st.rate == a.cpu_rate), None)
        if first is not None and first.sent:
            loadgen = first.cpu_cores.get("loadgen")
            gen_cpu = loadgen * first.seconds / first.sent * 1000 if loadgen is not None else None
    for c in report.ceilings:
        if c.name == "http.wrk.post.async":
            wrk_cpu = c.cpu_seconds_per_1000
    return GeneratorFigures(
        kept_up_max_rate=max(kept, default=None),
        fell_behind_min_rate=min(behind, default=None),
        cpu_seconds_per_1000=gen_cpu,
        wrk_cpu_seconds_per_1000=wrk_cpu,
        healthz=healthz if healthz is not None else "not measured (no ceilings in this run)",
        at_top=at_top,
    )


def print_report(report: CapacityReport) -> None:
    print(f"\ncapacity on {report.hostname} ({report.cpus} CPUs), service level: API p99 < "
          f"{report.service_level.api_p99_seconds * 1000:g} ms, errors < {report.service_level.error_ratio:.2%}, "
          f"async backlog growth < {report.service_level.backlog_growth_ratio:.0%} of the rate")  # fmt: skip
    for name, pc in report.pipelines.items():
        print(f"  {name:<15} {pc.capacity.summary()}")
        if pc.acceptance is not None:
            print(f"  {name + ' accepts':<15} {pc.acceptance.summary()}")
    print("ceilings:")
    for c in report.ceilings:
        value = "failed: " + (c.error or "") if c.per_second is None else f"{c.per_second:>10,.0f}/s"
        print(f"  {c.name:<24} {value}")
    print("ratios:")
    for r in report.ratios:
        print(f"  {r.text}")
    print(f"CPU seconds per 1,000 reactions (at {report.search.start_rate:g}/s):")
    for name, pc in report.pipelines.items():
        note = "" if pc.cpu_step_held else "  (that step broke its service level)"
        print(f"  {name:<15} " + "  ".join(f"{n} {v:.2f}" for n, v in sorted(pc.cpu_seconds_per_1000.items())) + note)
    print(f"what tracing costs (the search traced: {report.tracing}), CPU seconds per 1,000 of the services:")
    for name, pc in report.pipelines.items():
        costs = "  ".join(f"{c.setting}: {_num(c.services())}" for c in pc.tracing_costs)
        print(f"  {name:<15} {costs or '-'}")
    if (g := report.generator) is not None:
        cost = f"CPU s per 1,000 requests {_num(g.cpu_seconds_per_1000)} vs wrk {_num(g.wrk_cpu_seconds_per_1000)}"
        print(f"generator: kept up to {g.kept_up_max_rate}/s, fell behind from {g.fell_behind_min_rate}/s; {cost}")
        for h, which in ((g.healthz, "the CPU steps' rate"), (g.at_top, "the run's top capacity")):
            if isinstance(h, GeneratorOnHealthz):
                lag = None if h.lag_p99_seconds is None else h.lag_p99_seconds * 1000
                print(f"  at {which}, on GET /healthz at {h.rate:.0f}/s: {_num(h.cpu_seconds_per_1000)} ms CPU per "
                      f"request, {_times(h.times_wrk())} wrk at its max, {_times(h.times_paced_wrk())} wrk paced to "
                      f"the rate, lag p99 {_num(lag)} ms")  # fmt: skip


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _times(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}x"


def scales_runs(setting: str, runs_tracing: str) -> bool:
    """Whether a capacity searched with tracing `setting` becomes this machine's last capacity: only
    one measured with the runs' own tracing is what their relative rates may scale from."""
    return tracing_of(setting) == tracing_of(runs_tracing)


def run_capacity(
    pipelines: Sequence[str], quick: bool, *, open_stack: Callable[[Path, str, Tracing], Any] | None = None,
    stack: Any = None, config: CapacityConfig | None = None, runs_root: Path | None = None,
    with_ceilings: bool = True, remember: bool = True, tracing: str | None = None,
) -> CapacityReport:  # fmt: skip
    """Search each pipeline's capacity and measure the ceilings on one stack (started here with
    `open_stack`, or the given running `stack`, with tracing `tracing` or harness/limits/tracing.yaml's); write
    runs/<id>/capacity.json and, with `remember`, the last-capacity file of this machine."""
    from harness import provision

    config = config or load_config()
    s = config.search.quick if quick else config.search.full
    root = runs_root or paths.runs_dir()
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-capacity"
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    measured = measured_tracing.load()
    setting = tracing or measured.sample
    report = CapacityReport(run_id=run_id, hostname=platform.node(), cpus=os.cpu_count(), quick=quick,
                            tracing=setting, started_unix=time.time(), service_level=config.service_level,
                            search=s)  # fmt: skip
    wrk_bin = provision.locate().wrk
    print(f"capacity run {run_id} -> {run_dir}", flush=True)

    healthz: GeneratorOnHealthz | None = None
    at_top: GeneratorOnHealthz | None = None

    def body(st: Any) -> None:
        st.toxiproxy.reset()
        if st.tracing != tracing_of(setting):
            st.use_tracing(tracing_of(setting))
        runner = StepRunner(st, run_dir / "steps", config.service_level, s, config.disturbed)
        for p in pipelines:
            report.pipelines[p] = measure_pipeline(runner, p)
            report.pipelines[p].tracing_costs = measure_tracing_costs(runner, p, setting, measured.overhead)
            report.write(run_dir / "capacity.json")
        if with_ceilings:
            nonlocal healthz, at_top  # the generator at the CPU steps' rate (its cost there) and at the top
            report.ceilings, healthz, at_top = measure_ceilings(
                st, pipelines, s, wrk_bin, run_dir / "generator", s.start_rate, top_rate(report, s.start_rate)
            )

    if stack is not None:  # someone else's stack: left with the tracing it came with
        before = stack.tracing
        try:
            body(stack)
        finally:
            if stack.tracing != before:
                stack.use_tracing(before)
    else:
        assert open_stack is not None
        with open_stack(run_dir / "stack", pipelines[0], tracing_of(setting)) as st:
            body(st)
    report.ratios = ratios(report)
    report.generator = generator_figures(report, healthz, at_top)
    report.finished_unix = time.time()
    report.write(run_dir / "capacity.json")
    remember = remember and scales_runs(setting, measured.sample)
    if remember:
        report.write(last_file(report.runtime))
    print_report(report)
    print(f"\nwritten: {run_dir / 'capacity.json'}" + (f" and {last_file(report.runtime)}" if remember else ""))
    return report


def scaling_note(cpus: int | None, replicas: int) -> str | None:
    """Why a capacity with `replicas` notification replicas cannot show scaling on this machine, or None.
    Each replica is one Python process (one core at most); with the reaction service, Kafka, Toxiproxy,
    HAProxy and the load generator on the same cores, more replicas only share them."""
    if replicas <= 1:
        return None
    needed = replicas + 2  # the replicas, the reaction service and the generator, at the least
    if cpus is None or cpus < needed:
        return (
            f"{cpus or '?'} CPUs for {replicas} notification replicas, the reaction service, Kafka, Toxiproxy, "
            f"HAProxy and the load generator (at least {needed} needed): the replicas share the cores, so "
            "these figures cannot show scaling (a flat line here is the machine, not the pipeline)"
        )
    return None


def main(pipelines: Sequence[str], quick: bool, replicas: Any = None, tracing: str | None = None) -> int:
    """`replicas`: harness.replicas.Replicas (None: the single stack). With more than one, the
    last-capacity file (what capacity-relative rates read) is left alone. `tracing`: the search's
    setting ("off" or a ratio; default: harness/limits/tracing.yaml's)."""
    from harness import provision, supervisor
    from harness.stack import Stack

    try:
        config = load_config()
        measured_tracing.load()
        provision.locate()
    except (ConfigError, ValueError, provision.ProvisionError) as e:
        print(f"bench capacity: {e}", file=sys.stderr)
        return 2
    try:
        with supervisor.terminating_signals():
            if replicas is None or replicas.default:
                run_capacity(
                    pipelines, quick, open_stack=lambda work, p, t: Stack(work, p, tracing=t), config=config,
                    tracing=tracing,
                )  # fmt: skip
            else:
                note = scaling_note(os.cpu_count(), replicas.count)
                if note:
                    print(f"bench capacity: {note}", flush=True)
                report = run_capacity(
                    pipelines, quick, open_stack=lambda work, p, t: Stack(work, p, tracing=t, replicas=replicas),
                    config=config, remember=False, tracing=tracing,
                )  # fmt: skip
                report.replicas, report.balancer, report.scaling_note = replicas.count, replicas.balancer, note
                report.write(paths.runs_dir() / report.run_id / "capacity.json")
    except KeyboardInterrupt:
        print("\nbench capacity: interrupted; stack stopped", file=sys.stderr)
        return 130
    except (supervisor.StartError, RuntimeError, OSError) as e:
        print(f"\nbench capacity: error: {e}", file=sys.stderr)
        return 1
    return 0
