"""The committed Prometheus config is what the topology renders, and promtool accepts it."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from dashboards.prometheus import config
from facts import topology


def test_committed_config_matches_topology() -> None:
    assert config.CONFIG_FILE.read_text() == config.render(), (
        "dashboards/prometheus/prometheus.yml is stale: run `python -m dashboards.prometheus.config`"
    )


def _targets() -> dict[str, list[str]]:
    rendered = yaml.safe_load(config.render())
    return {j["job_name"]: [t for sc in j["static_configs"] for t in sc["targets"]] for j in rendered["scrape_configs"]}


def test_every_component_is_scraped() -> None:
    targets = _targets()
    for job, port in topology.SCRAPE_TARGETS.items():
        assert f"{topology.HOST}:{port}" in targets[job], job


def test_every_notification_replica_and_haproxy_are_scraped() -> None:
    """The replicated topology's processes (harness/replicas.py): each replica is a target of the one
    notification job, so the job's sums count every replica; HAProxy's exporter is its own job."""
    targets = _targets()
    replicas = [topology.notification_replica(n) for n in range(1, topology.NOTIFICATION_REPLICAS_MAX + 1)]
    assert targets["notification"] == [f"{topology.HOST}:{r.metrics_port}" for r in replicas]
    assert targets["haproxy"] == [f"{topology.HOST}:{topology.HAPROXY_STATS_PORT}"]
    # Nothing else: every target is a topology scrape port or a replicated-topology metrics port.
    extra = topology.replica_ports(topology.NOTIFICATION_REPLICAS_MAX, balancer=True)
    metrics_ports = {p for p, what in extra.items() if what.endswith("metrics") or p == topology.HAPROXY_STATS_PORT}
    scraped = {int(t.rpartition(":")[2]) for ts in targets.values() for t in ts}
    assert scraped == set(topology.SCRAPE_TARGETS.values()) | metrics_ports


def test_promtool_check_config() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `make setup`"
    out = subprocess.run([promtool, "check", "config", str(config.CONFIG_FILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
