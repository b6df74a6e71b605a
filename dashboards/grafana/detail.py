"""One pipeline in detail: the shared groups plus the groups only that pipeline has."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.grafana import common
from dashboards.grafana.overview import UID as OVERVIEW_UID
from dashboards.grafana.overview import detail_uid
from dashboards.grafana.panels import (
    backlog,
    breaker,
    delivery,
    errors,
    faults,
    grpc,
    kafka,
    latency,
    load,
    totals,
    traffic,
)
from facts import topology

DESCRIPTIONS = {
    "sync": "reaction calls notification over gRPC and answers after the push was delivered.",
    "sync-resilient": "sync with a deadline, a retry budget and a circuit breaker.",
    "async": "reaction answers once Kafka acknowledged; the consumer pushes, retries, dead-letters.",
}


def detail(pipeline: str) -> dm.Dashboard:
    if pipeline not in topology.PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}")
    d = common.dashboard(
        detail_uid(pipeline),
        f"sync-async-bench: {pipeline}",
        f"The {pipeline} pipeline: {DESCRIPTIONS[pipeline]}",
        [common.datasource_variable(), common.pipeline_variable([pipeline]), common.scenario_variable()],
    )
    d.link(db.DashboardLink("overview").type(dm.DashboardLinkType.LINK).url(f"/d/{OVERVIEW_UID}").keep_time(True))
    common.add_group(d, "Bench cells and faults", [faults.timeline(), faults.link_traffic()])
    common.add_group(d, "Totals in range", totals.totals(dead_letters=pipeline == "async"))
    common.add_group(d, "Load", [load.offered_vs_achieved(), load.client_outcomes(), load.generator_health()])
    common.add_group(
        d,
        "API",
        [
            traffic.requests_by_code(),
            errors.errors_by_code(),
            errors.error_ratio(),
            latency.api_latency(),
            latency.transport_send_latency(),
            errors.transport_errors(),
            traffic.transport_ready(),
        ],
    )
    common.add_group(
        d,
        "Delivery",
        [
            delivery.deliveries(),
            latency.e2e_latency(),
            delivery.notification_outcomes(),
            delivery.push_attempts(),
            latency.delivery_duration(),
            backlog.backlog(),
        ],
    )
    if pipeline in ("sync", "sync-resilient"):
        common.add_group(d, "gRPC", [grpc.notify_by_code()])
    if pipeline == "sync-resilient":
        common.add_group(d, "Circuit breaker", [breaker.state(), breaker.transitions()])
    if pipeline == "async":
        common.add_group(
            d, "Kafka", [kafka.lag(), kafka.throughput(), kafka.membership(), kafka.restarts(), kafka.dead_letters()]
        )
    return common.number_panels(d.build())
