"""The report's capacity section, from `capacity.json` in the run folder (harness/capacity/report.py):
the capacities the run's relative rates came from, the ceilings, the ratios, CPU per 1,000 reactions,
what tracing costs and the load generator next to wrk. Formatted once here; markdown.py and
html.py lay it out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facts import topology
from facts.measures import NO_VALUE
from harness import measured_tracing
from harness.capacity import generator_cost
from harness.capacity import report as capacity_report


@dataclass(frozen=True)
class CapacityRows:
    """From `capacity.json` in the run folder: the capacity the run's relative rates came from."""

    source: str
    pipelines: tuple[tuple[str, ...], ...]  # pipeline, capacity, async acceptance, how it ended
    bounded: tuple[str, ...]  # pipelines whose search ended on the generator or the search's limit: in red
    ceilings: tuple[tuple[str, ...], ...]  # name, tool, what, per second
    ratios: tuple[str, ...]
    cpu: tuple[tuple[str, ...], ...]  # pipeline, rate, then CPU seconds per 1,000 reactions per component
    generator: str
    tracing: str = ""  # the search's tracing setting, in words
    tracing_costs: tuple[tuple[str, ...], ...] = ()  # pipeline, setting, services' CPU, x off, per component, p50
    cpu_bounds: tuple[str, ...] = ()  # the most the cores could carry at the services' CPU a reaction


CAPACITY_COLUMNS = ("pipeline", "capacity", "acceptance", "how the search ended")
TRACING_COST_COLUMNS = (
    "pipeline", "tracing", "services' CPU-s per 1,000", "x tracing off", "per component", "API p50",
)  # fmt: skip


def tracing_cost_rows(report: capacity_report.CapacityReport) -> tuple[tuple[str, ...], ...]:
    out = []
    for name, pc in report.pipelines.items():
        off = next((c.services() for c in pc.tracing_costs if c.setting == "off"), None)
        for c in pc.tracing_costs:
            own = c.services()
            factor = f"x{own / off:.2f}" if own is not None and off else NO_VALUE
            parts = ", ".join(f"{k} {v:.2f}" for k, v in c.cpu_seconds_per_1000.items() if k in topology.SERVICES)
            p50 = NO_VALUE if c.api_p50_seconds is None else f"{c.api_p50_seconds * 1000:.1f} ms"
            words = measured_tracing.words(c.setting) + ("" if c.held else " (broke its service level)")
            out.append((name, words, NO_VALUE if own is None else f"{own:.2f}", factor, parts or NO_VALUE, p50))
    return tuple(out)


CEILING_COLUMNS = ("ceiling", "tool", "what", "per second")


def _rate(r: float | None) -> str:
    return NO_VALUE if r is None else f"{r:.0f}/s"


def _healthz(h: capacity_report.GeneratorOnHealthz | str, where: str = "") -> str:
    """The generator alone on GET /healthz next to wrk; `where` says which of its measures this is."""
    if isinstance(h, str):
        return f"; on GET /healthz: {h}"
    x = h.times_wrk()
    lag = NO_VALUE if h.lag_p99_seconds is None else f"{h.lag_p99_seconds * 1000:.1f} ms"
    wake = "" if h.wake_interval_seconds is None else f", waking at most every {h.wake_interval_seconds * 1000:g} ms"
    at = (
        f"at {_rate(h.rate)}"
        if h.in_flight_cap is None
        else f"at its max ({_rate(h.achieved_per_second)}, wrk {_rate(h.wrk_per_second)}; at most {h.in_flight_cap} "
        "in flight as wrk's connections)"
    )
    text = (
        f"; {where}on GET /healthz {at}{wake}: {h.cpu_seconds_per_1000 or 0:.3f} vs wrk "
        f"{h.wrk_cpu_seconds_per_1000 or 0:.3f}"
        + (f" ({capacity_report.times(x)})" if x is not None else "")
        + _paced(h)
        + (f", lag p99 {lag}" if h.in_flight_cap is None else "")  # at its max: none (GeneratorOnHealthz)
    )
    like = h.at_wrk_wakeups_seconds_per_1000()
    if like is None or h.wakeups_per_request is None or h.wakeup_cpu_seconds is None:
        return text
    w = h.wrk_cpu_seconds_per_1000
    return text + (
        f"; {h.wakeups_per_request:.2f} wakeups per request (wrk {h.wrk_wakeups_per_request:.2f}) at "
        f"{h.wakeup_cpu_seconds * 1e6:.0f} us each: {like:.3f} with wrk's wakeups"
        + (f" ({capacity_report.times(like / w)})" if w else "")
    )


def _paced(h: capacity_report.GeneratorOnHealthz) -> str:
    """wrk paced to the generator's rate: the control at the same rate (wrk at its max saturates)."""
    c = h.paced_wrk
    if c is None:
        return ""
    figures = c.rate_and_cpu()
    if figures is None:
        return f", wrk paced to the rate failed ({c.error})"
    per_second, cpu_per_1000 = figures
    x = h.times_paced_wrk()
    if x is not None:
        ratio = f" ({capacity_report.times(x)})"
    elif h.achieved_per_second and not generator_cost.same_rate(h.achieved_per_second, per_second):
        ratio = f" (no control: it achieved {per_second:.0f}/s, the generator {h.achieved_per_second:.0f}/s)"
    else:
        ratio = ""
    detail = c.detail_line()  # "played twice: ..." / "kept over a replay ..."
    return f", wrk paced to the rate {cpu_per_1000:.3f}{ratio}" + (f" ({detail})" if detail else "")


def capacity_rows(path: Path) -> CapacityRows | None:
    if not path.exists():
        return None
    report = capacity_report.load_report(path)
    g = report.generator
    return CapacityRows(
        source=f"{path.name}: bench capacity run {report.run_id} on {report.hostname}"
        + (f"; {report.scaling_note}" if report.scaling_note else ""),
        tracing=f"searched with tracing {measured_tracing.words(report.tracing)}",
        tracing_costs=tracing_cost_rows(report),
        pipelines=tuple(
            (
                name,
                _rate(pc.capacity.rate),
                _rate(pc.acceptance.rate if pc.acceptance else None),
                pc.capacity.summary(),
            )
            for name, pc in report.pipelines.items()
        ),
        bounded=tuple(name for name, pc in report.pipelines.items() if pc.capacity.bound != "pipeline"),
        ceilings=tuple(
            (c.name, c.tool, c.what, NO_VALUE if c.per_second is None else f"{c.per_second:,.0f}")
            for c in report.ceilings
        ),
        ratios=tuple(r.text for r in report.ratios),
        cpu_bounds=tuple(b.text for b in report.cpu_bounds),
        cpu=tuple(
            (name, f"{pc.cpu_rate:.0f}/s", ", ".join(f"{k} {v:.2f}" for k, v in pc.cpu_seconds_per_1000.items()))
            for name, pc in report.pipelines.items()
        ),
        generator=NO_VALUE
        if g is None
        else (
            f"load generator {g.cpu_seconds_per_1000 or 0:.2f} CPU-s per 1,000 requests vs wrk "
            f"{g.wrk_cpu_seconds_per_1000 or 0:.3f}; kept up to {_rate(g.kept_up_max_rate)}"
            + _healthz(g.healthz)
            + ("" if g.at_top is None else _healthz(g.at_top, "at the run's top capacity, "))
            + ("" if g.at_max is None else _healthz(g.at_max))
        ),
    )
