"""The Kafka broker's settings (KRaft, one node natively), as data: the native stack renders them to
server.properties, compose/ derives each container broker's from them.
"""

from __future__ import annotations

from pathlib import Path

from facts import topology

# The JVM heap of each broker, natively and in compose (KAFKA_HEAP_OPTS): fixed and touched at
# start, as brokers are usually run, so the broker's RSS does not climb while the JVM first uses
# its heap (a cell's memory check would read that as growth).
HEAP_OPTS = ("-Xmx1g", "-Xms1g", "-XX:+AlwaysPreTouch")
# The pipeline's topics on one broker (harness.kafka_admin creates them; compose's kafka-init too).
TOPIC_REPLICATION_FACTOR = 1
LOG4J2_YAML = """Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.clients
        level: WARN
"""


def properties(data_dir: Path | str) -> dict[str, str]:
    """server.properties of the native single broker (node 1); compose/ rewrites hosts and node ids."""
    t = topology
    h = t.HOST
    listeners = {
        "INTERNAL": t.KAFKA_INTERNAL_PORT,
        "PRODUCE": t.KAFKA_PRODUCE_PORT,
        "CONSUME": t.KAFKA_CONSUME_PORT,
        "CONTROLLER": t.KAFKA_CONTROLLER_PORT,
    }
    # Clients reconnect to the advertised address of the listener they came in on: advertise
    # the Toxiproxy ports so Kafka traffic keeps flowing through the proxies after metadata.
    advertised = {
        "INTERNAL": t.KAFKA_INTERNAL_PORT,
        "PRODUCE": t.PROXY_KAFKA_PRODUCE.listen_port,
        "CONSUME": t.PROXY_KAFKA_CONSUME.listen_port,
    }
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{h}:{t.KAFKA_CONTROLLER_PORT}",
        "listeners": ",".join(f"{n}://{h}:{p}" for n, p in listeners.items()),
        "advertised.listeners": ",".join(f"{n}://{h}:{p}" for n, p in advertised.items()),
        "listener.security.protocol.map": ",".join(f"{n}:PLAINTEXT" for n in listeners),
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(data_dir),
        "num.partitions": str(t.TOPIC_PARTITIONS),
        "auto.create.topics.enable": "false",  # a typo'd topic name fails loudly
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",  # one node: fewer partitions, faster start
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    return props


def render(props: dict[str, str]) -> str:
    """A properties file's text."""
    return "".join(f"{k}={v}\n" for k, v in props.items())
