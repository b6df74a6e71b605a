"""The overview: every selected pipeline side by side, plus the headline numbers overlaid."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.grafana import common
from dashboards.grafana.panels import backlog, delivery, errors, faults, latency, load, totals, traffic
from facts import topology

UID = "sab-overview"


def detail_uid(pipeline: str) -> str:
    return f"sab-detail-{pipeline}"


def overview() -> dm.Dashboard:
    d = common.dashboard(
        UID,
        "sync-async-bench: overview",
        "Synchronous gRPC vs asynchronous Kafka, under the same load and faults.",
        [common.datasource_variable(), common.pipeline_variable(topology.PIPELINES), common.scenario_variable()],
    )
    for p in topology.PIPELINES:
        d.link(
            db.DashboardLink(f"{p} detail")
            .type(dm.DashboardLinkType.LINK)
            .url(f"/d/{detail_uid(p)}")
            .keep_time(True)
            .include_vars(False)
        )
    common.add_group(d, "Bench cells and faults", [faults.timeline(), faults.link_traffic()])
    common.add_group(d, "Totals in range", totals.totals())
    common.add_group(
        d,
        "Pipelines compared",
        [
            latency.api_p99_by_pipeline(),
            latency.e2e_p99_by_pipeline(),
            errors.error_ratio(),
            delivery.delivered_by_pipeline(),
        ],
    )
    common.add_group(
        d,
        "Load and errors (one column per pipeline)",
        [
            load.offered_vs_achieved(repeat=True),
            traffic.requests_by_code(repeat=True),
            errors.errors_by_code(repeat=True),
        ],
    )
    common.add_group(
        d, "Latency (one column per pipeline)", [latency.api_latency(repeat=True), latency.e2e_latency(repeat=True)]
    )
    common.add_group(
        d,
        "Delivery and backlog (one column per pipeline)",
        [delivery.deliveries(repeat=True), backlog.backlog(repeat=True)],
    )
    return common.number_panels(d.build())
