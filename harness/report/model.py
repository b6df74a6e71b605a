"""The report's rows, computed once from a run and its claims' verdicts; markdown.py and html.py
only lay them out. Every value is already formatted for people (facts.measures.fmt)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facts.measures import LEDGER_COUNTS, NO_VALUE, TRACE_HOPS, fmt
from harness import simplicity
from harness.capacity import report as capacity_report
from harness.claims import Judgement, Verdict
from harness.memory import ProcessMemory
from harness.report.capacity_section import CapacityRows, capacity_rows
from harness.result import CellResult, Machine, Run, split_name

VERDICTS: tuple[Verdict, ...] = ("confirmed", "refuted", "inconclusive", "not shown")
LATENCY = ("api.p50", "api.p99", "e2e.p50", "e2e.p99", "peak_backlog", "drain_seconds")
RATES = ("rate.target_mean", "achieved_rate", "error_ratio", *LATENCY)
RATE_COLUMNS = ("target rate", "achieved", "errors", *LATENCY)
ALARMING = ("lost", "unexpected")  # a ledger count that should be zero
NO_MACHINE = "not recorded (the run has no run.json)"


@dataclass(frozen=True)
class ClaimRow:
    id: str
    text: str
    side: str
    kind: str
    scenarios: str  # comma-separated, or NO_VALUE
    metric: str  # what is measured, for people ("" when the claim does not say)
    holds: str | None  # the rule's text
    shown_if: str | None
    sync: tuple[str, ...]  # "scenario metric = value" (prefixed with the pipeline when not plain sync)
    async_: tuple[str, ...]
    verdict: Verdict
    notes: tuple[str, ...]  # why it is not shown first, then why it holds by design, then the claim's note
    by_design: bool


@dataclass(frozen=True)
class CheckRow:
    check: str
    measured: str
    passed: bool


@dataclass(frozen=True)
class HypothesisRow:
    pipeline: str
    scenario: str
    passed: bool | None  # None: the cell has no judged hypothesis
    checks: tuple[CheckRow, ...]
    warnings: tuple[str, ...] = ()  # the load generator fell behind, the machine was disturbed: shown in red


@dataclass(frozen=True)
class Figure:
    text: str
    alarming: bool = False


@dataclass(frozen=True)
class LedgerRow:
    pipeline: str
    scenario: str
    passed: bool | None
    counts: tuple[Figure, ...]  # in LEDGER_COUNTS order


@dataclass(frozen=True)
class RateRow:
    pipeline: str
    scenario: str
    values: tuple[str, ...]  # in RATE_COLUMNS order


@dataclass(frozen=True)
class FaultRow:
    """A planned fault (from the scenario's first cell) and what went wrong with it in which cell."""

    label: str
    start: float
    end: float
    notes: tuple[str, ...]

    @property
    def text(self) -> str:
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"{self.label} {round(self.start, 1):g}-{round(self.end, 1):g} s{notes}"


@dataclass(frozen=True)
class ScenarioRow:
    scenario: str
    description: str
    load: str
    load_seconds: float
    faults: tuple[FaultRow, ...]

    @property
    def load_time(self) -> str:
        return f"{self.load_seconds:g} s"

    @property
    def fault_text(self) -> str:
        return "; ".join(f.text for f in self.faults) or "none"


@dataclass(frozen=True)
class Counts:
    cells: int
    pipelines: tuple[str, ...]
    scenarios: tuple[str, ...]
    held: int  # cells whose hypothesis held
    verdicts: tuple[tuple[Verdict, int], ...]  # the claims the run could decide either way
    by_design: tuple[tuple[Verdict, int], ...]  # the claims that hold by construction, counted apart

    @property
    def cells_text(self) -> str:
        return (
            f"{self.cells} cells ({', '.join(self.pipelines)} x {', '.join(self.scenarios)}); "
            f"{self.held}/{self.cells} scenario hypotheses held."
        )

    @property
    def verdicts_text(self) -> str:
        text = ", ".join(f"{n} {v}" for v, n in self.verdicts)
        if any(n for _, n in self.by_design):
            text += "; by design of the pipeline: " + ", ".join(f"{n} {v}" for v, n in self.by_design if n)
        return text


@dataclass(frozen=True)
class Rows:
    run_id: str
    root: Path
    machine_summary: str
    machine: tuple[tuple[str, str], ...]
    counts: Counts
    intervals_text: str  # how the bracketed 95 % intervals were computed
    claims: tuple[ClaimRow, ...]
    hypotheses: tuple[HypothesisRow, ...]
    ledger: tuple[LedgerRow, ...]
    rates: tuple[RateRow, ...]
    scenarios: tuple[ScenarioRow, ...]
    costs: tuple[tuple[str, ...], ...] = ()  # per pipeline: what it costs to run and understand (COST_COLUMNS)
    capacity: CapacityRows | None = None
    traces: tuple[tuple[str, ...], ...] = ()  # per traced cell (TRACE_COLUMNS)
    memory: tuple[MemoryTable, ...] = ()  # per cell, in the run's order


def passed(cell: CellResult) -> bool | None:
    return None if cell.hypothesis is None else cell.hypothesis.passed


def claim_values(j: Judgement, side: str) -> tuple[str, ...]:
    """The values a claim read, for one side: sync (with sync-resilient) or async."""
    out = []
    for name, value in j.values.items():
        pipeline, scenario, metric = split_name(name)
        if (pipeline == "async") != (side == "async"):
            continue
        who = "" if pipeline == side else f"{pipeline} "
        out.append(f"{who}{scenario} {metric} = {with_interval(metric, value, j.intervals.get(name))}")
    return tuple(out)


def with_interval(metric: str, value: float | None, span: tuple[float, float] | None) -> str:
    """`12 ms [10.5 ms, 14 ms]`: the value and its 95 % interval, where it has one."""
    if span is None or value is None:
        return fmt(metric, value)
    return f"{fmt(metric, value)} [{fmt(metric, span[0])}, {fmt(metric, span[1])}]"


def verdict_notes(j: Judgement) -> tuple[str, ...]:
    """Why a claim is not shown, why it holds by design, then the claim's note (whatever the verdict:
    it tells how the scenario was built)."""
    notes = [j.reason] if j.verdict == "not shown" else []
    if j.claim.by_design:
        notes.append(f"by design: {j.claim.by_design}")
    if j.claim.note and j.claim.note not in notes:
        notes.append(j.claim.note)
    return tuple(notes)


def claim_row(j: Judgement) -> ClaimRow:
    c = j.claim
    return ClaimRow(
        id=c.id,
        text=c.text,
        side=c.side,
        kind=c.kind,
        scenarios=", ".join(c.scenarios) or NO_VALUE,
        metric=c.metric,
        holds=None if c.holds is None else c.holds.text,
        shown_if=None if c.shown_if is None else c.shown_if.text,
        sync=claim_values(j, "sync"),
        async_=claim_values(j, "async"),
        verdict=j.verdict,
        notes=verdict_notes(j),
        by_design=bool(c.by_design),
    )


def hypothesis_row(cell: CellResult) -> HypothesisRow:
    checks = () if cell.hypothesis is None else cell.hypothesis.checks
    warnings = [f"generator-bound: {why}" for why in cell.loadgen.fell_behind]
    warnings += [f"disturbed: {why}" for why in cell.disturbance.flagged]
    return HypothesisRow(
        cell.pipeline if cell.repetition == 1 else f"{cell.pipeline} (r{cell.repetition})",
        cell.scenario,
        passed(cell),
        tuple(CheckRow(ch.check, fmt(ch.metric, ch.measured), ch.passed) for ch in checks),
        tuple(warnings),
    )


def ledger_row(cell: CellResult) -> LedgerRow:
    m = cell.metrics()
    counts = tuple(Figure(fmt(name, m[name]), alarming=name in ALARMING and bool(m[name])) for name in LEDGER_COUNTS)
    return LedgerRow(cell.pipeline, cell.scenario, passed(cell), counts)


def rate_row(cell: CellResult) -> RateRow:
    m = cell.metrics()
    return RateRow(cell.pipeline, cell.scenario, tuple(fmt(name, m[name]) for name in RATES))


def fault_rows(cells: Sequence[CellResult]) -> tuple[FaultRow, ...]:
    """A scenario's planned faults (from its first cell), each with what went wrong in which cell:
    a fault that failed or was never applied there did not do what the charts' column name says."""
    out = []
    for i, planned in enumerate(cells[0].faults if cells else ()):
        notes = []
        for c in cells:
            if i >= len(c.faults):  # another plan: nothing to say about this fault there
                continue
            w = c.faults[i]
            if w.error:
                notes.append(f"FAILED in {c.pipeline}: {w.error}")
            elif w.applied_offset is None:
                notes.append(f"not applied in {c.pipeline}")
        out.append(FaultRow(planned.label, planned.start, planned.end, tuple(notes)))
    return tuple(out)


def scenario_row(run: Run, scenario: str) -> ScenarioRow:
    """What load and which faults (from the scenario's first cell)."""
    cells = [c for c in run.cells if c.scenario == scenario]
    first = cells[0]
    return ScenarioRow(
        scenario=scenario,
        description=first.description,
        load=str(first.profile["description"] or first.profile["name"] or "?"),
        load_seconds=first.timings.load_seconds,
        faults=fault_rows(cells),
    )


def disturbed_cells(cells: Sequence[CellResult]) -> int:
    """Cells a busy machine disturbed (harness/disturbance.py flagged them)."""
    return sum(bool(c.disturbance.flagged) for c in cells)


def machine_during(cells: Sequence[CellResult]) -> str | None:
    """What else the machine did while the cells ran (harness/disturbance.py), over the run; None
    where nothing was measured (compose)."""
    measured = [c.disturbance for c in cells if c.disturbance.measured]
    if not measured:
        return None
    flagged = disturbed_cells(cells)
    steal = max(d.steal_share_mean or 0.0 for d in measured)
    outside = max(d.outside_cpu_share_mean or 0.0 for d in measured)
    of = f"of {len(cells)} cells ({len(measured)} measured)" if len(measured) < len(cells) else f"of {len(cells)} cells"
    return (
        f"{of}, {flagged} disturbed; a cell's mean CPU share taken by the hypervisor's steal up to "
        f"{steal:.0%}, by processes outside the stack up to {outside:.0%}"
    )


def machine_rows(machine: Machine | None, cells: Sequence[CellResult] = ()) -> tuple[tuple[str, str], ...]:
    during = machine_during(cells)
    if machine is None:
        return (("machine", NO_MACHINE), *((("during the run", during),) if during else ()))
    rows = [
        ("host", machine.hostname),
        ("CPUs", str(machine.cpus)),
        ("memory", f"{machine.memory_gib} GiB"),
        ("platform", machine.platform),
        ("Python", machine.python),
        ("Kafka", machine.kafka),
        ("Toxiproxy", machine.toxiproxy),
    ]
    rows += [(f"{name} (doctor)", str(v)) for name, v in machine.versions.items() if name != "python"]
    rows += [("during the run", during)] if during else []
    return tuple(rows)


def machine_summary(machine: Machine | None, cells: Sequence[CellResult] = ()) -> str:
    """One line: where the figures were measured (and how many cells a busy machine disturbed)."""
    disturbed = disturbed_cells(cells)
    busy = f"; {disturbed} of {len(cells)} cells disturbed by a busy machine (see machine)" if disturbed else ""
    if machine is None:
        return f"machine {NO_MACHINE}{busy}"
    tools = [f"Python {machine.python}", f"Kafka {machine.kafka}", f"Toxiproxy {machine.toxiproxy}"]
    tools += [f"{k.capitalize()} {v}" for k, v in machine.versions.items() if k in ("java", "go", "prometheus")]
    return (
        f"{machine.hostname}: {machine.cpus} CPUs, {machine.memory_gib} GiB, {machine.platform}; {', '.join(tools)}"
        + busy
    )


COST_COLUMNS = ("pipeline", "processes", "network hops", "configuration keys", "lines of its own code", "its code")
COSTS_TEXT = (
    "What each pipeline costs a team to run and understand, counted from the source by the harness "
    "(harness/simplicity.py): processes, hops a reaction crosses, options and broker settings someone "
    "must decide, and the lines that exist only because the services talk this way. "
    '"Simple and intuitive" stays not shown: these are its costs, not its verdict.'
)


TRACE_COLUMNS = (
    "pipeline", "scenario", "complete", "traces to open", "spans",
    *(f"{h.replace('_', ' ')} p50" for h in TRACE_HOPS),
)  # fmt: skip
TRACES_TEXT = (
    "Each reaction followed through Jaeger as a person debugging it would (harness/traces.py): the share of "
    "delivered reactions whose trace connects the API request to the push, how many traces and spans one "
    "reaction takes to read (retries and redeliveries included), and its critical path split into hops."
)


def trace_row(cell: CellResult) -> tuple[str, ...] | None:
    if cell.traces is None:
        return None
    m = cell.metrics()
    return (
        cell.pipeline,
        cell.scenario,
        fmt("trace.completeness", m["trace.completeness"]),
        fmt("trace.traces_per_reaction", m["trace.traces_per_reaction"]),
        fmt("trace.spans_per_reaction", m["trace.spans_per_reaction"]),
        *(fmt(f"trace.{h}.p50", m[f"trace.{h}.p50"]) for h in TRACE_HOPS),
    )


MEMORY_COLUMNS = ("process", "start", "end", "growth/h", "flat?")
# A cell whose load ran this long gets a chart of every process's RSS over time (the soak); the
# default matrix's minute-long cells get the table only.
MEMORY_CHART_MIN_SECONDS = 300.0
MEMORY_TEXT = (
    "The resident memory (RSS) of every process tree of the stack, the load generator and the harness, "
    "read every few seconds during the load (harness/memory.py). Start and end: medians of the first and "
    "last tenth of the samples after the warm-up; growth: their least-squares slope, per hour."
)


@dataclass(frozen=True)
class MemoryRow:
    """One process of one cell, in MEMORY_COLUMNS order."""

    process: str
    start: str
    end: str
    growth_per_hour: str
    verdict: str  # flat, GROWING, grows by design (why), not enough samples (n judged, m needed), ...
    alarming: bool  # grew past the limit, not by design: shown in red

    @property
    def cells(self) -> tuple[str, ...]:
        return (self.process, self.start, self.end, self.growth_per_hour, self.verdict)


@dataclass(frozen=True)
class MemoryTable:
    pipeline: str
    scenario: str
    folder: str  # the cell's result folder: where its series come from for the chart
    note: str  # how it was sampled and judged, or why it was not measured
    rows: tuple[MemoryRow, ...]
    chart: bool  # a chart of RSS over time per process (long cells)


def mib(value: float | None, signed: bool = False) -> str:
    if value is None:
        return NO_VALUE
    return f"{value / 2**20:{'+' if signed else ''}.1f} MiB"


def memory_row(p: ProcessMemory) -> MemoryRow:
    verdict = {"growing": "GROWING", "restarted": "restarted: not judged"}.get(p.verdict, p.verdict)
    return MemoryRow(
        process=p.process,
        start=mib(p.start_bytes),
        end=mib(p.end_bytes),
        growth_per_hour=NO_VALUE if p.growth_bytes_per_hour is None else f"{mib(p.growth_bytes_per_hour, True)}/h",
        verdict=f"{verdict} ({p.note})" if p.note else verdict,
        alarming=p.verdict == "growing",
    )


def memory_table(cell: CellResult) -> MemoryTable:
    m = cell.memory
    if not m.measured:
        note = "not measured (a compose stack's processes are not the harness' to read, or an older result)"
    else:
        note = f"RSS every {m.interval_seconds:g} s; judged after a {m.warmup_seconds or 0:g} s warm-up; {m.rule}"
    return MemoryTable(
        pipeline=cell.pipeline if cell.repetition == 1 else f"{cell.pipeline} (r{cell.repetition})",
        scenario=cell.scenario,
        folder=cell.folder,
        note=note,
        rows=tuple(memory_row(p) for p in m.processes),
        chart=m.measured and bool(m.processes) and cell.timings.load_seconds >= MEMORY_CHART_MIN_SECONDS,
    )


def cost_row(c: simplicity.Cost) -> tuple[str, ...]:
    return (c.pipeline, str(c.processes), str(c.hops), str(c.config_keys), str(c.own_lines), ", ".join(c.files))


def rows(run: Run, judgements: Sequence[Judgement]) -> Rows:
    counts = Counts(
        cells=len(run.cells),
        pipelines=tuple(run.pipelines),
        scenarios=tuple(run.scenarios),
        held=sum(passed(c) is True for c in run.cells),
        verdicts=tuple((v, sum(j.verdict == v and not j.claim.by_design for j in judgements)) for v in VERDICTS),
        by_design=tuple((v, sum(j.verdict == v and bool(j.claim.by_design) for j in judgements)) for v in VERDICTS),
    )
    return Rows(
        run_id=run.run_id,
        root=run.root,
        machine_summary=machine_summary(run.machine, run.cells),
        intervals_text=(
            f"Values in brackets are 95 % intervals ({run.interval_method()}); a verdict is confirmed or "
            "refuted only when the rule holds, or fails, across the whole interval, else inconclusive."
        ),
        machine=machine_rows(run.machine, run.cells),
        counts=counts,
        claims=tuple(claim_row(j) for j in judgements),
        hypotheses=tuple(hypothesis_row(c) for c in run.cells),
        ledger=tuple(ledger_row(c) for c in run.cells),
        rates=tuple(rate_row(c) for c in run.cells),
        scenarios=tuple(scenario_row(run, s) for s in run.scenarios),
        costs=tuple(cost_row(c) for c in simplicity.costs() if c.pipeline in run.pipelines),
        capacity=capacity_rows(run.root / capacity_report.CAPACITY_FILE),
        traces=tuple(row for c in run.cells if (row := trace_row(c)) is not None),
        memory=tuple(memory_table(c) for c in run.cells),
    )
