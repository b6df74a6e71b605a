"""Reading a run folder back: run.json + one result.json per (pipeline x scenario) cell.

Every measured value is addressable as `<pipeline>.<scenario>.<metric>` (e.g. `async.surge.api.p99`),
the namespace the claims rules and the compare thresholds are written in. Besides result.json's
`measured` table a few values are derived here from the per-second series, notably the error
ratio *inside* the fault windows, which a whole-run ratio dilutes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.scenario import METRICS as MEASURED
from facts import topology

DERIVED = (
    "api.mean", "e2e.mean", "rate.target_mean", "rate.target_peak", "hypothesis.passed",
    "fault.attempted", "fault.error_ratio", "fault.ack_ratio", "fault.api_p99_max",
)  # fmt: skip
METRICS = (*MEASURED, *DERIVED)
SECONDS = ("api.", "e2e.", "drain_seconds", "fault.api_p99_max")
RATIOS = ("_ratio",)
RATES = ("achieved_rate", "rate.")
NO_VALUE = "\N{EN DASH}"  # shown where nothing was measured


class ResultsError(ValueError):
    """A run folder or result file that cannot be read; the message names the path."""


@dataclass(frozen=True)
class Cell:
    pipeline: str
    scenario: str
    data: dict[str, Any]
    path: Path

    @property
    def passed(self) -> bool | None:
        hyp = self.data.get("hypothesis")
        return None if not isinstance(hyp, dict) else bool(hyp.get("passed"))

    def metrics(self) -> dict[str, float | None]:
        return cell_metrics(self.data)


@dataclass(frozen=True)
class Run:
    root: Path
    run_id: str
    machine: dict[str, Any] | None
    cells: tuple[Cell, ...]

    def cell(self, pipeline: str, scenario: str) -> Cell | None:
        return next((c for c in self.cells if c.pipeline == pipeline and c.scenario == scenario), None)

    @property
    def pipelines(self) -> list[str]:
        return _unique(c.pipeline for c in self.cells)

    @property
    def scenarios(self) -> list[str]:
        return _unique(c.scenario for c in self.cells)

    def env(self) -> dict[str, float | None]:
        """`<pipeline>.<scenario>.<metric>` -> value (None when the run measured nothing)."""
        return {f"{c.pipeline}.{c.scenario}.{m}": v for c in self.cells for m, v in c.metrics().items()}


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        return None
    return float(v)


def fault_windows(data: Mapping[str, Any]) -> list[tuple[float, float, str]]:
    """(start, end, label) of each fault in seconds from the load's start: from when it was really
    applied to when its undo took effect (a restarted broker serves only once ready) where recorded,
    else as planned. A fault that was never applied has no window: shading it would show an effect
    that did not happen."""
    out = []
    for w in data.get("faults") or []:
        if "applied_offset" in w and w["applied_offset"] is None:
            continue
        start = _first(w, "applied_offset", "start")
        end = _first(w, "recovered_offset", "undone_offset", "end")
        if start is not None and end is not None and end > start:
            out.append((float(start), float(end), str(w.get("label") or w.get("kind") or "fault")))
    return out


def _first(w: Mapping[str, Any], *keys: str) -> Any:
    return next((w[k] for k in keys if w.get(k) is not None), None)


def fault_seconds(data: Mapping[str, Any]) -> set[int]:
    """Seconds (of the series) whose middle falls inside a fault window."""
    out: set[int] = set()
    for start, end, _ in fault_windows(data):
        out.update(i for i in range(max(0, math.floor(start)), math.ceil(end)) if start <= i + 0.5 < end)
    return out


def _fault_metrics(data: Mapping[str, Any]) -> dict[str, float | None]:
    seconds = fault_seconds(data)
    series = data.get("series") or {}
    if not seconds or not series:
        return dict.fromkeys(("fault.attempted", "fault.error_ratio", "fault.ack_ratio", "fault.api_p99_max"))

    def total(key: str) -> float:
        values = series.get(key) or []
        return float(sum(_num(values[i]) or 0.0 for i in seconds if i < len(values)))

    ack, failed, unknown = total("acknowledged"), total("failed"), total("unknown")
    n = ack + failed + unknown
    p99s = [_num(v) for i, v in enumerate(series.get("api_p99") or []) if i in seconds]
    p99 = [v for v in p99s if v is not None]
    return {
        "fault.attempted": n,
        "fault.error_ratio": (failed + unknown) / n if n else None,
        "fault.ack_ratio": ack / n if n else None,
        "fault.api_p99_max": max(p99) if p99 else None,
    }


def cell_metrics(data: Mapping[str, Any]) -> dict[str, float | None]:
    """result.json's `measured` table plus the derived values (DERIVED), all as float or None."""
    measured = data.get("measured") or {}
    out: dict[str, float | None] = {m: _num(measured.get(m)) for m in MEASURED}
    for extra, v in measured.items():  # metrics added to run.py later still show up
        out.setdefault(extra, _num(v))
    rate = data.get("rate") or {}
    hyp = data.get("hypothesis")
    out.update(
        {
            "api.mean": _num((data.get("api_latency_seconds") or {}).get("mean")),
            "e2e.mean": _num((data.get("e2e_latency_seconds") or {}).get("mean")),
            "rate.target_mean": _num(rate.get("target_mean")),
            "rate.target_peak": _num(rate.get("target_peak")),
            "hypothesis.passed": None if not isinstance(hyp, dict) else float(bool(hyp.get("passed"))),
            **_fault_metrics(data),
        }
    )
    return out


