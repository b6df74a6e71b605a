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
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, start_http_server

from chaos import scenario as scenarios
from chaos.engine import ChaosMetrics, ProcessControl, Timeline
from chaos.toxiproxy import ToxiproxyClient
from harness import kafka_admin, ledger, paths, provision, sink, stats, supervisor, topology
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


def plan(pipelines: list[str], scenario_refs: list[str], duration: float | None, quick: bool) -> Plan:
    """Validate every scenario and profile before anything starts; ScenarioError names the fault."""
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
        for f in sc.faults:
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
        "kafka": provision.KAFKA_VERSION,
        "toxiproxy": provision.TOXIPROXY_VERSION,
        "versions": {c.name: c.version for c in doctor.all_checks()},
    }


class Progress:
    def __init__(self, label: str, planned: float) -> None:
        self.label, self.planned = label, planned
        self.tty = sys.stdout.isatty()
        self._last = 0.0

    def show(self, phase: str, elapsed: float, extra: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (1.0 if self.tty else 5.0):
            return
        self._last = now
        line = f"[{self.label}] {phase:<6} {elapsed:6.1f}/{self.planned:.0f}s  {extra}"
        print(("\r" + line.ljust(110)) if self.tty else line, end="" if self.tty else "\n", flush=True)

    def event(self, text: str) -> None:
        print(("\n" if self.tty else "") + f"[{self.label}] {text}", flush=True)


def _sample_backlog() -> int | None:
    try:
        return kafka_admin.backlog()
    except Exception:  # the broker may be the fault under test
        return None


class Sampler:
    """Samples the Kafka backlog and the sink's count once a second on its own thread.

    A sample can block for seconds while the broker is the fault under test; on the main thread
    that would hold up the fault timeline (a killed broker was restarted 15 s late that way).
    It only reads, so a thread is safe here (processes are started from the main thread only).
    """

    def __init__(self) -> None:
        self.series: list[tuple[float, int | None]] = []
        self.backlog: int | None = None
        self.unique: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            self.backlog = _sample_backlog()
            self.series.append((time.time(), self.backlog))
            with contextlib.suppress(Exception):
                self.unique = int(sink.stats()["unique"])
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def run_cell(stack: RunnableStack, cell: Cell, out: Path, metrics: ChaosMetrics, processes: int) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    label = f"{cell.pipeline} x {cell.scenario.name}"
    progress = Progress(label, cell.load_seconds)
    stack.toxiproxy.reset()  # first: a service restarted below then connects through healthy links
    if stack.pipeline != cell.pipeline:
        stack.use_pipeline(cell.pipeline)
    # Leftovers of the previous cell (a late redelivery, a sync retry) must land before the sink resets.
    _drain(cell.scenario.drain_timeout, progress, settle=2.0)
    sink.reset()
    dlq_before = kafka_admin.end_offset(topology.TOPIC_DEAD_LETTER)

    load = LoadRun(cell.profile_ref, cell.load_seconds, out / "loadgen", processes=processes)
    timeline = Timeline(_scaled_faults(cell), cell.load_seconds, stack.toxiproxy, stack, metrics=metrics)
    started_unix = time.time()
    proc = load.start(out / "locust.log")
    sampler = Sampler()
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
    _, left = _drain(cell.scenario.drain_timeout, progress, settle=2.0, series=backlog_series)
    result = _result(cell, load, timeline, started_unix, left, backlog_series)
    result["dead_lettered"] = max(0, kafka_admin.end_offset(topology.TOPIC_DEAD_LETTER) - dlq_before)
    result["measured"]["dead_lettered"] = result["dead_lettered"]
    result["locust_exit_code"] = proc.returncode
    result["hypothesis"] = _verdict(cell, result)
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


def _drain(
    timeout: float, progress: Progress, settle: float, series: list[tuple[float, int | None]] | None = None
) -> tuple[float, int | None]:
    """Wait until Kafka's backlog is empty and the sink has stopped moving for `settle` seconds."""
    t0 = time.monotonic()
    last_raw, still_since = -1, time.monotonic()
    backlog: int | None = None
    while time.monotonic() - t0 < timeout:
        backlog = _sample_backlog()
        if series is not None:
            series.append((time.time(), backlog))
        raw = sink.stats()["raw"]
        if raw != last_raw:
            last_raw, still_since = raw, time.monotonic()
        if backlog == 0 and time.monotonic() - still_since >= settle:
            return time.monotonic() - t0 - settle, 0
        progress.show("drain", time.monotonic() - t0, f"backlog {backlog}  sink raw {raw}")
        time.sleep(0.5)
    return time.monotonic() - t0, backlog


def _result(
    cell: Cell,
    load: LoadRun,
    timeline: Timeline,
    started_unix: float,
    backlog_left: int | None,
    backlog_series: list[tuple[float, int | None]],
) -> dict[str, Any]:
    outcomes = load.outcomes()
    deliveries: dict[str, Any] = sink.ledger()["deliveries"]
    led = ledger.classify(outcomes, deliveries)
    epoch = min((o["intended_unix_nanos"] for o in outcomes), default=int(started_unix * 1e9)) / 1e9
    seconds = max(1, int(cell.load_seconds + 0.999))
    # Every request that ended, timeouts included: leaving out the slowest answers would hide an outage.
    answered = [o for o in outcomes if o.get("ended_unix_nanos")]
    api = [
        ((o["intended_unix_nanos"] / 1e9), (o["ended_unix_nanos"] - o["intended_unix_nanos"]) / 1e9) for o in answered
    ]
    sent = {o["reaction_id"] for o in outcomes}
    e2e = [
        (d["first_delivery_unix_nanos"] / 1e9, (d["first_delivery_unix_nanos"] - d["created_unix_nanos"]) / 1e9)
        for rid, d in deliveries.items()
        if rid in sent and d.get("created_unix_nanos")
    ]
    # Drain time: from the planned end of the load to the last first delivery of this cell's ids.
    load_end = epoch + cell.load_seconds
    last_delivery = max((t for t, _ in e2e), default=load_end)
    drain_seconds = max(0.0, last_delivery - load_end)
    summaries = load.summaries()
    missed = sum(int(s.get("missed", 0)) for s in summaries)
    api_summary = stats.summary(v for _, v in api)
    e2e_summary = stats.summary(v for _, v in e2e)
    backlog_values = [b for _, b in backlog_series if b is not None]
    n = led.attempted or 1
    measured: dict[str, float | None] = {
        **{k: float(v) for k, v in led.counts().items()},
        "error_ratio": (led.failed + led.unknown) / n if led.attempted else None,
        "ack_ratio": led.acknowledged / n if led.attempted else None,
        "delivered_ratio": led.delivered / n if led.attempted else None,
        "missed_arrivals": float(missed),
        "achieved_rate": led.attempted / cell.load_seconds,
        **{f"api.{k}": api_summary[k] for k in ("p50", "p90", "p99", "p999", "max")},
        **{f"e2e.{k}": e2e_summary[k] for k in ("p50", "p90", "p99", "p999", "max")},
        "peak_backlog": float(max(backlog_values)) if backlog_values else None,
        "drain_seconds": drain_seconds,
    }
    by_outcome = {
        name: stats.per_second(
            (o["intended_unix_nanos"] / 1e9 for o in outcomes if o["outcome"] == name), epoch, seconds
        )
        for name in (ledger.ACK, ledger.FAILED, ledger.UNKNOWN)
    }
    series_len = max(seconds, int(max((t for t, _ in backlog_series), default=epoch) - epoch) + 1)
    backlog_by_second: list[int | None] = [None] * series_len
    for t, b in backlog_series:
        i = int(t - epoch)
        if 0 <= i < series_len and b is not None:
            backlog_by_second[i] = max(b, backlog_by_second[i] or 0)
    profile = find_profile(cell.profile_ref).scaled(duration=cell.load_seconds)
    return {
        "pipeline": cell.pipeline,
        "scenario": cell.scenario.name,
        "description": cell.scenario.description,
        "profile": profile.model_dump(mode="json"),
        "timings": {
            "load_start_unix": epoch,
            "load_seconds": cell.load_seconds,
            "load_end_unix": load_end,
            "drain_seconds": drain_seconds,
            "drain_timeout_seconds": cell.scenario.drain_timeout,
            "drained": backlog_left == 0,
        },
        "rate": {
            "target_mean": sum(profile.rate_at(t + 0.5) for t in range(seconds)) / seconds,
            "target_peak": profile.max_rate(),
            "achieved_mean": measured["achieved_rate"],
        },
        "ledger": led.to_json(),
        "api_latency_seconds": api_summary,
        "e2e_latency_seconds": e2e_summary,
        "backlog": {"peak": measured["peak_backlog"], "left_after_drain": backlog_left},
        "faults": [
            {
                **asdict(w),
                "start": w.start,
                "end": w.end,
                "applied_offset": None if w.applied_unix is None else w.applied_unix - epoch,
                "undone_offset": None if w.undone_unix is None else w.undone_unix - epoch,
                "recovered_offset": None if w.recovered_unix is None else w.recovered_unix - epoch,
            }
            for w in timeline.windows
        ],
        "series": {
            "second": list(range(series_len)),
            "target_rate": [profile.rate_at(t + 0.5) for t in range(series_len)],
            "acknowledged": _pad(by_outcome[ledger.ACK], series_len),
            "failed": _pad(by_outcome[ledger.FAILED], series_len),
            "unknown": _pad(by_outcome[ledger.UNKNOWN], series_len),
            "delivered": stats.per_second((t for t, _ in e2e), epoch, series_len),
            "api_p50": stats.per_second_quantile(api, epoch, series_len, 0.5),
            "api_p99": stats.per_second_quantile(api, epoch, series_len, 0.99),
            "e2e_p50": stats.per_second_quantile(e2e, epoch, series_len, 0.5),
            "e2e_p99": stats.per_second_quantile(e2e, epoch, series_len, 0.99),
            "backlog": backlog_by_second,
        },
        "measured": measured,
    }


def _pad(values: list[int], n: int) -> list[int]:
    return values + [0] * (n - len(values))


def _verdict(cell: Cell, result: dict[str, Any]) -> dict[str, Any]:
    measured = result["measured"]
    checks = [
        {
            "check": str(c),
            "metric": c.metric,
            "measured": measured.get(c.metric),
            "passed": c.holds(measured.get(c.metric)),
        }
        for c in cell.scenario.checks_for(cell.pipeline)
    ]
    # A cell that sent nothing, whose load generator failed, or that never drained proves nothing.
    preconditions = [
        {"check": "attempted > 0", "metric": "attempted", "measured": measured["attempted"],
         "passed": bool(measured["attempted"])},
        {"check": "load generator exit code == 0", "metric": "locust_exit_code",
         "measured": result["locust_exit_code"], "passed": result["locust_exit_code"] == 0},
        {"check": "drained within drain_timeout", "metric": "drained", "measured": result["timings"]["drained"],
         "passed": bool(result["timings"]["drained"])},
    ]  # fmt: skip
    return {"passed": all(c["passed"] for c in preconditions + checks), "checks": preconditions + checks}


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
        the_plan = plan(pipelines, scenario_refs, duration, quick)
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
