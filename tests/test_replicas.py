"""The replicated topology (harness/replicas.py): ports and proxies, HAProxy's configuration (checked
by HAProxy itself), the reaction service's targets, the plan's checks and the recovery metrics."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from chaos import scenario as scenarios
from dashboards.prometheus import config as prometheus_config
from facts import measures, topology
from facts.probe import http_ok, wait_until
from harness import replicas as rep
from harness.plan import PlanError, make_plan
from harness.replicas import Replicas, TopologyError
from targets.reaction.__main__ import parse_args
from tests.synthetic_run import CAPACITIES, fault, result

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def test_replica_one_is_the_single_stack_and_the_others_have_their_own_ports() -> None:
    one = topology.notification_replica(1)
    assert (one.process, one.grpc_port, one.metrics_port) == ("notification", 50051, 8081)
    assert (one.grpc_proxy, one.push_proxy) == (topology.PROXY_NOTIFICATION, topology.PROXY_PUSH)
    extra = topology.replica_ports(topology.NOTIFICATION_REPLICAS_MAX, True)
    assert not set(extra) & set(topology.listening_ports())  # the single stack's ports are untouched
    assert len(extra) == 11  # 2 replicas x (gRPC, metrics, 2 proxies) + HAProxy x 2 + the balancer proxy
    names = [p.name for p in topology.replica_proxies(3, True)]
    assert names == ["notification-2", "push-2", "notification-3", "push-3", "balancer"]
    with pytest.raises(ValueError, match=r"1\.\.3"):
        topology.notification_replica(4)


def test_replicas_defaults_and_refusals() -> None:
    assert Replicas().default and Replicas.of(1).balancer == "none"
    assert Replicas.of(3).balancer == "haproxy"
    assert Replicas.of(2, "client").processes() == ("notification-2", "haproxy")
    with pytest.raises(TopologyError, match="need a balancer"):
        Replicas(2, "none")
    with pytest.raises(TopologyError, match=r"1\.\.3"):
        Replicas(4, "haproxy")
    assert Replicas().reaction_argv() == [] and Replicas().proxies() == ()


@pytest.mark.parametrize("count", [1, 2, 3])
def test_generated_haproxy_config_passes_haproxy_check(tmp_path: Path, count: int) -> None:
    if not Path(HAPROXY).exists():
        pytest.fail("HAProxy is not provisioned (make setup installs Debian's package)")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(rep.haproxy_config(count))
    ok, said = rep.check_config(Path(HAPROXY), cfg)
    assert ok, said
    text = cfg.read_text()
    assert f"bind {topology.HOST}:{topology.HAPROXY_PORT} proto h2" in text
    servers = [line.split() for line in text.splitlines() if line.strip().startswith("server ")]
    assert [s[1:3] for s in servers] == [
        [r.process, r.grpc_proxy.listen] for r in (topology.notification_replica(n) for n in range(1, count + 1))
    ]
    assert "default-server proto h2 check" in text and "http-check expect status 200" in text
    assert "hdr host" in text  # without :authority gRPC resets the check's stream


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((topology.HOST, 0))
        return int(s.getsockname()[1])


def test_haproxy_serves_prometheus_metrics_per_replica_where_prometheus_scrapes(tmp_path: Path) -> None:
    """The real HAProxy on the generated config (spare ports, no replicas behind it): its exporter
    answers on the stats port at the path the `haproxy` job scrapes, with a status per replica."""
    if not Path(HAPROXY).exists():
        pytest.fail("HAProxy is not provisioned (make setup installs Debian's package)")
    job = next(j for j in yaml.safe_load(prometheus_config.render())["scrape_configs"] if j["job_name"] == "haproxy")
    assert job.get("metrics_path", "/metrics") == rep.HAPROXY_METRICS_PATH  # Prometheus' default path
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [topology.addr(topology.HAPROXY_STATS_PORT)]
    stats_port = _free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(rep.haproxy_config(2, port=_free_port(), stats_port=stats_port))
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://{topology.HOST}:{stats_port}{rep.HAPROXY_METRICS_PATH}"
        wait_until(lambda: http_ok(url), 10, "HAProxy's exporter answering")
        with urllib.request.urlopen(url, timeout=5) as r:
            content_type, text = r.headers["Content-Type"], r.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    servers = {
        s.labels["server"] for s in families["haproxy_server_status"].samples if s.labels["proxy"] == "notification"
    }
    assert servers == {"notification", "notification-2"}
    assert "haproxy_backend_http_requests" in families or "haproxy_backend_http_requests_total" in families


def test_reaction_service_gets_one_target_per_balancer() -> None:
    def target(r: Replicas) -> tuple[str, str]:
        args = parse_args(["--pipeline", "sync", *r.reaction_argv(), "--tracing", "off"])
        return args.notification_target, args.grpc_lb

    assert target(Replicas()) == (topology.PROXY_NOTIFICATION.listen, "pick_first")
    assert target(Replicas(3, "haproxy")) == (topology.PROXY_BALANCER.listen, "pick_first")
    assert target(Replicas(3, "client")) == ("ipv4:127.0.0.1:15051,127.0.0.1:15052,127.0.0.1:15053", "round_robin")


def test_notification_replicas_get_their_ports_and_push_link() -> None:
    assert rep.notification_argv(topology.notification_replica(1)) == []
    argv = rep.notification_argv(topology.notification_replica(2))
    assert argv == ["--grpc-port", "50052", "--metrics-port", "8282", "--push-url", "http://127.0.0.1:18083/push"]


def test_replica_scenarios_are_kept_apart_and_need_the_replicas() -> None:
    names = scenarios.shipped_for_replicas()
    assert {"balancer-hop", "balancer-hop-client", "replica-down", "replica-down-client"} <= set(names)
    assert not set(names) & set(scenarios.shipped())  # `make bench` on one replica never plays them
    with pytest.raises(PlanError) as e:
        make_plan(["sync"], ["replica-down"], capacities=CAPACITIES)
    assert "needs 2 notification replicas, the stack has 1" in str(e.value)
    assert "'notification-2' is not a process of this stack" in str(e.value)
    procs = scenarios.PROCESSES + Replicas(2, "haproxy").processes()
    plan = make_plan(["sync", "async"], names, processes=procs, replicas=2, capacities=CAPACITIES)
    assert {c.scenario.balancer for c in plan.cells} == {"haproxy", "client"}
    make_plan(
        ["sync"], scenarios.shipped(), processes=procs, replicas=2, capacities=CAPACITIES
    )  # the usual ones still run


def test_a_replica_s_links_are_faultable_on_a_stack_that_has_them_and_refused_elsewhere(tmp_path: Path) -> None:
    scenario = tmp_path / "replica-2-push-slow.yaml"
    scenario.write_text(
        "name: replica-2-push-slow\ndescription: the second replica's push link is slow\nprofile: steady\n"
        "replicas: 2\nfaults:\n"
        "  - {kind: toxic, at: 5, duration: 10, link: push-2, toxic: latency, attributes: {latency: 200}}\n"
        "  - {kind: link-down, at: 5, duration: 5, link: notification-2}\n"
    )
    procs = scenarios.PROCESSES + Replicas(2, "haproxy").processes()
    (cell,) = make_plan(["async"], [str(scenario)], processes=procs, replicas=2, capacities=CAPACITIES).cells
    assert [getattr(f, "link", None) for f in cell.scenario.faults] == ["push-2", "notification-2"]
    with pytest.raises(PlanError) as e:
        make_plan(["async"], [str(scenario)], capacities=CAPACITIES)
    assert "faults[0].link: 'push-2' is not a link of this stack" in str(e.value)
    assert "faults[1].link: 'notification-2' is not a link of this stack" in str(e.value)
    three = scenario.read_text().replace("push-2", "push-3")
    scenario.write_text(three)
    with pytest.raises(PlanError, match=r"faults\[0\]\.link: 'push-3' is not a link of this stack"):
        make_plan(["async"], [str(scenario)], processes=procs, replicas=2, capacities=CAPACITIES)
    scenario.write_text(three.replace("push-3", "push-9"))
    with pytest.raises(PlanError, match=r"unknown link 'push-9'"):
        make_plan(["async"], [str(scenario)], processes=procs, replicas=2, capacities=CAPACITIES)


def test_run_switches_the_balancer_per_cell() -> None:
    from harness.run import _use_balancer

    switched: list[str] = []

    class Fake:
        replicas = Replicas(2, "haproxy")

        def use_balancer(self, b: str) -> None:
            switched.append(b)
            self.replicas = self.replicas.with_balancer(b)

    cell = make_plan(
        ["sync"],
        ["balancer-hop-client"],
        processes=(*scenarios.PROCESSES, "notification-2", "haproxy"),
        replicas=2,
        capacities=CAPACITIES,
    ).cells[0]
    topo = _use_balancer(Fake(), cell)  # type: ignore[arg-type]
    assert switched == ["client"] and topo is not None and (topo.replicas, topo.balancer) == (2, "client")
    assert _use_balancer(SimpleNamespace(replicas=Replicas()), cell) is None


def test_recovery_metrics_from_the_series() -> None:
    assert {"fault.error_seconds", "fault.e2e_p99_max", "replicas"} <= set(measures.NAMES)
    down = result("sync", "replica-down", faults=(fault("kill notification-2", 5, 8, kind="kill"),), fault_error=0.3)
    m = down.metrics()
    assert m["replicas"] == 1.0  # no topology recorded: the single stack
    # errors in seconds 5, 6 and 7; the fault took effect at 5.02 s
    assert m["fault.error_seconds"] == pytest.approx(8 - 5.02)
    assert m["fault.e2e_p99_max"] is not None
    calm = result("async", "replica-down", faults=(fault("kill notification-2", 5, 8, kind="kill"),), fault_e2e=4.0)
    assert calm.metrics()["fault.error_seconds"] == 0.0
    assert calm.metrics()["fault.e2e_p99_max"] == pytest.approx(4.0, rel=0.05)  # delivered after the fault
    assert result("sync", "baseline").metrics()["fault.error_seconds"] is None


def test_capacity_by_replicas_says_when_the_machine_cannot_show_scaling() -> None:
    from harness.capacity.command import scaling_note

    assert scaling_note(2, 1) is None
    note = scaling_note(2, 3)
    assert note is not None and "cannot show scaling" in note and "2 CPUs" in note
    assert scaling_note(16, 3) is None
