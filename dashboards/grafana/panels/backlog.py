"""Work accepted but not yet delivered: Kafka consumer lag and requests/deliveries in flight."""

from __future__ import annotations

from dashboards.grafana.common import COUNT, PIPELINE, PanelBuilder, graph, query


def backlog(repeat: bool = False) -> PanelBuilder:
    return graph(
        "Backlog and in flight",
        COUNT,
        [
            query(f"pipeline:notification_consumer_lag_messages:sum{{{PIPELINE}}}", "Kafka consumer lag"),
            query(f"sum by (pipeline) (notification_deliveries_in_flight{{{PIPELINE}}})", "pushes in flight"),
            query(f"sum by (pipeline) (reaction_requests_in_flight{{{PIPELINE}}})", "API requests in flight"),
        ],
        description="Consumer lag (async only) is as of the consumer's last batch: while the consumer "
        "cannot reach Kafka it stays at its last value.",
        repeat=repeat,
    )
