"""`bench report RUN_DIR`: RUN_DIR/report.html (self-contained, charts) and RUN_DIR/report.md (CI summary).

Both lead with the machine the figures were measured on and "The article's claims, measured";
the verdict rules are data (harness/claims.yaml), judged by harness/claims.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness import claims, ledger, results
from harness.claims import Judgement
from harness.results import NO_VALUE, Cell, Run

LEDGER = ledger.CATEGORIES
LATENCY = ("api.p50", "api.p99", "e2e.p50", "e2e.p99", "peak_backlog", "drain_seconds")
VERDICT_MARK = {
    "confirmed": "\N{WHITE HEAVY CHECK MARK}",
    "refuted": "\N{CROSS MARK}",
    "not shown": "\N{HEAVY MINUS SIGN}",
}


def machine_rows(machine: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not machine:
        return [("machine", "not recorded (the run has no run.json)")]
    rows = [
        ("host", str(machine.get("hostname", "?"))),
        ("CPUs", str(machine.get("cpus", "?"))),
        ("memory", f"{machine.get('memory_gib', '?')} GiB"),
        ("platform", str(machine.get("platform", "?"))),
        ("Python", str(machine.get("python", "?"))),
        ("Kafka", str(machine.get("kafka", "?"))),
        ("Toxiproxy", str(machine.get("toxiproxy", "?"))),
    ]
    versions = machine.get("versions") or {}
    rows += [(f"{name} (doctor)", str(v)) for name, v in versions.items() if name != "python"]
    return rows


def machine_summary(machine: dict[str, Any] | None) -> str:
    """One line: where the figures were measured."""
    if not machine:
        return "machine not recorded (the run has no run.json)"
    versions = machine.get("versions") or {}
    tools = [f"Python {machine.get('python', '?')}", f"Kafka {machine.get('kafka', '?')}"]
    tools += [f"Toxiproxy {machine.get('toxiproxy', '?')}"]
    tools += [f"{k.capitalize()} {v}" for k, v in versions.items() if k in ("java", "go", "prometheus")]
    return (
        f"{machine.get('hostname', '?')}: {machine.get('cpus', '?')} CPUs, {machine.get('memory_gib', '?')} GiB, "
        f"{machine.get('platform', '?')}; {', '.join(tools)}"
    )


def ledger_value(cell: Cell, key: str) -> int | None:
    value = (cell.data.get("ledger") or {}).get(key)
    if value is None and key == "dead_lettered":  # runs before the ledger counted them kept it at the top
        value = cell.data.get("dead_lettered")
    return None if value is None else int(value)


def ledger_row(cell: Cell) -> list[str]:
    return [NO_VALUE if (v := ledger_value(cell, k)) is None else str(v) for k in LEDGER]


RATE_COLUMNS = ("target rate", "achieved", "errors", *LATENCY)


def rate_row(cell: Cell) -> list[str]:
    m = cell.metrics()
    rates = [("rate.target_mean", m["rate.target_mean"]), ("achieved_rate", m["achieved_rate"])]
    return [results.fmt(k, v) for k, v in rates] + [results.fmt(k, m.get(k)) for k in ("error_ratio", *LATENCY)]


def claim_values(j: Judgement, side: str) -> list[str]:
    """The values a claim read, for one side: sync (with sync-resilient) or async."""
    out = []
    for name, value in j.values.items():
        pipeline, scenario, metric = results.split_name(name)
        if (pipeline == "async") != (side == "async"):
            continue
        who = "" if pipeline == side else f"{pipeline} "
        out.append(f"{who}{scenario} {metric} = {results.fmt(metric, value)}")
    return out


def fault_text(cells: Sequence[Cell]) -> str:
    """A scenario's planned faults (from its first cell), each with what went wrong in which cell:
    a fault that failed or was never applied there did not do what the charts' column name says."""
    faults = cells[0].data.get("faults") or [] if cells else []
    if not faults:
        return "none"
    parts = []
    for i, f in enumerate(faults):
        notes = []
        for c in cells:
            w = (c.data.get("faults") or [{}] * len(faults))[i]
            if w.get("error"):
                notes.append(f"FAILED in {c.pipeline}: {w['error']}")
            elif "applied_offset" in w and w["applied_offset"] is None:
                notes.append(f"not applied in {c.pipeline}")
        parts.append(
            f"{f.get('label', f.get('kind'))} {round(f.get('start', 0), 1):g}-{round(f.get('end', 0), 1):g} s"
            + (f" ({'; '.join(notes)})" if notes else "")
        )
    return "; ".join(parts)


def scenario_rows(run: Run) -> list[list[str]]:
    """One row per scenario: what load and which faults (from its first cell)."""
    rows = []
    for scenario in run.scenarios:
        cells = [c for c in run.cells if c.scenario == scenario]
        cell = cells[0]
        profile = cell.data.get("profile") or {}
        timings = cell.data.get("timings") or {}
        rows.append(
            [
                scenario,
                str(profile.get("description") or profile.get("name") or "?"),
                f"{timings.get('load_seconds', 0):g} s",
                fault_text(cells),
            ]
        )
    return rows


