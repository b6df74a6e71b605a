"""The load generator: offered vs achieved rate, what the client saw, and its own health."""

from __future__ import annotations

from dashboards.grafana.common import PER_SECOND, PIPELINE, SECONDS, PanelBuilder, graph, query


def offered_vs_achieved(repeat: bool = False) -> PanelBuilder:
    return graph(
        "Load: target, offered, achieved, missed",
        PER_SECOND,
        [
            query(f"pipeline:loadgen_target_requests_per_second:sum{{{PIPELINE}}}", "target"),
            query(f"pipeline:loadgen_arrivals:rate10s{{{PIPELINE}}}", "offered (arrivals)"),
            query(f"pipeline:loadgen_requests_started:rate10s{{{PIPELINE}}}", "achieved (started)"),
            query(f"pipeline:loadgen_missed_arrivals:rate10s{{{PIPELINE}}}", "missed (in-flight cap)"),
        ],
        description="Open-loop load: achieved below offered means the generator hit its in-flight cap, "
        "and every missed arrival is a request the pipeline never saw.",
        repeat=repeat,
    )


def client_outcomes() -> PanelBuilder:
    return graph(
        "Client outcomes",
        PER_SECOND,
        [query(f"pipeline_outcome_status:loadgen_responses:rate10s{{{PIPELINE}}}", "{{outcome}} {{status}}")],
        description="What Locust recorded per request: ack (2xx), failed (other status or refused), "
        "unknown (timeout or reset: the ledger decides from the push sink).",
        stack=True,
    )


def generator_health() -> PanelBuilder:
    return graph(
        "Load generator: schedule lag p99",
        SECONDS,
        [query(f"pipeline_quantile:loadgen_schedule_lag_seconds:histogram_quantile_rate10s{{{PIPELINE}}}", "p99")],
        description="Delay between an arrival's intended and actual start. Beyond a few ms the generator "
        "is saturated and the latency it reports includes its own queueing.",
    )
