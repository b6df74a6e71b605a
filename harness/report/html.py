"""report.html: one self-contained page (inline CSS, inline SVG charts, a few lines of inline JS).

A Content-Security-Policy forbids every network fetch, so a stray external reference fails
loudly (a console error the browser test catches) instead of silently needing the internet.
The tables are the report's rows (model.py, and capacity_section.py for the capacity section), the
same ones report.md lays out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from html import escape

from facts.measures import LEDGER_COUNTS, NO_VALUE
from harness.capacity.report import CPU_BOUNDS
from harness.report.capacity_section import CAPACITY_COLUMNS, CEILING_COLUMNS, TRACING_COST_COLUMNS
from harness.report.charts import memory_charts, scenario_charts
from harness.report.model import (
    COST_COLUMNS,
    COSTS_TEXT,
    MEMORY_COLUMNS,
    MEMORY_TEXT,
    RATE_COLUMNS,
    TRACE_COLUMNS,
    TRACES_TEXT,
    ClaimRow,
    MemoryTable,
    Rows,
    ScenarioRow,
)
from harness.result import Run

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
CSS = """
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #dde2e8; --bg: #fff; --soft: #f5f7fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; padding: 24px 32px 64px; max-width: 1400px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 36px 0 8px; padding-top: 8px;
border-top: 2px solid var(--line); } h3 { font-size: 15px; margin: 18px 0 6px; color: var(--muted); }
.machine { color: var(--muted); margin: 0 0 8px; } .machine b { color: var(--fg); }
nav { margin: 12px 0 0; display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 13px; }
a { color: #0b57d0; text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bad { color: #b71c1c; font-weight: 600; } code { font-size: 12px; background: var(--soft); padding: 1px 4px;
border-radius: 3px; } .values { font-size: 12px; color: #33414f; min-width: 200px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px;
         white-space: nowrap; }
