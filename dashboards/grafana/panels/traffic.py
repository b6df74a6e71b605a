"""The reaction API: requests by status code and whether its transport can send."""

from __future__ import annotations

from dashboards.grafana.common import HALF, HEIGHT, PER_SECOND, PIPELINE, PanelBuilder, graph, query, states
from targets import metrics as m


def requests_by_code(repeat: bool = False) -> PanelBuilder:
    return graph(
        "Requests by status code",
        PER_SECOND,
        [query(f"pipeline_code:reaction_requests:rate10s{{{PIPELINE}}}", "{{code}}")],
        description="Answers of POST /v1/posts/{post_id}/reactions, stacked by HTTP status.",
        stack=True,
        repeat=repeat,
    )


def transport_ready() -> PanelBuilder:
    return states(
        "Transport ready",
        [query(f"max by (pipeline) ({m.REACTION_TRANSPORT_READY}{{{PIPELINE}}})", "{{pipeline}}")],
        {"0": ("cannot send", "red"), "1": ("ready", "green")},
        description="gRPC channel not failing (sync) or Kafka producer connected (async).",
        width=HALF,
        height=HEIGHT,
    )
