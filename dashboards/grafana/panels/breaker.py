"""sync-resilient's circuit breaker: its state over time and its transitions."""

from __future__ import annotations

from dashboards.grafana.common import COUNT, HALF, HEIGHT, PIPELINE, PanelBuilder, graph, query, states
from targets import metrics as m


def state() -> PanelBuilder:
    # One row: 0 closed, 1 half-open, 2 open (the state gauge is 1 for the current state).
    expr = (
        f'sum by (pipeline) ({m.REACTION_BREAKER_STATE}{{{PIPELINE}, state="half_open"}})'
        f' + 2 * sum by (pipeline) ({m.REACTION_BREAKER_STATE}{{{PIPELINE}, state="open"}})'
    )
    return states(
        "Circuit breaker state",
        [query(expr, "breaker")],
        {"0": ("closed", "green"), "1": ("half-open", "yellow"), "2": ("open", "red")},
        width=HALF,
        height=HEIGHT,
    )


def transitions() -> PanelBuilder:
    return graph(
        "Circuit breaker transitions",
        COUNT,
        [
            query(
                f"sum by (state) (increase({m.REACTION_BREAKER_TRANSITIONS_TOTAL}{{{PIPELINE}}}[$__rate_interval]))",
                "to {{state}}",
            )
        ],
    )
