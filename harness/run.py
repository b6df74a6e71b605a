"""`bench run`: one stack, every (scenario x pipeline) cell, one result.json per cell.

For each cell: switch the reaction service's pipeline, reset faults and the sink, start Locust,
play the fault timeline on this (main) thread while sampling the backlog, undo every fault, drain,
then join what the client was told (Locust's outcomes) with what the phone got (the sink's
ledger) and check the scenario's hypothesis.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, start_http_server

from chaos import scenario as scenarios
from chaos.engine import ChaosMetrics, ProcessControl, Timeline
from chaos.toxiproxy import ToxiproxyClient
from facts import paths, topology, versions
from harness import kafka_admin, provision, sink, supervisor, watch
from harness import result as cell_result
from harness.loadgen import LoadRun
from harness.stack import Stack
from loadtests.profile import ProfileError, find_profile

EXIT_HYPOTHESIS_FAILED = 1
EXIT_USAGE = 2
TICK = 0.25
QUICK_SECONDS = 30.0


STACK_KINDS = ("native", "compose")


class RunnableStack(ProcessControl, Protocol):
    """What a run needs of a stack: harness.stack.Stack natively, compose.control.ComposeStack in containers."""

    pipeline: str
    toxiproxy: ToxiproxyClient

    def use_pipeline(self, pipeline: str) -> None: ...


def stack_processes(kind: str) -> tuple[str, ...]:
    """What a process fault may target on this kind of stack; asks Docker, starts nothing."""
    if kind != "compose":
        return scenarios.PROCESSES
    from compose.control import ComposeStack

    compose_stack = ComposeStack()
    return tuple(p for p in scenarios.PROCESSES + scenarios.CLUSTER_PROCESSES if compose_stack.has_service(p))


@contextlib.contextmanager
def open_stack(kind: str, work_dir: Path, pipeline: str) -> Iterator[RunnableStack]:
    """The native stack is started (and stopped) here; a compose stack was started by `docker compose up`."""
    if kind == "compose":
        from compose.control import ComposeStack

        with ComposeStack(pipeline) as compose_stack:
            yield compose_stack
    else:
        with Stack(work_dir, pipeline) as native:
            yield native


@dataclass
class Cell:
    scenario: scenarios.Scenario
    pipeline: str
    load_seconds: float
    profile_ref: str
    time_factor: float  # scenario times are written for the profile's own duration


@dataclass
class Plan:
    cells: list[Cell] = field(default_factory=list)


def plan(
    pipelines: list[str],
    scenario_refs: list[str],
    duration: float | None,
    quick: bool,
    processes: Collection[str] = scenarios.PROCESSES,
) -> Plan:
    """Validate every scenario and profile before anything starts; ScenarioError names the fault.
    `processes`: what the stack can kill or pause (the compose cluster profile has more brokers)."""
    p = Plan()
    for ref in scenario_refs:
        sc = scenarios.load(ref)
        path = scenarios.resolve(ref)
        try:
            profile = find_profile(sc.profile)
        except ProfileError as e:
            raise scenarios.ScenarioError(f"{path}: profile: {e}") from None
        own = sc.duration or profile.duration
        load_seconds = duration or (min(own, QUICK_SECONDS) if quick else own)
        factor = load_seconds / profile.duration
        conflicts = sc.conflicts(profile.duration)
        if conflicts:
            raise scenarios.ScenarioError("\n".join(f"{path}: {c}" for c in conflicts))
        for i, f in enumerate(sc.faults):
            if isinstance(f, scenarios.ProcessFault) and f.process not in processes:
                raise scenarios.ScenarioError(
                    f"{path}: faults[{i}].process: {f.process!r} is not a process of this stack "
                    f"(it has: {', '.join(processes)}); brokers "
                    f"{', '.join(scenarios.CLUSTER_PROCESSES)} run in the compose cluster profile only "
                    "(make bench RUNTIME=compose KAFKA=cluster; bench validate --kafka cluster)"
                )
            if f.at >= profile.duration:
                raise scenarios.ScenarioError(
                    f"{path}: faults: a fault at {f.at:g} s starts after the load ends ({profile.duration:g} s)"
                )
        p.cells += [Cell(sc, pl, load_seconds, sc.profile, factor) for pl in pipelines]
    return p


def _scaled_faults(cell: Cell) -> list[scenarios.Fault]:
    k = cell.time_factor
    return [
        f.model_copy(update={"at": f.at * k, "duration": None if f.duration is None else f.duration * k})
        for f in cell.scenario.faults
    ]


def machine() -> dict[str, Any]:
    from harness import doctor

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kafka": versions.KAFKA_VERSION,
        "toxiproxy": versions.TOXIPROXY_VERSION,
        "versions": {c.name: c.version for c in doctor.all_checks()},
    }


def run_cell(stack: RunnableStack, cell: Cell, out: Path, metrics: ChaosMetrics, processes: int) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    label = f"{cell.pipeline} x {cell.scenario.name}"
    progress = watch.Progress(label, cell.load_seconds)
    stack.toxiproxy.reset()  # first: a service restarted below then connects through healthy links
    if stack.pipeline != cell.pipeline:
        stack.use_pipeline(cell.pipeline)
    # Leftovers of the previous cell (a late redelivery, a sync retry) must land before the sink resets.
    watch.drain(cell.scenario.drain_timeout, progress, settle=2.0)
    sink.reset()
    dlq_before = kafka_admin.end_offsets(topology.TOPIC_DEAD_LETTER)

    load = LoadRun(cell.profile_ref, cell.load_seconds, out / "loadgen", processes=processes)
    timeline = Timeline(_scaled_faults(cell), cell.load_seconds, stack.toxiproxy, stack, metrics=metrics)
    started_unix = time.time()
    proc = load.start(out / "locust.log")
    sampler = watch.Sampler()
    sampler.start()
    try:
        # Faults are timed from the load's own time zero (Locust plans it a moment after it starts).
        epoch = LoadRun.epoch(timeout=60.0, alive=lambda: proc.poll() is None)
        if epoch is None:
            progress.event("could not read the load's start from Locust's /metrics; faults timed from now")
        timeline.start(at_unix=epoch)
        metrics.cell_active.labels(cell.pipeline, cell.scenario.name).set(1)
        while proc.poll() is None:
            for what in timeline.tick():
                progress.event(f"t={timeline.elapsed():.1f}s {what}")
            faults = ", ".join(timeline.active()) or "no fault"
            b, u = sampler.backlog, sampler.unique
            progress.show(
                "load",
                timeline.elapsed(),
                f"sink {'?' if u is None else u:>7} unique  backlog {'?' if b is None else b:>6}  {faults}",
            )
            time.sleep(TICK)
    finally:
        # Undo first: a sample may be blocked on the very broker a fault killed or paused.
        metrics.cell_active.labels(cell.pipeline, cell.scenario.name).set(0)
        try:
            timeline.undo_all()
        finally:
            LoadRun.stop(proc)  # a no-op when Locust ended by itself; interrupted, it still writes outcomes
            sampler.stop()
    backlog_series = sampler.series
    if proc.returncode != 0:
        progress.event(f"locust exited with {proc.returncode}; see {out / 'locust.log'}")
    _, left = watch.drain(cell.scenario.drain_timeout, progress, settle=2.0, series=backlog_series)
    dead_letters = kafka_admin.read_since(topology.TOPIC_DEAD_LETTER, dlq_before)
    result = cell_result.build(cell, load, timeline, started_unix, left, backlog_series, dead_letters)
    result["locust_exit_code"] = proc.returncode
    result["hypothesis"] = cell_result.verdict(cell, result)
    (out / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    verdict = "PASS" if result["hypothesis"]["passed"] else "FAIL"
    led = result["ledger"]
    progress.event(
        f"{verdict}  attempted {led['attempted']}  ack {led['acknowledged']}  lost {led['lost']}  "
        f"redelivered {led['redeliveries']}  api p99 {_fmt(result['api_latency_seconds']['p99'])}  "
        f"e2e p99 {_fmt(result['e2e_latency_seconds']['p99'])}"
    )
    return result


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}ms"


def run(
    pipelines: list[str],
    scenario_refs: list[str],
    duration: float | None = None,
    quick: bool = False,
    processes: int = 1,
    runs_root: Path | None = None,
    stack_kind: str = "native",
) -> int:
    try:
        targets = stack_processes(stack_kind)
    except (OSError, RuntimeError) as e:
        print(f"bench run: cannot ask the {stack_kind} stack what it runs: {e}", file=sys.stderr)
        return 1
    try:
        the_plan = plan(pipelines, scenario_refs, duration, quick, targets)
    except scenarios.ScenarioError as e:
        print(f"bench run: invalid scenario, nothing started:\n{e}", file=sys.stderr)
        return EXIT_USAGE
    if stack_kind == "native":
        try:
            provision.locate()
        except provision.ProvisionError as e:
            print(f"bench run: {e}", file=sys.stderr)
            return EXIT_USAGE
    registry = CollectorRegistry()
    metrics = ChaosMetrics(registry)
    try:  # before anything is written: a second `bench run` must not take over runs/latest
        server, _thread = start_http_server(topology.CHAOS_METRICS_PORT, addr=topology.BIND_HOST, registry=registry)
    except OSError as e:
        print(
            f"bench run: cannot serve the harness' metrics on port {topology.CHAOS_METRICS_PORT} ({e}); "
            "is another `bench run` going?",
            file=sys.stderr,
        )
        return 1
    root = runs_root or paths.runs_dir()
    run_id = time.strftime("%Y%m%d-%H%M%S")
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    latest = root / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(run_id)
    results: list[dict[str, Any]] = []
    index: dict[str, Any] = {"run_id": run_id, "machine": {**machine(), "runtime": stack_kind}, "cells": []}

    def write_index() -> None:
        # After every cell, so an interrupted run still has a report-ready index of what it finished.
        index["cells"] = [
            {"pipeline": r["pipeline"], "scenario": r["scenario"], "passed": r["hypothesis"]["passed"],
             "result": f"{r['pipeline']}--{r['scenario']}/result.json"}
            for r in results
        ]  # fmt: skip
        index["complete"] = len(results) == len(the_plan.cells)
        (run_dir / "run.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    print(f"run {run_id}: {len(the_plan.cells)} cell(s) -> {run_dir}", flush=True)
    try:
        with (
            supervisor.terminating_signals(),
            open_stack(stack_kind, run_dir / "stack", the_plan.cells[0].pipeline) as stack,
        ):
            for cell in the_plan.cells:
                out = run_dir / f"{cell.pipeline}--{cell.scenario.name}"
                results.append(run_cell(stack, cell, out, metrics, processes))
                write_index()
    except KeyboardInterrupt:
        print("\nbench run: interrupted; faults undone, stack stopped", file=sys.stderr)
        return 130
    except (supervisor.StartError, RuntimeError, OSError) as e:
        print(f"\nbench run: error: {e}", file=sys.stderr)
        return 1
    finally:
        server.shutdown()
        server.server_close()
    failed = [c for c in index["cells"] if not c["passed"]]
    print(f"\nrun {run_id}: {len(results) - len(failed)}/{len(results)} hypotheses held; results in {run_dir}")
    return EXIT_HYPOTHESIS_FAILED if failed else 0
