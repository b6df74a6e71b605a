"""report.html: one self-contained page (inline CSS, inline SVG charts, a few lines of inline JS).

A Content-Security-Policy forbids every network fetch, so a stray external reference fails
loudly (a console error the browser test catches) instead of silently needing the internet.
Charts of one scenario share their y-scales across pipelines, so sync and async compare by eye.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from html import escape

from harness import results, svgchart
from harness.claims import Judgement
from harness.report import (
    LEDGER,
    RATE_COLUMNS,
    claim_values,
    fault_text,
    ledger_value,
    machine_rows,
    machine_summary,
    rate_row,
    scenario_rows,
    verdict_counts,
    verdict_notes,
)
from harness.results import NO_VALUE, Cell, Run
from harness.svgchart import Band, Line, Scale

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
COLORS = {
    "acknowledged": "#2e7d32", "failed": "#c62828", "unknown": "#ef6c00", "delivered": "#1565c0",
    "target": "#616161", "api_p50": "#64b5f6", "api_p99": "#0d47a1", "e2e_p50": "#ce93d8",
    "e2e_p99": "#6a1b9a", "backlog": "#00897b",
}  # fmt: skip

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
border-radius: 3px; } .values { font-size: 12px; color: #33414f; white-space: nowrap; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px;
         white-space: nowrap; }
.confirmed, .pass { background: #e3f4e5; color: #1b5e20; } .refuted, .fail { background: #fde7e7; color: #b71c1c; }
.not-shown { background: #eceff3; color: #4a5563; } .reason { color: var(--muted); font-size: 12px; }
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
        return l.label + ": " + fmt(l.values[sec], data.unit);
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


def _series(cell: Cell, key: str) -> list[float | None]:
    values = (cell.data.get("series") or {}).get(key) or []
    return [None if v is None else float(v) for v in values]


def _planned(cell: Cell, key: str) -> list[float | None]:
    """A series by planned send time: nothing is planned after the load, so it stops there."""
    load = math.ceil(float((cell.data.get("timings") or {}).get("load_seconds") or 0))
    values = _series(cell, key)
    return values[:load] if load else values


def _x_max(cell: Cell) -> float:
    return float(max(len(_series(cell, "second")), (cell.data.get("timings") or {}).get("load_seconds") or 1))


ChartSpec = tuple[str, str, Callable[[Cell], list[Line]], bool, str]


def _throughput(cell: Cell) -> list[Line]:
    return [
        Line("target", _planned(cell, "target_rate"), COLORS["target"], dashed=True, width=1.2),
        Line("delivered", _series(cell, "delivered"), COLORS["delivered"], width=1.0),  # under ack: often equal
        Line("ack", _planned(cell, "acknowledged"), COLORS["acknowledged"]),
        Line("failed", _planned(cell, "failed"), COLORS["failed"]),
        Line("unknown", _planned(cell, "unknown"), COLORS["unknown"]),
    ]


def _api(cell: Cell) -> list[Line]:
    return [
        Line("p50", _series(cell, "api_p50"), COLORS["api_p50"]),
        Line("p99", _series(cell, "api_p99"), COLORS["api_p99"]),
    ]


def _e2e(cell: Cell) -> list[Line]:
    return [
        Line("p50", _series(cell, "e2e_p50"), COLORS["e2e_p50"]),
        Line("p99", _series(cell, "e2e_p99"), COLORS["e2e_p99"]),
    ]


def _backlog(cell: Cell) -> list[Line]:
    return [Line("backlog", _series(cell, "backlog"), COLORS["backlog"])]


# (kind, title, lines, log scale, readout unit)
CHARTS: tuple[ChartSpec, ...] = (
    ("throughput", "Requests per second (by planned send time)", _throughput, False, "per_second"),
    ("api", "API latency (client view)", _api, True, "seconds"),
    ("e2e", "End-to-end latency (created -> phone)", _e2e, True, "seconds"),
    ("backlog", "Kafka backlog (messages)", _backlog, False, ""),
)


def _count(v: float) -> str:
    return f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"


def scenario_charts(run: Run, scenario: str) -> str:
    cells = [c for c in run.cells if c.scenario == scenario]
    out = [f'<div class="grid" style="--cols: {len(cells)}"><div></div>']
    out += [f'<div class="head">{escape(c.pipeline)}</div>' for c in cells]
    for kind, title, make, log, unit in CHARTS:
        lines = {c.pipeline: make(c) for c in cells}
        everything = [v for ls in lines.values() for ln in ls for v in ln.values]
        scale: Scale = svgchart.log_scale(everything) if log else svgchart.linear_scale(everything)
        y_fmt = results.fmt_seconds if log else _count
        out.append(f'<div class="kind">{escape(title)}</div>')
        x_max = max(_x_max(c) for c in cells)  # one time axis per row too: drains differ in length
        for c in cells:
            load_end = float((c.data.get("timings") or {}).get("load_seconds") or 0)
            out.append(
                svgchart.chart(
                    f"{c.pipeline} · {kind}",
                    lines[c.pipeline],
                    x_max,
                    scale,
                    y_fmt,
                    bands=[Band(*w) for w in results.fault_windows(c.data)],
                    marker=(load_end, "load ends; drain follows"),
                    unit=unit,
                )
            )
    out.append("</div>")
    return "".join(out)


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 99, raw: bool = False) -> str:
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


def claims_table(judgements: list[Judgement]) -> str:
    rows = []
    for j in judgements:
        c = j.claim
        rule = f"<code>{escape(c.holds.text)}</code>" if c.holds else ""
        if c.shown_if:
            rule += f"<br>if <code>{escape(c.shown_if.text)}</code>"
        css = j.verdict.replace(" ", "-")
        verdict = f'<span class="badge {css}">{escape(j.verdict)}</span>'
        verdict += "".join(f'<div class="reason">{escape(t)}</div>' for t in verdict_notes(j))
        rows.append(
            [
                f'{escape(c.text)}<div class="side">{escape(c.side)} {escape(c.kind)} · {escape(c.id)}</div>',
                escape(", ".join(c.scenarios) or NO_VALUE),
                f"{escape(c.metric)}<br>{rule}" if c.metric else rule or NO_VALUE,
                '<div class="values">'
                + ("<br>".join(escape(v) for v in claim_values(j, "sync")) or NO_VALUE)
                + "</div>",
                '<div class="values">'
                + ("<br>".join(escape(v) for v in claim_values(j, "async")) or NO_VALUE)
                + "</div>",
                verdict,
            ]
        )
    return _table(["claim", "scenario", "metric and rule", "sync", "async", "verdict"], rows, raw=True)


def _hypothesis(cell: Cell) -> str:
    if cell.passed is None:
        return NO_VALUE
    return f'<span class="badge {"pass" if cell.passed else "fail"}">{"PASS" if cell.passed else "FAIL"}</span>'


def summary_tables(run: Run) -> str:
    ledger_rows = []
    for c in run.cells:
        values = [ledger_value(c, k) for k in LEDGER]
        tds = [escape(c.pipeline), f'<a href="#s-{escape(c.scenario)}">{escape(c.scenario)}</a>', _hypothesis(c)]
        for key, v in zip(LEDGER, values, strict=True):
            bad = key in ("lost", "unexpected") and v
            tds.append(f'<span class="{"bad" if bad else ""}">{NO_VALUE if v is None else v}</span>')
        ledger_rows.append(tds)
    lat_rows = [[c.pipeline, c.scenario, *rate_row(c)] for c in run.cells]
    return (
        "<h3>Ledger: what the client was told vs what the phone got</h3>"
        + _table(["pipeline", "scenario", "hypothesis", *LEDGER], ledger_rows, numeric_from=3, raw=True)
        + "<h3>Rate, latency, backlog</h3>"
        + _table(["pipeline", "scenario", *RATE_COLUMNS], lat_rows, numeric_from=2)
    )


def scenario_section(run: Run, scenario: str) -> str:
    cells = [c for c in run.cells if c.scenario == scenario]
    first = cells[0]
    checks = []
    for c in cells:
        for ch in (c.data.get("hypothesis") or {}).get("checks") or []:
            ok = bool(ch.get("passed"))
            checks.append(
                [
                    escape(c.pipeline),
                    f"<code>{escape(str(ch.get('check')))}</code>",
                    escape(results.fmt(str(ch.get("metric")), ch.get("measured"))),
                    f'<span class="badge {"pass" if ok else "fail"}">{"held" if ok else "failed"}</span>',
                ]
            )
    timings = first.data.get("timings") or {}
    profile = first.data.get("profile") or {}
    return (
        f'<section id="s-{escape(scenario)}"><h2>{escape(scenario)}</h2>'
        f'<p class="desc">{escape(str(first.data.get("description") or ""))}</p>'
        f'<p class="note">Load: {escape(str(profile.get("description") or profile.get("name") or "?"))}; '
        f"run for {timings.get('load_seconds', 0):g} s, the profile's timeline scaled to fit, then drained. "
        f"Faults (s from load start): {escape(fault_text(cells))}. "
        "Shaded: from when each fault was really applied until its undo took effect. Dotted line: load ends. "
        "Latency axes are logarithmic; "
        "each row shares its y-axis across pipelines.</p>"
        + scenario_charts(run, scenario)
        + "<h3>Hypothesis checks</h3>"
        + _table(["pipeline", "check", "measured", "result"], checks, raw=True)
        + "</section>"
    )


def page(run: Run, judgements: list[Judgement]) -> str:
    nav = ['<a href="#claims">claims</a>', '<a href="#summary">results</a>']
    nav += [f'<a href="#s-{escape(s)}">{escape(s)}</a>' for s in run.scenarios]
    nav.append('<a href="#machine">machine</a>')
    held = sum(c.passed is True for c in run.cells)
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    body = [
        f"<header><h1>sync vs async: run {escape(run.run_id)}</h1>",
        f'<p class="machine"><b>Measured on</b> {escape(machine_summary(run.machine))}</p>',
        f"<p>{len(run.cells)} cells ({escape(', '.join(run.pipelines))} x {escape(', '.join(run.scenarios))}); "
        f"{held}/{len(run.cells)} scenario hypotheses held.</p>",
        f"<nav>{' · '.join(nav)}</nav></header>",
        '<section id="claims"><h2>The article\'s claims, measured</h2>',
        f'<p class="note">{escape(verdict_counts(judgements))}. Verdict rules are data (harness/claims.yaml); '
        "a claim whose inputs this run lacks is <i>not shown</i>.</p>",
        claims_table(judgements),
        '</section><section id="summary"><h2>Results</h2>',
        summary_tables(run),
        "<h3>Scenarios</h3>",
        _table(["scenario", "load", "load time", "faults (s from load start)"], scenario_rows(run)),
        "</section>",
        *(scenario_section(run, s) for s in run.scenarios),
        '<section id="machine"><h2>Machine and versions</h2>',
        _table(["", ""], machine_rows(run.machine)),
        f'<p class="note">Report generated {escape(generated)} by <code>bench report</code> '
        f"from {escape(str(run.root))}.</p>",
        "</section>",
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>sync vs async: run {escape(run.run_id)}</title><style>{CSS}</style></head>\n<body>"
        + "\n".join(body)
        + f"\n<script>{JS}</script>\n</body></html>\n"
    )
