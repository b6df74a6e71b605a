"""`bench capacity` itself: each pipeline's searches, the tracing costs and the ceilings on one stack,
written to runs/<id>/capacity.json and to this machine's last capacity."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from facts import paths, topology
from harness import generator_health, measured_tracing
from harness.capacity import ceilings_grpc, ceilings_http, ceilings_kafka, cpu, generator_cost
from harness.capacity.ceilings import Ceiling
from harness.capacity.config import (
    ACCEPTANCE_LIMITS,
    ALL_LIMITS,
    CapacityConfig,
    ConfigError,
    SearchSettings,
    load_config,
)
from harness.capacity.report import (
    CAPACITY_FILE,
    CapacityReport,
    GeneratorOnHealthz,
    OnHealthz,
    PipelineCapacity,
    TracingCost,
    cpu_bounds,
    generator_figures,
    last_file,
    number,
    print_report,
    ratios,
    top_rate,
)
from harness.capacity.runner import StepRunner
from harness.capacity.search import held_on_every_play, search
from harness.capacity.step import Step
from harness.generator_health import GeneratorLimits
from harness.measured_tracing import MeasuredTracing, tracing_of
from harness.progress import Progress
from harness.sampling import drain
from harness.stack import Tracing
from loadtests.reaction import HEALTHZ


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


def measure_tracing_costs(
    runner: StepRunner, pipelines: Sequence[str], search: str, overhead: Sequence[str],
    after_each: Callable[[dict[str, list[TracingCost]]], None] = lambda _: None,
) -> dict[str, list[TracingCost]]:  # fmt: skip
    """Each pipeline's CPU step (the search's start rate) under the search's tracing, then under each
    other setting, all played in this one phase: the search's own first step, minutes older, would be
    a control measured at another time. The services restart once a setting, every pipeline is played
    under it (each setting starting on the pipeline the last one ended on, so the reaction service
    switches least), and they are left with the search's setting. Without another setting there is
    nothing to compare: the search's own step is the figure. `after_each` gets the costs so far after
    each setting (an interrupted phase keeps what it measured)."""
    rate = float(runner.s.start_rate)
    others = [o for o in dict.fromkeys(overhead) if o != search]
    if not others:
        only = {p: [TracingCost.of(search, runner.steps[(p, rate)])] for p in pipelines}
        after_each(only)
        return only
    costs: dict[str, list[TracingCost]] = {p: [] for p in pipelines}
    order = sorted(pipelines, key=lambda p: p != runner.stack.pipeline)  # the running pipeline first
    for setting in [search, *others]:
        if setting != search:  # the services run the search's setting already
            runner.stack.use_tracing(tracing_of(setting))
        for p in order:
            costs[p].append(TracingCost.of(setting, runner.measure_once(p, rate, f"tracing-{setting}")))
        order.reverse()
        after_each(costs)
    runner.stack.use_tracing(tracing_of(search))
    return costs


def measure_generator_on_healthz(
    rate: float, s: SearchSettings, work: Path, wrk: Ceiling, wrk_bin: Path, limits: GeneratorLimits,
    at_max: bool = False,
) -> GeneratorOnHealthz:  # fmt: skip
    """The load generator at `rate` on GET /healthz: its CPU per request where the service costs least,
    next to wrk at its max there (`wrk`) and wrk paced to the rate it achieved. `at_max`: `rate` is
    above what the server answers and at most as many requests as wrk's connections are in flight, so
    the generator runs at its max (wrk at its max is the control: no paced one)."""
    warmup = 3.0  # Python's start-up, not charged to the requests
    measured = s.generator_seconds
    cap = generator_cost.WRK_CONNECTIONS if at_max else generator_cost.IN_FLIGHT_CAP
    fig = generator_cost.measure_generator(rate, 1, warmup + measured, warmup, work, limits, cap, endpoint=HEALTHZ)
    paced = None if at_max else generator_cost.paced_control(fig, measured, HEALTHZ, wrk_bin)
    # At its max the lag is of the requests it started, the rest counted missed: not a schedule kept.
    lag = control = ""
    if not at_max:
        lag = f", lag p99 {fig.lag_p99_ms} ms"
        control = (f"; paced to the rate {number(paced.cpu_seconds_per_1000 if paced else None)} ms, "
                   f"{number(paced.wakeups_per_request if paced else None)} wakeups")  # fmt: skip
    print(f"  generator on GET /healthz at {'its max, ' if at_max else ''}{rate:.0f}/s offered, "
          f"{fig.achieved_per_second:.0f}/s achieved: {fig.cpu_ms_per_request} ms CPU per request, "
          f"{fig.wakeups_per_request} wakeups per request at {fig.ms_per_wakeup} ms{lag} "
          f"(wrk {number(wrk.cpu_seconds_per_1000)} ms, {number(wrk.wakeups_per_request)} wakeups{control})",
          flush=True)  # fmt: skip
    return GeneratorOnHealthz(
        achieved_per_second=fig.achieved_per_second,
        paced_wrk=paced,
        rate=rate,
        cpu_seconds_per_1000=fig.cpu_ms_per_request,  # ms per request = CPU-s per 1,000
        lag_p99_seconds=None if at_max or fig.lag_p99_ms is None else fig.lag_p99_ms / 1000,
        wrk_cpu_seconds_per_1000=wrk.cpu_seconds_per_1000,
        wrk_per_second=wrk.per_second,
        wakeups_per_request=fig.wakeups_per_request,
        wakeup_cpu_seconds=None if fig.ms_per_wakeup is None else fig.ms_per_wakeup / 1000,
        wrk_wakeups_per_request=wrk.wakeups_per_request,
        wake_interval_seconds=None if fig.wake_interval_ms is None else fig.wake_interval_ms / 1000,
        in_flight_cap=cap if at_max else None,
    )


def measure_ceilings(
    stack: Any, pipelines: Sequence[str], s: SearchSettings, wrk_bin: Path, work: Path, generator_rate: float,
    limits: GeneratorLimits, top: float | None = None,
) -> tuple[list[Ceiling], OnHealthz]:  # fmt: skip
    """Every bare ceiling, each bounded by `s.ceiling_seconds` (the Kafka tools by a record count), and
    the load generator on the cheapest endpoint at `generator_rate`, at `top` when given, and at its
    max (beside wrk at its max, unless that failed)."""
    secs = s.ceiling_seconds
    out: list[Ceiling] = []

    def note(c: Ceiling) -> Ceiling:
        value = "FAILED: " + (c.error or "") if c.per_second is None else f"{c.per_second:,.0f}/s"
        print(f"  ceiling {c.name:<24} {value}  ({c.tool})", flush=True)
        out.append(c)
        return c

    print("ceilings", flush=True)
    healthz = note(ceilings_http.wrk(wrk_bin, "http.wrk.healthz", topology.HEALTHZ_PATH, secs, post=False))
    generator = measure_generator_on_healthz(generator_rate, s, work, healthz, wrk_bin, limits)
    at_top = None if top is None else measure_generator_on_healthz(top, s, work, healthz, wrk_bin, limits)
    at_max = None
    if healthz.per_second:
        offer = generator_cost.max_offer(healthz.per_second)
        at_max = measure_generator_on_healthz(offer, s, work, healthz, wrk_bin, limits, at_max=True)
    for p in pipelines:  # the POST's cost depends on the pipeline behind it
        if stack.pipeline != p:
            stack.use_pipeline(p)
        drain(s.drain_seconds, Progress(f"ceiling wrk {p}", secs), settle=1.0)
        note(ceilings_http.wrk(wrk_bin, f"http.wrk.post.{p}", ceilings_http.POST_PATH, secs, post=True))
    drain(s.drain_seconds, Progress("ceilings", secs), settle=1.0)
    if any(p.startswith("sync") for p in pipelines):
        note(ceilings_grpc.grpc_notify(secs))
        note(ceilings_grpc.grpc_bare(secs))
    if "async" in pipelines:
        ceilings_kafka.ensure_topic()
        records = 50_000 if secs < 5 else 300_000
        note(ceilings_kafka.aiokafka_produce(secs))
        note(ceilings_kafka.producer_performance(records, ceilings_kafka.record_size(), timeout=60 + secs))
        note(ceilings_kafka.consumer_performance(records, timeout=30 + secs))
        note(ceilings_kafka.aiokafka_consume(secs))
    return out, OnHealthz(generator, at_top, at_max)


def scales_runs(setting: str, runs_tracing: str) -> bool:
    """Whether a capacity searched with tracing `setting` becomes this machine's last capacity: only
    one measured with the runs' own tracing is what their relative rates may scale from."""
    return tracing_of(setting) == tracing_of(runs_tracing)


