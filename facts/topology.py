"""The one place for every port, proxy, topic and component name of the stack.

Everything listens on 127.0.0.1. The native supervisor, Prometheus' scrape config, the chaos
engine and compose/ all read these values; nothing else writes a port number down (but for
compose's Grafana and Locust web ports, which exist only in containers: compose/generate.py).
"""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass

HOST = "127.0.0.1"
# Natively everything is on 127.0.0.1. In containers (compose/), each component is reached by its
# service name and listens on all interfaces: SYNC_ASYNC_BENCH_HOSTS="kafka=kafka,reaction=..."
# maps components to hosts, SYNC_ASYNC_BENCH_BIND_HOST says where our own listeners bind.
BIND_HOST = os.environ.get("SYNC_ASYNC_BENCH_BIND_HOST", HOST)


def _parse_hosts(value: str) -> dict[str, str]:
    hosts = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        component, sep, host = item.partition("=")
        if not sep or not component or not host:
            raise ValueError(f"SYNC_ASYNC_BENCH_HOSTS: {item!r} is not component=host")
        hosts[component] = host
    return hosts


HOSTS: dict[str, str] = _parse_hosts(os.environ.get("SYNC_ASYNC_BENCH_HOSTS", ""))

# Kafka: one internal listener for the harness' admin calls, two listeners whose *advertised*
# addresses are Toxiproxy ports (so clients keep going through the proxy after metadata), and
# the KRaft controller.
KAFKA_INTERNAL_PORT = 9092
KAFKA_PRODUCE_PORT = 9093
KAFKA_CONSUME_PORT = 9094
KAFKA_CONTROLLER_PORT = 9095
# The compose runtime's three-broker profile; broker 1 keeps the single broker's name.
KAFKA_CLUSTER_BROKERS = 3


def kafka_broker(node: int) -> str:
    """Broker `node`'s process (compose service) name: `process: kafka` means broker 1 in either profile."""
    return "kafka" if node == 1 else f"kafka-{node}"


