"""The result of a run, typed: run.json (the index) and one result.json per cell.

`bench run` writes these classes, `bench report` and `bench compare` read them back with the same
classes. Each figure is stored once; every name of the metric vocabulary (facts/measures.py) is
answered by `CellResult.metrics()` from the one field that holds it, so no reader can pick a copy.
A file of another schema is refused with its path, not read through fallbacks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facts import measures, topology
from harness.intervals import BLOCK_SECONDS, repetition_interval
from harness.ledger import Ledger
from harness.memory import MemoryProfile
from harness.traces import TraceSummary

SCHEMA: Literal[2] = 2


RESULT_FILE = "result.json"  # one cell's, in its folder
RUN_FILE = "run.json"  # the run's index: its cells in the order played, the machine, versions


class ResultsError(ValueError):
    """A run folder or result file that cannot be read; the message names the path."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatencySummary(_Model):
    """Nearest-rank quantiles of one latency, in seconds (None: nothing was measured)."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    mean: float | None = None
    count: int = 0


class Timings(_Model):
    load_start_unix: float  # the plan's epoch: time zero of the series and the fault windows
    load_seconds: float
    drain_seconds: float  # planned end of the load -> the last first delivery of this cell's ids
    drain_timeout_seconds: float
    drained: bool  # the backlog was empty when the drain ended

    @property
    def load_end_unix(self) -> float:
        return self.load_start_unix + self.load_seconds


class TargetRate(_Model):
    mean: float
    peak: float


class ScheduleLag(_Model):
    """Seconds from a request's intended start to its actual start (the generator's own delay)."""

    p50: float | None = None
    p99: float | None = None
    max: float | None = None


class LoadGenerator(_Model):
    """What the load generator did, and whether it kept up (harness/generator_health.py)."""

    exit_code: int | None
    missed_arrivals: int = 0
    workers_expected: int = 1
    workers_reported: int = 1  # worker summaries written
    intended: int = 0  # arrivals planned, started (sent) and recorded (outcome lines)
    started: int = 0
    recorded: int = 0
    schedule_lag_seconds: ScheduleLag = Field(default_factory=ScheduleLag)
    fell_behind: list[str] = Field(default_factory=list)  # why the cell is generator-bound; empty: it kept up

    @property
    def bound(self) -> bool:
        return bool(self.fell_behind)


class Backlog(_Model):
    peak: int | None = None
    left_after_drain: int | None = None


class DeadLetter(_Model):
    records: int = 0  # raw writes to the dead-letter topic (the ledger counts unique ids)
    by_reason: dict[str, int] = Field(default_factory=dict)


class FaultWindow(_Model):
    """One fault, planned and actual, in seconds from the load's start."""

    index: int
    kind: str
    target: str
    label: str
    start: float  # planned
    end: float
    applied_offset: float | None = None  # None: never applied
    undone_offset: float | None = None
    recovered_offset: float | None = None  # when the undo had taken effect (a restarted broker is ready)
    error: str | None = None

    def actual(self) -> tuple[float, float] | None:
        """From when it was applied to when its undo took effect; None for a fault never applied
        (shading it would show an effect that did not happen)."""
        if self.applied_offset is None:
            return None
        end = next((v for v in (self.recovered_offset, self.undone_offset) if v is not None), self.end)
        return (self.applied_offset, end) if end > self.applied_offset else None


class PerSecond(_Model):
    """Per-second series on the load's time axis; requests are counted at their intended start."""

    second: list[int]
    target_rate: list[float]
    acknowledged: list[int]
    failed: list[int]
    unknown: list[int]
    delivered: list[int]
    api_p50: list[float | None]
    api_p99: list[float | None]
    e2e_p50: list[float | None]
    e2e_p99: list[float | None]
    backlog: list[int | None]


class WindowStats(_Model):
    """The requests whose intended start falls in a set of seconds of the cell (harness/windows.py)."""

    seconds: int
    attempted: int
    errors: int  # failed + unknown
    api: LatencySummary
    # The 2xx -> first delivery of those acknowledged and delivered (None in files written before it).
    ack_to_delivery: LatencySummary | None = None

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.attempted if self.attempted else None


