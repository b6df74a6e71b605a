"""The charts of one scenario, a row per kind and a column per pipeline, drawn from each cell's
per-second series with its actual fault windows shaded. A row shares its y-scale and its time axis
across pipelines, so sync and async compare by eye."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from facts.measures import fmt_seconds
from harness.report.svgchart import Band, Line, Scale, chart, linear_scale, log_scale
from harness.result import CellResult

COLORS = {
    "acknowledged": "#2e7d32", "failed": "#c62828", "unknown": "#ef6c00", "delivered": "#1565c0",
    "target": "#616161", "api_p50": "#64b5f6", "api_p99": "#0d47a1", "e2e_p50": "#ce93d8",
    "e2e_p99": "#6a1b9a", "backlog": "#00897b", "rss": "#5d4037",
}  # fmt: skip
MEMORY_POINTS = 240  # values per memory chart at most: a 30 min soak's readings averaged in 7.5 s steps


def _floats(values: Sequence[float | None]) -> list[float | None]:
    return [None if v is None else float(v) for v in values]


def _planned(cell: CellResult, values: Sequence[float | None]) -> list[float | None]:
    """A series by planned send time: nothing is planned after the load, so it stops there."""
    load = math.ceil(cell.timings.load_seconds)
    return _floats(values[:load] if load else values)


def _x_max(cell: CellResult) -> float:
    return float(max(len(cell.series.second), cell.timings.load_seconds or 1))


def _throughput(cell: CellResult) -> list[Line]:
    s = cell.series
    return [
        Line("target", _planned(cell, s.target_rate), COLORS["target"], dashed=True, width=1.2),
        Line("delivered", _floats(s.delivered), COLORS["delivered"], width=1.0),  # under ack: often equal
        Line("ack", _planned(cell, s.acknowledged), COLORS["acknowledged"]),
        Line("failed", _planned(cell, s.failed), COLORS["failed"]),
        Line("unknown", _planned(cell, s.unknown), COLORS["unknown"]),
    ]


def _api(cell: CellResult) -> list[Line]:
    return [
        Line("p50", _floats(cell.series.api_p50), COLORS["api_p50"]),
        Line("p99", _floats(cell.series.api_p99), COLORS["api_p99"]),
    ]


def _e2e(cell: CellResult) -> list[Line]:
    return [
        Line("p50", _floats(cell.series.e2e_p50), COLORS["e2e_p50"]),
        Line("p99", _floats(cell.series.e2e_p99), COLORS["e2e_p99"]),
    ]


def _backlog(cell: CellResult) -> list[Line]:
    return [Line("backlog", _floats(cell.series.backlog), COLORS["backlog"])]


ChartSpec = tuple[str, str, Callable[[CellResult], list[Line]], bool, str]

# (kind, title, lines, log scale, readout unit)
CHARTS: tuple[ChartSpec, ...] = (
    ("throughput", "Requests per second (by planned send time)", _throughput, False, "per_second"),
    ("api", "API latency (client view)", _api, True, "seconds"),
    ("e2e", "End-to-end latency (created -> phone)", _e2e, True, "seconds"),
    ("backlog", "Kafka backlog (messages)", _backlog, False, ""),
)


def _count(v: float) -> str:
    return f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"


def fault_bands(cell: CellResult) -> list[Band]:
    """Each fault from when it was really applied until its undo took effect; none for a fault never applied."""
    return [Band(*span, w.label) for w in cell.faults if (span := w.actual()) is not None]


def scenario_charts(cells: Sequence[CellResult]) -> str:
    """The grid of one scenario's charts (HTML): a header per pipeline, a row per chart kind."""
    out = [f'<div class="grid" style="--cols: {len(cells)}"><div></div>']
    out += [f'<div class="head">{escape(c.pipeline)}</div>' for c in cells]
    for kind, title, make, log, unit in CHARTS:
        lines = {c.pipeline: make(c) for c in cells}
        everything = [v for ls in lines.values() for ln in ls for v in ln.values]
        scale: Scale = log_scale(everything) if log else linear_scale(everything)
        y_fmt = fmt_seconds if log else _count
        out.append(f'<div class="kind">{escape(title)}</div>')
        x_max = max(_x_max(c) for c in cells)  # one time axis per row too: drains differ in length
        for c in cells:
            out.append(
                chart(
                    f"{c.pipeline} · {kind}",
                    lines[c.pipeline],
                    x_max,
                    scale,
                    y_fmt,
                    bands=fault_bands(c),
                    marker=(c.timings.load_seconds, "load ends; drain follows"),
                    unit=unit,
                )
            )
    out.append("</div>")
    return "".join(out)


def rss_line(cell: CellResult, process: str, step: float) -> Line:
    """One process's RSS in MiB, averaged over `step` seconds, from the load's start to its end."""
    found = next((p for p in cell.memory.processes if p.process == process), None)
    n = math.ceil(cell.timings.load_seconds / step)
    sums, counts = [0.0] * n, [0] * n
    for t, rss in found.series if found else ():
        if 0 <= t < cell.timings.load_seconds:
            sums[int(t / step)] += rss / 2**20
            counts[int(t / step)] += 1
    values = [round(sums[i] / counts[i], 2) if counts[i] else None for i in range(n)]
    return Line("RSS", values, COLORS["rss"], step=step)


def _mib(v: float) -> str:
    return f"{v:g} MiB"


def memory_charts(cells: Sequence[CellResult]) -> str:
    """Every process's RSS over the load (HTML): a header per cell, a row per process, the row's
    y-scale shared (from zero: a flat process reads flat, a leak climbs); the warm-up marked."""
    processes = list(dict.fromkeys(p.process for c in cells for p in c.memory.processes))
    x_max = max((c.timings.load_seconds for c in cells), default=1.0)
    interval = max((c.memory.interval_seconds or 1.0 for c in cells), default=1.0)
    step = max(interval, x_max / MEMORY_POINTS)
    out = [f'<div class="grid" style="--cols: {len(cells)}"><div></div>']
    out += [f'<div class="head">{escape(c.pipeline)}</div>' for c in cells]
    for process in processes:
        lines = {c.folder: [rss_line(c, process, step)] for c in cells}
        scale = linear_scale([v for ls in lines.values() for ln in ls for v in ln.values])
        out.append(f'<div class="kind">{escape(process)} RSS</div>')
        for c in cells:
            warmup = c.memory.warmup_seconds or 0.0
            out.append(
                chart(
                    f"{c.pipeline} · {process}",
                    lines[c.folder],
                    x_max,
                    scale,
                    _mib,
                    bands=fault_bands(c),
                    marker=(warmup, "warm-up ends: judged from here"),
                    unit="MiB",
                )
            )
    out.append("</div>")
    return "".join(out)
