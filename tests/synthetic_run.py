"""Synthetic run folders written through the same model `bench run` writes (harness/result.py),
for the report, claims and compare tests."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from facts import measures, quantiles
from harness.intervals import Request, block_intervals, request_metrics
from harness.ledger import Ledger
from harness.memory import MIB, MemoryLimits, MemoryProfile, judge, load_limits
from harness.result import (
    Backlog,
    CellResult,
    CheckResult,
    DeadLetter,
    FaultWindow,
    Hypothesis,
    LoadGenerator,
    Machine,
    PerSecond,
    RunIndex,
    TargetRate,
    Timings,
)
from harness.traces import Distribution, TraceSummary
from harness.windows import latency_summary, windows
from loadtests.profile import Capacities

MACHINE = Machine(
    hostname="ci-runner-7",
    cpus=2,
    memory_gib=7.8,
    platform="Linux-6.1.0-x86_64-with-glibc2.36",
    python="3.11.7",
    kafka="4.4.0",
    toxiproxy="v2.12.0",
    runtime="native",
    versions={"python": "3.11.7", "java": "17.0.15", "maven": "3.8.7", "go": "1.26.8", "prometheus": "2.42.0"},
)

# What the shipped scenarios' capacity-relative rates resolve to in tests: a test input, not a
# measurement. Sync at 250/s is where the scenarios were first tuned on the development VM with
# absolute rates (steady 75/s, surge 50 -> 500/s, surge-over-capacity's 320/s delivery between).
CAPACITIES = Capacities(
    rates={"sync": 250.0, "sync-resilient": 250.0, "async": 500.0, "async.acceptance": 1000.0},
    source="tests/synthetic_run.py (a test input, not a measurement)",
)


def write_capacity(path: Path, caps: Capacities = CAPACITIES, tracing: str = "0.1") -> Path:
    """`caps` as the capacity.json of a `bench capacity` run (what `bench run --capacity` reads)."""
    from harness.capacity.config import load_config
    from harness.capacity.report import CapacityReport, PipelineCapacity
    from harness.capacity.search import SearchResult

    config = load_config()
    pipelines = {}
    for name, rate in caps.rates.items():
        if "." in name:
            continue
        found = SearchResult(limits=["api.p99"], rate=rate, broke_at=rate * 1.1, bound="pipeline", reasons=["test"])
        accepts = caps.rates.get(f"{name}.acceptance")
        acceptance = None if accepts is None else found.model_copy(update={"rate": accepts})
        pipelines[name] = PipelineCapacity(pipeline=name, capacity=found, acceptance=acceptance, cpu_rate=rate / 2)
    report = CapacityReport(
        run_id="test-capacity", hostname="test", cpus=2, quick=True, tracing=tracing, started_unix=0.0,
        service_level=config.service_level, search=config.search.quick, pipelines=pipelines,
    )  # fmt: skip
    report.write(path)
    return path


def fault(label: str, start: float, end: float, kind: str = "link-down", target: str = "link:x") -> FaultWindow:
    """A fault planned for [start, end), applied 20 ms late, undone 30 ms late."""
    return FaultWindow(
        index=0, kind=kind, target=target, label=label, start=start, end=end,
        applied_offset=start + 0.02, undone_offset=end + 0.03,
    )  # fmt: skip


def set_metric(cell: CellResult, name: str, value: float | None) -> None:
    """Write `value` into the one field that stores metric `name` (ratios and rates through the
    ledger counts they are computed from), and check that the cell now reads it back."""
    led, n = cell.ledger, cell.ledger.attempted
    hop, _, stat = name.partition(".")
    if name in measures.LEDGER_COUNTS:
        setattr(led, name, int(value or 0))
    elif hop in ("api", "e2e") and stat in measures.LATENCY_STATS:
        setattr(cell.api_latency_seconds if hop == "api" else cell.e2e_latency_seconds, stat, value)
    elif name == "error_ratio":
        led.failed, led.unknown = round((value or 0) * n), 0
        led.acknowledged = n - led.failed
    elif name == "ack_ratio":
        led.acknowledged, led.unknown = round((value or 0) * n), 0
        led.failed = n - led.acknowledged
    elif name == "delivered_ratio":
        led.delivered = round((value or 0) * n)
    elif name == "achieved_rate":
        led.attempted = round((value or 0) * cell.timings.load_seconds)
        led.acknowledged = led.attempted - led.failed - led.unknown
    elif name == "missed_arrivals":
        cell.loadgen.missed_arrivals = int(value or 0)
    elif name == "peak_backlog":
        cell.backlog.peak = None if value is None else int(value)
    elif name == "drain_seconds":
        cell.timings.drain_seconds = float(value or 0)
    elif name in ("rate.target_mean", "rate.target_peak"):
        setattr(cell.target_rate, stat.removeprefix("target_"), float(value or 0))
    elif name == "hypothesis.passed":
        assert cell.hypothesis is not None
        cell.hypothesis.passed = bool(value)
    else:
        raise ValueError(f"{name}: derived from the series, set the series instead")
    got = cell.metrics()[name]
    if value is None or got is None:
        assert got is value, (name, value, got)
    else:
        assert abs(got - value) <= 1e-9 + 1e-3 * abs(value), (name, value, got)


def result(
    pipeline: str,
    scenario: str,
    *,
    seconds: int = 20,
    rate: float = 100.0,
    api: float = 0.004,
    e2e: float = 0.002,
    faults: tuple[FaultWindow, ...] = (),
    fault_error: float = 0.0,
    fault_api: float | None = None,
    fault_e2e: float | None = None,
    backlog_peak: int = 0,
    surge: tuple[int, int] | None = None,
    surge_factor: float = 10.0,
    surge_error: float = 0.0,
    surge_api: float | None = None,
    lost: int = 0,
    drain: int = 3,
    intervals: bool = False,
    traces: TraceSummary | None = None,
    seed: int = 1,
    measured: dict[str, float | None] | None = None,
    **overrides: float | None,
) -> CellResult:
    """One cell: steady `rate` (times `surge_factor` during the `surge` seconds [start, end), with a
    share `surge_error` of failures and API latency `surge_api`), and inside the fault windows a share
    `fault_error` of failures and latencies `fault_api`/`fault_e2e`; async-like backlog rising to
    `backlog_peak` then draining. `measured` and `overrides` (for names without dots) set metrics
    through `set_metric`. The control windows (and, with `intervals`, the time-block intervals) come
    from the same code as a real cell's."""
    rnd = random.Random(seed)
    in_fault = [any(f.start <= i + 0.5 < f.end for f in faults) for i in range(seconds)]

    def rate_at(t: float) -> float:
        return rate * surge_factor if surge and surge[0] <= t < surge[1] else rate if 0 <= t < seconds else 0.0

    n = seconds + drain
    ack, failed, unknown, delivered = [0] * n, [0] * n, [0] * n, [0] * n
    api_samples: list[tuple[float, float]] = []
    e2e_samples: list[tuple[float, float]] = []
    requests: list[Request] = []
    ack_to_delivery: list[float] = []
    for i in range(seconds):
        sent = int(rate_at(i + 0.5))
        in_surge = sent > rate
        share = fault_error if in_fault[i] else surge_error if in_surge else 0.0
        bad = round(sent * share)
        ack[i], failed[i] = sent - bad, bad
        base_api = fault_api if in_fault[i] and fault_api is not None else api
        base_api = surge_api if in_surge and surge_api is not None else base_api
        for k in range(sent):
            t = i + k / sent
            lat = base_api * rnd.uniform(0.4, 1.0)
            api_samples.append((t, lat))
            el = (fault_e2e if in_fault[i] and fault_e2e is not None else e2e) * rnd.uniform(0.4, 1.0)
            ok = k >= bad
            a2d = el - lat if ok else None
            requests.append(Request(t, lat, ok, el if ok else None, a2d, delivered=ok))
            if ok:
                e2e_samples.append((t + el, el))
                ack_to_delivery.append(el - lat)
    for t, _ in e2e_samples:
        delivered[min(int(t), n - 1)] += 1
    backlog: list[int | None] = [0] * n
    if backlog_peak:
        top = seconds // 2
        backlog = [round(backlog_peak * min(i / top, max(0.0, (n - i) / (n - top)))) for i in range(n)]
        backlog[-1] = 0
    attempted, acknowledged, n_failed = sum(ack) + sum(failed), sum(ack), sum(failed)
    cell = CellResult(
        pipeline=pipeline,
        scenario=scenario,
        description=f"synthetic {scenario}",
        profile={"name": "steady-60s", "description": f"{rate:g} reactions/s", "kind": "steady",
                 "rate": rate, "duration": float(seconds)},
        timings=Timings(load_start_unix=1e9, load_seconds=float(seconds), drain_seconds=float(drain),
                        drain_timeout_seconds=60.0, drained=True),
        target_rate=TargetRate(mean=sum(rate_at(i + 0.5) for i in range(seconds)) / seconds, peak=rate_at(
            surge[0] + 0.5) if surge else rate),
        loadgen=LoadGenerator(exit_code=0, missed_arrivals=0),
        ledger=Ledger(attempted=attempted, acknowledged=acknowledged, failed=n_failed,
                      delivered=len(e2e_samples) - lost, lost=lost),
        api_latency_seconds=latency_summary(v for _, v in api_samples),
        e2e_latency_seconds=latency_summary(v for _, v in e2e_samples),
        ack_to_delivery_seconds=latency_summary(ack_to_delivery),
        windows=windows(requests, rate_at, float(seconds), faults),
        backlog=Backlog(peak=backlog_peak, left_after_drain=0),
        dead_letter=DeadLetter(),
        faults=list(faults),
        series=PerSecond(
            second=list(range(n)),
            target_rate=[rate_at(i + 0.5) for i in range(n)],
            acknowledged=ack, failed=failed, unknown=unknown, delivered=delivered,
            api_p50=quantiles.per_second_quantile(api_samples, 0, n, 0.5),
            api_p99=quantiles.per_second_quantile(api_samples, 0, n, 0.99),
            e2e_p50=quantiles.per_second_quantile(e2e_samples, 0, n, 0.5),
            e2e_p99=quantiles.per_second_quantile(e2e_samples, 0, n, 0.99),
            backlog=backlog,
        ),
    )  # fmt: skip
    cell.traces = traces
    if intervals:
        cell.intervals = block_intervals(
            requests,
            lambda sample: {**request_metrics(sample), **windows(sample, rate_at, float(seconds), faults).metrics()},
        )
    settings = {**(measured or {}), **overrides}
    for name, value in settings.items():
        if name != "hypothesis.passed":
            set_metric(cell, name, value)
    lost_now = cell.metrics()["lost"]
    check = CheckResult(check="lost == 0", metric="lost", measured=lost_now, passed=lost_now == 0)
    cell.hypothesis = Hypothesis(passed=check.passed, checks=[check])
    if "hypothesis.passed" in settings:
        set_metric(cell, "hypothesis.passed", settings["hypothesis.passed"])
    return cell