class Windows(_Model):
    """Control windows inside the cell; None where the cell has no such seconds."""

    calm: WindowStats | None = None  # before the surge, after the warm-up
    peak: WindowStats | None = None  # at the profile's peak, when it surges
    prefault: WindowStats | None = None  # before the first fault took effect, after the warm-up
    fault: WindowStats | None = None  # inside the actual fault windows

    def metrics(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name in measures.WINDOWS:
            w: WindowStats | None = getattr(self, name)
            out[f"{name}.error_ratio"] = None if w is None else w.error_ratio
            out[f"{name}.api.p99"] = None if w is None else w.api.p99
            a2d = None if w is None else w.ack_to_delivery
            out[f"{name}.ack_to_delivery.p99"] = None if a2d is None else a2d.p99
        return out


class Disturbance(_Model):
    """What else the machine did during the cell (harness/disturbance.py); shares of the CPUs the
    harness may use (harness/capacity/cpu.py)."""

    measured: bool  # False where the harness cannot tell its own processes (compose)
    samples: int = 0
    outside_cpu_share_mean: float | None = None
    outside_cpu_share_max: float | None = None
    steal_share_mean: float | None = None
    load_average_max: float | None = None
    flagged: list[str] = Field(default_factory=list)  # why no verdict may rest on this cell


class StackTopology(_Model):
    """The notification replicas the cell ran on and how sync reached them (harness/replicas.py)."""

    replicas: int = 1
    balancer: str = "none"  # none | haproxy | client


DRAINED = "drained"  # the metric of the precondition a cell drained within its drain_timeout


class CheckResult(_Model):
    check: str
    metric: str
    measured: float | None
    passed: bool
    precondition: bool = False  # without it the cell proves nothing (no load, a generator that fell behind, no drain)


class Hypothesis(_Model):
    passed: bool
    checks: list[CheckResult]


class CellResult(_Model):
    schema_version: Literal[2] = SCHEMA
    pipeline: str
    scenario: str
    description: str
    profile: dict[str, Any]  # the load profile as played (scaled to load_seconds)
    timings: Timings
    target_rate: TargetRate
    loadgen: LoadGenerator
    ledger: Ledger
    api_latency_seconds: LatencySummary
    e2e_latency_seconds: LatencySummary
    # From the client's 2xx to the first delivery, for acknowledged reactions that were delivered:
    # how long "accepted" and "delivered" disagree (negative: delivered before the answer left).
    ack_to_delivery_seconds: LatencySummary
    windows: Windows
    backlog: Backlog
    dead_letter: DeadLetter
    faults: list[FaultWindow]
    series: PerSecond
    disturbance: Disturbance = Field(default_factory=lambda: Disturbance(measured=False))
    # RSS of every process during the cell, judged flat or growing (harness/memory.py); results
    # written before it was measured read as not measured.
    memory: MemoryProfile = Field(default_factory=lambda: MemoryProfile(measured=False))
    traces: TraceSummary | None = None  # read back from Jaeger after the cell; None: not traced
    hypothesis: Hypothesis | None = None  # judged once the result is complete
    # metric -> 95 % interval from this cell alone (harness/intervals.py: time blocks); a run with
    # repetitions computes its intervals over them instead.
    intervals: dict[str, tuple[float, float]] = Field(default_factory=dict)
    repetition: int = 1
    topology: StackTopology | None = None  # None: the single-replica stack

    @property
    def folder(self) -> str:
        return cell_folder(self.pipeline, self.scenario, self.repetition)

    def unmet_preconditions(self) -> list[str]:
        """The preconditions this cell failed; a verdict must not rest on such a cell."""
        if self.hypothesis is None:
            return ["no hypothesis was judged"]
        return [c.check for c in self.hypothesis.checks if c.precondition and not c.passed]

    def doubts(self) -> list[str]:
        """Why this cell's numbers may be the load generator's or the machine's rather than the
        pipeline's: a precondition on the load failed (a cell that did not drain is the pipeline's
        own failure, not a doubt), or something outside the stack took the machine."""
        if self.hypothesis is None:
            return ["no hypothesis was judged"]
        load = [c.check for c in self.hypothesis.checks if c.precondition and not c.passed and c.metric != DRAINED]
        return load + [f"disturbed: {d}" for d in self.disturbance.flagged]

    def fault_seconds(self) -> set[int]:
        """Seconds (of the series) whose middle falls inside an actual fault window."""
        return seconds_inside(self.faults)

    def metrics(self) -> dict[str, float | None]:
        """Every name of the vocabulary -> its value (None: not measured), each read from its one field."""
        led = self.ledger
        n = led.attempted
        out: dict[str, float | None] = {k: float(getattr(led, k)) for k in measures.LEDGER_COUNTS}
        out.update(
            {
                "error_ratio": (led.failed + led.unknown) / n if n else None,
                "ack_ratio": led.acknowledged / n if n else None,
                "delivered_ratio": led.delivered / n if n else None,
                "missed_arrivals": float(self.loadgen.missed_arrivals),
                "loadgen.lag_p99": self.loadgen.schedule_lag_seconds.p99,
                "loadgen.lag_max": self.loadgen.schedule_lag_seconds.max,
                "loadgen.bound": float(self.loadgen.bound),
                "achieved_rate": n / self.timings.load_seconds if self.timings.load_seconds else None,
            }
        )
        for hop, summary in (
            ("api", self.api_latency_seconds),
            ("e2e", self.e2e_latency_seconds),
            ("ack_to_delivery", self.ack_to_delivery_seconds),
        ):
            out.update({f"{hop}.{s}": getattr(summary, s) for s in measures.LATENCY_STATS})
        out.update(self.windows.metrics())
        out.update(
            {
                "peak_backlog": None if self.backlog.peak is None else float(self.backlog.peak),
                "drain_seconds": self.timings.drain_seconds,
                "rate.target_mean": self.target_rate.mean,
                "rate.target_peak": self.target_rate.peak,
                **self._fault_metrics(),
                **self._recovery_metrics(),
                "replicas": float(self.topology.replicas if self.topology else 1),
                "memory.growing": self.memory.growing(),
                **self._trace_metrics(),
                "hypothesis.passed": None if self.hypothesis is None else float(self.hypothesis.passed),
            }
        )
        return out

    def _trace_metrics(self) -> dict[str, float | None]:
        t = self.traces
        hops = {f"trace.{h}.p50": None if t is None or h not in t.hops else t.hops[h].p50 for h in measures.TRACE_HOPS}
        return {
            "trace.completeness": None if t is None else t.completeness,
            "trace.traces_per_reaction": None if t is None else t.traces_per_reaction.p50,
            "trace.spans_per_reaction": None if t is None else t.spans_per_reaction.p50,
            **hops,
        }

    def _fault_metrics(self) -> dict[str, float | None]:
        """Requests started inside the fault windows: a whole-cell figure dilutes them."""
        w = self.windows.fault
        s = self.series
        p99 = [v for i in sorted(self.fault_seconds()) if i < len(s.api_p99) and (v := s.api_p99[i]) is not None]
        return {
            "fault.attempted": None if w is None else float(w.attempted),
            "fault.ack_ratio": None if w is None or not w.attempted else 1.0 - w.errors / w.attempted,
            "fault.api_p99_max": max(p99) if p99 else None,
        }

    def _recovery_metrics(self) -> dict[str, float | None]:
        """From the per-second series: how long callers saw errors after the first fault took effect
        (to the end of the last second with an error, 0: none), and the worst second's end-to-end p99
        from the first fault on: the series counts a reaction at its delivery, so records a consumer
        group held back land in the seconds after the fault, where this looks."""
        s = self.series
        starts = [span[0] for f in self.faults if (span := f.actual()) is not None]
        if not starts:
            return {"fault.error_seconds": None, "fault.e2e_p99_max": None}
        first = min(starts)
        bad = [
            i for i in range(min(len(s.second), int(self.timings.load_seconds + 0.999)))
            if i + 1 > first and s.failed[i] + s.unknown[i] > 0
        ]  # fmt: skip
        e2e = [v for i, v in enumerate(s.e2e_p99) if i + 1 > first and v is not None]
        return {
            "fault.error_seconds": max(0.0, max(bad) + 1 - first) if bad else 0.0,
            "fault.e2e_p99_max": max(e2e) if e2e else None,
        }

    def write(self, run_dir: Path) -> Path:
        path = run_dir / self.folder / RESULT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path


def seconds_inside(faults: Iterable[FaultWindow]) -> set[int]:
    """Whole seconds whose middle falls inside an actual fault window."""
    out: set[int] = set()
    for w in faults:
        if (span := w.actual()) is not None:
            start, end = span
            out.update(i for i in range(max(0, math.floor(start)), math.ceil(end)) if start <= i + 0.5 < end)
    return out


def cell_folder(pipeline: str, scenario: str, repetition: int = 1) -> str:
    return f"{pipeline}--{scenario}" + (f"--r{repetition}" if repetition > 1 else "")


class Machine(_Model):
    """Where the figures were measured."""

    hostname: str
    cpus: int | None
    memory_gib: float
    platform: str
    python: str
    kafka: str
    toxiproxy: str
    runtime: str
    versions: dict[str, str | None] = Field(default_factory=dict)  # what `bench doctor` found


class RunIndex(_Model):
    """run.json: which cells the run played, in order, and on what machine."""

    schema_version: Literal[2] = SCHEMA
    run_id: str
    machine: Machine
    planned_cells: int
    cells: list[str] = Field(default_factory=list)  # result folders, in the order played

    @property
    def complete(self) -> bool:
        return len(self.cells) == self.planned_cells

    def write(self, run_dir: Path) -> None:
        # After every cell, so an interrupted run still has a report-ready index of what it finished.
        (run_dir / RUN_FILE).write_text(self.model_dump_json(indent=2) + "\n")


class Run:
    """A run folder read back: its index (None for an interrupted run without run.json) and its cells,
    baseline first, then in pipeline order, repetitions of a cell together."""

    def __init__(self, root: Path, run_id: str, machine: Machine | None, cells: Iterable[CellResult]) -> None:
        self.root, self.run_id, self.machine = root, run_id, machine
        self.cells = tuple(cells)

    def repetitions(self, pipeline: str, scenario: str) -> list[CellResult]:
        return [c for c in self.cells if c.pipeline == pipeline and c.scenario == scenario]

    def cell(self, pipeline: str, scenario: str) -> CellResult | None:
        """The cell's first repetition."""
        return next(iter(self.repetitions(pipeline, scenario)), None)

    @property
    def pipelines(self) -> list[str]:
        return list(dict.fromkeys(c.pipeline for c in self.cells))

    @property
    def scenarios(self) -> list[str]:
        return list(dict.fromkeys(c.scenario for c in self.cells))

    @property
    def groups(self) -> dict[tuple[str, str], list[CellResult]]:
        out: dict[tuple[str, str], list[CellResult]] = {}
        for c in self.cells:
            out.setdefault((c.pipeline, c.scenario), []).append(c)
        return out

    def env(self) -> dict[str, float | None]:
        """`<pipeline>.<scenario>.<metric>` -> value, the mean over repetitions (None when none measured
        it): the namespace of claims and thresholds."""
        out: dict[str, float | None] = {}
        for (pipeline, scenario), cells in self.groups.items():
            per_rep = [c.metrics() for c in cells]
            for m in per_rep[0]:
                values = [v for r in per_rep if (v := r[m]) is not None]
                out[f"{pipeline}.{scenario}.{m}"] = sum(values) / len(values) if values else None
        return out

    def intervals(self) -> dict[str, tuple[float, float]]:
        """`<pipeline>.<scenario>.<metric>` -> its 95 % interval: over the repetitions when there are
        several, else over time blocks of the one cell (only for the metrics that have one)."""
        out: dict[str, tuple[float, float]] = {}
        for (pipeline, scenario), cells in self.groups.items():
            if len(cells) == 1:
                out.update({f"{pipeline}.{scenario}.{m}": span for m, span in cells[0].intervals.items()})
                continue
            per_rep = [c.metrics() for c in cells]
            for m in per_rep[0]:
                unit = measures.unit(m) if m in measures.BY_NAME else None
                if unit in ("count", "flag"):  # facts of each repetition (3 lost is 3 lost), not estimates
                    continue
                values = [v for r in per_rep if (v := r[m]) is not None]
                most = 1.0 if unit == "ratio" else None
                if len(values) == len(cells) and (span := repetition_interval(values, most)) is not None:
                    out[f"{pipeline}.{scenario}.{m}"] = span
        return out

    def interval_method(self) -> str:
        reps = {len(cells) for cells in self.groups.values()}
        blocks = f"bootstrap over time blocks of {BLOCK_SECONDS:g} s within each cell"
        if reps == {1}:
            return f"{blocks} (one repetition)"
        several = f"Student's t over {', '.join(map(str, sorted(reps - {1})))} repetitions of each cell"
        if 1 in reps:  # an interrupted run, or cells added to one: each group as intervals() treats it
            return f"{several} played several times; {blocks} played once"
        return several


def _read(path: Path, model: type[CellResult] | type[RunIndex]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: cannot read: {e}") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        if first["loc"] == ("schema_version",):
            raise ResultsError(
                f"{path}: written by another version of the bench (schema_version: {first.get('input')!r}, "
                f"this one reads {SCHEMA}): run it again"
            ) from None
        raise ResultsError(f"{path}: {where}: {first['msg']} ({len(e.errors())} problem(s))") from None


def read_cell(path: Path) -> CellResult:
    result: CellResult = _read(path, CellResult)
    return result


def load(path: Path | str) -> Run:
    """A run folder or its run.json. Without run.json (an interrupted run) every */result.json is read."""
    path = Path(path)
    root = path.parent if path.name == RUN_FILE else path
    if not root.is_dir():
        raise ResultsError(f"{path}: no such run folder")
    index_path = root / RUN_FILE
    if index_path.exists():
        index: RunIndex = _read(index_path, RunIndex)
        cells = [read_cell(root / folder / RESULT_FILE) for folder in index.cells]
        run_id, machine = index.run_id, index.machine
    else:
        cells = [read_cell(p) for p in sorted(root.glob(f"*/{RESULT_FILE}"))]
        run_id, machine = root.resolve().name, None
    if not cells:
        raise ResultsError(f"{root}: no results (expected run.json or <pipeline>--<scenario>/result.json)")
    order = {p: i for i, p in enumerate(topology.PIPELINES)}
    scen = list(dict.fromkeys(c.scenario for c in cells))
    if "baseline" in scen:  # the reference goes first, whatever order the cells ran in
        scen.remove("baseline")
        scen.insert(0, "baseline")
    cells.sort(key=lambda c: (scen.index(c.scenario), order.get(c.pipeline, len(order)), c.pipeline))
    return Run(root, run_id, machine, cells)


def split_name(name: str, default_scenario: str | None = None) -> tuple[str, str, str]:
    """`pipeline.scenario.metric` -> its parts; `pipeline.metric` takes `default_scenario`.
    Raises ValueError naming what is unknown."""
    parts = name.split(".")
    pipeline, rest = parts[0], ".".join(parts[1:])
    if pipeline not in topology.PIPELINES:
        raise ValueError(f"{name!r}: unknown pipeline {pipeline!r} (pipelines: {', '.join(topology.PIPELINES)})")
    if default_scenario and rest in measures.BY_NAME:
        return pipeline, default_scenario, rest
    if len(parts) < 3:
        raise ValueError(f"{name!r}: expected <pipeline>.<scenario>.<metric>")
    metric = ".".join(parts[2:])
    if metric not in measures.BY_NAME:
        raise ValueError(f"{name!r}: unknown metric {metric!r} (metrics: {', '.join(measures.NAMES)})")
    return pipeline, parts[1], metric
