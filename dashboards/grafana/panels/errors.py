"""Errors: what the API answered (non-2xx) next to what the client saw fail, and why."""

from __future__ import annotations

from dashboards.grafana.common import PER_SECOND, PIPELINE, RATIO, PanelBuilder, graph, query


def errors_by_code(repeat: bool = False) -> PanelBuilder:
    return graph(
        "Errors by status code",
        PER_SECOND,
        [
            query(f"pipeline:reaction_request_errors:rate10s{{{PIPELINE}}}", "all non-2xx"),
            query(f'pipeline_code:reaction_requests:rate10s{{{PIPELINE}, code!~"2.."}}', "{{code}}"),
        ],
        description="503: unavailable or breaker open; 504: deadline exceeded.",
        repeat=repeat,
    )


def error_ratio() -> PanelBuilder:
    return graph(
        "Error ratio: server vs client",
        RATIO,
        [
            query(f"pipeline:reaction_request_errors_per_requests:ratio_rate10s{{{PIPELINE}}}", "{{pipeline}} server"),
            query(f"pipeline:loadgen_response_errors_per_responses:ratio_rate10s{{{PIPELINE}}}", "{{pipeline}} client"),
        ],
        description="Server: non-2xx share of the API's answers. Client: failed + unknown share of what "
        "Locust finished, as the ledger's error_ratio counts (timeouts never reach the server's count).",
    )


def transport_errors() -> PanelBuilder:
    return graph(
        "Transport errors by reason",
        PER_SECOND,
        [query(f"pipeline_reason:reaction_transport_errors:rate10s{{{PIPELINE}}}", "{{reason}}")],
        description="Failures of the reaction service's send (gRPC Notify or Kafka produce).",
        stack=True,
    )
