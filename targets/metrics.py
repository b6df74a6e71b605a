"""Every metric the services export: first the table of names, then the metric objects.

Dashboards, alert rules and the report import the ``*_NAME``-style constants below instead of
spelling names out. Each constant is the name a query uses (histograms add ``_bucket``, ``_sum``,
``_count``). Conventions: base units (seconds), counters end in ``_total``, ``pipeline`` is one of
``facts.topology.PIPELINES`` or ``unknown``.

Each service has its own registry, so a scrape of one service never shows another's series.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from facts import topology

# `_created` series double every counter and histogram and no dashboard reads them.
disable_created_metrics()

# ---------------------------------------------------------------------------------------------
# Names                                                      type       labels
# ---------------------------------------------------------------------------------------------
# reaction service (HTTP API -> transport)
REACTION_REQUESTS_TOTAL = "reaction_requests_total"  # counter   pipeline, code
REACTION_REQUEST_DURATION_SECONDS = "reaction_request_duration_seconds"  # histogram pipeline, code
REACTION_REQUESTS_IN_FLIGHT = "reaction_requests_in_flight"  # gauge     pipeline
REACTION_TRANSPORT_SEND_DURATION_SECONDS = "reaction_transport_send_duration_seconds"  # histo pipeline, outcome
REACTION_TRANSPORT_ERRORS_TOTAL = "reaction_transport_errors_total"  # counter   pipeline, reason
REACTION_TRANSPORT_READY = "reaction_transport_ready"  # gauge     pipeline (1 = can send)
REACTION_BREAKER_STATE = "reaction_breaker_state"  # gauge     pipeline, state (1 = current)
REACTION_BREAKER_TRANSITIONS_TOTAL = "reaction_breaker_transitions_total"  # counter   pipeline, state

# notification service (gRPC server + Kafka consumer -> push)
NOTIFICATION_GRPC_REQUESTS_TOTAL = "notification_grpc_requests_total"  # counter   pipeline, code
NOTIFICATION_MESSAGES_CONSUMED_TOTAL = "notification_messages_consumed_total"  # counter   -
NOTIFICATION_DELIVERIES_TOTAL = "notification_deliveries_total"  # counter   pipeline, outcome
NOTIFICATION_DELIVERY_ATTEMPTS_TOTAL = "notification_delivery_attempts_total"  # counter   pipeline, result
NOTIFICATION_DELIVERY_RETRIES_TOTAL = "notification_delivery_retries_total"  # counter   pipeline
NOTIFICATION_DELIVERY_DURATION_SECONDS = "notification_delivery_duration_seconds"  # histo pipeline, outcome
NOTIFICATION_DELIVERIES_IN_FLIGHT = "notification_deliveries_in_flight"  # gauge     pipeline
NOTIFICATION_DEAD_LETTERED_TOTAL = "notification_dead_lettered_total"  # counter   reason
NOTIFICATION_DEAD_LETTER_ERRORS_TOTAL = "notification_dead_letter_errors_total"  # counter   -
NOTIFICATION_OFFSET_COMMITS_TOTAL = "notification_offset_commits_total"  # counter   result
NOTIFICATION_CONSUMER_LAG_MESSAGES = "notification_consumer_lag_messages"  # gauge     -
NOTIFICATION_CONSUMER_CONNECTED = "notification_consumer_connected"  # gauge     - (1 = in the group)
NOTIFICATION_CONSUMER_RESTARTS_TOTAL = "notification_consumer_restarts_total"  # counter   -

# push sink (the ground truth)
PUSHSINK_DELIVERIES_TOTAL = "pushsink_deliveries_total"  # counter   pipeline (raw)
PUSHSINK_FIRST_DELIVERIES_TOTAL = "pushsink_first_deliveries_total"  # counter   pipeline
PUSHSINK_END_TO_END_LATENCY_SECONDS = "pushsink_end_to_end_latency_seconds"  # histogram pipeline
PUSHSINK_LEDGER_KEYS = "pushsink_ledger_keys"  # gauge     - (drops on /reset)

# ---------------------------------------------------------------------------------------------
# Label values
# ---------------------------------------------------------------------------------------------
UNKNOWN_PIPELINE = "unknown"
PIPELINE_VALUES: tuple[str, ...] = (*topology.PIPELINES, UNKNOWN_PIPELINE)
BREAKER_STATES = ("closed", "open", "half_open")
DELIVERY_OUTCOMES = ("delivered", "duplicate", "failed")
DEAD_LETTER_REASONS = ("exhausted", "rejected", "undecodable")
SEND_OUTCOMES = ("ok", "error")
COMMIT_RESULTS = ("ok", "rebalanced")

# Seconds. Request-path buckets stop at 10 s (deadlines are ~1 s); end-to-end latency includes
# an async backlog draining after an outage, so it goes to 10 minutes.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_BUCKETS = (*REQUEST_BUCKETS, 30.0, 60.0)
END_TO_END_BUCKETS = (*DELIVERY_BUCKETS, 120.0, 300.0, 600.0)


def pipeline_label(value: str | None) -> str:
    """Bound the label's cardinality: anything a peer sends that is not a pipeline is `unknown`."""
    return value if value in topology.PIPELINES else UNKNOWN_PIPELINE


def _service_registry() -> CollectorRegistry:
    # CPU and memory per service are part of what the benchmark compares.
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


