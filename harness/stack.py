"""The native stack: which components run, with what arguments, in what order.

Order: Prometheus, Toxiproxy (then its proxies), Jaeger, Kafka (then topics), push sink,
notification (then replicas 2..N and HAProxy in front of them, with `--replicas`), reaction.
Stopping goes in reverse. A failed start stops what already runs before raising.
"""

from __future__ import annotations

import functools
import itertools
import json
import shutil
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from chaos.toxiproxy import ToxiproxyClient
from dashboards.prometheus import config as prometheus_config
from facts import jaeger, kafka_broker, topology
from facts import toxiproxy as toxiproxy_facts
from facts.probe import ReactionReady, http_json, http_ok, tcp_open, wait_until
from harness import kafka_admin, provision
from harness.replicas import HAPROXY, Replicas, haproxy_spec, notification_argv, notification_ready
from harness.supervisor import ComponentSpec, Port, Supervisor

H = topology.HOST


@dataclass(frozen=True)
class Tracing:
    """What the services are told about tracing (targets/tracing.py's flags)."""

    enabled: bool = True
    sample_ratio: float = 1.0

    def argv(self) -> list[str]:
        """Only what differs from the services' defaults (on, ratio 1, Jaeger's OTLP port on its
        topology host): the command lines stay those compose runs too."""
        flags = [] if self.enabled else ["--tracing", "off"]
        if self.sample_ratio != 1.0:
            flags += ["--trace-sample-ratio", repr(self.sample_ratio)]
        return flags

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> Tracing:
        """What `argv()` told a service, read back from its command line."""
        flags = dict(itertools.pairwise(argv))
        ratio = flags.get("--trace-sample-ratio")
        return cls(enabled=flags.get("--tracing") != "off", sample_ratio=1.0 if ratio is None else float(ratio))

    @property
    def setting(self) -> str:
        """As harness/measured_tracing.py reads a setting: "off", or the share of reactions traced."""
        return f"{self.sample_ratio:g}" if self.enabled else "off"


def jaeger_config(max_traces: int = jaeger.MAX_TRACES) -> dict[str, object]:
    """facts/jaeger.py's configuration listening where the topology puts Jaeger (127.0.0.1)."""
    return jaeger.config(topology.host_for(topology.JAEGER_QUERY_HTTP_PORT), max_traces)


def _tracing_argv(stack: object) -> list[str]:
    # Spec methods are also called on stand-ins carrying only what they read (tests/test_compose_file.py).
    tracing: Tracing = getattr(stack, "tracing", Tracing())
    return tracing.argv()


