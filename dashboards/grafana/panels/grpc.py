"""The sync pipelines' hop: Notify RPCs as the notification service answered them."""

from __future__ import annotations

from dashboards.grafana.common import PER_SECOND, PIPELINE, PanelBuilder, graph, query


def notify_by_code() -> PanelBuilder:
    return graph(
        "Notify RPCs by gRPC code",
        PER_SECOND,
        [
            query(
                f"sum by (code) (rate(notification_grpc_requests_total{{{PIPELINE}}}[$__rate_interval]))",
                "{{code}}",
            )
        ],
        description="Server side of the gRPC hop; the reaction side's failures are under Transport errors.",
        stack=True,
    )
