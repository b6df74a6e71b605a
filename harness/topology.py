"""The one place for every port, proxy, topic and component name of the stack.

Everything listens on 127.0.0.1. The native supervisor, Prometheus' scrape config, the chaos
engine and compose/ all read these values; nothing else writes a port number down.
"""

from __future__ import annotations

from dataclasses import dataclass

HOST = "127.0.0.1"

# Kafka: one internal listener for the harness' admin calls, two listeners whose *advertised*
# addresses are Toxiproxy ports (so clients keep going through the proxy after metadata), and
# the KRaft controller.
KAFKA_INTERNAL_PORT = 9092
KAFKA_PRODUCE_PORT = 9093
KAFKA_CONSUME_PORT = 9094
KAFKA_CONTROLLER_PORT = 9095

REACTION_HTTP_PORT = 8080
NOTIFICATION_GRPC_PORT = 50051
NOTIFICATION_METRICS_PORT = 8081
PUSHSINK_HTTP_PORT = 8082
TOXIPROXY_API_PORT = 8474
PROMETHEUS_PORT = 9090
LOADGEN_METRICS_PORT = 9646
CHAOS_METRICS_PORT = 9647

TOPIC_REACTIONS = "reactions"
TOPIC_DEAD_LETTER = "reactions.dlq"
TOPIC_PARTITIONS = 6
CONSUMER_GROUP = "notification"

PIPELINES = ("sync", "sync-resilient", "async")


@dataclass(frozen=True)
class Proxy:
    """A Toxiproxy link: clients dial `listen_port`, Toxiproxy forwards to `upstream_port`."""

    name: str
    listen_port: int
    upstream_port: int
    description: str

    @property
    def listen(self) -> str:
        return f"{HOST}:{self.listen_port}"

    @property
    def upstream(self) -> str:
        return f"{HOST}:{self.upstream_port}"


PROXY_NOTIFICATION = Proxy("notification", 15051, NOTIFICATION_GRPC_PORT, "reaction -> notification gRPC")
PROXY_KAFKA_PRODUCE = Proxy("kafka-produce", 19093, KAFKA_PRODUCE_PORT, "reaction -> Kafka (producer)")
PROXY_KAFKA_CONSUME = Proxy("kafka-consume", 19094, KAFKA_CONSUME_PORT, "notification <-> Kafka (consumer)")
PROXY_PUSH = Proxy("push", 18082, PUSHSINK_HTTP_PORT, "notification -> push sink")

PROXIES: tuple[Proxy, ...] = (PROXY_NOTIFICATION, PROXY_KAFKA_PRODUCE, PROXY_KAFKA_CONSUME, PROXY_PUSH)
PROXIES_BY_NAME = {p.name: p for p in PROXIES}


def addr(port: int) -> str:
    return f"{HOST}:{port}"


def url(port: int, path: str = "") -> str:
    return f"http://{HOST}:{port}{path}"


# Prometheus scrape jobs: job name -> port serving /metrics.
SCRAPE_TARGETS: dict[str, int] = {
    "reaction": REACTION_HTTP_PORT,
    "notification": NOTIFICATION_METRICS_PORT,
    "pushsink": PUSHSINK_HTTP_PORT,
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
    }
    ports.update({p.listen_port: f"proxy {p.name}" for p in PROXIES})
    return ports
