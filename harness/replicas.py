"""An optional topology: N notification replicas, and how sync reaches them.

- `haproxy`: reaction --[proxy `balancer`]--> HAProxy (gRPC over HTTP/2, `mode http`, `proto h2`
  on both sides, an h2 health check per server) --[proxy `notification-<n>`]--> replica n.
- `client`: gRPC client-side `round_robin` over a static `ipv4:` list of the replicas' proxies,
  the control for the balancer's hop (same replicas, same proxies, no balancer).
- `none`: the single-replica stack (reaction -> `notification` -> replica 1).

Async ignores the balancer: the N replicas are one consumer group over the topic's partitions.
Replica 1 keeps the single stack's ports, proxies and process name (`notification`); replicas
2..N are `notification-2`, ... (facts/topology.py). harness/stack.py asks this module for the
extra components and arguments; with the default (1 replica, no balancer) nothing changes.
"""

from __future__ import annotations

import csv
import io
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from facts import topology
from facts.probe import http_ok, tcp_open
from harness.supervisor import ComponentSpec, Port

BALANCERS = ("none", "haproxy", "client")
HAPROXY = topology.HAPROXY  # its process name (a scenario may kill or pause it)
# Health checks: every second, down after 2 failures, up after 2 successes (HAProxy's own defaults
# are 2 s, 3 and 2). A gRPC server answers any POST with HTTP 200 and a grpc-status (12 for an
# unknown method), so a 200 means "the replica's gRPC server answers"; a TCP check alone would
# pass against Toxiproxy's listener even with the replica dead.
CHECK_INTER_MS = 1000
CHECK_FALL = 2
CHECK_RISE = 2
# gRPC's server resets a stream without :authority (HAProxy's check sends no Host unless told): the
# check fails with SOCKERR. With it, the server answers 200 with grpc-status 12 (no health service).
GRPC_HEADERS = "hdr host notification hdr content-type application/grpc hdr te trailers"
# HAProxy's own Prometheus exporter (built in: Debian's package has USE_PROMEX), at Prometheus'
# default metrics path on the stats port.
HAPROXY_METRICS_PATH = topology.METRICS_PATH
BACKEND = "notification"  # the replicas' backend: its servers' status is read back from the stats
STATS_PATH = "/stats"


class TopologyError(ValueError):
    """A replica count or balancer that cannot be built."""


@dataclass(frozen=True)
class Replicas:
    """How many notification replicas run and what balances sync calls over them."""

    count: int = 1
    balancer: str = "none"

    def __post_init__(self) -> None:
        if not 1 <= self.count <= topology.NOTIFICATION_REPLICAS_MAX:
            raise TopologyError(f"replicas: {self.count} is not 1..{topology.NOTIFICATION_REPLICAS_MAX}")
        if self.balancer not in BALANCERS:
            raise TopologyError(f"balancer: {self.balancer!r} is not one of {', '.join(BALANCERS)}")
        if self.count > 1 and self.balancer == "none":
            raise TopologyError(
                f"{self.count} replicas need a balancer for sync (haproxy or client): without one, "
                "sync would reach replica 1 only"
            )

    @classmethod
    def of(cls, count: int = 1, balancer: str | None = None) -> Replicas:
        """`balancer` None: none for one replica, haproxy for more."""
        return cls(count, balancer or ("none" if count == 1 else "haproxy"))

    @property
    def default(self) -> bool:
        return self.count == 1 and self.balancer == "none"

    @property
    def has_haproxy(self) -> bool:
        """HAProxy runs whenever there are replicas, so a run can switch between it and the control."""
        return self.count > 1

    def replicas(self) -> list[topology.NotificationReplica]:
        return [topology.notification_replica(n) for n in range(1, self.count + 1)]

    def processes(self) -> tuple[str, ...]:
        """What a process fault may target beyond chaos.scenario.PROCESSES."""
        extra = tuple(r.process for r in self.replicas()[1:])
        return extra + ((HAPROXY,) if self.has_haproxy else ())

    def proxies(self) -> tuple[topology.Proxy, ...]:
        return topology.replica_proxies(self.count, self.has_haproxy)

    def ports(self) -> dict[int, str]:
        return topology.replica_ports(self.count, self.has_haproxy)

    def with_balancer(self, balancer: str) -> Replicas:
        return Replicas(self.count, balancer)

    # -- arguments of the services ------------------------------------------------------------

    def reaction_argv(self) -> list[str]:
        """The reaction service's notification target(s) and gRPC load-balancing policy."""
        if self.balancer == "haproxy":
            return ["--notification-target", topology.PROXY_BALANCER.listen]
        if self.balancer == "client":
            return [
                "--notification-target",
                *(r.grpc_proxy.listen for r in self.replicas()),
                "--grpc-lb",
                "round_robin",
            ]
        return []

    def describe(self) -> str:
        if self.default:
            return "1 notification replica"
        via = "HAProxy" if self.balancer == "haproxy" else "client-side round robin"
        return f"{self.count} notification replicas (sync via {via}; async: one consumer group)"


