"""The native stack: which components run, with what arguments, in what order.

Order: Prometheus, Toxiproxy (then its proxies), Kafka (then topics), push sink, notification,
reaction. Stopping goes in reverse. A failed start stops what already runs before raising.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path
from types import TracebackType

from chaos.toxiproxy import ToxiproxyClient
from dashboards.prometheus import config as prometheus_config
from facts import kafka_broker, topology
from facts.probe import ReactionReady, http_json, http_ok, tcp_open
from harness import kafka_admin, provision
from harness.supervisor import ComponentSpec, Port, Supervisor

H = topology.HOST


class Stack:
    """One native stack in `work_dir` (logs, Kafka data, Prometheus TSDB)."""

    def __init__(
        self, work_dir: Path, pipeline: str = "async", detached: bool = False, state_file: Path | None = None
    ) -> None:
        if pipeline not in topology.PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r} (known: {', '.join(topology.PIPELINES)})")
        self.work_dir = work_dir
        self.pipeline = pipeline
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
            ],
            [Port(topology.PROMETHEUS_PORT, "Prometheus web/API")],
            ready=lambda: http_ok(topology.url(topology.PROMETHEUS_PORT, "/-/ready")),
        )

    def toxiproxy_spec(self) -> ComponentSpec:
        ports = [Port(topology.TOXIPROXY_API_PORT, "Toxiproxy API")]
        ports += [Port(p.listen_port, f"Toxiproxy proxy {p.name!r} ({p.description})") for p in topology.PROXIES]
        return ComponentSpec(
            "toxiproxy",
            [
                str(self.arts.toxiproxy_server),
                "-host", H, "-port", str(topology.TOXIPROXY_API_PORT),
                "-proxy-metrics", "-runtime-metrics", "-seed", "1",
            ],
            ports,
            ready=lambda: self.toxiproxy.version() is not None,
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
            "kafka",
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
            "pushsink",
            [sys.executable, "-m", "targets.pushsink", "--port", str(topology.PUSHSINK_HTTP_PORT)],
            [Port(topology.PUSHSINK_HTTP_PORT, "push sink HTTP")],
            ready=lambda: http_ok(topology.url(topology.PUSHSINK_HTTP_PORT, "/healthz")),
        )

    def notification_spec(self) -> ComponentSpec:
        return ComponentSpec(
            "notification",
            [sys.executable, "-m", "targets.notification"],
            [
                Port(topology.NOTIFICATION_GRPC_PORT, "notification gRPC"),
                Port(topology.NOTIFICATION_METRICS_PORT, "notification metrics HTTP"),
            ],
            ready=lambda: http_ok(topology.url(topology.NOTIFICATION_METRICS_PORT, "/healthz")),
        )

    def reaction_spec(self, pipeline: str) -> ComponentSpec:
        return ComponentSpec(
            "reaction",
            [sys.executable, "-m", "targets.reaction", "--pipeline", pipeline],
            [Port(topology.REACTION_HTTP_PORT, "reaction HTTP API")],
            ready=ReactionReady(lambda: http_json(topology.url(topology.REACTION_HTTP_PORT, "/healthz"))),
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def up(self) -> Stack:
        try:
            self.sup.start(self.prometheus_spec())
            self.sup.start(self.toxiproxy_spec())
            self.toxiproxy.populate()
            self.sup.start(self.kafka_spec())
            kafka_admin.create_topics()
            self.sup.start(self.pushsink_spec())
            self.sup.start(self.notification_spec())
            self.sup.start(self.reaction_spec(self.pipeline))
        except BaseException:
            self.down()
            raise
        return self

    def use_pipeline(self, pipeline: str) -> None:
        """Restart the reaction service with another pipeline; the rest of the stack stays up."""
        if pipeline not in topology.PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r}")
        self.sup.stop("reaction")
        self.pipeline = pipeline
        self.sup.start(self.reaction_spec(pipeline))

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
        specs = {"kafka": self.kafka_spec, "notification": self.notification_spec,
                 "reaction": lambda: self.reaction_spec(self.pipeline)}  # fmt: skip
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