.confirmed, .pass { background: #e3f4e5; color: #1b5e20; } .refuted, .fail { background: #fde7e7; color: #b71c1c; }
.not-shown { background: #eceff3; color: #4a5563; }
.inconclusive { background: #fff4d6; color: #7a5300; } .warning { color: #b71c1c; font-weight: 600; }
.reason { color: var(--muted); font-size: 12px; }
.side { color: var(--muted); font-size: 12px; }
.grid { display: grid; grid-template-columns: 120px repeat(var(--cols), minmax(0, 440px)); gap: 4px 14px;
        align-items: center; }
.grid .head { font-weight: 600; text-align: center; } .grid .kind { color: var(--muted); font-size: 13px; }
svg.chart { width: 100%; height: auto; display: block; background: #fff; }
svg .title { font-size: 11px; font-weight: 600; fill: var(--fg); } svg .legend { font-size: 9px; fill: #33414f; }
svg .tick { font-size: 9px; fill: var(--muted); } svg .grid { stroke: #edf0f3; stroke-width: 1; }
svg .frame { fill: none; stroke: #c9d1da; stroke-width: 1; } svg .line { fill: none; stroke-linejoin: round; }
svg .fault { fill: #ffb74d; opacity: .22; } svg .fault-label { font-size: 8px; fill: #a15c00; }
svg .marker { stroke: #90a4ae; stroke-dasharray: 2 3; } svg .empty { font-size: 11px; fill: var(--muted); }
svg .cursor { stroke: #37474f; stroke-width: .8; } svg .readout rect { fill: #fff; stroke: #b0bec5; opacity: .95; }
svg .readout text { font-size: 9px; fill: var(--fg); }
.desc { max-width: 980px; } .note { color: var(--muted); font-size: 12px; }
@media print { nav { display: none; } h2 { break-before: page; } }
"""

# Cursor readout: pure progressive enhancement; it reads each chart's data-chart attribute.
JS = """
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  function fmt(v, unit) {
    if (v === null || v === undefined) return "-";
    if (unit === "seconds") return v < 1 ? (v * 1000).toPrecision(3) + " ms" : v.toPrecision(3) + " s";
    if (unit === "per_second") return Math.round(v) + "/s";
    if (unit === "MiB") return v.toFixed(1) + " MiB";
    return String(Math.round(v * 100) / 100);
  }
  function el(name, attrs) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function wire(svg) {
    var data = JSON.parse(svg.getAttribute("data-chart"));
    var left = +svg.dataset.left, right = +svg.dataset.right, top = +svg.dataset.top, bottom = +svg.dataset.bottom;
    var cursor = el("line", {"class": "cursor", y1: top, y2: bottom, visibility: "hidden"});
    var box = el("g", {"class": "readout", visibility: "hidden"});
    svg.appendChild(cursor); svg.appendChild(box);
    function hide() { cursor.setAttribute("visibility", "hidden"); box.setAttribute("visibility", "hidden"); }
    svg.addEventListener("mousemove", function (ev) {
      var pt = svg.createSVGPoint(); pt.x = ev.clientX; pt.y = ev.clientY;
      var p = pt.matrixTransform(svg.getScreenCTM().inverse());
      if (p.x < left || p.x > right) { hide(); return; }
      var sec = Math.floor((p.x - left) / (right - left) * data.x_max);
      cursor.setAttribute("x1", p.x); cursor.setAttribute("x2", p.x); cursor.setAttribute("visibility", "visible");
      while (box.firstChild) box.removeChild(box.firstChild);
      var lines = ["t = " + sec + "-" + (sec + 1) + " s"].concat(data.lines.map(function (l) {
        return l.label + ": " + fmt(l.values[Math.floor(sec / (l.step || 1))], data.unit);
      }));
      var bx = p.x + 120 > right ? p.x - 118 : p.x + 6;
      box.appendChild(el("rect", {x: bx, y: top + 2, width: 112, height: 12 * lines.length + 4, rx: 2}));
      lines.forEach(function (t, i) {
        var txt = el("text", {x: bx + 4, y: top + 13 + 12 * i}); txt.textContent = t; box.appendChild(txt);
      });
      box.setAttribute("visibility", "visible");
    });
    svg.addEventListener("mouseleave", hide);
  }
  var charts = document.querySelectorAll("svg.chart");
  Array.prototype.forEach.call(charts, wire);
  document.body.setAttribute("data-charts-ready", String(charts.length));
})();
"""


def table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 99, raw: bool = False) -> str:
    """A table; columns from `numeric_from` on are right-aligned. `raw` cells are trusted HTML."""
    th = "".join(f'<th class="{"num" if i >= numeric_from else ""}">{escape(h)}</th>' for i, h in enumerate(head))
    body = []
    for row in rows:
        tds = []
        for i, cell in enumerate(row):
            cls = "num" if i >= numeric_from else ""
            tds.append(f'<td class="{cls}">{cell if raw else escape(cell)}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _values(values: Sequence[str]) -> str:
    return '<div class="values">' + ("<br>".join(escape(v) for v in values) or NO_VALUE) + "</div>"


def claim_cells(c: ClaimRow) -> list[str]:
    rule = f"<code>{escape(c.holds)}</code>" if c.holds is not None else ""
    if c.shown_if is not None:
        rule += f"<br>if <code>{escape(c.shown_if)}</code>"
    verdict = f'<span class="badge {c.verdict.replace(" ", "-")}">{escape(c.verdict)}</span>'
    verdict += "".join(f'<div class="reason">{escape(t)}</div>' for t in c.notes)
    return [
        f'{escape(c.text)}<div class="side">{escape(c.side)} {escape(c.kind)} · {escape(c.id)}</div>',
        escape(c.scenarios),
        f"{escape(c.metric)}<br>{rule}" if c.metric else rule or NO_VALUE,
        _values(c.sync),
        _values(c.async_),
        verdict,
    ]


def claims_table(claims: Iterable[ClaimRow]) -> str:
    head = ["claim", "scenario", "metric and rule", "sync", "async", "verdict"]
    return table(head, [claim_cells(c) for c in claims], raw=True)


def _hypothesis(passed: bool | None) -> str:
    if passed is None:
        return NO_VALUE
    return f'<span class="badge {"pass" if passed else "fail"}">{"PASS" if passed else "FAIL"}</span>'


def capacity_section(rows: Rows) -> str:
    c = rows.capacity
    if c is None:
        return ""
    pipelines = [
        [f'<span class="warning">{escape(p[0])}</span>' if p[0] in c.bounded else escape(p[0]), *map(escape, p[1:])]
        for p in c.pipelines
    ]
    return (
        f'<h3>Capacity and ceilings</h3><p class="note">{escape(c.source)}</p>'
        + table(list(CAPACITY_COLUMNS), pipelines, raw=True)
        + table(list(CEILING_COLUMNS), [list(x) for x in c.ceilings])
        + "<ul>" + "".join(f"<li>{escape(r)}</li>" for r in c.ratios) + "</ul>"
        + (f'<p class="note">{escape(CPU_BOUNDS)}</p><ul>' + "".join(f"<li>{escape(b)}</li>" for b in c.cpu_bounds)
           + "</ul>" if c.cpu_bounds else "")
        + table(["pipeline", "at", "CPU seconds per 1,000 reactions"], [list(x) for x in c.cpu])
        + f'<p class="note">{escape(c.generator)}</p>'
        + (f"<h4>What tracing costs ({escape(c.tracing)}; each pipeline's CPU step replayed)</h4>"
           + table(list(TRACING_COST_COLUMNS), [list(x) for x in c.tracing_costs]) if c.tracing_costs else "")
    )  # fmt: skip


def summary_tables(rows: Rows) -> str:
    ledger_rows = []
    for r in rows.ledger:
        tds = [escape(r.pipeline), f'<a href="#s-{escape(r.scenario)}">{escape(r.scenario)}</a>', _hypothesis(r.passed)]
        tds += [f'<span class="{"bad" if f.alarming else ""}">{escape(f.text)}</span>' for f in r.counts]
        ledger_rows.append(tds)
    rate_rows = [[r.pipeline, r.scenario, *r.values] for r in rows.rates]
    return (
        "<h3>Ledger: what the client was told vs what the phone got</h3>"
        + table(["pipeline", "scenario", "hypothesis", *LEDGER_COUNTS], ledger_rows, numeric_from=3, raw=True)
        + "<h3>Rate, latency, backlog</h3>"
        + table(["pipeline", "scenario", *RATE_COLUMNS], rate_rows, numeric_from=2)
    )


def memory_section(tables: Sequence[MemoryTable], run: Run) -> str:
    """A scenario's memory per process: a table per cell, and for long cells (the soak) the charts."""
    if not any(t.rows for t in tables):  # an older run, or a compose one
        return f'<h3>Memory per process</h3><p class="note">{escape(tables[0].note)}</p>' if tables else ""
    out = [f'<h3>Memory per process</h3><p class="note">{escape(MEMORY_TEXT)}</p>']
    for t in tables:
        body = [
            [*map(escape, r.cells[:-1]), f'<span class="{"bad" if r.alarming else ""}">{escape(r.verdict)}</span>']
            for r in t.rows
        ]
        out.append(f'<h4>{escape(t.pipeline)}</h4><p class="note">{escape(t.note)}</p>')
        out.append(table(list(MEMORY_COLUMNS), body, raw=True) if body else "")
    charted = {t.folder for t in tables if t.chart}
    cells = [c for c in run.cells if c.folder in charted]
    if cells:
        out.append("<h4>RSS over the load, per process</h4>" + memory_charts(cells))
    return "".join(out)


def scenario_section(rows: Rows, s: ScenarioRow, run: Run) -> str:
    checks = [
        [
            escape(h.pipeline),
            f"<code>{escape(ch.check)}</code>",
            escape(ch.measured),
            f'<span class="badge {"pass" if ch.passed else "fail"}">{"held" if ch.passed else "failed"}</span>',
        ]
        for h in rows.hypotheses
        if h.scenario == s.scenario
        for ch in h.checks
    ]
    warnings = "".join(
        f'<p class="warning">{escape(h.pipeline)}: {escape(w)}</p>'
        for h in rows.hypotheses
        if h.scenario == s.scenario
        for w in h.warnings
    )
    return (
        f'<section id="s-{escape(s.scenario)}"><h2>{escape(s.scenario)}</h2>'
        f'<p class="desc">{escape(s.description)}</p>' + warnings + f'<p class="note">Load: {escape(s.load)}; '
        f"run for {escape(s.load_time)}, the profile's timeline scaled to fit, then drained. "
        f"Faults (s from load start): {escape(s.fault_text)}. "
        "Shaded: from when each fault was really applied until its undo took effect. Dotted line: load ends. "
        "Latency axes are logarithmic; "
        "each row shares its y-axis across pipelines.</p>"
        + scenario_charts([c for c in run.cells if c.scenario == s.scenario])
        + "<h3>Hypothesis checks</h3>"
        + table(["pipeline", "check", "measured", "result"], checks, raw=True)
        + memory_section([t for t in rows.memory if t.scenario == s.scenario], run)
        + "</section>"
    )


def page(rows: Rows, run: Run) -> str:
    """The whole page: `rows` for the tables, `run` for the charts' series."""
    nav = ['<a href="#claims">claims</a>', '<a href="#summary">results</a>']
    nav += [f'<a href="#s-{escape(s.scenario)}">{escape(s.scenario)}</a>' for s in rows.scenarios]
    nav.append('<a href="#machine">machine</a>')
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    body = [
        f"<header><h1>sync vs async: run {escape(rows.run_id)}</h1>",
        f'<p class="machine"><b>Measured on</b> {escape(rows.machine_summary)}</p>',
        f"<p>{escape(rows.counts.cells_text)}</p>",
        f"<nav>{' · '.join(nav)}</nav></header>",
        '<section id="claims"><h2>The article\'s claims, measured</h2>',
        f'<p class="note">{escape(rows.counts.verdicts_text)}. Verdict rules are data (harness/claims.yaml); '
        f"a claim whose inputs this run lacks is <i>not shown</i>. {escape(rows.intervals_text)}</p>",
        claims_table(rows.claims),
        '</section><section id="summary"><h2>Results</h2>',
        summary_tables(rows),
        "<h3>Scenarios</h3>",
        table(
            ["scenario", "load", "load time", "faults (s from load start)"],
            [[s.scenario, s.load, s.load_time, s.fault_text] for s in rows.scenarios],
        ),
        capacity_section(rows),
        (
            f'<h3>Traces</h3><p class="note">{escape(TRACES_TEXT)}</p>'
            + table(list(TRACE_COLUMNS), [list(r) for r in rows.traces])
            if rows.traces
            else ""
        ),
        "<h3>What each pipeline costs</h3>",
        f'<p class="note">{escape(COSTS_TEXT)}</p>',
        table(list(COST_COLUMNS), [list(c) for c in rows.costs]),
        "</section>",
        *(scenario_section(rows, s, run) for s in rows.scenarios),
        '<section id="machine"><h2>Machine and versions</h2>',
        table(["", ""], rows.machine),
        f'<p class="note">Report generated {escape(generated)} by <code>bench report</code> '
        f"from {escape(str(rows.root))}.</p>",
        "</section>",
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>sync vs async: run {escape(rows.run_id)}</title><style>{CSS}</style></head>\n<body>"
        + "\n".join(body)
        + f"\n<script>{JS}</script>\n</body></html>\n"
    )