def notification_argv(replica: topology.NotificationReplica) -> list[str]:
    """Replica n's ports and push link; replica 1 runs with the service's defaults."""
    if replica.n == 1:
        return []
    return [
        "--grpc-port", str(replica.grpc_port),
        "--metrics-port", str(replica.metrics_port),
        "--push-url", topology.url(replica.push_proxy.listen_port, topology.PUSH_PATH),
    ]  # fmt: skip


def notification_ready(replica: topology.NotificationReplica) -> bool:
    return http_ok(topology.url(replica.metrics_port, topology.HEALTHZ_PATH))


# -- HAProxy ------------------------------------------------------------------------------------


def haproxy_config(count: int, port: int = topology.HAPROXY_PORT, stats_port: int = topology.HAPROXY_STATS_PORT) -> str:
    """HAProxy's configuration for `count` replicas: an h2 frontend, one h2 server per replica's
    proxy with an h2 health check, and on `stats_port` a stats page that says which servers are up
    and HAProxy's Prometheus exporter (the `haproxy` job of dashboards/prometheus/config.py)."""
    servers = "\n".join(
        f"    server {r.process} {r.grpc_proxy.listen}"
        for r in (topology.notification_replica(n) for n in range(1, count + 1))
    )
    h = topology.HOST
    return f"""\
# Generated by harness/replicas.py: HAProxy in front of {count} notification replicas (gRPC over h2).
global
    log stderr format raw local0 notice
    maxconn 4096
    # One thread: the machine has two cores and the services need them.
    nbthread 1

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 1s
    # What a typical deployment sets: retry a failed connection, on another server.
    retries 3
    option redispatch

frontend grpc
    bind {h}:{port} proto h2
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk
    http-check send meth POST uri /grpc.health.v1.Health/Check ver HTTP/2 {GRPC_HEADERS}
    http-check expect status 200
    default-server proto h2 check inter {CHECK_INTER_MS} fall {CHECK_FALL} rise {CHECK_RISE}
{servers}

frontend stats
    bind {h}:{stats_port}
    http-request use-service prometheus-exporter if {{ path {HAPROXY_METRICS_PATH} }}
    stats enable
    stats uri {STATS_PATH}
    stats refresh 1s
"""


def haproxy_servers() -> dict[str, str]:
    """Each backend server's status as HAProxy's stats say it (UP, DOWN, ...); empty if unreachable."""
    try:
        with urllib.request.urlopen(topology.url(topology.HAPROXY_STATS_PORT, f"{STATS_PATH};csv"), timeout=1.0) as r:
            text = r.read().decode()
    except OSError:
        return {}
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {
        row["svname"]: row["status"]
        for row in rows
        if row.get("pxname") == BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND")
    }


def haproxy_spec(executable: Path, work_dir: Path, count: int) -> ComponentSpec:
    """HAProxy in the foreground (-db) under the supervisor; ready once every server is UP."""
    config = work_dir / "haproxy.cfg"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(haproxy_config(count))
    names = [topology.notification_replica(n).process for n in range(1, count + 1)]

    def ready() -> bool:
        status = haproxy_servers()
        return tcp_open(topology.HAPROXY_PORT) and all(status.get(n, "").startswith("UP") for n in names)

    return ComponentSpec(
        HAPROXY,
        [str(executable), "-db", "-f", str(config)],
        [Port(topology.HAPROXY_PORT, "HAProxy gRPC frontend"), Port(topology.HAPROXY_STATS_PORT, "HAProxy stats")],
        ready=ready,
        ready_timeout=30,
    )


def check_config(executable: Path, config: Path) -> tuple[bool, str]:
    """`haproxy -c -f FILE`: whether HAProxy accepts the file, and what it said."""
    import subprocess

    out = subprocess.run([str(executable), "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)
    return out.returncode == 0, out.stdout + out.stderr


if __name__ == "__main__":  # print the configuration: python -m harness.replicas [N]
    sys.stdout.write(haproxy_config(int(sys.argv[1]) if len(sys.argv) > 1 else topology.NOTIFICATION_REPLICAS_MAX))