class Stack:
    """One native stack in `work_dir` (logs, Kafka data, Prometheus TSDB)."""

    def __init__(
        self,
        work_dir: Path,
        pipeline: str = topology.DEFAULT_PIPELINE,
        detached: bool = False,
        state_file: Path | None = None,
        tracing: Tracing | None = None,
        replicas: Replicas | None = None,
    ) -> None:
        if pipeline not in topology.PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r} (known: {', '.join(topology.PIPELINES)})")
        self.work_dir = work_dir
        self.pipeline = pipeline
        self.tracing = tracing or Tracing()
        self.replicas = replicas or Replicas()  # harness/replicas.py: default 1, no balancer
        self.arts = provision.locate()
        self.sup = Supervisor(work_dir / "logs", state_file=state_file, detached=detached)
        self.toxiproxy = ToxiproxyClient()

    # -- component specs ---------------------------------------------------------------------

    def prometheus_spec(self) -> ComponentSpec:
        conf_dir = self.work_dir / "prometheus-config"
        shutil.rmtree(conf_dir, ignore_errors=True)
        shutil.copytree(prometheus_config.HERE, conf_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        return ComponentSpec(
            "prometheus",
            [
                str(self.arts.prometheus),
                f"--config.file={conf_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.work_dir / 'prometheus-data'}",
                f"--web.listen-address={topology.addr(topology.PROMETHEUS_PORT)}",
                "--web.enable-lifecycle",
                "--web.enable-admin-api",
                # The services' latency histograms carry trace ids (OpenMetrics exemplars, targets/tracing.py).
                "--enable-feature=exemplar-storage",
            ],
            [Port(topology.PROMETHEUS_PORT, "Prometheus web/API")],
            ready=lambda: http_ok(topology.url(topology.PROMETHEUS_PORT, "/-/ready")),
        )

    def toxiproxy_spec(self) -> ComponentSpec:
        ports = [Port(topology.TOXIPROXY_API_PORT, "Toxiproxy API")]
        ports += [Port(p.listen_port, f"Toxiproxy proxy {p.name!r} ({p.description})") for p in topology.PROXIES]
        ports += [Port(p.listen_port, f"Toxiproxy proxy {p.name!r} ({p.description})") for p in self.replicas.proxies()]
        return ComponentSpec(
            "toxiproxy",
            [
                str(self.arts.toxiproxy_server),
                "-host", H, "-port", str(topology.TOXIPROXY_API_PORT),
                "-proxy-metrics", "-runtime-metrics", "-seed", "1",
            ],
            ports,
            ready=lambda: self.toxiproxy.version() is not None,
            env=dict(toxiproxy_facts.ENVIRONMENT),
        )  # fmt: skip

    def jaeger_spec(self) -> ComponentSpec:
        config = self.work_dir / "jaeger.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps(jaeger_config(), indent=2))  # JSON is YAML: no writer needed
        t = topology
        return ComponentSpec(
            "jaeger",
            [str(self.arts.jaeger), "--config", f"file:{config}"],
            [Port(t.JAEGER_OTLP_HTTP_PORT, "Jaeger OTLP/HTTP receiver"),
             Port(t.JAEGER_QUERY_HTTP_PORT, "Jaeger query API/UI"),
             Port(t.JAEGER_QUERY_GRPC_PORT, "Jaeger query gRPC API")],
            # The query API answers once the store is up; the receiver opens its port last.
            ready=lambda: http_ok(t.url(t.JAEGER_QUERY_HTTP_PORT, "/api/services"))
            and tcp_open(t.JAEGER_OTLP_HTTP_PORT),
        )  # fmt: skip

    def kafka_spec(self) -> ComponentSpec:
        kdir = self.work_dir / "kafka"
        data = kdir / "data"
        kdir.mkdir(parents=True, exist_ok=True)
        (kdir / "server.properties").write_text(kafka_broker.render(kafka_broker.properties(data)))
        (kdir / "log4j2.yaml").write_text(kafka_broker.LOG4J2_YAML)
        cp = f"{self.arts.kafka_libs}/*"
        if not (data / "meta.properties").exists():
            import subprocess

            fmt = subprocess.run(
                ["java", "-cp", cp, f"-Dlog4j2.configurationFile={kdir / 'log4j2.yaml'}",
                 "kafka.tools.StorageTool", "format", f"--cluster-id={topology.kafka_cluster_id()}",
                 "-c", str(kdir / "server.properties")],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if fmt.returncode != 0:
                raise RuntimeError(f"Kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")
        t = topology
        return ComponentSpec(
            t.KAFKA,
            ["java", *kafka_broker.HEAP_OPTS, "-XX:+UseG1GC", f"-Dlog4j2.configurationFile={kdir / 'log4j2.yaml'}",
             "-cp", cp, "kafka.Kafka", str(kdir / "server.properties")],
            [Port(t.KAFKA_INTERNAL_PORT, "Kafka INTERNAL listener"),
             Port(t.KAFKA_PRODUCE_PORT, "Kafka PRODUCE listener"),
             Port(t.KAFKA_CONSUME_PORT, "Kafka CONSUME listener"),
             Port(t.KAFKA_CONTROLLER_PORT, "Kafka KRaft controller")],
            ready=lambda: tcp_open(t.KAFKA_INTERNAL_PORT) and kafka_admin.ready(),
            ready_timeout=120,
        )  # fmt: skip

    def pushsink_spec(self) -> ComponentSpec:
        return ComponentSpec(
            topology.PUSHSINK,
            [
                sys.executable,
                "-m",
                "targets.pushsink",
                "--port",
                str(topology.PUSHSINK_HTTP_PORT),
                *_tracing_argv(self),
            ],
            [Port(topology.PUSHSINK_HTTP_PORT, "push sink HTTP")],
            ready=lambda: http_ok(topology.url(topology.PUSHSINK_HTTP_PORT, topology.HEALTHZ_PATH)),
        )

    def notification_spec(self, replica: int = 1) -> ComponentSpec:
        r = topology.notification_replica(replica)  # replica 1: the single stack's ports
        return ComponentSpec(
            r.process,
            [sys.executable, "-m", "targets.notification", *notification_argv(r), *_tracing_argv(self)],
            [
                Port(r.grpc_port, f"{r.process} gRPC"),
                Port(r.metrics_port, f"{r.process} metrics HTTP"),
            ],
            ready=lambda: notification_ready(r),
        )

    def haproxy_spec(self) -> ComponentSpec:
        return haproxy_spec(self.arts.haproxy, self.work_dir / "haproxy", self.replicas.count)

    def reaction_spec(self, pipeline: str) -> ComponentSpec:
        return ComponentSpec(
            topology.REACTION,
            [
                sys.executable,
                "-m",
                "targets.reaction",
                "--pipeline",
                pipeline,
                *self.replicas.reaction_argv(),
                *_tracing_argv(self),
            ],
            [Port(topology.REACTION_HTTP_PORT, "reaction HTTP API")],
            ready=ReactionReady(lambda: http_json(topology.url(topology.REACTION_HTTP_PORT, topology.HEALTHZ_PATH))),
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def up(self) -> Stack:
        try:
            self.sup.start(self.prometheus_spec())
            self.sup.start(self.toxiproxy_spec())
            self.toxiproxy.populate((*topology.PROXIES, *self.replicas.proxies()))
            self.sup.start(self.jaeger_spec())
            self.sup.start(self.kafka_spec())
            kafka_admin.create_topics()
            self.sup.start(self.pushsink_spec())
            self.sup.start(self.notification_spec())
            for n in range(2, self.replicas.count + 1):
                self.sup.start(self.notification_spec(n))
            if self.replicas.has_haproxy:
                self.sup.start(self.haproxy_spec())
            self.sup.start(self.reaction_spec(self.pipeline))
        except BaseException:
            self.down()
            raise
        return self

    def use_pipeline(self, pipeline: str) -> None:
        """Restart the reaction service with another pipeline; the rest of the stack stays up."""
        if pipeline not in topology.PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r}")
        self.sup.stop(topology.REACTION)
        self.pipeline = pipeline
        self.sup.start(self.reaction_spec(pipeline))

    def use_balancer(self, balancer: str) -> None:
        """Restart the reaction service reaching the replicas another way (haproxy | client)."""
        self.replicas = self.replicas.with_balancer(balancer)
        self.sup.stop(topology.REACTION)
        self.sup.start(self.reaction_spec(self.pipeline))

    def use_tracing(self, tracing: Tracing) -> None:
        """Restart the three services, every notification replica included, with other tracing
        flags (Kafka, Jaeger, HAProxy and the rest stay up)."""
        self.tracing = tracing
        replicas = range(1, self.replicas.count + 1)
        self.sup.stop(topology.REACTION)
        for n in reversed(replicas):
            self.sup.stop(topology.notification_replica(n).process)
        self.sup.stop(topology.PUSHSINK)
        self.sup.start(self.pushsink_spec())
        for n in replicas:
            self.sup.start(self.notification_spec(n))
        if self.replicas.has_haproxy:  # sync must not open on servers HAProxy still holds down
            balancer = self.sup.specs[HAPROXY]
            wait_until(balancer.ready, balancer.ready_timeout, "HAProxy: every replica UP again")
        # A service is ready before its consumer joins, and a consumer gone without leaving the group
        # holds it until its session expires: what is measured next would see no consumption.
        consumers = self.replicas.count
        wait_until(lambda: kafka_admin.group_settled(consumers), 60, "the notification consumers back in their group")
        self.sup.start(self.reaction_spec(self.pipeline))

    def down(self) -> None:
        self.sup.stop_all()

    def __enter__(self) -> Stack:
        return self.up()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.down()

    # -- process faults (chaos.engine.ProcessControl) --------------------------------------------

    def kill(self, name: str) -> None:
        self.sup.signal(name, signal.SIGKILL)

    def restart(self, name: str) -> None:
        """Start it again and return at once: the fault timeline must not stall while it starts.
        From a fresh spec: the reaction service's readiness remembers its first answer."""
        # What a scenario may kill (chaos.scenario.PROCESSES).
        specs = {topology.KAFKA: self.kafka_spec, topology.NOTIFICATION: self.notification_spec,
                 topology.REACTION: lambda: self.reaction_spec(self.pipeline)}  # fmt: skip
        for n in range(2, self.replicas.count + 1):  # harness/replicas.py
            specs[topology.notification_replica(n).process] = functools.partial(self.notification_spec, n)
        if self.replicas.has_haproxy:
            specs[HAPROXY] = self.haproxy_spec
        if name not in specs:
            raise ValueError(f"cannot restart {name!r} (restartable: {', '.join(specs)})")
        spec = specs[name]()
        self.sup.stop(name)
        self.sup.start(spec, wait=False)

    def ready(self, name: str) -> bool:
        """Whether the restarted component is ready; StartError if it exited or its ready timeout passed."""
        return self.sup.poll_ready(name)

    def pause(self, name: str) -> None:
        self.sup.signal(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.sup.signal(name, signal.SIGCONT)