def _md_table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    head = list(head)
    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines


def claims_markdown(judgements: list[Judgement]) -> list[str]:
    rows = []
    for j in judgements:
        c = j.claim
        rule = f"`{c.holds.text}`" if c.holds else ""
        if c.shown_if:
            rule += f" if `{c.shown_if.text}`"
        verdict = f"{VERDICT_MARK[j.verdict]} **{j.verdict}**"
        if notes := verdict_notes(j):
            verdict += ": " + "; ".join(notes)
        rows.append(
            [
                f"{c.text} _({c.side} {c.kind})_",
                ", ".join(c.scenarios) or NO_VALUE,
                f"{c.metric}<br>{rule}" if c.metric else rule or NO_VALUE,
                "<br>".join(claim_values(j, "sync")) or NO_VALUE,
                "<br>".join(claim_values(j, "async")) or NO_VALUE,
                verdict,
            ]
        )
    return _md_table(["claim", "scenario", "metric and rule", "sync", "async", "verdict"], rows)


def verdict_notes(j: Judgement) -> list[str]:
    """Why a claim is not shown, and the rule's caveat where it helps read the verdict."""
    notes = [j.reason] if j.verdict == "not shown" else []
    if j.claim.note and j.claim.note not in notes and j.verdict != "confirmed":
        notes.append(j.claim.note)
    return notes


def verdict_counts(judgements: list[Judgement]) -> str:
    counts = {v: sum(j.verdict == v for j in judgements) for v in VERDICT_MARK}
    return ", ".join(f"{n} {v}" for v, n in counts.items())


def markdown(run: Run, judgements: list[Judgement]) -> str:
    held = sum(c.passed is True for c in run.cells)
    out = [
        f"# sync vs async: run {run.run_id}",
        "",
        f"**Measured on** {machine_summary(run.machine)}",
        "",
        f"{len(run.cells)} cells ({', '.join(run.pipelines)} x {', '.join(run.scenarios)}); "
        f"{held}/{len(run.cells)} scenario hypotheses held. Charts: `report.html` in the run folder.",
        "",
        "## The article's claims, measured",
        "",
        f"{verdict_counts(judgements)}. Rules: `harness/claims.yaml`; a claim whose inputs the run lacks is not shown.",
        "",
        *claims_markdown(judgements),
        "",
        "## Scenario hypotheses",
        "",
    ]
    rows = []
    for c in run.cells:
        checks = (c.data.get("hypothesis") or {}).get("checks") or []
        text = "<br>".join(
            f"{'✓' if ch.get('passed') else '✗'} `{ch.get('check')}`: "
            + results.fmt(str(ch.get("metric")), ch.get("measured"))
            for ch in checks
        )
        status = {True: "PASS", False: "**FAIL**", None: NO_VALUE}[c.passed]
        rows.append([c.pipeline, c.scenario, status, text or NO_VALUE])
    out += _md_table(["pipeline", "scenario", "hypothesis", "checks (measured)"], rows)
    out += ["", "## Ledger", ""]
    out += _md_table(["pipeline", "scenario", *LEDGER], ([c.pipeline, c.scenario, *ledger_row(c)] for c in run.cells))
    out += ["", "## Rate, latency, backlog", ""]
    out += _md_table(
        ["pipeline", "scenario", *RATE_COLUMNS], ([c.pipeline, c.scenario, *rate_row(c)] for c in run.cells)
    )
    out += ["", "## Scenarios", ""]
    out += _md_table(["scenario", "load", "load time", "faults (s from load start)"], scenario_rows(run))
    out += ["", "## Machine", ""]
    out += _md_table(["", ""], machine_rows(run.machine))
    return "\n".join(out) + "\n"


def write(run_dir: Path, claims_file: Path | None = None) -> tuple[Path, Path]:
    """Write report.html and report.md into the run folder; returns their paths."""
    from harness import report_html

    run = results.load(run_dir)
    judgements = claims.judge_all(run, claims.load(claims_file or claims.DEFAULT_FILE))
    html_path, md_path = run.root / "report.html", run.root / "report.md"
    html_path.write_text(report_html.page(run, judgements))
    md_path.write_text(markdown(run, judgements))
    return html_path, md_path


def main(run_dir: str, claims_file: Path | None = None, screenshot: bool = False) -> int:
    try:
        html_path, md_path = write(Path(run_dir), claims_file)
    except (results.ResultsError, claims.ClaimsError) as e:
        print(f"bench report: {e}", file=sys.stderr)
        return 2
    print(f"wrote {html_path}\nwrote {md_path}")
    if screenshot:
        from harness import browser

        try:
            shot = browser.screenshot(html_path, html_path.with_suffix(".png"))
        except browser.BrowserError as e:
            print(f"bench report: screenshot: {e}", file=sys.stderr)
            return 1
        print(f"wrote {shot}")
    return 0
