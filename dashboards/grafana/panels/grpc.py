"""The sync pipelines' hop: Notify RPCs as the notification service answered them."""

from __future__ import annotations

from dashboards.grafana.common import PER_SECOND, PIPELINE, PanelBuilder, graph, query
from targets import metrics as m


def notify_by_code() -> PanelBuilder:
    return graph(
        "Notify RPCs by gRPC code",
        PER_SECOND,
        [
            query(
                f"sum by (code) (rate({m.NOTIFICATION_GRPC_REQUESTS_TOTAL}{{{PIPELINE}}}[$__rate_interval]))",
                "{{code}}",
            )
        ],
        description="Server side of the gRPC hop; the reaction side's failures are under Transport errors.",
        stack=True,
    )
