"""Delivery at the push sink (the ground truth) and the notification service's push attempts."""

from __future__ import annotations

from dashboards.grafana.common import OPS, PIPELINE, PanelBuilder, graph, query


def deliveries(repeat: bool = False) -> PanelBuilder:
    return graph(
        "Delivered, redelivered, dead-lettered",
        OPS,
        [
            query(f"pipeline:pushsink_first_deliveries:rate10s{{{PIPELINE}}}", "delivered (first)"),
            query(f"pipeline:pushsink_redeliveries:rate10s{{{PIPELINE}}}", "redelivered (raw - first)"),
            query(f"pipeline:notification_dead_lettered:rate10s{{{PIPELINE}}}", "dead-lettered"),
        ],
        description="Per second, at the push sink. Dead letters exist for the async pipeline only.",
        repeat=repeat,
    )


def delivered_by_pipeline() -> PanelBuilder:
    return graph(
        "Delivered per second by pipeline",
        OPS,
        [
            query(f"pipeline:pushsink_first_deliveries:rate10s{{{PIPELINE}}}", "{{pipeline}} delivered"),
            query(f"pipeline:pushsink_redeliveries:rate10s{{{PIPELINE}}}", "{{pipeline}} redelivered"),
        ],
    )


def notification_outcomes() -> PanelBuilder:
    return graph(
        "Notifications by outcome",
        OPS,
        [query(f"pipeline_outcome:notification_deliveries:rate10s{{{PIPELINE}}}", "{{outcome}}")],
        description="Finished deliveries after all attempts: delivered, duplicate (the sink had the key), failed.",
        stack=True,
    )


def push_attempts() -> PanelBuilder:
    return graph(
        "Push attempts by result",
        OPS,
        [
            query(f"pipeline_result:notification_delivery_attempts:rate10s{{{PIPELINE}}}", "{{result}}"),
            query(f"pipeline:notification_delivery_retries:rate10s{{{PIPELINE}}}", "of which retries"),
        ],
    )