def write_run(root: Path, cells: list[CellResult], run_id: str = "20260101-000000", machine: bool = True) -> Path:
    """A run folder as `bench run` leaves it: run.json + <pipeline>--<scenario>/result.json.
    Without `machine`, an interrupted run: the results but no run.json."""
    root.mkdir(parents=True, exist_ok=True)
    for c in cells:
        c.write(root)
    if machine:
        RunIndex(run_id=run_id, machine=MACHINE, planned_cells=len(cells), cells=[c.folder for c in cells]).write(root)
    return root


def trace_summary(pipeline: str, spans: float, completeness: float = 1.0, traces: float = 1.0) -> TraceSummary:
    """What harness/traces.py would read back for a cell's reactions, in figures."""
    return TraceSummary(
        pipeline=pipeline, reactions=1000, delivered=1000, traced=1000, connected=round(1000 * completeness),
        first_push_connected=round(1000 * completeness), completeness=completeness,
        traces_per_reaction=Distribution(p50=traces, count=1000),
        spans_per_reaction=Distribution(p50=spans, count=1000),
        entries_per_reaction=Distribution(p50=1, count=1000),
        push_attempts_per_reaction=Distribution(p50=1, count=1000),
        hops={"handler": Distribution(p50=0.0005, count=1000), "delivery": Distribution(p50=0.002, count=1000)},
    )  # fmt: skip


