"""Work accepted but not yet delivered: Kafka consumer lag and requests/deliveries in flight."""

from __future__ import annotations

from dashboards.grafana.common import COUNT, PIPELINE, PanelBuilder, graph, query
from targets import metrics as m


def backlog(repeat: bool = False) -> PanelBuilder:
    return graph(
        "Backlog and in flight",
        COUNT,
        [
            query(f"pipeline:notification_consumer_lag_messages:sum{{{PIPELINE}}}", "Kafka consumer lag"),
            query(f"sum by (pipeline) ({m.NOTIFICATION_DELIVERIES_IN_FLIGHT}{{{PIPELINE}}})", "pushes in flight"),
            query(f"sum by (pipeline) ({m.REACTION_REQUESTS_IN_FLIGHT}{{{PIPELINE}}})", "API requests in flight"),
        ],
        description="Consumer lag (async only) is as of the consumer's last batch: while the consumer "
        "cannot reach Kafka it stays at its last value.",
        repeat=repeat,
    )