REACTION_REGISTRY = _service_registry()
NOTIFICATION_REGISTRY = _service_registry()
PUSHSINK_REGISTRY = _service_registry()

# ---------------------------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------------------------
_r = REACTION_REGISTRY
reaction_requests = Counter(
    REACTION_REQUESTS_TOTAL, "HTTP requests answered, by HTTP status code.", ["pipeline", "code"], registry=_r
)
reaction_request_duration = Histogram(
    REACTION_REQUEST_DURATION_SECONDS,
    "Time from request accepted to response written.",
    ["pipeline", "code"],
    buckets=REQUEST_BUCKETS,
    registry=_r,
)
reaction_requests_in_flight = Gauge(
    REACTION_REQUESTS_IN_FLIGHT, "Requests being handled right now.", ["pipeline"], registry=_r
)
reaction_transport_send_duration = Histogram(
    REACTION_TRANSPORT_SEND_DURATION_SECONDS,
    "Time spent in the transport's send (gRPC Notify or Kafka produce until ack).",
    ["pipeline", "outcome"],
    buckets=REQUEST_BUCKETS,
    registry=_r,
)
reaction_transport_errors = Counter(
    REACTION_TRANSPORT_ERRORS_TOTAL, "Transport failures, by reason.", ["pipeline", "reason"], registry=_r
)
reaction_transport_ready = Gauge(
    REACTION_TRANSPORT_READY,
    "1 when the transport can attempt a send (channel not failing, producer connected).",
    ["pipeline"],
    registry=_r,
)
reaction_breaker_state = Gauge(
    REACTION_BREAKER_STATE, "Circuit breaker state: 1 for the current state.", ["pipeline", "state"], registry=_r
)
reaction_breaker_transitions = Counter(
    REACTION_BREAKER_TRANSITIONS_TOTAL,
    "Circuit breaker transitions, by the state entered.",
    ["pipeline", "state"],
    registry=_r,
)

_n = NOTIFICATION_REGISTRY
notification_grpc_requests = Counter(
    NOTIFICATION_GRPC_REQUESTS_TOTAL, "Notify RPCs answered, by gRPC status.", ["pipeline", "code"], registry=_n
)
notification_messages_consumed = Counter(
    NOTIFICATION_MESSAGES_CONSUMED_TOTAL, "Kafka records fetched by the consumer group.", registry=_n
)
notification_deliveries = Counter(
    NOTIFICATION_DELIVERIES_TOTAL,
    "Push deliveries finished, by outcome (after all attempts).",
    ["pipeline", "outcome"],
    registry=_n,
)
notification_delivery_attempts = Counter(
    NOTIFICATION_DELIVERY_ATTEMPTS_TOTAL,
    "Push HTTP attempts, by result (ok, http_4xx, http_5xx, timeout, connection).",
    ["pipeline", "result"],
    registry=_n,
)
notification_delivery_retries = Counter(
    NOTIFICATION_DELIVERY_RETRIES_TOTAL, "Push attempts that were retries.", ["pipeline"], registry=_n
)
notification_delivery_duration = Histogram(
    NOTIFICATION_DELIVERY_DURATION_SECONDS,
    "Time to deliver one notification, all attempts and backoff included.",
    ["pipeline", "outcome"],
    buckets=DELIVERY_BUCKETS,
    registry=_n,
)
notification_deliveries_in_flight = Gauge(
    NOTIFICATION_DELIVERIES_IN_FLIGHT, "Deliveries started and not finished.", ["pipeline"], registry=_n
)
notification_dead_lettered = Counter(
    NOTIFICATION_DEAD_LETTERED_TOTAL,
    "Records written (acked) to the dead-letter topic, by reason.",
    ["reason"],
    registry=_n,
)
notification_dead_letter_errors = Counter(
    NOTIFICATION_DEAD_LETTER_ERRORS_TOTAL, "Dead-letter writes that failed (the record is retried).", registry=_n
)
notification_offset_commits = Counter(
    NOTIFICATION_OFFSET_COMMITS_TOTAL,
    "Offset commits after a fully handled batch, by result.",
    ["result"],
    registry=_n,
)
notification_consumer_lag = Gauge(
    NOTIFICATION_CONSUMER_LAG_MESSAGES,
    "Highwater minus next offset, summed over assigned partitions (as of the last batch).",
    registry=_n,
)
notification_consumer_connected = Gauge(
    NOTIFICATION_CONSUMER_CONNECTED, "1 while the consumer is started and polling.", registry=_n
)
notification_consumer_restarts = Counter(
    NOTIFICATION_CONSUMER_RESTARTS_TOTAL, "Consumer sessions that ended in an error and restarted.", registry=_n
)

_p = PUSHSINK_REGISTRY
pushsink_deliveries = Counter(
    PUSHSINK_DELIVERIES_TOTAL, "Push requests accepted (raw, redeliveries included).", ["pipeline"], registry=_p
)
pushsink_first_deliveries = Counter(
    PUSHSINK_FIRST_DELIVERIES_TOTAL, "Push requests that were the first for their key.", ["pipeline"], registry=_p
)
pushsink_end_to_end_latency = Histogram(
    PUSHSINK_END_TO_END_LATENCY_SECONDS,
    "First delivery time minus the reaction's created time.",
    ["pipeline"],
    buckets=END_TO_END_BUCKETS,
    registry=_p,
)
pushsink_ledger_keys = Gauge(PUSHSINK_LEDGER_KEYS, "Distinct keys in the ledger.", registry=_p)
