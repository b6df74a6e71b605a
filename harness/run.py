"""`bench run`: one stack, every (scenario x pipeline) cell, one result.json per cell.

For each cell: switch the reaction service's pipeline, reset faults and the sink, start Locust,
play the fault timeline on this (main) thread while sampling the backlog, undo every fault, drain,
then join what the client was told (Locust's outcomes) with what the phone got (the sink's
ledger) and check the scenario's hypothesis.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, start_http_server

from chaos.engine import ChaosMetrics, ProcessControl, Timeline
from chaos.toxiproxy import ToxiproxyClient
from facts import paths, topology, versions
from harness import kafka_admin, memory, sampling, sink, supervisor, traces
from harness.assemble import assemble
from harness.capacity import cpu
from harness.capacity import report as capacity_report
from harness.disturbance import MachineWatch
from harness.loadgen import LoadRun
from harness.measured_tracing import ReadBack
from harness.plan import Plan, PlannedCell
from harness.progress import Progress
from harness.replicas import Replicas
from harness.result import CellResult, Disturbance, Machine, RunIndex, StackTopology, cell_folder
from harness.run_limits import RunLimits
from harness.stack import Tracing
from harness.traces import TraceSummary

EXIT_HYPOTHESIS_FAILED = 1
TICK = 0.25
STACK_KINDS = ("native", "compose")


class RunnableStack(ProcessControl, Protocol):
    """What a run needs of a stack: harness.stack.Stack natively, compose.control.ComposeStack in containers."""

    pipeline: str
    toxiproxy: ToxiproxyClient

    def use_pipeline(self, pipeline: str) -> None: ...


# Opens (and at exit closes) the stack a run plays on: (work dir, first pipeline) -> the stack.
StackOpener = Callable[[Path, str], contextlib.AbstractContextManager[RunnableStack]]


def machine(runtime: str) -> Machine:
    from harness import doctor

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return Machine(
        hostname=platform.node(),
        cpus=cpu.usable_cpus(),
        memory_gib=round(mem, 1),
        platform=platform.platform(),
        python=platform.python_version(),
        kafka=versions.KAFKA_VERSION,
        toxiproxy=versions.TOXIPROXY_VERSION,
        runtime=runtime,
        versions={c.name: c.version for c in doctor.all_checks()},
    )


def run_cell(
    stack: RunnableStack,
    cell: PlannedCell,
    run_dir: Path,
    metrics: ChaosMetrics,
    processes: int,
    measure_machine: bool = True,
    limits: RunLimits | None = None,
) -> CellResult:
    """Play one cell and judge it. `limits`: the run's, read when it started (run_limits.py)."""
    limits = limits or RunLimits.load()
    out = run_dir / cell_folder(cell.pipeline, cell.scenario.name, cell.repetition)
    out.mkdir(parents=True, exist_ok=True)
    rep = f" (repetition {cell.repetition})" if cell.repetition > 1 else ""
    progress = Progress(f"{cell.pipeline} x {cell.scenario.name}{rep}", cell.load_seconds)
    stack.toxiproxy.reset()  # first: a service restarted below then connects through healthy links
    topo = _use_balancer(stack, cell)
    if stack.pipeline != cell.pipeline:
        stack.use_pipeline(cell.pipeline)
    # Leftovers of the previous cell (a late redelivery, a sync retry) must land before the sink resets.
    sampling.drain(cell.scenario.drain_timeout, progress, settle=2.0, quiet_before=True)
    sink.reset()
    dlq_before = kafka_admin.end_offsets(topology.TOPIC_DEAD_LETTER)

    # The profile as planned (capacity-relative rates resolved, scaled to the cell) is what Locust plays.
    gen = limits.generator
    load = LoadRun.in_folder(
        out, cell.profile, processes=processes, max_in_flight=gen.in_flight_cap(cell.profile.max_rate()),
        nice=gen.nice, wake_interval=gen.wake_interval_seconds,
    )  # fmt: skip
    timeline = Timeline(cell.scaled_faults(), cell.load_seconds, stack.toxiproxy, stack, metrics=metrics)
    started_unix = time.time()
    proc = load.start()
    sampler = sampling.Sampler()
    watch: MachineWatch | None = None
    memory_watch: memory.MemoryWatch | None = None
    try:  # from Locust's start on: whatever fails or is interrupted below, Locust is stopped
        sampler.start()
        if measure_machine:  # What else the machine does meanwhile; in containers our processes are not ours to see.
            watch = MachineWatch(limits.disturbance).start()
            memory_watch = memory.MemoryWatch(
                _pids(stack, proc.pid), limits.memory.interval_seconds, alone=(cpu.HARNESS,)
            ).start()
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
            disturbance = watch.stop() if watch else Disturbance(measured=False)
            readings = memory_watch.stop() if memory_watch else None
    backlog_series = sampler.series
    if proc.returncode != 0:
        progress.event(f"locust exited with {proc.returncode}; see {load.log}")
    left = sampling.drain(cell.scenario.drain_timeout, progress, settle=2.0, series=backlog_series)
    dead_letters = kafka_admin.read_since(topology.TOPIC_DEAD_LETTER, dlq_before)
    result = assemble(
        cell, load, timeline, started_unix, proc.returncode, left, backlog_series, limits, dead_letters, disturbance,
        readings,
    )  # fmt: skip
    if topo is not None:
        result.topology = topo
    if disturbance.flagged:
        progress.event(f"disturbed: {'; '.join(disturbance.flagged)}")
    result.traces = _read_traces(stack, result, load, progress, limits.tracing.read_back)
    result.write(run_dir)
    m = result.metrics()
    progress.event(
        f"{'PASS' if result.hypothesis and result.hypothesis.passed else 'FAIL'}  attempted {result.ledger.attempted}  "
        f"ack {result.ledger.acknowledged}  lost {result.ledger.lost}  redelivered {result.ledger.redeliveries}  "
        f"api p99 {_fmt(m['api.p99'])}  e2e p99 {_fmt(m['e2e.p99'])}"
    )
    return result


