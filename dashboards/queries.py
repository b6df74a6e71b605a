"""Every query of every dashboard, with its variables substituted, ready to run against Prometheus.

Grafana substitutes template variables before it sends a query; this module does the same with
concrete values, so a test can run what a panel would run: once per value of the dashboard's
`pipeline` variable, with the built-in interval variables set to fixed windows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Grafana's built-ins, as fixed values. $__rate_interval is at least 4 scrape intervals (4 s at
# 1 s scrapes); 10s matches the recording rules' window. $__range stands for a short run.
BUILTINS: dict[str, str] = {
    "__rate_interval": "10s",
    "__rate_interval_ms": "10000",
    "__interval": "1s",
    "__interval_ms": "1000",
    "__range": "2m",
    "__range_s": "120",
    "__range_ms": "120000",
}
ALL_SCENARIOS = ".*"  # the scenario variable's allValue

# ${name}, ${name:format}, [[name]] or $name (longest name wins: $__range_s is not $__range + _s).
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


class UnknownVariable(KeyError):
    pass


@dataclass(frozen=True)
class Query:
    dashboard: str  # uid
    panel: str  # panel title, or "annotation: <name>"
    ref_id: str
    pipeline: str
    template: str  # as written in the dashboard
    expr: str  # substituted
    instant: bool

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id} [pipeline={self.pipeline}]"


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Replace every variable; one that is neither in `values` nor a built-in is an error."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in values:
            return values[name]
        if name in BUILTINS:
            return BUILTINS[name]
        raise UnknownVariable(f"unknown variable ${name} in {template!r}")

    return _VARIABLE.sub(one, template)


def _variable(dashboard: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("name") == name:
            return dict(v)
    return None


def pipeline_values(dashboard: Mapping[str, Any]) -> list[str]:
    """The values of the dashboard's custom `pipeline` variable (one for a detail dashboard)."""
    v = _variable(dashboard, "pipeline")
    if v is None:
        raise ValueError(f"dashboard {dashboard.get('uid')} has no pipeline variable")
    return [p.strip() for p in str(v["query"]).split(",") if p.strip()]


def _panels(panels: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))  # collapsed rows keep their panels inside


def dashboard_queries(dashboard: Mapping[str, Any], datasource: str = "") -> list[Query]:
    uid = str(dashboard["uid"])
    written: list[tuple[str, str, str, bool]] = []
    for p in _panels(dashboard.get("panels", [])):
        for t in p.get("targets", []):
            written.append((str(p.get("title", "")), str(t.get("refId", "")), str(t["expr"]), bool(t.get("instant"))))
    for a in dashboard.get("annotations", {}).get("list", []):
        if a.get("expr"):
            written.append((f"annotation: {a['name']}", "", str(a["expr"]), False))
    out = []
    for pipeline in pipeline_values(dashboard):
        values = {"pipeline": pipeline, "scenario": ALL_SCENARIOS, "datasource": datasource}
        for panel, ref, template, instant in written:
            out.append(Query(uid, panel, ref, pipeline, template, substitute(template, values), instant))
    return out


def all_queries(datasource: str = "") -> list[Query]:
    """Every query of every generated dashboard, once per pipeline each dashboard covers."""
    from dashboards.grafana.export import dashboard_dicts

    return [q for d in dashboard_dicts() for q in dashboard_queries(d, datasource)]