def run_capacity(
    pipelines: Sequence[str], quick: bool, *, open_stack: Callable[[Path, str, Tracing], Any] | None = None,
    stack: Any = None, config: CapacityConfig | None = None, runs_root: Path | None = None,
    with_ceilings: bool = True, remember: bool = True, tracing: str | None = None,
    measured: MeasuredTracing | None = None, generator: GeneratorLimits | None = None,
) -> CapacityReport:  # fmt: skip
    """Search each pipeline's capacity and measure the ceilings on one stack (started here with
    `open_stack`, or the given running `stack`, with tracing `tracing` or harness/limits/tracing.yaml's); write
    runs/<id>/capacity.json and, with `remember`, the last-capacity file of this machine. `config`,
    `measured` and `generator`: capacity.yaml, tracing.yaml and generator.yaml as read before (read here
    when not given)."""
    from harness import provision

    config = config or load_config()
    measured = measured or measured_tracing.load()
    generator = generator or generator_health.load_limits()
    s = config.search.quick if quick else config.search.full
    root = runs_root or paths.runs_dir()
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-capacity"
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    setting = tracing or measured.sample
    report = CapacityReport(run_id=run_id, hostname=platform.node(), cpus=cpu.usable_cpus(), quick=quick,
                            tracing=setting, started_unix=time.time(), service_level=config.service_level,
                            search=s)  # fmt: skip
    wrk_bin = provision.locate().wrk
    print(f"capacity run {run_id} -> {run_dir}", flush=True)

    on_healthz: OnHealthz | None = None

    def body(st: Any) -> None:
        st.toxiproxy.reset()
        if st.tracing != tracing_of(setting):
            st.use_tracing(tracing_of(setting))
        runner = StepRunner(st, run_dir / "steps", config.service_level, s, config.disturbed, generator)
        for p in pipelines:
            report.pipelines[p] = measure_pipeline(runner, p)
            report.write(run_dir / CAPACITY_FILE)

        def keep(costs: dict[str, list[TracingCost]]) -> None:
            for p, of_p in costs.items():
                report.pipelines[p].tracing_costs = list(of_p)
            report.write(run_dir / CAPACITY_FILE)

        measure_tracing_costs(runner, pipelines, setting, measured.overhead, keep)
        if with_ceilings:
            nonlocal on_healthz
            report.ceilings, on_healthz = measure_ceilings(
                st, pipelines, s, wrk_bin, run_dir / "generator", s.start_rate, generator,
                top_rate(report, s.start_rate),
            )  # fmt: skip

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
    report.cpu_bounds = cpu_bounds(report)
    report.ratios = ratios(report)
    report.generator = generator_figures(report, on_healthz)
    report.finished_unix = time.time()
    report.write(run_dir / CAPACITY_FILE)
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

    try:  # every limits file the search reads, once, before anything starts
        config, measured, generator = load_config(), measured_tracing.load(), generator_health.load_limits()
        provision.locate()
    except (ConfigError, ValueError, provision.ProvisionError) as e:
        print(f"bench capacity: {e}", file=sys.stderr)
        return 2
    try:
        with supervisor.terminating_signals():
            if replicas is None or replicas.default:
                run_capacity(
                    pipelines, quick, open_stack=lambda work, p, t: Stack(work, p, tracing=t), config=config,
                    tracing=tracing, measured=measured, generator=generator,
                )  # fmt: skip
            else:
                note = scaling_note(cpu.usable_cpus(), replicas.count)
                if note:
                    print(f"bench capacity: {note}", flush=True)
                report = run_capacity(
                    pipelines, quick, open_stack=lambda work, p, t: Stack(work, p, tracing=t, replicas=replicas),
                    config=config, remember=False, tracing=tracing, measured=measured, generator=generator,
                )  # fmt: skip
                report.replicas, report.balancer, report.scaling_note = replicas.count, replicas.balancer, note
                report.write(paths.runs_dir() / report.run_id / CAPACITY_FILE)
    except KeyboardInterrupt:
        print("\nbench capacity: interrupted; stack stopped", file=sys.stderr)
        return 130
    except (supervisor.StartError, RuntimeError, OSError) as e:
        print(f"\nbench capacity: error: {e}", file=sys.stderr)
        return 1
    return 0