def _pids(stack: RunnableStack, loadgen: int) -> Callable[[], dict[str, int]]:
    """What the memory watch reads, asked at every reading (a restarted component has another
    pid): every component the stack's supervisor runs, the load generator and the harness."""
    sup = getattr(stack, "sup", None)  # a native stack's supervisor; compose has none

    def pids() -> dict[str, int]:
        # A copy first: the main thread restarts components meanwhile (dict() of a dict is atomic).
        running = dict(getattr(sup, "running", {}))
        return {**{name: r.pid for name, r in running.items()}, cpu.LOADGEN: loadgen, cpu.HARNESS: os.getpid()}

    return pids


def _use_balancer(stack: RunnableStack, cell: PlannedCell) -> StackTopology | None:
    """A replicated stack (harness/replicas.py): reach the replicas the way the cell's scenario says
    (restarting the reaction service when that changes); what the cell ran on, None for one replica."""
    replicas: Replicas | None = getattr(stack, "replicas", None)
    if replicas is None or replicas.default:
        return None
    want = cell.scenario.balancer
    if want is not None and want != replicas.balancer:
        stack.use_balancer(want)  # type: ignore[attr-defined]
        replicas = replicas.with_balancer(want)
    return StackTopology(replicas=replicas.count, balancer=replicas.balancer)


def _read_traces(
    stack: RunnableStack, result: CellResult, load: LoadRun, progress: Progress, read_back: ReadBack
) -> TraceSummary | None:
    """The cell's reactions as Jaeger has them: completeness, spans to open, the critical path.
    None where the stack does not trace; a Jaeger that does not answer is reported, not fatal.
    A long cell is read in windows spread over its load (tracing.yaml's read_back)."""
    tracing: Tracing | None = getattr(stack, "tracing", None)
    if tracing is None or not tracing.enabled:
        return None
    t = result.timings
    windows = traces.read_windows(t.load_start_unix, t.load_end_unix, read_back.max_seconds, read_back.windows)
    if len(windows) == 1:  # whole: until the drain's last deliveries
        windows = [(t.load_start_unix, t.load_end_unix + t.drain_seconds + 5.0)]
        ids = [o.reaction_id for o in load.iter_outcomes()]
    else:  # the reactions sent in a window; their traces hold every later span (a redelivery's too)
        ids = [o.reaction_id for o in load.iter_outcomes() if _within(o.started_unix_nanos / 1e9, windows)]
        windows = [(start, end + 1.0) for start, end in windows]  # a request sent at the end is served after it
    try:
        return traces.measure(
            ids,
            windows,
            delivered=[row.reaction_id for row in sink.iter_deliveries()],
            pipeline=result.pipeline,
            settle_seconds=read_back.settle_seconds,
            sample_ratio=tracing.sample_ratio,
        )
    except (OSError, ValueError) as e:
        progress.event(f"traces not read back from Jaeger: {e}")
        return None


def _within(t: float, windows: list[tuple[float, float]]) -> bool:
    return any(start <= t < end for start, end in windows)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}ms"


def run(
    the_plan: Plan,
    open_stack: StackOpener,
    runtime: str = "native",
    processes: int = 1,
    runs_root: Path | None = None,
    capacity_file: Path | None = None,
) -> int:
    """Play every cell of `the_plan` on one stack; exit 0 when every hypothesis held, 1 otherwise.
    `capacity_file`: the capacity the plan's relative rates came from, kept in the run folder."""
    try:
        limits = RunLimits.load()
    except (OSError, ValueError) as e:  # names the file (and the field)
        print(f"bench run: {e}", file=sys.stderr)
        return 1
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
    if capacity_file is not None:
        shutil.copyfile(capacity_file, run_dir / capacity_report.CAPACITY_FILE)
    index = RunIndex(run_id=run_id, machine=machine(runtime), planned_cells=len(the_plan.cells))
    results: list[CellResult] = []
    print(f"run {run_id}: {len(the_plan.cells)} cell(s) -> {run_dir}", flush=True)
    try:
        with (
            supervisor.terminating_signals(),
            open_stack(run_dir / "stack", the_plan.cells[0].pipeline) as stack,
        ):
            for cell in the_plan.cells:
                result = run_cell(
                    stack, cell, run_dir, metrics, processes, measure_machine=runtime == "native", limits=limits
                )
                results.append(result)
                index.cells.append(result.folder)
                index.write(run_dir)
    except KeyboardInterrupt:
        print("\nbench run: interrupted; faults undone, stack stopped", file=sys.stderr)
        return 130
    except (supervisor.StartError, RuntimeError, OSError, ValueError) as e:  # ValueError: a garbled outcome file
        print(f"\nbench run: error: {e}", file=sys.stderr)
        return 1
    finally:
        server.shutdown()
        server.server_close()
    held = sum(1 for r in results if r.hypothesis and r.hypothesis.passed)
    print(f"\nrun {run_id}: {held}/{len(results)} hypotheses held; results in {run_dir}")
    return 0 if held == len(results) else EXIT_HYPOTHESIS_FAILED
