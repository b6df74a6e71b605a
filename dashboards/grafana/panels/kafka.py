"""The async pipeline's Kafka consumer: lag, throughput, commits, membership, dead letters.

The consumer's raw series carry no pipeline label (only the async pipeline uses Kafka).
"""

from __future__ import annotations

from dashboards.grafana.common import COUNT, HALF, HEIGHT, OPS, PIPELINE, PanelBuilder, graph, query, states
from targets import metrics as m


def lag() -> PanelBuilder:
    return graph(
        "Consumer lag",
        COUNT,
        [query(f"pipeline:notification_consumer_lag_messages:sum{{{PIPELINE}}}", "messages behind")],
        description="Highwater minus next offset over the assigned partitions, as of the last batch, "
        "summed over the replicas in the consumer group.",
    )


def throughput() -> PanelBuilder:
    return graph(
        "Records consumed and offsets committed",
        OPS,
        [
            query(f"pipeline:notification_messages_consumed:rate10s{{{PIPELINE}}}", "records consumed"),
            query(
                f"sum by (result) (rate({m.NOTIFICATION_OFFSET_COMMITS_TOTAL}[$__rate_interval]))", "commits {{result}}"
            ),
        ],
        description="Offsets are committed only after a batch is fully handled (at-least-once).",
    )


def membership() -> PanelBuilder:
    return states(
        "Consumer in the group",
        [query(f"max({m.NOTIFICATION_CONSUMER_CONNECTED})", "consumer")],
        {"0": ("not polling", "red"), "1": ("polling", "green")},
        width=HALF,
        height=HEIGHT,
    )


def restarts() -> PanelBuilder:
    return graph(
        "Consumer restarts",
        COUNT,
        [query(f"sum(increase({m.NOTIFICATION_CONSUMER_RESTARTS_TOTAL}[$__rate_interval]))", "restarts")],
    )


def dead_letters() -> PanelBuilder:
    return graph(
        "Dead letters by reason",
        OPS,
        [
            query(f"pipeline_reason:notification_dead_lettered:rate10s{{{PIPELINE}}}", "{{reason}}"),
            query(f"sum(rate({m.NOTIFICATION_DEAD_LETTER_ERRORS_TOTAL}[$__rate_interval]))", "DLQ write errors"),
        ],
        description="Records that kept failing, written (acked) to the dead-letter topic; never dropped.",
    )
