"""When each bench cell ran and which faults were active (chaos_fault_active, chaos_cell_active)."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from chaos.engine import CHAOS_CELL_ACTIVE, CHAOS_FAULT_ACTIVE
from dashboards import catalog
from dashboards.grafana.common import FULL, PIPELINE, SCENARIO_VAR, PanelBuilder, graph, query, states


def timeline() -> PanelBuilder:
    p = states(
        "Bench cells and faults",
        [
            query(f"max by (fault) ({CHAOS_FAULT_ACTIVE})", "{{fault}}"),
            query(
                f'max by (pipeline, scenario) ({CHAOS_CELL_ACTIVE}{{{PIPELINE}, scenario=~"${SCENARIO_VAR}"}})',
                "{{pipeline}} x {{scenario}}",
            ),
        ],
        {"0": ("off", "transparent"), "1": ("fault active", "red")},
        description="Served by `bench run` only (topology.CHAOS_METRICS_PORT): empty for a stack started "
        "with `bench up`. A fault's row is red while Toxiproxy or the process supervisor applies it.",
    )
    # The cell rows are not faults: same states, their own text and color.
    cell = dm.ValueMap(
        options={
            "0": dm.ValueMappingResult(text="idle", color="transparent"),
            "1": dm.ValueMappingResult(text="running", color="blue"),
        }
    )
    p.override_by_query("B", [dm.DynamicConfigValue(id_val="mappings", value=[cell])])
    return p


def link_traffic() -> PanelBuilder:
    return graph(
        "Bytes through each Toxiproxy link",
        "Bps",
        [
            query(
                f"sum by (proxy, direction) (rate({catalog.TOXIPROXY_SENT_BYTES_TOTAL}[$__rate_interval]))",
                "{{proxy}} {{direction}}",
            )
        ],
        description="What Toxiproxy forwarded per link (all pipelines): a cut link drops to 0, a "
        "latency toxic shifts the traffic later.",
        width=FULL,
        height=7,
    )
