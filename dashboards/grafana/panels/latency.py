"""Latency: the API (server side and from the client's intended start) and end to end.

The services' histograms carry exemplars (a sampled request's trace id per bucket); recorded series
carry none, so a panel shows them only through a query on the raw `_bucket` series. The per-pipeline
percentile panels therefore take their p99 from the raw buckets, over the rules' window and
grouping (the value the rule records), with exemplars on; the other quantiles stay recorded.
"""

from __future__ import annotations

from dashboards.grafana.common import PIPELINE, SECONDS, PanelBuilder, graph, query
from targets import metrics as m

API = "pipeline_quantile:reaction_request_duration_seconds:histogram_quantile_rate10s"
CLIENT = "pipeline_quantile:loadgen_request_latency_seconds:histogram_quantile_rate10s"
E2E = "pipeline_quantile:pushsink_end_to_end_latency_seconds:histogram_quantile_rate10s"
P99 = 'quantile="0.99"'
BELOW_P99 = 'quantile!="0.99"'
EXEMPLARS = "Points are exemplars: a traced request in that latency bucket, linked to its trace in Jaeger."


def raw_p99(histogram: str) -> str:
    """p99 of a raw histogram as the rules record it (sum by pipeline and le, 10 s rate)."""
    return f"histogram_quantile(0.99, sum by (pipeline, le) (rate({histogram}_bucket{{{PIPELINE}}}[10s])))"


def api_latency(repeat: bool = False) -> PanelBuilder:
    return graph(
        "API latency percentiles",
        SECONDS,
        [
            query(f"{API}{{{PIPELINE}, {BELOW_P99}}}", "server q{{quantile}}"),
            query(f"{CLIENT}{{{PIPELINE}}}", "client q{{quantile}}"),
            query(raw_p99(m.REACTION_REQUEST_DURATION_SECONDS), "server q0.99", exemplar=True),
        ],
        description="Server: request accepted to response written (reaction histogram). Client: from the "
        f"request's intended start (coordinated omission included) to its answer or timeout. {EXEMPLARS}",
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
        [
            query(f"{E2E}{{{PIPELINE}, {BELOW_P99}}}", "q{{quantile}}"),
            query(raw_p99(m.PUSHSINK_END_TO_END_LATENCY_SECONDS), "q0.99", exemplar=True),
        ],
        description="First delivery at the push sink minus the reaction's created time, over the "
        f"notifications first delivered in the last 10 s. {EXEMPLARS}",
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
                f"(rate({m.REACTION_TRANSPORT_SEND_DURATION_SECONDS}_bucket{{{PIPELINE}}}[$__rate_interval])))",
                "p99 {{outcome}}",
                exemplar=True,
            )
        ],
        description=f"Time in the transport's send: gRPC Notify, or Kafka produce until acknowledged. {EXEMPLARS}",
    )


def delivery_duration() -> PanelBuilder:
    return graph(
        "Push delivery duration p99",
        SECONDS,
        [
            query(
                "histogram_quantile(0.99, sum by (le, outcome) "
                f"(rate({m.NOTIFICATION_DELIVERY_DURATION_SECONDS}_bucket{{{PIPELINE}}}[$__rate_interval])))",
                "p99 {{outcome}}",
                exemplar=True,
            )
        ],
        description="One notification from its first push attempt to its outcome, retries and backoff included. "
        + EXEMPLARS,
    )
