"""report.md (a CI job summary): the report's rows as markdown tables."""

from __future__ import annotations

from collections.abc import Iterable

from facts.measures import LEDGER_COUNTS, NO_VALUE
from harness.capacity.report import CPU_BOUNDS
from harness.report.capacity_section import CAPACITY_COLUMNS, CEILING_COLUMNS, TRACING_COST_COLUMNS, CapacityRows
from harness.report.model import (
    COST_COLUMNS,
    COSTS_TEXT,
    MEMORY_COLUMNS,
    MEMORY_TEXT,
    RATE_COLUMNS,
    TRACE_COLUMNS,
    TRACES_TEXT,
    ClaimRow,
    HypothesisRow,
    MemoryTable,
    Rows,
)

VERDICT_MARK = {
    "confirmed": "\N{WHITE HEAVY CHECK MARK}",
    "refuted": "\N{CROSS MARK}",
    "inconclusive": "\N{BLACK QUESTION MARK ORNAMENT}",
    "not shown": "\N{HEAVY MINUS SIGN}",
}
CLAIM_COLUMNS = ("claim", "scenario", "metric and rule", "sync", "async", "verdict")


def table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    head = list(head)
    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines


def claim_cells(c: ClaimRow) -> list[str]:
    rule = f"`{c.holds}`" if c.holds is not None else ""
    if c.shown_if is not None:
        rule += f" if `{c.shown_if}`"
    verdict = f"{VERDICT_MARK[c.verdict]} **{c.verdict}**"
    if c.notes:
        verdict += ": " + "; ".join(c.notes)
    return [
        f"{c.text} _({c.side} {c.kind})_",
        c.scenarios,
        f"{c.metric}<br>{rule}" if c.metric else rule or NO_VALUE,
        "<br>".join(c.sync) or NO_VALUE,
        "<br>".join(c.async_) or NO_VALUE,
        verdict,
    ]


def claims_table(claims: Iterable[ClaimRow]) -> list[str]:
    return table(CLAIM_COLUMNS, (claim_cells(c) for c in claims))


def hypothesis_cells(h: HypothesisRow) -> list[str]:
    text = "<br>".join(f"{'✓' if ch.passed else '✗'} `{ch.check}`: {ch.measured}" for ch in h.checks)
    status = {True: "PASS", False: "**FAIL**", None: NO_VALUE}[h.passed]
    text = "<br>".join([*(f"\N{WARNING SIGN} **{w}**" for w in h.warnings), text]) if h.warnings else text
    return [h.pipeline, h.scenario, status, text or NO_VALUE]


def capacity_section(rows: Rows) -> list[str]:
    c = rows.capacity
    if c is None:
        return []
    pipelines = [[f"**{p[0]}**" if p[0] in c.bounded else p[0], *p[1:]] for p in c.pipelines]
    return [
        "",
        "## Capacity and ceilings",
        "",
        c.source,
        "",
        *table(CAPACITY_COLUMNS, pipelines),
        "",
        *table(CEILING_COLUMNS, c.ceilings),
        "",
        *(f"- {r}" for r in c.ratios),
        *(["", CPU_BOUNDS, ""] if c.cpu_bounds else []),
        *(f"- {b}" for b in c.cpu_bounds),
        "",
        *table(["pipeline", "at", "CPU seconds per 1,000 reactions"], c.cpu),
        "",
        c.generator,
        *tracing_cost_section(c),
    ]


def tracing_cost_section(c: CapacityRows) -> list[str]:
    if not c.tracing_costs:
        return []
    return ["", f"### What tracing costs ({c.tracing}; each pipeline's CPU step replayed)", "",
            *table(TRACING_COST_COLUMNS, c.tracing_costs)]  # fmt: skip


def memory_section(tables: Iterable[MemoryTable]) -> list[str]:
    """Per cell: every process's memory, a growing one in bold (the charts are in report.html)."""
    tables = list(tables)
    out = ["", "## Memory per process", "", MEMORY_TEXT]
    if not any(t.rows for t in tables):  # an older run, or a compose one: once, not per cell
        return [*out, "", f"_{tables[0].note}_"] if tables else []
    for t in tables:
        out += ["", f"### {t.pipeline} \N{MULTIPLICATION SIGN} {t.scenario}", "", f"_{t.note}_"]
        if t.rows:
            body = ([*r.cells[:-1], f"**{r.verdict}**" if r.alarming else r.verdict] for r in t.rows)
            out += ["", *table(MEMORY_COLUMNS, body)]
    return out


def markdown(rows: Rows) -> str:
    out = [
        f"# sync vs async: run {rows.run_id}",
        "",
        f"**Measured on** {rows.machine_summary}",
        "",
        f"{rows.counts.cells_text} Charts: `report.html` in the run folder.",
        "",
        "## The article's claims, measured",
        "",
        f"{rows.counts.verdicts_text}. Rules: `harness/claims.yaml`; a claim whose inputs the run lacks is not shown. "
        f"{rows.intervals_text}",
        "",
        *claims_table(rows.claims),
        "",
        "## Scenario hypotheses",
        "",
        *table(["pipeline", "scenario", "hypothesis", "checks (measured)"], map(hypothesis_cells, rows.hypotheses)),
        "",
        "## Ledger",
        "",
        *table(
            ["pipeline", "scenario", *LEDGER_COUNTS],
            ([r.pipeline, r.scenario, *(f.text for f in r.counts)] for r in rows.ledger),
        ),
        "",
        "## Rate, latency, backlog",
        "",
        *table(["pipeline", "scenario", *RATE_COLUMNS], ([r.pipeline, r.scenario, *r.values] for r in rows.rates)),
        "",
        "## Scenarios",
        "",
        *table(
            ["scenario", "load", "load time", "faults (s from load start)"],
            ([s.scenario, s.load, s.load_time, s.fault_text] for s in rows.scenarios),
        ),
        *capacity_section(rows),
        *(["", "## Traces", "", TRACES_TEXT, "", *table(TRACE_COLUMNS, rows.traces)] if rows.traces else []),
        *memory_section(rows.memory),
        "",
        "## What each pipeline costs",
        "",
        COSTS_TEXT,
        "",
        *table(COST_COLUMNS, rows.costs),
        "",
        "## Machine",
        "",
        *table(["", ""], rows.machine),
    ]
    return "\n".join(out) + "\n"
