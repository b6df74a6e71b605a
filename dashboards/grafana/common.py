"""What every dashboard shares: the datasource, the variables, panel and query factories.

Every panel and every query points at the `datasource` variable, never at a datasource uid, so a
dashboard works against whichever Prometheus the viewer picks. Series are selected with
`PIPELINE` (`pipeline=~"$pipeline"`), which holds for a single, a multi or an "All" value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from chaos.engine import CHAOS_CELL_ACTIVE, CHAOS_FAULT_ACTIVE

PanelBuilder = cogbuilder.Builder[dm.Panel]
QueryPanel = timeseries.Panel | statetimeline.Panel | stat.Panel

# The provisioned datasource (provisioning/datasources/prometheus.yml) and the variable that
# defaults to it.
DATASOURCE_UID = "sab-prometheus"
DATASOURCE_NAME = "Prometheus"
DATASOURCE_VAR = "datasource"
DS = dm.DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VAR + "}")

PIPELINE_VAR = "pipeline"
SCENARIO_VAR = "scenario"
PIPELINE = f'pipeline=~"${PIPELINE_VAR}"'

TAGS = ["sync-async-bench"]
HEIGHT = 8
FULL = 24
HALF = 12

# Units (Grafana unit ids).
SECONDS = "s"
PER_SECOND = "reqps"  # requests
OPS = "ops"  # messages, deliveries
RATIO = "percentunit"
COUNT = "short"


def query(expr: str, legend: str = "", *, instant: bool = False, exemplar: bool = False) -> prometheus.Dataquery:
    """A Prometheus query on the `datasource` variable; ref ids are given when a panel takes it.

    `exemplar`: Grafana also asks for the exemplars of the series the expression selects (a raw
    histogram's `_bucket` series; recorded series carry none) and draws them as points that open
    their trace in Jaeger (the data source's `trace_id` link).
    """
    q = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").datasource(DS)
    if exemplar:
        q.exemplar(True)
    return q.instant() if instant else q.range()


def _with_queries(panel: QueryPanel, queries: Sequence[prometheus.Dataquery]) -> None:
    for i, q in enumerate(queries):
        panel.with_target(q.ref_id(chr(ord("A") + i)))


def graph(
    title: str,
    unit: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    description: str = "",
    width: int = HALF,
    height: int = HEIGHT,
    stack: bool = False,
    min_zero: bool = True,
    repeat: bool = False,
) -> timeseries.Panel:
    """A time series panel. `repeat`: one copy per selected pipeline, side by side."""
    p = (
        timeseries.Panel()
        .title(f"{title} · ${PIPELINE_VAR}" if repeat else title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10 if stack else 0)
        .show_points(cm.VisibilityMode.NEVER)
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    )
    if stack:
        p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if min_zero:
        p.min(0)
    if repeat:
        # Grafana lays the copies out horizontally, FULL / number of pipelines wide each.
        p.repeat(PIPELINE_VAR).repeat_direction("h").span(FULL)
    _with_queries(p, queries)
    return p


def states(
    title: str,
    queries: Sequence[prometheus.Dataquery],
    mapping: dict[str, tuple[str, str]],
    *,
    description: str = "",
    width: int = FULL,
    height: int = 6,
) -> statetimeline.Panel:
    """A state timeline; `mapping` is value -> (text, color)."""
    p = (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .span(width)
        .height(height)
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
        .fill_opacity(80)
        .mappings([dm.ValueMap(options={v: dm.ValueMappingResult(text=t, color=c) for v, (t, c) in mapping.items()})])
        .legend(cb.VizLegendOptions().show_legend(False))
    )
    _with_queries(p, queries)
    return p


def single_stat(
    title: str, unit: str, queries: Sequence[prometheus.Dataquery], *, description: str = "", width: int = 6
) -> stat.Panel:
    """A stat over the dashboard's range (instant queries over `$__range`)."""
    p = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .span(width)
        .height(4)
        .color_mode(cm.BigValueColorMode.NONE)
        .graph_mode(cm.BigValueGraphMode.NONE)
    )
    _with_queries(p, queries)
    return p


def row(title: str) -> db.Row:
    # Expanded rows take no panels of their own (Grafana strips them): panels follow the row.
    return db.Row(title).collapsed(False)


def datasource_variable() -> db.DatasourceVariable:
    return (
        db.DatasourceVariable(DATASOURCE_VAR)
        .label("Datasource")
        .type("prometheus")
        .current(dm.VariableOption(selected=True, text=DATASOURCE_NAME, value=DATASOURCE_UID))
    )


def pipeline_variable(pipelines: Sequence[str]) -> db.CustomVariable:
    """A custom variable over facts.topology.PIPELINES (known before any series exists)."""
    multi = len(pipelines) > 1
    v = (
        db.CustomVariable(PIPELINE_VAR)
        .label("Pipeline")
        .values(",".join(pipelines))
        .multi(multi)
        .include_all(multi)
        .options([dm.VariableOption(selected=True, text=p, value=p) for p in pipelines])
    )
    if multi:
        v.current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    else:
        v.current(dm.VariableOption(selected=True, text=pipelines[0], value=pipelines[0])).hide(
            dm.VariableHide.HIDE_VARIABLE
        )
    return v


def scenario_variable() -> db.QueryVariable:
    """Scenarios seen in the range. Only `bench run` serves the series that carries the label."""
    return (
        db.QueryVariable(SCENARIO_VAR)
        .label("Scenario")
        .datasource(DS)
        .query(f"label_values({CHAOS_CELL_ACTIVE}, scenario)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def fault_annotation() -> db.AnnotationQuery:
    return (
        db.AnnotationQuery()
        .name("Faults")
        .datasource(DS)
        .enable(True)
        .icon_color("red")
        .expr(f"max by (fault) ({CHAOS_FAULT_ACTIVE}) == 1")
    )


def cell_annotation() -> db.AnnotationQuery:
    return (
        db.AnnotationQuery()
        .name("Bench cells")
        .datasource(DS)
        .enable(True)
        .icon_color("blue")
        .expr(f'max by (pipeline, scenario) ({CHAOS_CELL_ACTIVE}{{{PIPELINE}, scenario=~"${SCENARIO_VAR}"}}) == 1')
    )


# Prometheus annotation fields the SDK's AnnotationQuery does not model; `export` merges them in.
ANNOTATION_EXTRAS: dict[str, dict[str, str]] = {
    "Faults": {"step": "1s", "titleFormat": "{{fault}}", "tagKeys": "fault"},
    "Bench cells": {"step": "1s", "titleFormat": "{{pipeline}} x {{scenario}}", "tagKeys": "pipeline,scenario"},
}


def dashboard(
    uid: str, title: str, description: str, variables: Iterable[cogbuilder.Builder[dm.VariableModel]]
) -> db.Dashboard:
    d = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .timezone("browser")
        .time("now-15m", "now")
        .refresh("5s")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .annotation(fault_annotation())
        .annotation(cell_annotation())
    )
    for v in variables:
        d.with_variable(v)
    return d


def add_group(d: db.Dashboard, title: str, panels: Iterable[PanelBuilder]) -> None:
    d.with_row(row(title))
    for p in panels:
        d.with_panel(p)


def number_panels(model: dm.Dashboard) -> dm.Dashboard:
    """Give every panel (rows included) a stable id: its position in the dashboard."""
    for i, p in enumerate(model.panels or [], start=1):
        p.id_val = i
    return model
