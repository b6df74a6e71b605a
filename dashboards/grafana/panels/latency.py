"""Latency: the API (server side and from the client's intended start) and end to end."""

from __future__ import annotations

from dashboards.grafana.common import PIPELINE, SECONDS, PanelBuilder, graph, query

API = "pipeline_quantile:reaction_request_duration_seconds:histogram_quantile_rate10s"
CLIENT = "pipeline_quantile:loadgen_request_latency_seconds:histogram_quantile_rate10s"
E2E = "pipeline_quantile:pushsink_end_to_end_latency_seconds:histogram_quantile_rate10s"
P99 = 'quantile="0.99"'


def api_latency(repeat: bool = False) -> PanelBuilder:
    return graph(
        "API latency percentiles",
        SECONDS,
        [
            query(f"{API}{{{PIPELINE}}}", "server q{{quantile}}"),
            query(f"{CLIENT}{{{PIPELINE}}}", "client q{{quantile}}"),
        ],
        description="Server: request accepted to response written (reaction histogram). Client: from the "
        "request's intended start (coordinated omission included) to its answer or timeout.",
        repeat=repeat,
    )


def api_p99_by_pipeline() -> PanelBuilder:
    return graph(
        "API latency p99 by pipeline",
        SECONDS,
        [
            query(f"{API}{{{PIPELINE}, {P99}}}", "{{pipeline}} server"),
            query(f"{CLIENT}{{{PIPELINE}, {P99}}}", "{{pipeline}} client"),
        ],
        description="The article's claim under test: a synchronous caller waits for the whole chain.",
    )


def e2e_latency(repeat: bool = False) -> PanelBuilder:
    return graph(
        "End-to-end latency percentiles",
        SECONDS,
        [query(f"{E2E}{{{PIPELINE}}}", "q{{quantile}}")],
        description="First delivery at the push sink minus the reaction's created time, over the "
        "notifications first delivered in the last 10 s.",
        repeat=repeat,
    )


def e2e_p99_by_pipeline() -> PanelBuilder:
    return graph(
        "End-to-end latency p99 by pipeline",
        SECONDS,
        [query(f"{E2E}{{{PIPELINE}, {P99}}}", "{{pipeline}}")],
    )


def transport_send_latency() -> PanelBuilder:
    return graph(
        "Transport send latency p99",
        SECONDS,
        [
            query(
                "histogram_quantile(0.99, sum by (le, outcome) "
                f"(rate(reaction_transport_send_duration_seconds_bucket{{{PIPELINE}}}[$__rate_interval])))",
                "p99 {{outcome}}",
            )
        ],
        description="Time in the transport's send: gRPC Notify, or Kafka produce until acknowledged.",
    )


def delivery_duration() -> PanelBuilder:
    return graph(
        "Push delivery duration p99",
        SECONDS,
        [
            query(
                "histogram_quantile(0.99, sum by (le, outcome) "
                f"(rate(notification_delivery_duration_seconds_bucket{{{PIPELINE}}}[$__rate_interval])))",
                "p99 {{outcome}}",
            )
        ],
        description="One notification from its first push attempt to its outcome, retries and backoff included.",
    )