def split_name(name: str, default_scenario: str | None = None) -> tuple[str, str, str]:
    """`pipeline.scenario.metric` -> its parts; `pipeline.metric` takes `default_scenario`.
    Raises ValueError naming what is unknown."""
    parts = name.split(".")
    pipeline, rest = parts[0], ".".join(parts[1:])
    if pipeline not in topology.PIPELINES:
        raise ValueError(f"{name!r}: unknown pipeline {pipeline!r} (pipelines: {', '.join(topology.PIPELINES)})")
    if default_scenario and rest in METRICS:
        return pipeline, default_scenario, rest
    if len(parts) < 3:
        raise ValueError(f"{name!r}: expected <pipeline>.<scenario>.<metric>")
    metric = ".".join(parts[2:])
    if metric not in METRICS:
        raise ValueError(f"{name!r}: unknown metric {metric!r} (metrics: {', '.join(METRICS)})")
    return pipeline, parts[1], metric


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: cannot read: {e}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object")
    return data


def _cell(path: Path) -> Cell:
    data = _read_json(path)
    for key in ("pipeline", "scenario", "measured"):
        if key not in data:
            raise ResultsError(f"{path}: not a result.json (no {key!r})")
    return Cell(str(data["pipeline"]), str(data["scenario"]), data, path)


def load(path: Path | str) -> Run:
    """A run folder or its run.json. Without run.json (an interrupted run) every */result.json is read."""
    path = Path(path)
    root = path.parent if path.name == "run.json" else path
    if not root.is_dir():
        raise ResultsError(f"{path}: no such run folder")
    index_path = root / "run.json"
    if index_path.exists():
        index = _read_json(index_path)
        refs = [root / str(c["result"]) for c in index.get("cells", []) if isinstance(c, dict) and "result" in c]
        cells = [_cell(p) for p in refs if p.exists()]
        run_id, machine = str(index.get("run_id", root.resolve().name)), index.get("machine")
    else:
        cells = [_cell(p) for p in sorted(root.glob("*/result.json"))]
        run_id, machine = root.resolve().name, None
    if not cells:
        raise ResultsError(f"{root}: no results (expected run.json or <pipeline>--<scenario>/result.json)")
    order = {p: i for i, p in enumerate(topology.PIPELINES)}
    scen = _unique(c.scenario for c in cells)
    if "baseline" in scen:  # the reference goes first, whatever order the cells ran in
        scen.remove("baseline")
        scen.insert(0, "baseline")
    cells.sort(key=lambda c: (scen.index(c.scenario), order.get(c.pipeline, len(order)), c.pipeline))
    return Run(root, run_id, machine if isinstance(machine, dict) else None, tuple(cells))


def kind(metric: str) -> str:
    """seconds | ratio | rate | count: how a metric's value is shown."""
    if metric.startswith(SECONDS):
        return "seconds"
    if metric.endswith(RATIOS):
        return "ratio"
    if metric.startswith(RATES):
        return "rate"
    return "count"


def fmt(metric: str, value: float | None) -> str:
    """A value for people: 3.2 ms, 1.25 s, 0.4 %, 98/s, 1464."""
    if value is None:
        return NO_VALUE
    k = kind(metric)
    if k == "seconds":
        return fmt_seconds(value)
    if k == "ratio":
        return f"{value * 100:.3g} %" if value else "0 %"
    if k == "rate":
        return f"{value:.4g}/s"
    if metric == "hypothesis.passed":
        return "pass" if value else "FAIL"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"


def fmt_seconds(value: float) -> str:
    if abs(value) < 1:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s"