def kafka_cluster_id(seed: str | None = None) -> str:
    """A KRaft cluster id (22 url-safe base64 characters of a UUID): random, or fixed by `seed`.

    Like Kafka's Uuid.randomUuid, never one starting with "-", which would read as a command-line option.
    """
    while True:
        u = uuid.uuid4() if seed is None else uuid.uuid5(uuid.NAMESPACE_URL, seed)
        cid = base64.urlsafe_b64encode(u.bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
        if seed is not None:
            raise ValueError(f"the cluster id seeded by {seed!r} starts with '-': choose another seed")


REACTION_HTTP_PORT = 8080
NOTIFICATION_GRPC_PORT = 50051
NOTIFICATION_METRICS_PORT = 8081
PUSHSINK_HTTP_PORT = 8082
TOXIPROXY_API_PORT = 8474
PROMETHEUS_PORT = 9090
LOADGEN_METRICS_PORT = 9646
CHAOS_METRICS_PORT = 9647
# Jaeger v2 (traces): OTLP/HTTP in (the services' exporter), the query API out (harness/traces.py
# and the UI), and the query gRPC API, which Jaeger always opens (bound here so it stays local).
JAEGER_OTLP_HTTP_PORT = 4318
JAEGER_QUERY_HTTP_PORT = 16686
JAEGER_QUERY_GRPC_PORT = 16685

TOPIC_REACTIONS = "reactions"
TOPIC_DEAD_LETTER = "reactions.dlq"
TOPIC_PARTITIONS = 6
CONSUMER_GROUP = "notification"

PIPELINES = ("sync", "sync-resilient", "async")
DEFAULT_PIPELINE = "async"  # what `bench up` starts with unless told (compose.mk and its compose file say it too)


@dataclass(frozen=True)
class Proxy:
    """A Toxiproxy link: clients dial `listen_port`, Toxiproxy forwards to `upstream_port`."""

    name: str
    listen_port: int
    upstream_port: int
    description: str

    @property
    def listen(self) -> str:
        return addr(self.listen_port)

    @property
    def upstream(self) -> str:
        return addr(self.upstream_port)


PROXY_NOTIFICATION = Proxy("notification", 15051, NOTIFICATION_GRPC_PORT, "reaction -> notification gRPC")
PROXY_KAFKA_PRODUCE = Proxy("kafka-produce", 19093, KAFKA_PRODUCE_PORT, "reaction -> Kafka (producer)")
PROXY_KAFKA_CONSUME = Proxy("kafka-consume", 19094, KAFKA_CONSUME_PORT, "notification <-> Kafka (consumer)")
PROXY_PUSH = Proxy("push", 18082, PUSHSINK_HTTP_PORT, "notification -> push sink")

PROXIES: tuple[Proxy, ...] = (PROXY_NOTIFICATION, PROXY_KAFKA_PRODUCE, PROXY_KAFKA_CONSUME, PROXY_PUSH)
PROXIES_BY_NAME = {p.name: p for p in PROXIES}


def component_of(port: int) -> str | None:
    """The component that listens on `port` (the key of SYNC_ASYNC_BENCH_HOSTS)."""
    return PORT_COMPONENT.get(port)


def host_for(port: int) -> str:
    component = component_of(port)
    return HOSTS.get(component, HOST) if component else HOST


def addr(port: int) -> str:
    return f"{host_for(port)}:{port}"


def url(port: int, path: str = "") -> str:
    return f"http://{addr(port)}{path}"


# Every service answers it on its HTTP port (targets/exposition.py): 200 while the process serves
# HTTP, the body says what is connected. Readiness probes, wrk's and the generator's cheapest request.
HEALTHZ_PATH = "/healthz"
METRICS_PATH = "/metrics"  # Prometheus' default, on every service's HTTP (or metrics) port
# The reaction API, the push the notification service sends, and the push sink's API for the
# harness (its counts, the ledger, a reset between cells, the deliveries streamed).
REACTIONS_PATH = "/v1/posts/{post_id}/reactions"
OPENAPI_PATH = "/openapi.json"
PUSH_PATH = "/push"
SINK_STATS_PATH, SINK_LEDGER_PATH, SINK_RESET_PATH, SINK_DUMP_PATH = "/stats", "/ledger", "/reset", "/dump"


# The system under test: our three services (their process names and their tracing service names).
REACTION, NOTIFICATION, PUSHSINK = "reaction", "notification", "pushsink"
SERVICES = (REACTION, NOTIFICATION, PUSHSINK)
# Other processes a scenario may fault, by their names: the broker, and the balancer in front of
# notification replicas (harness/replicas.py).
KAFKA, HAPROXY = "kafka", "haproxy"

# Which component listens on each port: the hosts table's keys.
PORT_COMPONENT: dict[int, str] = {
    KAFKA_INTERNAL_PORT: KAFKA,
    KAFKA_PRODUCE_PORT: KAFKA,
    KAFKA_CONSUME_PORT: KAFKA,
    KAFKA_CONTROLLER_PORT: KAFKA,
    REACTION_HTTP_PORT: REACTION,
    NOTIFICATION_GRPC_PORT: NOTIFICATION,
    NOTIFICATION_METRICS_PORT: NOTIFICATION,
    PUSHSINK_HTTP_PORT: PUSHSINK,
    TOXIPROXY_API_PORT: "toxiproxy",
    PROMETHEUS_PORT: "prometheus",
    JAEGER_OTLP_HTTP_PORT: "jaeger",
    JAEGER_QUERY_HTTP_PORT: "jaeger",
    JAEGER_QUERY_GRPC_PORT: "jaeger",
    **{p.listen_port: "toxiproxy" for p in PROXIES},
}

# Prometheus scrape jobs: job name -> port serving /metrics.
SCRAPE_TARGETS: dict[str, int] = {
    REACTION: REACTION_HTTP_PORT,
    NOTIFICATION: NOTIFICATION_METRICS_PORT,
    PUSHSINK: PUSHSINK_HTTP_PORT,
    "toxiproxy": TOXIPROXY_API_PORT,
    "loadgen": LOADGEN_METRICS_PORT,
    "chaos": CHAOS_METRICS_PORT,
}


def listening_ports() -> dict[int, str]:
    """Every port the native stack listens on, with what listens there (loadgen/chaos excluded)."""
    ports = {
        KAFKA_INTERNAL_PORT: "kafka INTERNAL",
        KAFKA_PRODUCE_PORT: "kafka PRODUCE",
        KAFKA_CONSUME_PORT: "kafka CONSUME",
        KAFKA_CONTROLLER_PORT: "kafka CONTROLLER",
        REACTION_HTTP_PORT: "reaction",
        NOTIFICATION_GRPC_PORT: "notification gRPC",
        NOTIFICATION_METRICS_PORT: "notification metrics",
        PUSHSINK_HTTP_PORT: "pushsink",
        TOXIPROXY_API_PORT: "toxiproxy API",
        PROMETHEUS_PORT: "prometheus",
        JAEGER_OTLP_HTTP_PORT: "jaeger OTLP/HTTP",
        JAEGER_QUERY_HTTP_PORT: "jaeger query API",
        JAEGER_QUERY_GRPC_PORT: "jaeger query gRPC",
    }
    ports.update({p.listen_port: f"proxy {p.name}" for p in PROXIES})
    return ports


# -- An optional topology: N notification replicas (harness/replicas.py) -----------------------
# Replica 1 is the single-replica stack's notification service, with its ports and proxies;
# replicas 2..N get their own gRPC and metrics ports and their own proxies (`notification-2`,
# `push-2`, ...). Sync reaches them through HAProxy (behind the `balancer` proxy) or by gRPC
# client-side round robin over the `notification-<n>` proxies; async puts them in one consumer
# group over the topic's partitions (every consumer shares the `kafka-consume` proxy: the broker
# advertises one consume address).
NOTIFICATION_REPLICAS_MAX = 3
HAPROXY_PORT = 50050  # HAProxy's gRPC (h2) frontend
HAPROXY_STATS_PORT = 8404  # HAProxy's stats page (CSV: which servers are up) and Prometheus exporter
PROXY_BALANCER = Proxy("balancer", 15050, HAPROXY_PORT, "reaction -> HAProxy (sync, replicated)")


@dataclass(frozen=True)
class NotificationReplica:
    """Notification replica `n` (1-based): its process name, ports and the proxies in front of it."""

    n: int
    process: str
    grpc_port: int
    metrics_port: int
    grpc_proxy: Proxy  # reaction (or HAProxy) -> this replica's gRPC
    push_proxy: Proxy  # this replica -> push sink


def notification_replica(n: int) -> NotificationReplica:
    if not 1 <= n <= NOTIFICATION_REPLICAS_MAX:
        raise ValueError(f"notification replica {n}: must be 1..{NOTIFICATION_REPLICAS_MAX}")
    if n == 1:
        return NotificationReplica(
            1, NOTIFICATION, NOTIFICATION_GRPC_PORT, NOTIFICATION_METRICS_PORT, PROXY_NOTIFICATION, PROXY_PUSH
        )
    grpc_port, metrics_port = NOTIFICATION_GRPC_PORT + n - 1, 8280 + n  # 50052.., 8282..
    return NotificationReplica(
        n,
        f"{NOTIFICATION}-{n}",
        grpc_port,
        metrics_port,
        Proxy(
            f"notification-{n}", PROXY_NOTIFICATION.listen_port + n - 1, grpc_port, f"reaction -> notification-{n} gRPC"
        ),
        Proxy(f"push-{n}", PROXY_PUSH.listen_port + n - 1, PUSHSINK_HTTP_PORT, f"notification-{n} -> push sink"),
    )


def replica_proxies(replicas: int, balancer: bool) -> tuple[Proxy, ...]:
    """The proxies a replicated stack has beyond PROXIES: replicas 2..N's, and HAProxy's with a balancer."""
    out = [
        p
        for n in range(2, replicas + 1)
        for p in (notification_replica(n).grpc_proxy, notification_replica(n).push_proxy)
    ]
    return (*out, *((PROXY_BALANCER,) if balancer else ()))


def replica_ports(replicas: int, balancer: bool) -> dict[int, str]:
    """Every port a replicated stack listens on beyond listening_ports(), with what listens there."""
    ports: dict[int, str] = {}
    for n in range(2, replicas + 1):
        r = notification_replica(n)
        ports.update({r.grpc_port: f"{r.process} gRPC", r.metrics_port: f"{r.process} metrics"})
    if balancer:
        ports.update({HAPROXY_PORT: "haproxy gRPC frontend", HAPROXY_STATS_PORT: "haproxy stats"})
    ports.update({p.listen_port: f"proxy {p.name}" for p in replica_proxies(replicas, balancer)})
    return ports


def fixed_ports() -> set[int]:
    """Every port any stack of ours listens on (the largest replicated one included), the load
    generator's and the harness' metrics too."""
    return {
        *listening_ports(),
        *replica_ports(NOTIFICATION_REPLICAS_MAX, balancer=True),
        LOADGEN_METRICS_PORT,
        CHAOS_METRICS_PORT,
    }