def article_cells(changes: dict[tuple[str, str], dict[str, Any]] | None = None) -> list[CellResult]:
    """A full matrix shaped like the article says it should be (sync blocks and cascades, async absorbs).
    `changes`: (pipeline, scenario) -> keyword arguments of `result` to replace for that cell."""
    down = (fault("notification down", 5, 12),)
    broker = (fault("kafka-produce down", 5, 12), fault("kafka-consume down", 5, 12))
    slow = (fault("latency(downstream) on push", 5, 15, kind="toxic", target="link:push"),)
    crash = (fault("kill notification", 5, 8, kind="kill", target="process:notification"),)
    flaky = (fault("reset_peer on notification", 2, 20, kind="toxic"),)
    cells = []
    for p in ("sync", "sync-resilient", "async"):
        is_async = p == "async"
        e2e = 0.02 if is_async else 0.002
        specs: dict[str, dict[str, Any]] = {
            "baseline": {"e2e": e2e},
            "push-slow": {"faults": slow, "fault_api": 0.004 if is_async else 0.45, "fault_e2e": 0.45, "e2e": e2e},
            "notification-down": {"faults": down, "fault_error": 0.0 if is_async else 1.0,
                                  "fault_e2e": 6.0 if is_async else None, "backlog_peak": 700 if is_async else 0,
                                  "e2e": e2e},
            "broker-down": {"faults": broker, "fault_error": 1.0 if is_async else 0.0, "e2e": e2e},
            **{surge: {"rate": 50, "surge": (8, 14), "surge_api": 0.005 if is_async else 0.9,
                       "surge_error": 0.0 if is_async else 0.3, "e2e": e2e,
                       "backlog_peak": 2000 if is_async else 0}
               for surge in ("surge", "surge-over-capacity")},
            "consumer-crash": {"faults": crash, "fault_error": 0.0 if is_async else 1.0, "e2e": e2e},
            "flaky-network": {"faults": flaky, "fault_error": 0.0 if is_async else 0.05, "e2e": e2e},
        }  # fmt: skip
        spans = 8.0 if is_async else 6.0
        specs["baseline"]["traces"] = trace_summary(p, spans)
        specs["consumer-crash"]["traces"] = trace_summary(p, spans, completeness=0.94 if is_async else 1.0)
        for scenario, kwargs in specs.items():
            cells.append(result(p, scenario, **{**kwargs, **(changes or {}).get((p, scenario), {})}))
    return cells


def rss_series(
    start_mib: float, mib_per_hour: float, seconds: float, interval: float = 2.0, noise_mib: float = 1.0, seed: int = 1
) -> list[tuple[float, int]]:
    """What the memory watch reads of one process: (seconds from the load's start, RSS bytes) every
    `interval` seconds, from `start_mib` growing `mib_per_hour`, with +- `noise_mib` of jitter."""
    rnd = random.Random(seed)
    n = int(seconds / interval) + 1
    return [
        (i * interval, round((start_mib + mib_per_hour * i * interval / 3600 + rnd.uniform(-1, 1) * noise_mib) * MIB))
        for i in range(n)
    ]


def memory_profile(
    seconds: float, growth: dict[str, tuple[float, float]], limits: MemoryLimits | None = None
) -> MemoryProfile:
    """A cell's memory as harness/memory.py judges it: process -> (start MiB, MiB per hour)."""
    limits = limits or load_limits()
    processes = [
        judge(name, rss_series(start, per_hour, seconds, limits.interval_seconds, seed=i), seconds, limits)
        for i, (name, (start, per_hour)) in enumerate(growth.items())
    ]
    return MemoryProfile.judged(processes, seconds, limits)
